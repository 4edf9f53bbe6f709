//! GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners").
//! Reference: Hugging Face `transformers/models/gpt2/modeling_gpt2.py`. Its `Conv1D` weights
//! are already `[in, out]`; `c_attn` holds Q, K and V side by side.

use mechlens_core::Result;
use serde::Deserialize;

use super::{AttnWeights, DecoderWeights, LayerWeights, norm};
use crate::components::{Embed, Mlp};
use crate::config::{Activation, ModelConfig, Normalization, Positional};
use mechlens_checkpoint::Checkpoint;

/// `config.json` of a GPT-2 model (Hugging Face field names).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "gelu_new")]
    pub activation_function: String,
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
}

fn gelu_new() -> String {
    "gelu_new".into()
}
fn eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// Reads GPT-2 weights (`transformer.` prefix optional, as on the hub).
///
/// # Errors
/// Config, missing-weight or shape errors.
pub fn load(c: &Config, store: &Checkpoint) -> Result<(ModelConfig, DecoderWeights)> {
    let (d, v, n) = (c.n_embd as i64, c.vocab_size as i64, c.n_positions as i64);
    let d_mlp = c.n_inner.unwrap_or(4 * c.n_embd) as i64;
    let cfg = ModelConfig {
        architecture: c
            .architectures
            .as_ref()
            .and_then(|a| a.first().cloned())
            .unwrap_or("GPT2LMHeadModel".into()),
        n_layers: c.n_layer,
        d_model: c.n_embd,
        n_heads: c.n_head,
        n_kv_heads: c.n_head,
        d_head: super::head_dim(c.n_embd, c.n_head),
        d_mlp: d_mlp as usize,
        d_vocab: c.vocab_size,
        n_ctx: c.n_positions,
        act_fn: Activation::from_hf(&c.activation_function)?,
        normalization: Normalization::LayerNorm,
        eps: c.layer_norm_epsilon,
        positional: Positional::Learned,
        parallel_residual: false,
        gated_mlp: false,
        attn_only: false,
        attn_scale: (super::head_dim(c.n_embd, c.n_head) as f64).sqrt(),
        windows: vec![None; c.n_layer],
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
    let mut layers = Vec::with_capacity(c.n_layer);
    for l in 0..c.n_layer {
        let vb = root.pp("h").pp(l);
        let qkv = vb.get("attn.c_attn.weight", &[d, 3 * d])?;
        let qkv_b = vb.get("attn.c_attn.bias", &[3 * d])?;
        let w = qkv.split(d, 1);
        let b = qkv_b.split(d, 0);
        layers.push(LayerWeights {
            ln1: norm(
                &vb.pp("ln_1"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_epsilon,
            )?,
            attn: AttnWeights {
                w_q: w[0].contiguous(),
                b_q: Some(b[0].contiguous()),
                w_k: w[1].contiguous(),
                b_k: Some(b[1].contiguous()),
                w_v: w[2].contiguous(),
                b_v: Some(b[2].contiguous()),
                w_o: vb.get("attn.c_proj.weight", &[d, d])?,
                b_o: Some(vb.get("attn.c_proj.bias", &[d])?),
            },
            ln2: norm(
                &vb.pp("ln_2"),
                Normalization::LayerNorm,
                d,
                c.layer_norm_epsilon,
            )?,
            mlp: Some(Mlp {
                w_in: vb.get("mlp.c_fc.weight", &[d, d_mlp])?,
                b_in: Some(vb.get("mlp.c_fc.bias", &[d_mlp])?),
                w_gate: None,
                w_out: vb.get("mlp.c_proj.weight", &[d_mlp, d])?,
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
