//! The Llama family (Touvron et al. 2023): RMSNorm, rotary embeddings (with `linear` or
//! `llama3` scaling), SwiGLU MLP, grouped-query attention, tied or untied embeddings.
//! Qwen2 is the same with biases on Q, K and V. Reference: Hugging Face
//! `transformers/models/llama/modeling_llama.py` and `.../qwen2/modeling_qwen2.py`.

use mechlens_core::Result;
use serde::Deserialize;

use super::{AttnWeights, DecoderWeights, LayerWeights, arch_of, norm};
use crate::components::{Embed, Mlp};
use crate::config::{
    Activation, ModelConfig, Normalization, Positional, RopeScaling, RotaryConfig,
};
use mechlens_checkpoint::Checkpoint;

/// `config.json` of a Llama or Qwen2 model (Hugging Face field names).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "silu")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub pad_token_id: Option<serde_json::Value>,
}

fn silu() -> String {
    "silu".into()
}
fn eps() -> f64 {
    1e-6
}

/// A token id that may be given as a list (Llama 3's several EOS ids): the first.
pub(crate) fn token_id(v: &Option<serde_json::Value>) -> Option<i64> {
    match v.as_ref()? {
        serde_json::Value::Array(ids) => ids.first()?.as_i64(),
        other => other.as_i64(),
    }
}

/// Reads Llama / Qwen2 weights.
///
/// # Errors
/// Config, missing-weight or shape errors.
pub fn load(
    c: &Config,
    raw: &serde_json::Value,
    store: &Checkpoint,
) -> Result<(ModelConfig, DecoderWeights)> {
    let (d, v) = (c.hidden_size as i64, c.vocab_size as i64);
    let h = c.num_attention_heads as i64;
    let kvh = c.num_key_value_heads.unwrap_or(c.num_attention_heads) as i64;
    let dh = c
        .head_dim
        .unwrap_or_else(|| super::head_dim(c.hidden_size, c.num_attention_heads))
        as i64;
    let d_mlp = c.intermediate_size as i64;
    let qkv_bias = c.attention_bias || c.model_type == "qwen2";
    let params = c.rope_parameters.as_ref();
    let base = params
        .and_then(|p| p.get("rope_theta"))
        .and_then(serde_json::Value::as_f64)
        .or(c.rope_theta)
        .unwrap_or(10000.0);
    let cfg = ModelConfig {
        architecture: arch_of(raw, "LlamaForCausalLM"),
        n_layers: c.num_hidden_layers,
        d_model: c.hidden_size,
        n_heads: h as usize,
        n_kv_heads: kvh as usize,
        d_head: dh as usize,
        d_mlp: c.intermediate_size,
        d_vocab: c.vocab_size,
        n_ctx: c.max_position_embeddings,
        act_fn: Activation::from_hf(&c.hidden_act)?,
        normalization: Normalization::Rms,
        eps: c.rms_norm_eps,
        positional: Positional::Rotary(RotaryConfig {
            dim: dh as usize,
            base,
            interleaved: false,
            scaling: RopeScaling::from_hf(c.rope_scaling.as_ref().or(params))?,
        }),
        parallel_residual: false,
        gated_mlp: true,
        attn_only: false,
        attn_scale: (dh as f64).sqrt(),
        windows: vec![None; c.num_hidden_layers],
        tied_embeddings: c.tie_word_embeddings,
        bos_token_id: token_id(&c.bos_token_id),
        eos_token_id: token_id(&c.eos_token_id),
        pad_token_id: token_id(&c.pad_token_id),
    };
    cfg.validate()?;
    let root = store.root().pp("model");
    let w_e = root.get("embed_tokens.weight", &[v, d])?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for l in 0..c.num_hidden_layers {
        let vb = root.pp("layers").pp(l);
        let at = vb.pp("self_attn");
        let bias = |name: &str, n: i64, on: bool| {
            if on {
                at.get(name, &[n]).map(Some)
            } else {
                Ok(None)
            }
        };
        let mlp = vb.pp("mlp");
        let mlp_bias = |name: &str, n: i64| {
            if c.mlp_bias {
                mlp.get(name, &[n]).map(Some)
            } else {
                Ok(None)
            }
        };
        layers.push(LayerWeights {
            ln1: norm(
                &vb.pp("input_layernorm"),
                Normalization::Rms,
                d,
                c.rms_norm_eps,
            )?,
            attn: AttnWeights {
                w_q: at.linear_t("q_proj.weight", d, h * dh)?,
                b_q: bias("q_proj.bias", h * dh, qkv_bias)?,
                w_k: at.linear_t("k_proj.weight", d, kvh * dh)?,
                b_k: bias("k_proj.bias", kvh * dh, qkv_bias)?,
                w_v: at.linear_t("v_proj.weight", d, kvh * dh)?,
                b_v: bias("v_proj.bias", kvh * dh, qkv_bias)?,
                w_o: at.linear_t("o_proj.weight", h * dh, d)?,
                b_o: bias("o_proj.bias", d, c.attention_bias)?,
            },
            ln2: norm(
                &vb.pp("post_attention_layernorm"),
                Normalization::Rms,
                d,
                c.rms_norm_eps,
            )?,
            mlp: Some(Mlp {
                w_in: mlp.linear_t("up_proj.weight", d, d_mlp)?,
                b_in: mlp_bias("up_proj.bias", d_mlp)?,
                w_gate: Some(mlp.linear_t("gate_proj.weight", d, d_mlp)?),
                w_out: mlp.linear_t("down_proj.weight", d_mlp, d)?,
                b_out: mlp_bias("down_proj.bias", d)?,
                act: cfg.act_fn,
            }),
        });
    }
    let ln_final = norm(&root.pp("norm"), Normalization::Rms, d, c.rms_norm_eps)?;
    let w_u = super::unembed(store, &w_e, c.tie_word_embeddings, d, v)?;
    Ok((
        cfg,
        DecoderWeights {
            embed: Embed { w_e, w_pos: None },
            layers,
            ln_final,
            w_u,
            b_u: None,
        },
    ))
}
