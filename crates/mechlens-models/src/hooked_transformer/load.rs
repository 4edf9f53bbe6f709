//! Building a [`HookedTransformer`]: from a Hugging Face folder (or the hub), from a
//! llama2.c checkpoint, or from a config and weights already in the shared layout.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use mechlens_core::{Hooks, Result};
use tch::Device;

use super::{HookedTransformer, LoadOptions, Modules};
use crate::architectures::{self, DecoderWeights};
use crate::components::{Attention, Block, Rotary};
use crate::config::{ModelConfig, Positional};
use crate::tokenizer::Tokenizer;
use mechlens_checkpoint::Checkpoint;

impl HookedTransformer {
    /// Loads a Hugging Face model: a local folder, else the hub cache, else a download
    /// (see [`Hub`]). A folder written by [`HookedTransformer::save`] loads too.
    ///
    /// # Errors
    /// Missing or malformed files, unsupported architectures, weights of the wrong shape.
    pub fn from_pretrained(name_or_path: &str, opts: LoadOptions) -> Result<Self> {
        let dir = opts.hub.resolve(name_or_path)?;
        let (config, config_path) = architectures::read_config(&dir)?;
        if is_transformer_lens_config(&config) {
            // A folder written by HookedTransformer::save.
            let mut model = Self::from_config_folder(&config, &dir, opts.device)?;
            model.process_weights(&opts.processing)?;
            return Ok(model);
        }
        let store = Checkpoint::from_folder(&dir, opts.kind, opts.device)?;
        let (cfg, weights) = architectures::load_decoder(&config, &config_path, &store)?;
        let tokenizer = load_tokenizer(&dir)?;
        let mut model = Self::from_parts(cfg, weights, tokenizer, opts.device)?;
        model.process_weights(&opts.processing)?;
        Ok(model)
    }

    /// Loads a llama2.c checkpoint, with its SentencePiece tokenizer when given.
    ///
    /// # Errors
    /// See [`architectures::llama2c::load`] and [`Tokenizer::from_sentencepiece`].
    pub fn from_llama2c(
        model_bin: &Path,
        tokenizer_model: Option<&Path>,
        opts: LoadOptions,
    ) -> Result<Self> {
        let (cfg, weights) = architectures::llama2c::load(model_bin, opts.kind, opts.device)?;
        let tokenizer = tokenizer_model
            .map(Tokenizer::from_sentencepiece)
            .transpose()?;
        let mut model = Self::from_parts(cfg, weights, tokenizer, opts.device)?;
        model.process_weights(&opts.processing)?;
        Ok(model)
    }

    /// Builds a model from a config and weights already in the shared layout.
    ///
    /// # Errors
    /// [`Error::Config`] for an inconsistent config.
    pub fn from_parts(
        cfg: ModelConfig,
        w: DecoderWeights,
        tokenizer: Option<Tokenizer>,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        // Without this every pass page-faults its activations in anew (see the module).
        mechlens_core::allocator::keep_freed_memory();
        let rotary = match &cfg.positional {
            Positional::Rotary(r) => Some(Rc::new(Rotary::new(r, cfg.n_ctx, device)?)),
            Positional::Learned => None,
        };
        let blocks = w
            .layers
            .into_iter()
            .enumerate()
            .map(|(layer, lw)| Block {
                layer,
                ln1: lw.ln1,
                attn: Attention {
                    w: lw.attn,
                    n_heads: cfg.n_heads as i64,
                    n_kv_heads: cfg.n_kv_heads as i64,
                    d_head: cfg.d_head as i64,
                    attn_scale: cfg.attn_scale,
                    window: cfg.windows[layer].map(|w| w as i64),
                    rotary: rotary.clone(),
                    use_result: false,
                },
                ln2: lw.ln2,
                mlp: lw.mlp,
                parallel: cfg.parallel_residual,
                split_qkv_input: false,
                attn_in: false,
                mlp_in: false,
            })
            .collect();
        let mut tokenizer = tokenizer;
        if let Some(t) = tokenizer.as_mut() {
            t.bos_token_id = t.bos_token_id.or(cfg.bos_token_id);
            t.eos_token_id = t.eos_token_id.or(cfg.eos_token_id);
            t.pad_token_id = t.pad_token_id.or(cfg.pad_token_id);
        }
        Ok(Self {
            m: Modules {
                cfg,
                embed: w.embed,
                blocks,
                ln_final: w.ln_final,
                w_u: w.w_u,
                b_u: w.b_u,
                transformer_config: None,
            },
            tokenizer,
            hooks: RefCell::new(Hooks::new()),
            splice_anchors: RefCell::new(Vec::new()),
            device,
        })
    }
}

/// A TransformerLens `HookedTransformerConfig` (what [`HookedTransformer::save`] writes), not
/// a Hugging Face config: it names `d_model` and `n_layers` and no `model_type`.
fn is_transformer_lens_config(config: &serde_json::Value) -> bool {
    config.get("model_type").is_none()
        && config.get("d_model").is_some()
        && config.get("n_layers").is_some()
}

fn load_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Tokenizer::from_hf_file(&json).map(Some);
    }
    let sp = dir.join("tokenizer.model");
    if sp.is_file() {
        return Tokenizer::from_sentencepiece(&sp).map(Some);
    }
    Ok(None)
}
