use mechlens::prelude::*;
mechlens::viz::cell_guard::install().ok();
