use mechlens::prelude::*;
mechlens::viz::cell_guard::install().ok();
// evcxr lets a cell use `?` only once some cell has needed it, and it finds that out from a
// failed build; when the first such cell ends in `expr?`, the same failure also makes it
// show that value with Debug instead of its display (a check's report, a DataFrame). One
// `?` here settles it at kernel start.
Ok::<(), mechlens::Error>(())?;
