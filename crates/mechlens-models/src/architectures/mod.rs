//! One file per architecture, each reading its Hugging Face `config.json` (HF field names)
//! and walking its checkpoint's key tree into the shared components' layout.

pub mod bert;
pub mod gpt2;
pub mod gpt_neo;
pub mod gpt_neox;
pub mod llama;
pub mod llama2c;

use std::path::Path;

use mechlens_core::{Error, Result};
use serde::de::DeserializeOwned;
use tch::Tensor;

pub use crate::components::AttnWeights;
use crate::components::{Embed, Mlp, Norm};
use crate::config::{ModelConfig, Normalization};
use mechlens_checkpoint::Checkpoint;

/// The decoder architectures `HookedTransformer` loads, by Hugging Face `model_type`.
pub const SUPPORTED_DECODERS: [&str; 5] = ["gpt2", "gpt_neo", "gpt_neox", "llama", "qwen2"];

/// One block's weights.
pub struct LayerWeights {
    /// Norm before attention.
    pub ln1: Norm,
    /// Attention projections.
    pub attn: AttnWeights,
    /// Norm before the MLP.
    pub ln2: Norm,
    /// The MLP (`None` in attention-only models).
    pub mlp: Option<Mlp>,
}

/// A whole decoder's weights.
pub struct DecoderWeights {
    /// Embeddings.
    pub embed: Embed,
    /// Blocks.
    pub layers: Vec<LayerWeights>,
    /// Final norm.
    pub ln_final: Norm,
    /// Unembedding `[d_model, d_vocab]` (a transposed view of `W_E` when tied).
    pub w_u: Tensor,
    /// Unembedding bias `[d_vocab]`.
    pub b_u: Option<Tensor>,
}

/// Reads a decoder from a parsed `config.json` and its weights.
///
/// # Errors
/// [`Error::Unsupported`] for an architecture not in [`SUPPORTED_DECODERS`], or a config or
/// weight error.
pub fn load_decoder(
    config: &serde_json::Value,
    path: &Path,
    store: &Checkpoint,
) -> Result<(ModelConfig, DecoderWeights)> {
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let (cfg, weights) = match model_type {
        "gpt2" => gpt2::load(&parse(config, path)?, store)?,
        "gpt_neo" => gpt_neo::load(&parse(config, path)?, store)?,
        "gpt_neox" => gpt_neox::load(&parse(config, path)?, config, store)?,
        "llama" | "qwen2" => llama::load(&parse(config, path)?, config, store)?,
        other => {
            let name = match (other, architecture_name(config)) {
                ("", Some(arch)) => arch,
                ("", None) => "(config.json has no model_type)".to_string(),
                (other, _) => other.to_string(),
            };
            let mut supported: Vec<String> = SUPPORTED_DECODERS.map(String::from).to_vec();
            supported.push("llama2.c checkpoints (HookedTransformer::from_llama2c)".into());
            if other == "bert" {
                supported.push("bert is an encoder: load it with HookedEncoder".into());
            }
            return Err(Error::Unsupported {
                what: "architecture",
                name,
                supported,
            });
        }
    };
    cfg.validate()?;
    Ok((cfg, weights))
}

fn architecture_name(config: &serde_json::Value) -> Option<String> {
    config
        .get("architectures")?
        .get(0)?
        .as_str()
        .map(String::from)
}

/// A model folder's `config.json`, parsed (a JSON object), and its path for error messages.
///
/// # Errors
/// [`Error::Io`] when it cannot be read; [`Error::Config`] when it is not a JSON object.
pub(crate) fn read_config(dir: &Path) -> Result<(serde_json::Value, std::path::PathBuf)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.display().to_string(),
        reason: format!("not valid JSON: {e}"),
    })?;
    if !config.is_object() {
        return Err(Error::Config {
            path: path.display().to_string(),
            reason: "expected a JSON object".into(),
        });
    }
    Ok((config, path))
}

/// Deserialises an architecture's config, naming the file and the field on failure.
pub(crate) fn parse<T: DeserializeOwned>(config: &serde_json::Value, path: &Path) -> Result<T> {
    T::deserialize(config).map_err(|e| Error::Config {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `d_model / n_heads`, or 0 (which `ModelConfig::validate` reports) when they do not divide.
pub(crate) fn head_dim(d_model: usize, n_heads: usize) -> usize {
    if n_heads == 0 || !d_model.is_multiple_of(n_heads) {
        0
    } else {
        d_model / n_heads
    }
}

/// The HF architecture name, or the model type.
pub(crate) fn arch_of(config: &serde_json::Value, fallback: &str) -> String {
    architecture_name(config).unwrap_or_else(|| fallback.to_string())
}

/// A LayerNorm or RMSNorm read from `{prefix}.weight` (and `.bias` for LayerNorm).
pub(crate) fn norm(
    vb: &mechlens_checkpoint::CheckpointPath,
    kind: Normalization,
    d: i64,
    eps: f64,
) -> Result<Norm> {
    let w = Some(vb.get("weight", &[d])?);
    let b = match kind {
        Normalization::LayerNorm => Some(vb.get("bias", &[d])?),
        _ => None,
    };
    Ok(Norm { kind, w, b, eps })
}

/// The unembedding: `lm_head.weight` transposed, or a view of `W_E` when tied.
pub(crate) fn unembed(
    store: &Checkpoint,
    w_e: &Tensor,
    tied: bool,
    d_model: i64,
    vocab: i64,
) -> Result<Tensor> {
    if !tied || store.contains("lm_head.weight") {
        return store.root().linear_t("lm_head.weight", d_model, vocab);
    }
    Ok(w_e.tr())
}
