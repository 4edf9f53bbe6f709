//! A model built from a config, as a folder: `config.json` (the [`HookedTransformerConfig`],
//! readable by TransformerLens' `HookedTransformerConfig(**json)`) and `model.safetensors`
//! in TransformerLens' state-dict names and layouts (`blocks.0.attn.W_Q`
//! `[n_heads, d_model, d_head]`...), so `HookedTransformer(cfg).load_state_dict(...)` reads it.
//! [`HookedTransformer::from_pretrained`] loads such a folder back.
//!
//! Also the model's parameters by name, for training.

use std::path::Path;

use mechlens_checkpoint::{atomic, safetensors};
use mechlens_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use super::HookedTransformer;
use crate::architectures::{DecoderWeights, LayerWeights};
use crate::components::{AttnWeights, Embed, Mlp, Norm};
use crate::config::Normalization;
use crate::transformer_config::HookedTransformerConfig;

impl HookedTransformer {
    /// Every trainable tensor by its path in the model (`embed.w_e`, `blocks.0.attn.w_q`,
    /// ... in the layouts the components use, `[d_in, d_out]`), in a fixed order. The tensors
    /// share storage with the model: changing one in place changes the model.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let m = &self.m;
        let mut out: Vec<(String, Tensor)> = Vec::new();
        let mut push = |name: String, t: Option<&Tensor>| {
            if let Some(t) = t {
                out.push((name, t.shallow_clone()));
            }
        };
        push("embed.w_e".into(), Some(&m.embed.w_e));
        push("embed.w_pos".into(), m.embed.w_pos.as_ref());
        let norm = |push: &mut dyn FnMut(String, Option<&Tensor>), name: &str, n: &Norm| {
            push(format!("{name}.w"), n.w.as_ref());
            push(format!("{name}.b"), n.b.as_ref());
        };
        for b in &m.blocks {
            let l = b.layer;
            norm(&mut push, &format!("blocks.{l}.ln1"), &b.ln1);
            let a = &b.attn.w;
            for (n, w, bias) in [
                ("q", &a.w_q, a.b_q.as_ref()),
                ("k", &a.w_k, a.b_k.as_ref()),
                ("v", &a.w_v, a.b_v.as_ref()),
                ("o", &a.w_o, a.b_o.as_ref()),
            ] {
                push(format!("blocks.{l}.attn.w_{n}"), Some(w));
                push(format!("blocks.{l}.attn.b_{n}"), bias);
            }
            if let Some(mlp) = &b.mlp {
                norm(&mut push, &format!("blocks.{l}.ln2"), &b.ln2);
                push(format!("blocks.{l}.mlp.w_in"), Some(&mlp.w_in));
                push(format!("blocks.{l}.mlp.b_in"), mlp.b_in.as_ref());
                push(format!("blocks.{l}.mlp.w_gate"), mlp.w_gate.as_ref());
                push(format!("blocks.{l}.mlp.w_out"), Some(&mlp.w_out));
                push(format!("blocks.{l}.mlp.b_out"), mlp.b_out.as_ref());
            }
        }
        norm(&mut push, "ln_final", &m.ln_final);
        push("unembed.w_u".into(), Some(&m.w_u));
        push("unembed.b_u".into(), m.b_u.as_ref());
        out
    }

    /// Writes the model into `dir` (created if needed): `config.json` and
    /// `model.safetensors` in TransformerLens' names and layouts. Each file is written to a
    /// temporary name and renamed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a model not built from a [`HookedTransformerConfig`]
    /// (Hugging Face models are saved by their own library); [`Error::Io`] when writing fails.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let cfg = self.transformer_config().ok_or_else(|| {
            Error::invalid(
                "model to save",
                "only models built with HookedTransformer::from_config (or loaded from such a folder) are saved in this format",
            )
        })?;
        atomic::create_dir(dir)?;
        let _guard = tch::no_grad_guard();
        let tensors = tl_state_dict(self, cfg)?;
        let refs: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.shallow_clone()))
            .collect();
        safetensors::write(&refs, &dir.join("model.safetensors"))?;
        let json = serde_json::to_vec_pretty(cfg)
            .map_err(|e| Error::invalid("model config", e.to_string()))?;
        atomic::write(&dir.join("config.json"), &json)
    }

    /// Loads a folder written by [`HookedTransformer::save`].
    pub(super) fn from_config_folder(
        config: &serde_json::Value,
        dir: &Path,
        device: Device,
    ) -> Result<Self> {
        let cfg: HookedTransformerConfig =
            serde_json::from_value(config.clone()).map_err(|e| Error::Config {
                path: dir.join("config.json").display().to_string(),
                reason: e.to_string(),
            })?;
        let cfg = cfg.resolved()?;
        let model_cfg = cfg.model_config();
        let path = dir.join("model.safetensors");
        let tensors = safetensors::read(&path)?;
        let get = |name: &str| -> Result<Tensor> {
            let t = tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| Error::Config {
                    path: path.display().to_string(),
                    reason: format!("it has no tensor {name}, which this config needs"),
                })?;
            Ok(t.f_to_kind(Kind::Float)?.f_to_device(device)?)
        };
        let opt = |name: &str| -> Result<Option<Tensor>> {
            if tensors.iter().any(|(n, _)| n == name) {
                get(name).map(Some)
            } else {
                Ok(None)
            }
        };
        let (d, h, dh) = (cfg.d_model as i64, cfg.n_heads as i64, cfg.d_head as i64);
        // [n_heads, d_model, d_head] → [d_model, n_heads·d_head]
        let w_in_heads = |t: Tensor| -> Result<Tensor> {
            Ok(t.f_permute([1, 0, 2])?
                .f_reshape([d, h * dh])?
                .f_contiguous()?)
        };
        let flat = |t: Option<Tensor>| -> Result<Option<Tensor>> {
            t.map(|t| t.f_reshape([-1]))
                .transpose()
                .map_err(Error::from)
        };
        let norm = |name: &str| -> Result<Norm> {
            Ok(Norm {
                kind: model_cfg.normalization,
                w: match model_cfg.normalization {
                    Normalization::Identity => None,
                    _ => Some(get(&format!("{name}.w"))?),
                },
                b: match model_cfg.normalization {
                    Normalization::LayerNorm => Some(get(&format!("{name}.b"))?),
                    _ => None,
                },
                eps: cfg.eps,
            })
        };
        let mut layers = Vec::new();
        for l in 0..cfg.n_layers {
            let p = |n: &str| format!("blocks.{l}.{n}");
            let attn = AttnWeights {
                w_q: w_in_heads(get(&p("attn.W_Q"))?)?,
                b_q: flat(opt(&p("attn.b_Q"))?)?,
                w_k: w_in_heads(get(&p("attn.W_K"))?)?,
                b_k: flat(opt(&p("attn.b_K"))?)?,
                w_v: w_in_heads(get(&p("attn.W_V"))?)?,
                b_v: flat(opt(&p("attn.b_V"))?)?,
                w_o: get(&p("attn.W_O"))?.f_reshape([h * dh, d])?,
                b_o: opt(&p("attn.b_O"))?,
            };
            let mlp = if cfg.attn_only {
                None
            } else {
                Some(Mlp {
                    w_in: get(&p("mlp.W_in"))?,
                    b_in: opt(&p("mlp.b_in"))?,
                    w_gate: None,
                    w_out: get(&p("mlp.W_out"))?,
                    b_out: opt(&p("mlp.b_out"))?,
                    act: cfg.act_fn,
                })
            };
            layers.push(LayerWeights {
                ln1: norm(&p("ln1"))?,
                attn,
                ln2: if cfg.attn_only {
                    Norm {
                        kind: model_cfg.normalization,
                        w: None,
                        b: None,
                        eps: cfg.eps,
                    }
                } else {
                    norm(&p("ln2"))?
                },
                mlp,
            });
        }
        let weights = DecoderWeights {
            embed: Embed {
                w_e: get("embed.W_E")?,
                w_pos: opt("pos_embed.W_pos")?,
            },
            layers,
            ln_final: norm("ln_final")?,
            w_u: get("unembed.W_U")?,
            b_u: opt("unembed.b_U")?,
        };
        let mut model = Self::from_parts(model_cfg, weights, None, device)?;
        model.m.transformer_config = Some(cfg);
        Ok(model)
    }
}

