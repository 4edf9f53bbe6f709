//! [`HookedTransformer`]: a decoder whose every activation can be read or changed by its
//! TransformerLens name. Raw weights by default, so logits equal Hugging Face's.
//!
//! - `load`: building a model (Hugging Face folders, llama2.c checkpoints, parts).
//! - `hook_registry`: which hook points the model has, and its persistent hooks.
//! - `run`: every way to run it (`forward`, `run_with_hooks`, `run_with_cache`, gradients,
//!   losses, partial runs), each through one private session runner.
//! - `forward`: the forward pass itself, over the shared components.
//! - `from_config`: a fresh model from a [`HookedTransformerConfig`] (TransformerLens' init).
//! - `save`: such a model as a folder in TransformerLens' names; its parameters by name.
//!
//! Sampling is in `generate.rs`, weight accessors (`W_Q`...) in `accessors.rs`, weight
//! processing in `processing.rs`.

mod forward;
mod from_config;
mod hook_registry;
mod load;
mod run;
mod save;
mod save_hf;

use std::cell::RefCell;

use mechlens_core::{Error, Hooks, Result};
use tch::{Device, Kind, Tensor};

use crate::components::{Block, Embed, Norm};
use crate::config::ModelConfig;
use crate::input::{InputLimits, ModelInput, Tokens, read_input};
use crate::processing::Processing;
use crate::tokenizer::Tokenizer;
use mechlens_checkpoint::Hub;

pub(crate) use forward::{KvCache, Start};
pub use run::GradientRun;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Weight dtype: `Kind::Float` (default), `Kind::BFloat16`, `Kind::Half`.
    pub kind: Kind,
    /// Where the weights live.
    pub device: Device,
    /// Weight processing; none by default (logits equal Hugging Face's).
    pub processing: Processing,
    /// Where to look for and download models; from the environment by default.
    pub hub: Hub,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            kind: Kind::Float,
            device: Device::Cpu,
            processing: Processing::none(),
            hub: Hub::from_env(),
        }
    }
}

impl LoadOptions {
    /// Defaults with TransformerLens' `from_pretrained` processing.
    pub fn transformer_lens() -> Self {
        Self {
            processing: Processing::transformer_lens(),
            ..Self::default()
        }
    }
}

/// The modules of a decoder (kept apart from the hooks so a forward can borrow both).
pub(crate) struct Modules {
    pub(crate) cfg: ModelConfig,
    pub(crate) embed: Embed,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_final: Norm,
    pub(crate) w_u: Tensor,
    pub(crate) b_u: Option<Tensor>,
    /// The TransformerLens config it was built from ([`HookedTransformer::from_config`]) or
    /// loaded with; `None` for Hugging Face and llama2.c checkpoints.
    pub(crate) transformer_config: Option<crate::transformer_config::HookedTransformerConfig>,
}

/// A transformer decoder with TransformerLens hook points.
///
/// ```no_run
/// use mechlens_models::{HookedTransformer, LoadOptions};
/// use mechlens_core::CacheFilter;
/// let model = HookedTransformer::from_pretrained("gpt2", LoadOptions::default())?;
/// let (logits, cache) = model.run_with_cache("Hello world", CacheFilter::All)?;
/// let pattern = cache.get("blocks.0.attn.hook_pattern")?; // [batch, head, query, key]
/// # Ok::<(), mechlens_core::Error>(())
/// ```
pub struct HookedTransformer {
    pub(crate) m: Modules,
    tokenizer: Option<Tokenizer>,
    hooks: RefCell<Hooks<'static>>,
    /// Where SAEs are spliced (kept with the hooks' changes; readable while a run holds them).
    splice_anchors: RefCell<Vec<mechlens_core::HookPoint>>,
    device: Device,
}

impl HookedTransformer {
    /// The model's configuration.
    pub fn cfg(&self) -> &ModelConfig {
        &self.m.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The tokenizer, if the model has one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// The tokenizer, or an error saying the model has none.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the model was loaded without one.
    pub fn require_tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| Error::invalid("tokenizer", "this model was loaded without a tokenizer"))
    }

    /// Computes per-head attention results (`attn.hook_result`) in every run.
    pub fn set_use_attn_result(&mut self, on: bool) {
        self.m
            .blocks
            .iter_mut()
            .for_each(|b| b.attn.use_result = on);
    }

    /// Computes per-head query/key/value inputs (`hook_q_input`...) in every run.
    pub fn set_use_split_qkv_input(&mut self, on: bool) {
        self.m
            .blocks
            .iter_mut()
            .for_each(|b| b.split_qkv_input = on);
    }

    /// Computes `hook_attn_in` in every run.
    pub fn set_use_attn_in(&mut self, on: bool) {
        self.m.blocks.iter_mut().for_each(|b| b.attn_in = on);
    }

    /// Computes `hook_mlp_in` in every run.
    pub fn set_use_hook_mlp_in(&mut self, on: bool) {
        self.m.blocks.iter_mut().for_each(|b| b.mlp_in = on);
    }

    /// Reads `input` as tokens on the model's device (with its attention mask, if any), with
    /// `past_len` positions already in a key/value cache.
    pub(crate) fn input(
        &self,
        input: &(impl ModelInput + ?Sized),
        past_len: i64,
    ) -> Result<Tokens> {
        let limits = InputLimits {
            vocab: self.m.cfg.d_vocab,
            n_ctx: self.m.cfg.n_ctx,
            past_len,
            type_vocab: None,
            device: self.device,
        };
        read_input(input, self.tokenizer.as_ref(), &limits)
    }

    /// Tokens of `text` as `[1, pos]`.
    ///
    /// # Errors
    /// No tokenizer, or text that yields no tokens.
    pub fn to_tokens(&self, text: &str, prepend_bos: bool) -> Result<Tensor> {
        self.require_tokenizer()?.to_tokens(text, prepend_bos)
    }

    /// Each token of `text` as a string.
    ///
    /// # Errors
    /// No tokenizer.
    pub fn to_str_tokens(&self, text: &str, prepend_bos: bool) -> Result<Vec<String>> {
        self.require_tokenizer()?.to_str_tokens(text, prepend_bos)
    }

    /// Text of a `[pos]` or `[1, pos]` token tensor.
    ///
    /// # Errors
    /// No tokenizer, another shape, ids out of range.
    pub fn tokens_to_string(&self, tokens: &Tensor) -> Result<String> {
        self.require_tokenizer()?.tokens_to_string(tokens)
    }

    /// The id of a one-token string.
    ///
    /// # Errors
    /// No tokenizer, or the string is not exactly one token.
    pub fn to_single_token(&self, text: &str) -> Result<i64> {
        self.require_tokenizer()?.to_single_token(text)
    }
}
