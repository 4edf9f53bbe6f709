//! [`ModelConfig`]: one architecture-neutral description of a decoder, in TransformerLens'
//! vocabulary (`d_model`, `d_head`, `d_mlp`, `n_ctx`...). Each architecture file reads its
//! Hugging Face `config.json` (HF field names) and produces one of these.

use mechlens_core::{Error, Result};

/// The MLP's nonlinearity. Serialised with TransformerLens' `act_fn` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// Exact GELU (erf).
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// ReLU.
    #[serde(rename = "relu")]
    Relu,
    /// SiLU / swish (Llama's gate).
    #[serde(rename = "silu")]
    Silu,
    /// `x * sigmoid(1.702 x)`.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
}

impl Activation {
    /// Parses a Hugging Face `hidden_act` / `activation_function` string.
    ///
    /// # Errors
    /// [`Error::Unsupported`] listing the known names.
    pub fn from_hf(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluTanh,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "quick_gelu" => Self::QuickGelu,
            _ => {
                return Err(Error::Unsupported {
                    what: "activation",
                    name: name.to_string(),
                    supported: [
                        "gelu",
                        "gelu_new",
                        "gelu_pytorch_tanh",
                        "gelu_fast",
                        "relu",
                        "silu",
                        "quick_gelu",
                    ]
                    .map(String::from)
                    .to_vec(),
                });
            }
        })
    }
}

/// Which normalisation the blocks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// LayerNorm (centre, scale, weight, bias).
    LayerNorm,
    /// RMSNorm (scale, weight).
    Rms,
    /// LayerNorm whose weight and bias were folded into the next layer (TransformerLens' LNPre).
    LayerNormPre,
    /// RMSNorm whose weight was folded (RMSPre).
    RmsPre,
    /// No normalisation (TransformerLens' `normalization_type=None`): no norm hooks either.
    Identity,
}

/// How positions enter the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Positional {
    /// A learned `[n_ctx, d_model]` table added to the token embedding (GPT-2, GPT-Neo).
    Learned,
    /// Rotary embeddings on queries and keys.
    Rotary(RotaryConfig),
}

/// Rotary position embedding settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RotaryConfig {
    /// Dimensions rotated per head (the first `dim`; `< d_head` for partial rotary).
    pub dim: usize,
    /// θ, the frequency base.
    pub base: f64,
    /// Rotate adjacent pairs `(2i, 2i+1)` (GPT-J, llama2.c) instead of halves `(i, i+dim/2)`
    /// (GPT-NeoX, Hugging Face Llama).
    pub interleaved: bool,
    /// Frequency scaling for long contexts.
    pub scaling: RopeScaling,
}

/// RoPE frequency scaling (Hugging Face `rope_scaling` / `rope_parameters`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3's wavelength-dependent scaling.
    Llama3 {
        /// Scale factor for low frequencies.
        factor: f64,
        /// Wavelength bound (in units of `original_max_position_embeddings / low_freq_factor`).
        low_freq_factor: f64,
        /// Wavelength bound for high frequencies.
        high_freq_factor: f64,
        /// The context the model was trained with.
        original_max_position_embeddings: f64,
    },
}

impl RopeScaling {
    /// Reads Hugging Face's rope dict (`rope_scaling` or `rope_parameters`); `None` or a
    /// `default` type is plain RoPE.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a rope type we do not implement; [`Error::Config`] for a
    /// missing field.
    pub fn from_hf(value: Option<&serde_json::Value>) -> Result<Self> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::None);
        };
        let kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        let num = |key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| Error::Config {
                    path: "config.json".into(),
                    reason: format!("rope type `{kind}` needs a number `{key}`"),
                })
        };
        Ok(match kind {
            "default" => Self::None,
            "linear" => Self::Linear {
                factor: num("factor")?,
            },
            "llama3" => Self::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            },
            other => {
                return Err(Error::Unsupported {
                    what: "rope_type",
                    name: other.to_string(),
                    supported: ["default", "linear", "llama3"].map(String::from).to_vec(),
                });
            }
        })
    }
}

/// An architecture-neutral decoder description (TransformerLens' `HookedTransformerConfig`).
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The Hugging Face architecture (`GPT2LMHeadModel`, `LlamaForCausalLM`...).
    pub architecture: String,
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`< n_heads` for grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Vocabulary size.
    pub d_vocab: usize,
    /// Longest sequence the model accepts.
    pub n_ctx: usize,
    /// MLP nonlinearity.
    pub act_fn: Activation,
    /// Block normalisation.
    pub normalization: Normalization,
    /// Normalisation epsilon.
    pub eps: f64,
    /// Position encoding.
    pub positional: Positional,
    /// Attention and MLP read the same residual (GPT-NeoX, GPT-J).
    pub parallel_residual: bool,
    /// SwiGLU-style MLP with a gate.
    pub gated_mlp: bool,
    /// Blocks have attention and no MLP (TransformerLens' `attn_only`).
    pub attn_only: bool,
    /// Attention scores are divided by this (√d_head; 1 for GPT-Neo).
    pub attn_scale: f64,
    /// Per layer: `Some(w)` for local attention over the last `w` positions.
    pub windows: Vec<Option<usize>>,
    /// Unembedding is the transposed token embedding.
    pub tied_embeddings: bool,
    /// Beginning-of-sequence token, if the model has one.
    pub bos_token_id: Option<i64>,
    /// End-of-sequence token, if the model has one.
    pub eos_token_id: Option<i64>,
    /// Padding token, if the model has one.
    pub pad_token_id: Option<i64>,
}

impl ModelConfig {
    /// Checks the sizes fit together.
    ///
    /// # Errors
    /// [`Error::Config`] naming the inconsistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Config {
                path: "config.json".into(),
                reason,
            })
        };
        if self.n_layers == 0 || self.d_model == 0 || self.n_heads == 0 || self.d_vocab == 0 {
            return bad("n_layers, d_model, n_heads and vocab size must be positive".into());
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} attention heads cannot be grouped over {} key/value heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.d_head == 0 {
            return bad(format!(
                "{} heads do not divide d_model = {}",
                self.n_heads, self.d_model
            ));
        }
        if self.windows.len() != self.n_layers {
            return bad(format!(
                "{} attention layer types for {} layers",
                self.windows.len(),
                self.n_layers
            ));
        }
        if let Positional::Rotary(r) = &self.positional
            && (r.dim > self.d_head || r.dim % 2 != 0)
        {
            return bad(format!(
                "rotary dim {} must be even and at most d_head {}",
                r.dim, self.d_head
            ));
        }
        Ok(())
    }

    /// Whether the blocks' norms still carry weights (not folded).
    pub fn has_norm_weights(&self) -> bool {
        matches!(
            self.normalization,
            Normalization::LayerNorm | Normalization::Rms
        )
    }
}
