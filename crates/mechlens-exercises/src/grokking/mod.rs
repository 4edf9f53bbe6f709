//! Set E5, grokking (Nanda et al. 2023, ARENA 1.5.2): the Fourier basis over `0..p`, the
//! embedding's power per frequency, the key frequencies, each neuron's frequency, and the
//! logits restricted to the key frequencies; each checked against mechlens-toys' modular
//! arithmetic analyses, on random primes and random weights.

mod fourier;
mod neurons;
#[cfg(test)]
mod tests;

/// The checks of set E5 (re-exported flat in [`crate::check`]).
pub mod checks {
    pub use super::fourier::{fourier_basis, frequency_power, key_frequencies};
    pub use super::neurons::{neuron_frequency_share, restricted_logits};
}

/// Small primes for the cases (the model of the paper uses 113).
pub(crate) const PRIMES: [usize; 6] = [5, 7, 11, 13, 17, 23];
