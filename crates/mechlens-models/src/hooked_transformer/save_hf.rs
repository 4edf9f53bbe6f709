//! A GPT-2-shaped model as a Hugging Face `transformers` folder: `config.json`
//! (`GPT2LMHeadModel`) and `model.safetensors` in GPT-2's names and `Conv1D` layouts, so
//! `GPT2LMHeadModel.from_pretrained(dir)` gives this model's logits (and
//! [`HookedTransformer::from_pretrained`] reads it back as any GPT-2 folder).
//!
//! The inverse of `architectures/gpt2.rs`'s reader. Only what GPT-2 can express is written;
//! anything else (another norm or positional scheme, attention-only blocks, grouped or
//! resized heads, an unembedding bias) is an error naming it, never a silently different model.

use std::path::Path;

use mechlens_checkpoint::{atomic, safetensors};
use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use super::HookedTransformer;
use crate::components::Norm;
use crate::config::{Activation, Normalization, Positional};

impl HookedTransformer {
    /// Writes the model into `dir` (created if needed) as a Hugging Face GPT-2:
    /// `config.json` and `model.safetensors` (`transformer.wte.weight`, `transformer.h.0.attn
    /// .c_attn.weight` `[d_model, 3·d_model]`, ..., and `lm_head.weight` unless tied). Files
    /// are written to a temporary name and renamed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first thing GPT-2 cannot hold: a norm other than
    /// LayerNorm, rotary or no positions, attention-only blocks, a gated or parallel MLP,
    /// grouped key/value heads, `n_heads·d_head ≠ d_model`, an attention scale other than
    /// `√d_head`, local attention, or a non-zero unembedding bias `b_U` (GPT-2's `lm_head` has
    /// none); [`Error::Io`] when writing fails.
    pub fn save_hugging_face(&self, dir: &Path) -> Result<()> {
        let c = self.cfg();
        let refuse = |what: &str, why: String| {
            Err(Error::invalid(
                "model to export as GPT-2",
                format!(
                    "{what}: {why}; GPT-2 cannot hold it, so the export would compute something else"
                ),
            ))
        };
        let (d, h, dh) = (c.d_model as i64, c.n_heads as i64, c.d_head as i64);
        if c.normalization != Normalization::LayerNorm {
            return refuse(
                "normalisation",
                format!("{:?}, GPT-2 has LayerNorm", c.normalization),
            );
        }
        if c.positional != Positional::Learned {
            return refuse(
                "positions",
                format!("{:?}, GPT-2 learns absolute positions", c.positional),
            );
        }
        if c.attn_only || c.gated_mlp || c.parallel_residual {
            return refuse(
                "blocks",
                "attention-only, gated-MLP or parallel-residual blocks; GPT-2's are sequential with a plain MLP".into(),
            );
        }
        if c.n_kv_heads != c.n_heads || h * dh != d {
            return refuse(
                "heads",
                format!(
                    "{} heads ({} key/value) of {dh} in d_model {d}; GPT-2 needs n_heads · d_head = d_model, no grouping",
                    c.n_heads, c.n_kv_heads
                ),
            );
        }
        if (c.attn_scale - (dh as f64).sqrt()).abs() > 1e-9 || c.windows.iter().any(Option::is_some)
        {
            return refuse(
                "attention",
                "a scale other than √d_head, or local attention".into(),
            );
        }
        let act = match c.act_fn {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
            Activation::Relu => "relu",
            Activation::Silu => "silu",
            Activation::QuickGelu => "quick_gelu",
        };
        let m = &self.m;
        if let Some(b_u) = &m.b_u {
            let max = b_u.f_abs()?.f_max()?.f_double_value(&[])?;
            if max != 0.0 {
                return refuse(
                    "unembedding bias",
                    format!(
                        "b_U is non-zero (max |b_U| = {max:.3e}) and GPT-2's lm_head has no bias"
                    ),
                );
            }
        }
        let _guard = tch::no_grad_guard();
        let norm = |n: &Norm, out: &mut Vec<(String, Tensor)>, name: &str| -> Result<()> {
            let device = m.w_u.device();
            let weight = match &n.w {
                Some(w) => w.shallow_clone(),
                None => Tensor::f_ones([d], (Kind::Float, device))?,
            };
            let shift = match &n.b {
                Some(b) => b.shallow_clone(),
                None => Tensor::f_zeros([d], (Kind::Float, device))?,
            };
            out.push((format!("{name}.weight"), weight));
            out.push((format!("{name}.bias"), shift));
            Ok(())
        };
        let bias = |b: Option<&Tensor>, n: i64| -> Result<Tensor> {
            Ok(match b {
                Some(b) => b.f_reshape([n])?,
                None => Tensor::f_zeros([n], (Kind::Float, m.w_u.device()))?,
            })
        };
        let mut out: Vec<(String, Tensor)> = Vec::new();
        out.push(("transformer.wte.weight".into(), m.embed.w_e.shallow_clone()));
        let w_pos = m.embed.w_pos.as_ref().ok_or_else(|| {
            Error::invalid(
                "model to export as GPT-2",
                "it has no learned position embedding",
            )
        })?;
        out.push(("transformer.wpe.weight".into(), w_pos.shallow_clone()));
        for b in &m.blocks {
            let p = format!("transformer.h.{}", b.layer);
            let a = &b.attn.w;
            let mlp = b.mlp.as_ref().ok_or_else(|| {
                Error::invalid(
                    "model to export as GPT-2",
                    format!("block {} has no MLP", b.layer),
                )
            })?;
            norm(&b.ln1, &mut out, &format!("{p}.ln_1"))?;
            let qkv = Tensor::f_cat(
                &[
                    &a.w_q.f_reshape([d, d])?,
                    &a.w_k.f_reshape([d, d])?,
                    &a.w_v.f_reshape([d, d])?,
                ],
                1,
            )?;
            out.push((format!("{p}.attn.c_attn.weight"), qkv));
            let qkv_b = Tensor::f_cat(
                &[
                    bias(a.b_q.as_ref(), d)?,
                    bias(a.b_k.as_ref(), d)?,
                    bias(a.b_v.as_ref(), d)?,
                ],
                0,
            )?;
            out.push((format!("{p}.attn.c_attn.bias"), qkv_b));
            out.push((format!("{p}.attn.c_proj.weight"), a.w_o.f_reshape([d, d])?));
            out.push((format!("{p}.attn.c_proj.bias"), bias(a.b_o.as_ref(), d)?));
            norm(&b.ln2, &mut out, &format!("{p}.ln_2"))?;
            let d_mlp = mlp.w_in.size()[1];
            out.push((format!("{p}.mlp.c_fc.weight"), mlp.w_in.shallow_clone()));
            out.push((
                format!("{p}.mlp.c_fc.bias"),
                bias(mlp.b_in.as_ref(), d_mlp)?,
            ));
            out.push((format!("{p}.mlp.c_proj.weight"), mlp.w_out.shallow_clone()));
            out.push((format!("{p}.mlp.c_proj.bias"), bias(mlp.b_out.as_ref(), d)?));
        }
        norm(&m.ln_final, &mut out, "transformer.ln_f")?;
        // W_U is [d_model, d_vocab]; lm_head.weight is [d_vocab, d_model].
        let tied = m.w_u.f_tr()?.equal(&m.embed.w_e);
        if !tied {
            out.push(("lm_head.weight".into(), m.w_u.f_tr()?));
        }
        let tensors: Vec<(String, Tensor)> = out
            .into_iter()
            .map(|(n, t)| {
                Ok((
                    n,
                    t.f_detach()?
                        .f_to_kind(Kind::Float)?
                        .f_to_device(tch::Device::Cpu)?
                        .f_contiguous()?,
                ))
            })
            .collect::<Result<_>>()?;
        let refs: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.shallow_clone()))
            .collect();
        let config = serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.d_vocab,
            "n_positions": c.n_ctx,
            "n_embd": c.d_model,
            "n_layer": c.n_layers,
            "n_head": c.n_heads,
            "n_inner": m.blocks.first().and_then(|b| b.mlp.as_ref()).map(|mlp| mlp.w_in.size()[1]),
            "activation_function": act,
            "layer_norm_epsilon": c.eps,
            "tie_word_embeddings": tied,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "bos_token_id": c.bos_token_id,
            "eos_token_id": c.eos_token_id,
        });
        atomic::create_dir(dir)?;
        safetensors::write(&refs, &dir.join("model.safetensors"))?;
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| Error::invalid("GPT-2 config", e.to_string()))?;
        atomic::write(&dir.join("config.json"), text.as_bytes())
    }
}
