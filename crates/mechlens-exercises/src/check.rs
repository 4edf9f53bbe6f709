//! Every exercise's check, by the exercise's name: `check::layer_norm(my_layer_norm)?`.
//! Each takes the learner's function and returns a [`crate::Report`] (see the crate's
//! overview for what a check does).

pub use crate::grokking::checks::*;
pub use crate::induction::checks::*;
pub use crate::patching::checks::*;
pub use crate::report::strict;
pub use crate::superposition::checks::*;
pub use crate::transformer::checks::*;
