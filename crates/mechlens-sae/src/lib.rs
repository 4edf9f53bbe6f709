//! Sparse autoencoders (SAEs) for mechanistic interpretability, in SAELens' vocabulary and
//! file format.
//!
//! - [`Sae`]: parameters and encode / decode / forward for the Standard (ReLU), TopK,
//!   JumpReLU (and BatchTopK, saved as JumpReLU) and Gated architectures, equal to SAELens'
//!   inference classes on the same weights.
//! - [`SaeConfig`]: `cfg.json` in SAELens' 6.x layout (older flat configs are read too);
//!   [`Sae::load`] / [`Sae::save`] read and write SAELens folders; [`Sae::from_pretrained`]
//!   and [`Sae::from_hub`] fetch them from the Hugging Face hub ([`pretrained`]).
//! - [`SaeSplicing`]: attach an SAE to a model's hook point (`model.add_sae`), with its own
//!   hook points (`…hook_sae_acts_post`) cached and patched like any other.
//! - [`train`]: a deterministic, resumable trainer (Adam, warm-up and decay, sparsity
//!   coefficient warm-up, gradient clipping, dead-latent tracking, atomic checkpoints);
//!   `fused` (private) holds its one-pass CPU loops for a step's memory-bound work (bias +
//!   ReLU + column sums, the ReLU's backward, MSE and its gradient, gradient norm, Adam) and
//!   the list of entries that fired, for a sparse step.
//! - [`e2e`]: end-to-end SAEs (Braun et al. 2024): trained spliced into a frozen model on the
//!   KL divergence of its outputs (and downstream activations) instead of reconstruction.
//! - [`absorption`]: how often a parent feature's latent stays silent when a child
//!   feature is present (Chanin et al. 2024).
//! - [`metrics`]: reconstruction and sparsity measures (L0, MSE, explained variance, ...);
//!   [`eval`]: CE loss and KL scores with the SAE spliced in.
//! - [`store`]: a model's activations at a hook over a text, with where each came from;
//!   [`features`]: top-activating contexts and logit effects of latents.
//! - [`shards`]: activations on disk (safetensors shards, a manifest with checksums), read
//!   back without the model through a mixing buffer.

pub mod absorption;
mod config;
pub mod e2e;
pub mod eval;
pub mod features;
mod format;
mod fused;
pub mod metrics;
pub mod pretrained;
mod sae;
pub mod shards;
mod source;
mod splice;
pub mod store;
pub mod train;

pub use config::{ActivationNorm, Architecture, SAE_LENS_FORMAT_VERSION, SaeConfig};
pub use format::{CFG_FILE, SPARSITY_FILE, WEIGHTS_FILE, load_sparsity, save_sparsity};
pub use sae::{Encoded, Sae};
pub use shards::{ShardManifest, ShardWriter, ShardedActivations};
pub use source::{ActivationSource, TensorSource};
pub use splice::{SaeSplicing, SpliceOptions, SplicedSae};
