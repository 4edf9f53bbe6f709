//! Set E1, a transformer from scratch (ARENA 1.1): the weights a learner's functions take, in
//! TransformerLens' layouts, and the checks of each exercise.

mod attention;
mod embed;
mod forward;
mod loss;
mod mlp;
pub(crate) mod model_case;
mod norm;
mod params;
mod rotary;
mod sampling;
#[cfg(test)]
pub(crate) mod tests;

pub use params::{AttnParams, BlockParams, GptParams, MlpParams};

/// The checks of set E1 (re-exported flat in [`crate::check`]).
pub mod checks {
    pub use super::attention::{apply_causal_mask, attention, attention_pattern};
    pub use super::embed::{embed, pos_embed, unembed};
    pub use super::forward::transformer;
    pub use super::loss::{cross_entropy, unigram_loss};
    pub use super::mlp::mlp;
    pub use super::norm::{layer_norm, rms_norm};
    pub use super::rotary::rotary;
    pub use super::sampling::{apply_temperature, top_k_filter, top_p_filter};
}
