use mechlens::prelude::*;
