//! Building a [`HookedTransformer`] from a [`HookedTransformerConfig`]: TransformerLens'
//! `HookedTransformer(cfg)` with its default (`init_mode="gpt2"`) initialisation — every
//! `W_*` matrix drawn from N(0, initializer_range²), biases zero, norm weights one — from a
//! seeded SplitMix64 stream, so that a seed gives the same model on every machine.

use mechlens_core::Result;
use mechlens_core::SplitMix64;
use tch::{Device, Kind, Tensor};

use super::HookedTransformer;
use crate::architectures::{DecoderWeights, LayerWeights};
use crate::components::{AttnWeights, Embed, Mlp, Norm};
use crate::config::{ModelConfig, Normalization};
use crate::transformer_config::HookedTransformerConfig;

impl HookedTransformer {
    /// A freshly initialised model of `cfg`, seeded by `seed`, on the CPU, in f32.
    ///
    /// ```
    /// # use mechlens_models::{HookedTransformer, HookedTransformerConfig};
    /// let cfg = HookedTransformerConfig { n_layers: 1, d_model: 32, n_heads: 2, d_vocab: 10, n_ctx: 8, ..Default::default() };
    /// let model = HookedTransformer::from_config(&cfg, 0)?;
    /// let logits = model.forward(&tch::Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0))?;
    /// assert_eq!(logits.size(), [1, 3, 10]);
    /// # Ok::<(), mechlens_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`mechlens_core::Error::Config`] naming an inconsistent size (see
    /// [`HookedTransformerConfig::resolved`]).
    pub fn from_config(cfg: &HookedTransformerConfig, seed: u64) -> Result<Self> {
        let cfg = cfg.resolved()?;
        let model_cfg = cfg.model_config();
        let mut init = Init {
            rng: SplitMix64::new(seed),
            std: cfg.initializer_range,
        };
        let weights = init.weights(&model_cfg)?;
        let mut model = Self::from_parts(model_cfg, weights, None, Device::Cpu)?;
        model.m.transformer_config = Some(cfg);
        Ok(model)
    }

    /// The TransformerLens config this model was built from or loaded with; `None` for a
    /// model loaded from a Hugging Face or llama2.c checkpoint.
    pub fn transformer_config(&self) -> Option<&HookedTransformerConfig> {
        self.m.transformer_config.as_ref()
    }
}

/// Draws the initial weights.
struct Init {
    rng: SplitMix64,
    std: f64,
}

impl Init {
    /// `shape` from N(0, std²) (Box–Muller over the stream).
    fn normal(&mut self, shape: &[i64]) -> Result<Tensor> {
        let n: i64 = shape.iter().product();
        let mut values = Vec::with_capacity(n as usize);
        while values.len() < n as usize {
            let u1: f64 = self.rng.uniform().max(f64::MIN_POSITIVE);
            let u2 = self.rng.uniform();
            let r = (-2.0 * u1.ln()).sqrt() * self.std;
            let theta = std::f64::consts::TAU * u2;
            values.push((r * theta.cos()) as f32);
            values.push((r * theta.sin()) as f32);
        }
        values.truncate(n as usize);
        Ok(Tensor::from_slice(&values).f_reshape(shape)?)
    }

    fn norm(cfg: &ModelConfig) -> Result<Norm> {
        let d = cfg.d_model as i64;
        let ones = || Tensor::f_ones([d], (Kind::Float, Device::Cpu));
        let zeros = || Tensor::f_zeros([d], (Kind::Float, Device::Cpu));
        Ok(Norm {
            kind: cfg.normalization,
            w: match cfg.normalization {
                Normalization::LayerNorm | Normalization::Rms => Some(ones()?),
                _ => None,
            },
            b: match cfg.normalization {
                Normalization::LayerNorm => Some(zeros()?),
                _ => None,
            },
            eps: cfg.eps,
        })
    }

    fn weights(&mut self, cfg: &ModelConfig) -> Result<DecoderWeights> {
        let zeros = |n: usize| Tensor::f_zeros([n as i64], (Kind::Float, Device::Cpu));
        let (d, heads) = (cfg.d_model as i64, (cfg.n_heads * cfg.d_head) as i64);
        // In TransformerLens' order of parameters: embed, pos_embed, then per block.
        let w_e = self.normal(&[cfg.d_vocab as i64, d])?;
        let w_pos = match cfg.positional {
            crate::config::Positional::Learned => Some(self.normal(&[cfg.n_ctx as i64, d])?),
            crate::config::Positional::Rotary(_) => None,
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for _ in 0..cfg.n_layers {
            let attn = AttnWeights {
                w_q: self.normal(&[d, heads])?,
                b_q: Some(zeros(heads as usize)?),
                w_k: self.normal(&[d, heads])?,
                b_k: Some(zeros(heads as usize)?),
                w_v: self.normal(&[d, heads])?,
                b_v: Some(zeros(heads as usize)?),
                w_o: self.normal(&[heads, d])?,
                b_o: Some(zeros(cfg.d_model)?),
            };
            let mlp = if cfg.attn_only {
                None
            } else {
                let h = cfg.d_mlp as i64;
                Some(Mlp {
                    w_in: self.normal(&[d, h])?,
                    b_in: Some(zeros(cfg.d_mlp)?),
                    w_gate: None,
                    w_out: self.normal(&[h, d])?,
                    b_out: Some(zeros(cfg.d_model)?),
                    act: cfg.act_fn,
                })
            };
            layers.push(LayerWeights {
                ln1: Self::norm(cfg)?,
                attn,
                ln2: Self::norm(cfg)?,
                mlp,
            });
        }
        Ok(DecoderWeights {
            embed: Embed { w_e, w_pos },
            layers,
            ln_final: Self::norm(cfg)?,
            w_u: self.normal(&[d, cfg.d_vocab as i64])?,
            b_u: Some(zeros(cfg.d_vocab)?),
        })
    }
}
