//! GPT-NeoX / Pythia (Black et al. 2022; Biderman et al. 2023). Reference: Hugging Face
//! `transformers/models/gpt_neox/modeling_gpt_neox.py`. Parallel residual (attention and MLP
//! both read the block input), partial rotary embeddings on the first
//! `partial_rotary_factor · d_head` dims, and a fused `query_key_value` laid out per head as
//! `[head, (q | k | v), d_head]`.

use mechlens_core::Result;
use serde::Deserialize;

use super::{AttnWeights, DecoderWeights, LayerWeights, arch_of, norm};
use crate::components::{Embed, Mlp};
use crate::config::{
    Activation, ModelConfig, Normalization, Positional, RopeScaling, RotaryConfig,
};
use mechlens_checkpoint::Checkpoint;

/// `config.json` of a GPT-NeoX model. Rotary settings come from `rope_parameters`
/// (transformers ≥ 5) or the older `rotary_pct` / `rotary_emb_base` fields.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Config {
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "yes")]
    pub use_parallel_residual: bool,
    #[serde(default)]
    pub rotary_pct: Option<f64>,
    #[serde(default)]
    pub rotary_emb_base: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// Reads GPT-NeoX weights.
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
    let dh = super::head_dim(c.hidden_size, c.num_attention_heads) as i64;
    let params = c.rope_parameters.as_ref();
    let num = |key: &str| {
        params
            .and_then(|p| p.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    let fraction = num("partial_rotary_factor")
        .or(c.rotary_pct)
        .unwrap_or(0.25);
    let base = num("rope_theta").or(c.rotary_emb_base).unwrap_or(10000.0);
    let scaling = RopeScaling::from_hf(c.rope_scaling.as_ref().or(params))?;
    let cfg = ModelConfig {
        architecture: arch_of(raw, "GPTNeoXForCausalLM"),
        n_layers: c.num_hidden_layers,
        d_model: c.hidden_size,
        n_heads: h as usize,
        n_kv_heads: h as usize,
        d_head: dh as usize,
        d_mlp: c.intermediate_size,
        d_vocab: c.vocab_size,
        n_ctx: c.max_position_embeddings,
        act_fn: Activation::from_hf(&c.hidden_act)?,
        normalization: Normalization::LayerNorm,
        eps: c.layer_norm_eps,
        positional: Positional::Rotary(RotaryConfig {
            dim: (dh as f64 * fraction) as usize,
            base,
            interleaved: false,
            scaling,
        }),
        parallel_residual: c.use_parallel_residual,
        gated_mlp: false,
        attn_only: false,
        attn_scale: (dh as f64).sqrt(),
        windows: vec![None; c.num_hidden_layers],
        tied_embeddings: c.tie_word_embeddings,
        bos_token_id: c.bos_token_id,
        eos_token_id: c.eos_token_id,
        pad_token_id: None,
    };
    cfg.validate()?;
    let root = store.root().pp("gpt_neox");
    let w_e = root.get("embed_in.weight", &[v, d])?;
    let d_mlp = c.intermediate_size as i64;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for l in 0..c.num_hidden_layers {
        let vb = root.pp("layers").pp(l);
        // Rows are [head, (q|k|v), d_head]; regroup into three [d_model, head * d_head].
        let qkv = vb
            .get("attention.query_key_value.weight", &[3 * d, d])?
            .view([h, 3, dh, d]);
        let qkv_b = vb
            .get("attention.query_key_value.bias", &[3 * d])?
            .view([h, 3, dh]);
        let w = |i: i64| qkv.select(1, i).reshape([h * dh, d]).tr().contiguous();
        let b = |i: i64| qkv_b.select(1, i).reshape([h * dh]);
        layers.push(LayerWeights {
            ln1: norm(
                &vb.pp("input_layernorm"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_eps,
            )?,
            attn: AttnWeights {
                w_q: w(0),
                b_q: Some(b(0)),
                w_k: w(1),
                b_k: Some(b(1)),
                w_v: w(2),
                b_v: Some(b(2)),
                w_o: vb.linear_t("attention.dense.weight", d, d)?,
                b_o: Some(vb.get("attention.dense.bias", &[d])?),
            },
            ln2: norm(
                &vb.pp("post_attention_layernorm"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_eps,
            )?,
            mlp: Some(Mlp {
                w_in: vb.linear_t("mlp.dense_h_to_4h.weight", d, d_mlp)?,
                b_in: Some(vb.get("mlp.dense_h_to_4h.bias", &[d_mlp])?),
                w_gate: None,
                w_out: vb.linear_t("mlp.dense_4h_to_h.weight", d_mlp, d)?,
                b_out: Some(vb.get("mlp.dense_4h_to_h.bias", &[d])?),
                act: cfg.act_fn,
            }),
        });
    }
    let ln_final = norm(
        &root.pp("final_layer_norm"),
        Normalization::LayerNorm,
        d,
        c.layer_norm_eps,
    )?;
    let w_u = if c.tie_word_embeddings && !store.contains("embed_out.weight") {
        w_e.tr()
    } else {
        store.root().linear_t("embed_out.weight", d, v)?
    };
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
