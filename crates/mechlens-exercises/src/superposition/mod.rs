//! Set E4, superposition and sparse autoencoders (Elhage et al. 2022; ARENA 1.3.1–1.3.2):
//! the toy model's data, forward pass and loss, its dimensions per feature, and an SAE's
//! encoder, decoder, loss, decoder normalisation and dead-latent resampling; each checked
//! against mechlens-toys' `ToyModel` and mechlens-sae's `Sae` (or, where the library has no
//! function of its own, the formula ARENA and SAELens use, written out).

mod sae;
#[cfg(test)]
mod tests;
mod toy;

/// The checks of set E4 (re-exported flat in [`crate::check`]).
pub mod checks {
    pub use super::sae::{
        dead_latents, normalize_decoder, resample_decoder, sae_decode, sae_encode, sae_loss,
    };
    pub use super::toy::{
        dimensions_per_feature, feature_dimensionality, sparse_features, toy_forward, toy_loss,
    };
}
