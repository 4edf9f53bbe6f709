//! GPT-Neo (Black et al. 2021; the TinyStories models use it). Reference: Hugging Face
//! `transformers/models/gpt_neo/modeling_gpt_neo.py`. Layers alternate global and local
//! attention (a window of `window_size` positions); scores are not scaled by √d_head.

use mechlens_core::{Error, Result};
use serde::Deserialize;

use super::{AttnWeights, DecoderWeights, LayerWeights, norm};
use crate::components::{Embed, Mlp};
use crate::config::{Activation, ModelConfig, Normalization, Positional};
use mechlens_checkpoint::Checkpoint;

/// `config.json` of a GPT-Neo model (Hugging Face field names).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Config {
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    #[serde(default = "gelu_new")]
    pub activation_function: String,
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// `[[["global", "local"], repeats], ...]`
    pub attention_types: Vec<(Vec<String>, usize)>,
    #[serde(default = "window")]
    pub window_size: usize,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn gelu_new() -> String {
    "gelu_new".into()
}
fn eps() -> f64 {
    1e-5
}
fn window() -> usize {
    256
}
fn yes() -> bool {
    true
}

/// Reads GPT-Neo weights.
///
/// # Errors
/// Config, missing-weight or shape errors.
pub fn load(c: &Config, store: &Checkpoint) -> Result<(ModelConfig, DecoderWeights)> {
    let mut windows = Vec::new();
    for (kinds, repeats) in &c.attention_types {
        for _ in 0..*repeats {
            for kind in kinds {
                windows.push(match kind.as_str() {
                    "global" => None,
                    "local" => Some(c.window_size),
                    other => {
                        return Err(Error::Config {
                            path: "config.json".into(),
                            reason: format!(
                                "attention type `{other}` is neither `global` nor `local`"
                            ),
                        });
                    }
                });
            }
        }
    }
    let (d, v, n) = (
        c.hidden_size as i64,
        c.vocab_size as i64,
        c.max_position_embeddings as i64,
    );
    let d_mlp = c.intermediate_size.unwrap_or(4 * c.hidden_size) as i64;
    let cfg = ModelConfig {
        architecture: "GPTNeoForCausalLM".into(),
        n_layers: c.num_layers,
        d_model: c.hidden_size,
        n_heads: c.num_heads,
        n_kv_heads: c.num_heads,
        d_head: super::head_dim(c.hidden_size, c.num_heads),
        d_mlp: d_mlp as usize,
        d_vocab: c.vocab_size,
        n_ctx: c.max_position_embeddings,
        act_fn: Activation::from_hf(&c.activation_function)?,
        normalization: Normalization::LayerNorm,
        eps: c.layer_norm_epsilon,
        positional: Positional::Learned,
        parallel_residual: false,
        gated_mlp: false,
        attn_only: false,
        attn_scale: 1.0,
        windows,
        tied_embeddings: c.tie_word_embeddings,
        bos_token_id: c.bos_token_id,
        eos_token_id: c.eos_token_id,
        pad_token_id: None,
    };
    cfg.validate()?;
    let root = if store.contains("transformer.wte.weight") {
        store.root().pp("transformer")
    } else {
        store.root()
    };
    let w_e = root.get("wte.weight", &[v, d])?;
    let w_pos = root.get("wpe.weight", &[n, d])?;
    let mut layers = Vec::with_capacity(c.num_layers);
    for l in 0..c.num_layers {
        let vb = root.pp("h").pp(l);
        let at = vb.pp("attn").pp("attention");
        layers.push(LayerWeights {
            ln1: norm(
                &vb.pp("ln_1"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_epsilon,
            )?,
            attn: AttnWeights {
                w_q: at.linear_t("q_proj.weight", d, d)?,
                b_q: None,
                w_k: at.linear_t("k_proj.weight", d, d)?,
                b_k: None,
                w_v: at.linear_t("v_proj.weight", d, d)?,
                b_v: None,
                w_o: at.linear_t("out_proj.weight", d, d)?,
                b_o: Some(at.get("out_proj.bias", &[d])?),
            },
            ln2: norm(
                &vb.pp("ln_2"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_epsilon,
            )?,
            mlp: Some(Mlp {
                w_in: vb.linear_t("mlp.c_fc.weight", d, d_mlp)?,
                b_in: Some(vb.get("mlp.c_fc.bias", &[d_mlp])?),
                w_gate: None,
                w_out: vb.linear_t("mlp.c_proj.weight", d_mlp, d)?,
                b_out: Some(vb.get("mlp.c_proj.bias", &[d])?),
                act: cfg.act_fn,
            }),
        });
    }
    let ln_final = norm(
        &root.pp("ln_f"),
        Normalization::LayerNorm,
        d,
        c.layer_norm_epsilon,
    )?;
    let w_u = super::unembed(store, &w_e, c.tie_word_embeddings, d, v)?;
    Ok((
        cfg,
        DecoderWeights {
            embed: Embed {
                w_e,
                w_pos: Some(w_pos),
            },
            layers,
            ln_final,
            w_u,
            b_u: None,
        },
    ))
}
