//! Hooked transformers on libtorch.
//!
//! - [`HookedTransformer`]: GPT-2, GPT-Neo, GPT-NeoX/Pythia, Llama/Qwen2 and llama2.c
//!   checkpoints, loaded from Hugging Face folders, the hub cache or the hub itself
//!   (safetensors or `pytorch_model.bin`; [`Hub`] says where), with
//!   every TransformerLens hook point, caches, hooks, gradients, generation and weight
//!   processing. Raw weights by default, so logits equal Hugging Face's.
//! - [`HookedEncoder`]: BERT encoders (token types, attention mask, optional pooler).
//! - [`LinearMap`]: each block's linear maps as `input · W + b` with the hook points where
//!   their input and output live (what parameter decomposition rewrites).
//! - [`Tokenizer`]: `tokenizer.json` or SentencePiece, with TransformerLens' methods.
//!
//! Layout: `config` (the architecture-neutral [`ModelConfig`]), `components/` (shared layers, each with its hook sites), `architectures/` (one
//! file per architecture: its HF config and key names), `hooked_transformer/`. Checkpoint
//! files and the hub are mechlens-checkpoint's.

mod accessors;
pub mod architectures;
pub mod components;
pub mod config;
pub mod datasets;
mod generate;
mod hooked_encoder;
mod hooked_transformer;
mod input;
mod linear_maps;
mod processing;
mod sentencepiece;
mod tokenizer;
pub mod transformer_config;

pub use config::{Activation, ModelConfig, Normalization, Positional, RopeScaling, RotaryConfig};
pub use generate::{GenerateOptions, top_k_logits, top_p_logits};
pub use hooked_encoder::{EncoderOutput, HookedEncoder};
pub use hooked_transformer::{GradientRun, HookedTransformer, LoadOptions};
pub use input::{ModelInput, Tokens};
pub use linear_maps::{LinearMap, MapKind};
pub use mechlens_checkpoint::Hub;
pub use processing::Processing;
pub use sentencepiece::SentencePiece;
pub use tokenizer::{PaddingSide, TokenBatch, Tokenizer};
pub use transformer_config::{HookedTransformerConfig, NormType, PositionalType};
