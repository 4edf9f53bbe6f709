//! Parity of mechlens with references we did not write: Hugging Face `transformers`,
//! TransformerLens, SAELens and SentencePiece (PyPI, run by tests/fixtures/*.py), plus
//! closed-form checks of hooks and the errors every bad input must give.

// A test binary: failing loudly on an unexpected Err is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod analysis;
mod babyllama;
mod decoders;
mod encoders;
mod errors;
mod grokking;
mod hook_lists;
mod hooks;
mod hub;
mod path_patching;
mod sae;
mod sae_converted;
mod sae_hub;
mod sae_model;
mod sae_shards;
mod sae_training;
mod saved_transformer;
mod training;
mod transformer_lens;
mod weights;
