//! [`HookedTransformerConfig`]: a transformer described in TransformerLens' vocabulary, to
//! build one from scratch ([`crate::HookedTransformer::from_config`]) and to save and load
//! one (`config.json` is this struct, readable by `HookedTransformerConfig(**json)` in
//! TransformerLens).

use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ModelConfig, Normalization, Positional, RopeScaling, RotaryConfig,
};

/// How positions enter a model built from a config (TransformerLens'
/// `positional_embedding_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionalType {
    /// A learned `[n_ctx, d_model]` table (`"standard"`).
    Standard,
    /// Rotary embeddings on queries and keys (`"rotary"`, halves rotated as in GPT-NeoX).
    Rotary,
}

/// The block normalisation of a model built from a config (TransformerLens'
/// `normalization_type`; `None` in [`HookedTransformerConfig`] is no normalisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormType {
    /// LayerNorm with weight and bias (`"LN"`).
    #[serde(rename = "LN")]
    LayerNorm,
    /// RMSNorm with a weight (`"RMS"`).
    #[serde(rename = "RMS")]
    Rms,
}

/// A transformer's shape in TransformerLens' names. Fields left at their defaults take
/// TransformerLens' (`d_head = d_model / n_heads`, `d_mlp = 4·d_model`,
/// `initializer_range = 0.8/√d_model`).
///
/// ```
/// # use mechlens_models::HookedTransformerConfig;
/// let cfg = HookedTransformerConfig {
///     n_layers: 2, d_model: 64, n_heads: 4, d_vocab: 64, n_ctx: 64,
///     attn_only: true, normalization_type: None,
///     ..Default::default()
/// };
/// assert_eq!(cfg.resolved().unwrap().d_head, 16);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookedTransformerConfig {
    /// Blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Width of one head (0: `d_model / n_heads`).
    pub d_head: usize,
    /// MLP hidden width (`None`: `4·d_model`; unused when `attn_only`).
    pub d_mlp: Option<usize>,
    /// Vocabulary size (must be set).
    pub d_vocab: usize,
    /// Longest sequence.
    pub n_ctx: usize,
    /// MLP nonlinearity (`"relu"`, `"gelu"`, `"gelu_new"`, `"silu"`).
    pub act_fn: Activation,
    /// `"LN"`, `"RMS"`, or `None` for no normalisation.
    pub normalization_type: Option<NormType>,
    /// Blocks have attention and no MLP.
    pub attn_only: bool,
    /// `"standard"` (learned) or `"rotary"`.
    pub positional_embedding_type: PositionalType,
    /// Rotary θ.
    pub rotary_base: f64,
    /// Standard deviation of the initial `W_*` matrices (negative: `0.8/√d_model`).
    pub initializer_range: f64,
    /// Normalisation epsilon.
    pub eps: f64,
}

impl Default for HookedTransformerConfig {
    fn default() -> Self {
        Self {
            n_layers: 2,
            d_model: 64,
            n_heads: 4,
            d_head: 0,
            d_mlp: None,
            d_vocab: 0,
            n_ctx: 64,
            act_fn: Activation::Relu,
            normalization_type: Some(NormType::LayerNorm),
            attn_only: false,
            positional_embedding_type: PositionalType::Standard,
            rotary_base: 10_000.0,
            initializer_range: -1.0,
            eps: 1e-5,
        }
    }
}

impl HookedTransformerConfig {
    /// The config with every derived field filled in (`d_head`, `d_mlp`,
    /// `initializer_range`), checked.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first inconsistent size: zero layers, heads, width,
    /// context or vocabulary; `d_head` that does not divide `d_model` when derived; a rotary
    /// head of odd width.
    pub fn resolved(&self) -> Result<Self> {
        let bad = |reason: String| {
            Err(Error::Config {
                path: "HookedTransformerConfig".into(),
                reason,
            })
        };
        let mut c = self.clone();
        for (name, value) in [
            ("n_layers", c.n_layers),
            ("d_model", c.d_model),
            ("n_heads", c.n_heads),
            ("d_vocab", c.d_vocab),
            ("n_ctx", c.n_ctx),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1, got 0"));
            }
        }
        if c.d_head == 0 {
            if !c.d_model.is_multiple_of(c.n_heads) {
                return bad(format!(
                    "d_model {} is not n_heads {} × d_head; set d_head, or make d_model a multiple of n_heads",
                    c.d_model, c.n_heads
                ));
            }
            c.d_head = c.d_model / c.n_heads;
        }
        if c.attn_only {
            c.d_mlp = None;
        } else {
            let d_mlp = c.d_mlp.unwrap_or(4 * c.d_model);
            if d_mlp == 0 {
                return bad("d_mlp must be at least 1 (or attn_only)".into());
            }
            c.d_mlp = Some(d_mlp);
        }
        if c.positional_embedding_type == PositionalType::Rotary && !c.d_head.is_multiple_of(2) {
            return bad(format!(
                "rotary embeddings need an even d_head, got {}",
                c.d_head
            ));
        }
        if !(c.eps > 0.0 && c.eps.is_finite()) {
            return bad(format!("eps must be a positive number, got {}", c.eps));
        }
        if c.initializer_range < 0.0 {
            c.initializer_range = 0.8 / (c.d_model as f64).sqrt();
        }
        Ok(c)
    }

    /// One line: layers, widths, heads, vocabulary, what kind of blocks.
    pub fn summary(&self) -> String {
        let norm = match self.normalization_type {
            None => "no norm",
            Some(NormType::LayerNorm) => "LayerNorm",
            Some(NormType::Rms) => "RMSNorm",
        };
        let positions = match self.positional_embedding_type {
            PositionalType::Standard => "learned positions",
            PositionalType::Rotary => "rotary positions",
        };
        format!(
            "{} layers, d_model {}, {} heads of {}, d_mlp {}, vocab {}, n_ctx {}, {norm}, {positions}",
            self.n_layers,
            self.d_model,
            self.n_heads,
            self.d_head,
            self.d_mlp
                .map_or("none (attention only)".to_string(), |d| d.to_string()),
            self.d_vocab,
            self.n_ctx,
        )
    }

    /// The architecture-neutral description the components run from (call on a
    /// [`resolved`](Self::resolved) config).
    pub(crate) fn model_config(&self) -> ModelConfig {
        ModelConfig {
            architecture: "HookedTransformerConfig".into(),
            n_layers: self.n_layers,
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_kv_heads: self.n_heads,
            d_head: self.d_head,
            d_mlp: self.d_mlp.unwrap_or(0),
            d_vocab: self.d_vocab,
            n_ctx: self.n_ctx,
            act_fn: self.act_fn,
            normalization: match self.normalization_type {
                Some(NormType::LayerNorm) => Normalization::LayerNorm,
                Some(NormType::Rms) => Normalization::Rms,
                None => Normalization::Identity,
            },
            eps: self.eps,
            positional: match self.positional_embedding_type {
                PositionalType::Standard => Positional::Learned,
                PositionalType::Rotary => Positional::Rotary(RotaryConfig {
                    dim: self.d_head,
                    base: self.rotary_base,
                    interleaved: false,
                    scaling: RopeScaling::None,
                }),
            },
            parallel_residual: false,
            gated_mlp: false,
            attn_scale: (self.d_head as f64).sqrt(),
            windows: vec![None; self.n_layers],
            tied_embeddings: false,
            attn_only: self.attn_only,
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }
}
