//! Each check of E2 passes the library's answer and names each of its mutants.

use super::{ablation, circuits, detect};
use crate::transformer::tests::proves;

#[test]
fn repeated_tokens_and_detection_patterns() {
    proves(detect::repeat_tokens_spec());
    proves(detect::previous_token_spec());
    proves(detect::duplicate_token_spec());
    proves(detect::induction_pattern_spec());
}

#[test]
fn head_scores_and_induction_stripe() {
    proves(detect::head_scores_spec().unwrap());
    proves(detect::induction_stripe_spec().unwrap());
}

#[test]
fn logit_attribution_and_head_ablation() {
    proves(ablation::logit_attribution_spec());
    proves(ablation::head_ablation_spec().unwrap());
}

#[test]
fn ov_circuit_top_1_and_composition() {
    proves(circuits::full_ov_spec());
    proves(circuits::top_1_spec());
    proves(circuits::composition_spec());
}
