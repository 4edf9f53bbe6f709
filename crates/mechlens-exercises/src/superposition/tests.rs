//! Each check of E4 passes the library's answer and names each of its mutants.

use super::{sae, toy};
use crate::transformer::tests::proves;

#[test]
fn toy_model_checks() {
    proves(toy::sparse_features_spec());
    proves(toy::toy_forward_spec());
    proves(toy::toy_loss_spec());
    proves(toy::dimensions_spec());
    proves(toy::dimensionality_spec());
}

#[test]
fn sae_checks() {
    proves(sae::encode_spec());
    proves(sae::decode_spec());
    proves(sae::loss_spec());
    proves(sae::normalize_spec());
    proves(sae::dead_spec());
    proves(sae::resample_spec());
}
