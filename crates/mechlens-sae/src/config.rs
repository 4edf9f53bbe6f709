//! [`SaeConfig`]: an SAE's `cfg.json` in SAELens' layout.
//!
//! SAELens 6 writes the inference fields at the top level (`architecture`, `d_in`, `d_sae`,
//! `dtype`, `apply_b_dec_to_input`, `normalize_activations`, `k` for TopK ...) and everything
//! about where the SAE belongs (`model_name`, `hook_name`, `context_size`, `prepend_bos` ...)
//! under `metadata`. Older releases wrote one flat object (`hook_point`, `activation_fn_str`,
//! `activation_fn_kwargs.k`, a boolean `normalize_activations`); [`SaeConfig::from_json`] reads
//! both, as SAELens' `handle_pre_6_0_config` does.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use mechlens_core::{Error, Result};
use serde_json::{Map, Value, json};

/// The SAELens version we write into `metadata` (the format we follow).
pub const SAE_LENS_FORMAT_VERSION: &str = "6.54.12";

/// How latents are computed from pre-activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `relu(x·W_enc + b_enc)` (SAELens `standard`).
    Standard,
    /// The `k` largest pre-activations, ReLU'd; the rest zero (`topk`).
    TopK,
    /// `pre · (pre > threshold)` with a learned per-latent threshold (`jumprelu`). BatchTopK
    /// SAEs are saved as this, with the threshold they learned.
    JumpRelu,
    /// A gate path (`x·W_enc + b_gate > 0`) times a magnitude path
    /// (`relu(x·(W_enc·exp(r_mag)) + b_mag)`) (`gated`).
    Gated,
}

impl Architecture {
    /// Every architecture, by SAELens name.
    pub const ALL: [Architecture; 4] = [
        Architecture::Standard,
        Architecture::TopK,
        Architecture::JumpRelu,
        Architecture::Gated,
    ];

    /// SAELens' name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::TopK => "topk",
            Self::JumpRelu => "jumprelu",
            Self::Gated => "gated",
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Architecture {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        by_name("SAE architecture", &Self::ALL, Self::name, s)
    }
}

/// The member of `all` whose `name` is `s`, else an [`Error::Unsupported`] listing them.
fn by_name<T: Copy>(
    what: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    s: &str,
) -> Result<T> {
    all.iter()
        .copied()
        .find(|a| name(*a) == s)
        .ok_or_else(|| Error::Unsupported {
            what,
            name: s.to_string(),
            supported: all.iter().map(|a| name(*a).to_string()).collect(),
        })
}

/// How activations are scaled before the SAE sees them (SAELens' `normalize_activations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationNorm {
    /// As they come.
    None,
    /// Scaled by one constant, fitted during training so that the mean norm is √d_in, and
    /// folded into the weights when saved (Anthropic, April 2024); at inference a no-op.
    ExpectedAverageOnlyIn,
    /// Each activation rescaled to norm √d_in on the way in, and back on the way out.
    ConstantNormRescale,
}

impl ActivationNorm {
    const ALL: [ActivationNorm; 3] = [
        ActivationNorm::None,
        ActivationNorm::ExpectedAverageOnlyIn,
        ActivationNorm::ConstantNormRescale,
    ];

    /// SAELens' name.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ExpectedAverageOnlyIn => "expected_average_only_in",
            Self::ConstantNormRescale => "constant_norm_rescale",
        }
    }
}

impl FromStr for ActivationNorm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        by_name("normalize_activations", &Self::ALL, Self::name, s)
    }
}

