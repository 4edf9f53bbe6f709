//! Each check of E3 passes the library's answer and names each of its mutants.

use super::{activation, metric, path};
use crate::transformer::tests::proves;

#[test]
fn logit_difference_directions_decomposition_and_metric() {
    proves(metric::logit_diff_spec());
    proves(metric::directions_spec());
    proves(metric::stack_spec());
    proves(metric::patching_metric_spec());
}

#[test]
fn activation_patching_hooks_and_sweeps() {
    proves(activation::patch_position_spec());
    proves(activation::patch_head_spec());
    proves(activation::resid_pre_spec().unwrap());
    proves(activation::head_out_spec().unwrap());
}

#[test]
fn path_patching_in_two_steps() {
    proves(path::receiver_input_spec().unwrap());
    proves(path::path_patch_spec().unwrap());
}
