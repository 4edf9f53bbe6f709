//! BERT (Devlin et al. 2019), as Hugging Face's `modeling_bert.py` lays it out: its
//! `config.json` and the walk of its checkpoint into the shared encoder components.

use std::path::Path;

use mechlens_core::{Error, Result};
use serde::Deserialize;
use tch::Tensor;

use super::norm;
use crate::components::{Attention, AttnWeights, Embed, EncoderBlock, EncoderEmbed, Mlp};
use crate::config::{Activation, Normalization};
use mechlens_checkpoint::{Checkpoint, CheckpointPath};

/// `config.json` of a BERT model (Hugging Face field names).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
}

fn gelu() -> String {
    "gelu".into()
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}

/// A BERT checkpoint's weights in the shared components' layout.
pub struct EncoderWeights {
    /// Tokens, positions, token types and the embedding LayerNorm.
    pub embed: EncoderEmbed,
    /// The blocks.
    pub blocks: Vec<EncoderBlock>,
    /// The pooler `(W [d_model, d_model], b [d_model])`, when the checkpoint has one.
    pub pooler: Option<(Tensor, Tensor)>,
}

/// Reads BERT's weights (with or without the `bert.` prefix of `BertFor...` checkpoints).
///
/// # Errors
/// [`Error::Config`] for heads that do not divide the width; missing or misshapen weights.
pub fn load(cfg: &BertConfig, store: &Checkpoint, config_path: &Path) -> Result<EncoderWeights> {
    let (d, v) = (cfg.hidden_size as i64, cfg.vocab_size as i64);
    let h = cfg.num_attention_heads as i64;
    if h == 0 || d % h != 0 {
        return Err(Error::Config {
            path: config_path.display().to_string(),
            reason: format!("hidden_size {d} is not a multiple of {h} heads"),
        });
    }
    let dh = d / h;
    let d_mlp = cfg.intermediate_size as i64;
    let act = Activation::from_hf(&cfg.hidden_act)?;
    let root = if store.contains("bert.embeddings.word_embeddings.weight") {
        store.root().pp("bert")
    } else {
        store.root()
    };
    let emb = root.pp("embeddings");
    let ln = |vb: CheckpointPath| norm(&vb, Normalization::LayerNorm, d, cfg.layer_norm_eps);
    let mut blocks = Vec::new();
    for l in 0..cfg.num_hidden_layers {
        let vb = root.pp("encoder").pp("layer").pp(l);
        let at = vb.pp("attention").pp("self");
        let out = vb.pp("attention").pp("output");
        blocks.push(EncoderBlock {
            layer: l,
            attn: Attention {
                w: AttnWeights {
                    w_q: at.linear_t("query.weight", d, d)?,
                    b_q: Some(at.get("query.bias", &[d])?),
                    w_k: at.linear_t("key.weight", d, d)?,
                    b_k: Some(at.get("key.bias", &[d])?),
                    w_v: at.linear_t("value.weight", d, d)?,
                    b_v: Some(at.get("value.bias", &[d])?),
                    w_o: out.linear_t("dense.weight", d, d)?,
                    b_o: Some(out.get("dense.bias", &[d])?),
                },
                n_heads: h,
                n_kv_heads: h,
                d_head: dh,
                attn_scale: (dh as f64).sqrt(),
                window: None,
                rotary: None,
                use_result: false,
            },
            ln1: ln(out.pp("LayerNorm"))?,
            mlp: Mlp {
                w_in: vb.linear_t("intermediate.dense.weight", d, d_mlp)?,
                b_in: Some(vb.get("intermediate.dense.bias", &[d_mlp])?),
                w_gate: None,
                w_out: vb.linear_t("output.dense.weight", d_mlp, d)?,
                b_out: Some(vb.get("output.dense.bias", &[d])?),
                act,
            },
            ln2: ln(vb.pp("output").pp("LayerNorm"))?,
        });
    }
    let pooler = if root.contains("pooler.dense.weight") {
        Some((
            root.linear_t("pooler.dense.weight", d, d)?,
            root.get("pooler.dense.bias", &[d])?,
        ))
    } else {
        None
    };
    Ok(EncoderWeights {
        embed: EncoderEmbed {
            embed: Embed {
                w_e: emb.get("word_embeddings.weight", &[v, d])?,
                w_pos: Some(emb.get(
                    "position_embeddings.weight",
                    &[cfg.max_position_embeddings as i64, d],
                )?),
            },
            w_token_type: emb.get(
                "token_type_embeddings.weight",
                &[cfg.type_vocab_size as i64, d],
            )?,
            ln: ln(emb.pp("LayerNorm"))?,
        },
        blocks,
        pooler,
    })
}