/// An SAE's configuration: what [`crate::Sae`] needs to run, plus SAELens' metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct SaeConfig {
    /// The latent activation function.
    pub architecture: Architecture,
    /// Width of the activations it reads (`d_model` for residual hooks).
    pub d_in: i64,
    /// Number of latents.
    pub d_sae: i64,
    /// Parameter dtype as SAELens writes it (`float32`, `bfloat16` ...).
    pub dtype: String,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input scaling.
    pub normalize_activations: ActivationNorm,
    /// `hook_z` SAEs read `[..., n_heads, d_head]` flattened (SAELens `reshape_activations`).
    pub reshape_hook_z: bool,
    /// Active latents per token, for TopK.
    pub k: Option<i64>,
    /// TopK: rank pre-activations times decoder row norms (SAELens
    /// `rescale_acts_by_decoder_norm`).
    pub rescale_acts_by_decoder_norm: bool,
    /// SAELens' `metadata` object (model_name, hook_name, hook_head_index, context_size,
    /// prepend_bos, dataset_path ...), kept as it was read.
    pub metadata: Map<String, Value>,
}

impl SaeConfig {
    /// A config for a new SAE: float32, `apply_b_dec_to_input`, no normalisation.
    pub fn new(architecture: Architecture, d_in: i64, d_sae: i64) -> Self {
        Self {
            architecture,
            d_in,
            d_sae,
            dtype: "float32".into(),
            apply_b_dec_to_input: true,
            normalize_activations: ActivationNorm::None,
            reshape_hook_z: false,
            k: (architecture == Architecture::TopK).then_some(100),
            rescale_acts_by_decoder_norm: false,
            metadata: Map::new(),
        }
    }

    /// The hook point the SAE was trained on (`metadata.hook_name`), if recorded.
    pub fn hook_name(&self) -> Option<&str> {
        self.metadata.get("hook_name").and_then(Value::as_str)
    }

    /// Records the model and hook point the SAE belongs to.
    pub fn with_hook(mut self, model_name: &str, hook_name: &str) -> Self {
        self.metadata.insert("model_name".into(), json!(model_name));
        self.metadata.insert("hook_name".into(), json!(hook_name));
        self
    }

