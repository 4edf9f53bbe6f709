//! Each check of E5 passes the library's answer and names each of its mutants.

use super::{fourier, neurons};
use crate::transformer::tests::proves;

#[test]
fn fourier_basis_power_and_key_frequencies() {
    proves(fourier::fourier_basis_spec());
    proves(fourier::frequency_power_spec().unwrap());
    proves(fourier::key_frequencies_spec());
}

#[test]
fn neuron_share_and_restricted_logits() {
    proves(neurons::neuron_share_spec().unwrap());
    proves(neurons::restricted_logits_spec());
}