/// The model's weights in TransformerLens' state-dict names and layouts.
fn tl_state_dict(
    model: &HookedTransformer,
    cfg: &HookedTransformerConfig,
) -> Result<Vec<(String, Tensor)>> {
    let (d, h, dh) = (cfg.d_model as i64, cfg.n_heads as i64, cfg.d_head as i64);
    let per_head_in = |t: &Tensor| -> Result<Tensor> {
        Ok(t.f_reshape([d, h, dh])?
            .f_permute([1, 0, 2])?
            .f_contiguous()?)
    };
    let mut out = Vec::new();
    for (name, t) in model.named_parameters() {
        let t = t.f_detach()?.f_to_device(Device::Cpu)?;
        let (tl, t) = match name.as_str() {
            "embed.w_e" => ("embed.W_E".to_string(), t),
            "embed.w_pos" => ("pos_embed.W_pos".to_string(), t),
            "unembed.w_u" => ("unembed.W_U".to_string(), t),
            "unembed.b_u" => ("unembed.b_U".to_string(), t),
            other => {
                let (prefix, leaf) = other.rsplit_once('.').unwrap_or(("", other));
                match leaf {
                    "w_q" | "w_k" | "w_v" => (
                        format!("{prefix}.W_{}", leaf[2..].to_uppercase()),
                        per_head_in(&t)?,
                    ),
                    "b_q" | "b_k" | "b_v" => (
                        format!("{prefix}.b_{}", leaf[2..].to_uppercase()),
                        t.f_reshape([h, dh])?,
                    ),
                    "w_o" => (format!("{prefix}.W_O"), t.f_reshape([h, dh, d])?),
                    "b_o" => (format!("{prefix}.b_O"), t),
                    "w_in" => (format!("{prefix}.W_in"), t),
                    "w_out" => (format!("{prefix}.W_out"), t),
                    _ => (other.to_string(), t),
                }
            }
        };
        out.push((tl, t.f_contiguous()?));
    }
    Ok(out)
}