    /// Reads a `cfg.json` (SAELens 6 layout, or the flat pre-6.0 one).
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file, [`Error::Config`] for bad JSON or a missing or
    /// wrong-typed field, [`Error::Unsupported`] for an unknown architecture.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Self::from_json(&value, &path.display().to_string())
    }

    /// Parses a config object; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`SaeConfig::from_file`].
    pub fn from_json(value: &Value, origin: &str) -> Result<Self> {
        let obj = value.as_object().ok_or_else(|| Error::Config {
            path: origin.into(),
            reason: "expected a JSON object".into(),
        })?;
        let fields = Fields { obj, origin };
        let version = obj
            .get("metadata")
            .and_then(|m| m.get("sae_lens_version"))
            .or_else(|| obj.get("sae_lens_version"))
            .and_then(Value::as_str);
        let pre_6 = version
            .is_none_or(|v| v.split('.').next().and_then(|m| m.parse::<u32>().ok()) < Some(6));
        let (architecture, k) = if pre_6 {
            legacy_architecture(&fields)?
        } else {
            let arch: Architecture = fields.string("architecture")?.parse()?;
            let k = if arch == Architecture::TopK {
                Some(fields.int("k")?)
            } else {
                None
            };
            (arch, k)
        };
        let normalize_activations = match obj.get("normalize_activations") {
            None | Some(Value::Null) => ActivationNorm::None,
            Some(Value::Bool(false)) => ActivationNorm::None,
            Some(Value::Bool(true)) => ActivationNorm::ExpectedAverageOnlyIn,
            Some(Value::String(s)) => s.parse()?,
            Some(other) => {
                return Err(fields.wrong_type("normalize_activations", "a string", other));
            }
        };
        let mut metadata = match obj.get("metadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if pre_6 {
            // The flat layout kept the metadata at the top level, under older names.
            for (old, new) in [
                ("hook_point", "hook_name"),
                ("hook_point_head_index", "hook_head_index"),
            ] {
                if let Some(v) = obj.get(old).or_else(|| obj.get(new)) {
                    metadata.insert(new.into(), v.clone());
                }
            }
            for key in LLM_METADATA_KEYS {
                if let Some(v) = obj.get(key) {
                    metadata.insert(key.into(), v.clone());
                }
            }
        }
        let d_in = fields.int("d_in")?;
        let d_sae = fields.int("d_sae")?;
        for (name, v) in [("d_in", d_in), ("d_sae", d_sae)] {
            if v <= 0 {
                return Err(Error::Config {
                    path: origin.into(),
                    reason: format!("`{name}` must be positive, got {v}"),
                });
            }
        }
        if let Some(k) = k
            && !(1..=d_sae).contains(&k)
        {
            return Err(Error::Config {
                path: origin.into(),
                reason: format!("`k` must be in 1..={d_sae} (d_sae), got {k}"),
            });
        }
        let reshape_hook_z = match obj.get("reshape_activations") {
            Some(Value::String(s)) => s == "hook_z",
            _ => metadata
                .get("hook_name")
                .and_then(Value::as_str)
                .is_some_and(|h| h.ends_with("hook_z")),
        };
        Ok(Self {
            architecture,
            d_in,
            d_sae,
            dtype: fields
                .opt_string("dtype")?
                .unwrap_or_else(|| "float32".into()),
            apply_b_dec_to_input: fields.opt_bool("apply_b_dec_to_input")?.unwrap_or(true),
            normalize_activations,
            reshape_hook_z,
            k,
            rescale_acts_by_decoder_norm: fields
                .opt_bool("rescale_acts_by_decoder_norm")?
                .unwrap_or(false),
            metadata,
        })
    }

    /// The config as SAELens 6 writes it.
    pub fn to_json(&self) -> Value {
        let mut metadata = self.metadata.clone();
        metadata
            .entry("sae_lens_version")
            .or_insert_with(|| json!(SAE_LENS_FORMAT_VERSION));
        metadata
            .entry("sae_lens_training_version")
            .or_insert_with(|| json!(SAE_LENS_FORMAT_VERSION));
        let mut cfg = json!({
            "architecture": self.architecture.name(),
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": self.dtype,
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations.name(),
            "reshape_activations": if self.reshape_hook_z { "hook_z" } else { "none" },
            "metadata": metadata,
        });
        if self.architecture == Architecture::TopK {
            cfg["k"] = json!(self.k);
            cfg["rescale_acts_by_decoder_norm"] = json!(self.rescale_acts_by_decoder_norm);
        }
        cfg
    }
}

/// What SAELens keeps as `metadata` when it reads a flat pre-6.0 config (its
/// `LLM_METADATA_KEYS`, less the two renamed hook keys handled on their own).
const LLM_METADATA_KEYS: [&str; 15] = [
    "model_name",
    "model_class_name",
    "model_from_pretrained_kwargs",
    "prepend_bos",
    "exclude_special_tokens",
    "neuronpedia_id",
    "context_size",
    "seqpos_slice",
    "dataset_path",
    "sae_lens_version",
    "sae_lens_training_version",
    "hook_name_out",
    "hook_head_index_out",
    "hf_hook_name",
    "hf_hook_name_out",
];

/// Pre-6.0 configs name the activation function instead of the architecture.
fn legacy_architecture(fields: &Fields<'_>) -> Result<(Architecture, Option<i64>)> {
    let activation = fields
        .opt_string("activation_fn")?
        .or(fields.opt_string("activation_fn_str")?);
    let k = fields
        .obj
        .get("activation_fn_kwargs")
        .and_then(|kw| kw.get("k"))
        .and_then(Value::as_i64)
        .or(fields.obj.get("k").and_then(Value::as_i64));
    if activation.as_deref() == Some("topk") {
        let k = k.ok_or_else(|| Error::Config {
            path: fields.origin.into(),
            reason: "a topk SAE needs `k` (or `activation_fn_kwargs.k`)".into(),
        })?;
        return Ok((Architecture::TopK, Some(k)));
    }
    let arch = match fields.opt_string("architecture")? {
        Some(a) => a.parse()?,
        None => Architecture::Standard,
    };
    let k = if arch == Architecture::TopK { k } else { None };
    if arch == Architecture::TopK && k.is_none() {
        return Err(Error::Config {
            path: fields.origin.into(),
            reason: "a topk SAE needs `k`".into(),
        });
    }
    Ok((arch, k))
}

