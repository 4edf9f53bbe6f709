//! Core types shared by every mechlens crate.
//!
//! - [`Error`] / [`Result`]: the one error type. Library code returns it for every bad input
//!   (wrong shape, missing file, unknown name) instead of panicking, because a panic in a
//!   notebook cell costs the user the cell and an abort costs them every variable.
//! - [`datasets`]: the repository's `datasets/` (BabyLlama, Shakespeare...), found wherever
//!   the checkout is and checked (size, sha256) before use.
//! - [`device`]: which device to run on, and the loader that makes libtorch's CUDA backend
//!   visible to `tch` (see that module for why it is needed).
//! - [`HookPoint`]: the typed hook names (TransformerLens' strings), [`Hooks`] /
//!   [`Intervention`]: what to do at them, [`ActivationCache`]: what a run recorded, and
//!   [`HookSession`]: the per-forward state a model threads through its components.
//! - [`allocator`]: lets freed tensor memory be reused (no page faults per forward pass).
//! - [`progress`]: whole-line progress reports with rate and ETA (notebook stdout is
//!   line-buffered).
//! - [`shape`]: checks that turn a shape mismatch into an [`Error`] naming both shapes.

pub mod allocator;
mod cache;
pub mod datasets;
pub mod device;
mod error;
mod hook_point;
mod hooks;
pub mod progress;
mod rng;
pub mod shape;

pub use cache::{ActivationCache, CacheFilter};
pub use datasets::sha256_hex;
pub use error::{Error, Result};
pub use hook_point::{
    DecoderSites, Fires, ForwardOrder, HookPoint, IntoHookPoint, OptIn, SaeAnchor, SaeSite, Width,
    encoder_points,
};
pub use hooks::{Hook, HookSession, Hooks, Intervention, Splice};
pub use rng::SplitMix64;