/// Typed access to a config object's fields, with errors naming the field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a str,
}

impl Fields<'_> {
    fn wrong_type(&self, name: &str, expected: &str, got: &Value) -> Error {
        Error::Config {
            path: self.origin.into(),
            reason: format!("`{name}` must be {expected}, got {got}"),
        }
    }

    fn missing(&self, name: &str, expected: &str) -> Error {
        Error::Config {
            path: self.origin.into(),
            reason: format!("missing field `{name}` ({expected})"),
        }
    }

    fn int(&self, name: &str) -> Result<i64> {
        match self.obj.get(name) {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| self.wrong_type(name, "an integer", v)),
            None => Err(self.missing(name, "an integer")),
        }
    }

    fn string(&self, name: &str) -> Result<String> {
        self.opt_string(name)?
            .ok_or_else(|| self.missing(name, "a string"))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong_type(name, "a string", v)),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(name, "true or false", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v6_and_flat_configs() {
        let v6 = json!({"architecture": "topk", "d_in": 8, "d_sae": 32, "k": 4,
            "dtype": "float32", "apply_b_dec_to_input": false, "normalize_activations": "none",
            "metadata": {"sae_lens_version": "6.5.0", "hook_name": "blocks.0.hook_resid_pre"}});
        let cfg = SaeConfig::from_json(&v6, "v6").unwrap();
        assert_eq!(
            (cfg.architecture, cfg.k, cfg.apply_b_dec_to_input),
            (Architecture::TopK, Some(4), false)
        );
        assert_eq!(cfg.hook_name(), Some("blocks.0.hook_resid_pre"));

        let flat = json!({"d_in": 8, "d_sae": 32, "hook_point": "blocks.1.hook_resid_post",
            "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3},
            "normalize_activations": true, "sae_lens_version": "3.2.0"});
        let cfg = SaeConfig::from_json(&flat, "flat").unwrap();
        assert_eq!((cfg.architecture, cfg.k), (Architecture::TopK, Some(3)));
        assert_eq!(
            cfg.normalize_activations,
            ActivationNorm::ExpectedAverageOnlyIn
        );
        assert_eq!(cfg.hook_name(), Some("blocks.1.hook_resid_post"));
    }

    #[test]
    fn round_trips_through_json() {
        let mut cfg =
            SaeConfig::new(Architecture::TopK, 16, 64).with_hook("gpt2", "blocks.3.hook_resid_pre");
        cfg.k = Some(7);
        let back = SaeConfig::from_json(&cfg.to_json(), "x").unwrap();
        assert_eq!(back.k, Some(7));
        assert_eq!(back.hook_name(), cfg.hook_name());
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |v: Value| {
            SaeConfig::from_json(&v, "cfg.json")
                .unwrap_err()
                .to_string()
        };
        let meta = json!({"sae_lens_version": "6.0.0"});
        let e = err(json!({"architecture": "standard", "d_sae": 4, "metadata": meta}));
        assert!(e.contains("missing field `d_in`"), "{e}");
        let e = err(json!({"architecture": "standard", "d_in": "8", "d_sae": 4, "metadata": meta}));
        assert!(
            e.contains("`d_in` must be an integer") && e.contains("\"8\""),
            "{e}"
        );
        let e = err(json!({"architecture": "matryoshka", "d_in": 8, "d_sae": 4, "metadata": meta}));
        assert!(e.contains("matryoshka") && e.contains("jumprelu"), "{e}");
        let e =
            err(json!({"architecture": "topk", "d_in": 8, "d_sae": 4, "k": 9, "metadata": meta}));
        assert!(e.contains("`k` must be in 1..=4"), "{e}");
    }
}
