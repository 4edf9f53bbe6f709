//! Releases SAELens converts on load (its `conversion_func`), read the way its converters in
//! `sae_lens.loading.pretrained_sae_loaders` read them: which files, which tensor names and
//! layouts, and the config each implies (architecture, hook, `apply_b_dec_to_input`, input
//! normalisation). The config comes out in SAELens' pre-6.0 flat layout, which
//! [`crate::SaeConfig::from_json`] reads as SAELens' `handle_pre_6_0_config` does.
//!
//! Sizes come from the weight files' shapes; SAELens takes them from tables of model widths,
//! which the real files agree with.

use std::path::Path;

use mechlens_core::{Error, Result};
use serde_json::{Map, Value, json};
use tch::Tensor;

use super::files::Tensors;
use dictionary_learning::dictionary_learning;
use gemma::{gemma_2, gemma_3};
use llama_scope::{llama_scope, llama_scope_r1};
use single_file::{connor_rob, deepseek_r1, goodfire, qwen_scope};

mod dictionary_learning;
mod gemma;
mod llama_scope;
mod single_file;

/// SAELens' converters that produce an SAE mechlens runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Gemma Scope: `params.npz` per folder.
    Gemma2,
    /// Gemma Scope 2: `params.safetensors`, optional `config.json`.
    Gemma3,
    /// Llama Scope: `hyperparams.json` + `checkpoints/final.safetensors`.
    LlamaScope,
    /// Llama Scope R1 Distill: `config.json` + `sae_weights.safetensors` (log thresholds).
    LlamaScopeR1Distill,
    /// dictionary_learning (SAEBench): `config.json` + `ae.pt`.
    DictionaryLearning,
    /// Qwen Scope: one `layer{n}.sae.pt` per layer.
    QwenScope,
    /// Goodfire's Llama SAEs: one `.pt` / `.pth`.
    Goodfire,
    /// qresearch's DeepSeek R1 distill SAE: one `.pt`.
    DeepSeekR1,
    /// Kissane & Krzyzanowski's GPT-2 `hook_z` SAEs: `.pt` + `_cfg.json`.
    ConnorRobHookZ,
}

/// Converters whose output is not an SAE (transcoders read one hook and write another).
const NOT_SAES: [(&str, &str); 4] = [
    ("gemma_2_transcoder", "a transcoder"),
    ("mwhanna_transcoder", "a transcoder"),
    ("mntss_clt_layer_transcoder", "a cross-layer transcoder"),
    ("temporal", "a temporal SAE (attention over earlier tokens)"),
];

const FORMATS: [(&str, Format); 9] = [
    ("gemma_2", Format::Gemma2),
    ("gemma_3", Format::Gemma3),
    ("llama_scope", Format::LlamaScope),
    ("llama_scope_r1_distill", Format::LlamaScopeR1Distill),
    ("dictionary_learning_1", Format::DictionaryLearning),
    ("qwen_scope", Format::QwenScope),
    ("goodfire", Format::Goodfire),
    ("deepseek_r1", Format::DeepSeekR1),
    ("connor_rob_hook_z", Format::ConnorRobHookZ),
];

/// A converted SAE: a flat config and tensors under SAELens' state-dict names.
pub(crate) struct Converted {
    pub(crate) cfg: Map<String, Value>,
    pub(crate) tensors: Vec<(String, Tensor)>,
}

fn unsupported(name: &str, why: &str) -> Error {
    Error::Unsupported {
        what: "SAELens conversion",
        name: format!("{name} ({why})"),
        supported: FORMATS
            .iter()
            .map(|(n, _)| (*n).to_string())
            .chain(["SAELens folders (no conversion_func)".to_string()])
            .collect(),
    }
}

pub(super) fn bad_path(what: &str, path: &str, expected: &str) -> Error {
    Error::invalid(
        what,
        format!("cannot read `{path}`: expected {expected}, as SAELens' converter does"),
    )
}

/// The number right after the first `prefix` in `s` that is followed by a digit.
pub(super) fn number_after(s: &str, prefix: &str) -> Option<i64> {
    s.match_indices(prefix).find_map(|(at, _)| {
        let rest = &s[at + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

impl Format {
    /// The converter SAELens names `name`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for transcoders and converters we do not know.
    pub(crate) fn from_name(name: &str, path: &str) -> Result<Self> {
        if let Some((_, what)) = NOT_SAES.iter().find(|(n, _)| *n == name) {
            return Err(unsupported(
                name,
                &format!("its files hold {what}, not an SAE"),
            ));
        }
        let format = FORMATS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| unsupported(name, "an SAELens converter mechlens does not know"))?;
        if format == Format::Gemma3 && (path.contains("transcoder") || path.contains("clt")) {
            return Err(unsupported(
                name,
                &format!("`{path}` is a Gemma Scope 2 transcoder, not an SAE"),
            ));
        }
        Ok(format)
    }

    /// `(required, optional)` files of the SAE at `path` in the repository.
    pub(crate) fn files(self, path: &str) -> (Vec<String>, Vec<String>) {
        let p = |name: &str| format!("{path}/{name}");
        match self {
            Self::Gemma2 => (vec![p("params.npz")], vec![]),
            Self::Gemma3 => (vec![p("params.safetensors")], vec![p("config.json")]),
            Self::LlamaScope => (
                vec![p("hyperparams.json"), p("checkpoints/final.safetensors")],
                vec![],
            ),
            Self::LlamaScopeR1Distill => {
                (vec![p("config.json"), p("sae_weights.safetensors")], vec![])
            }
            Self::DictionaryLearning => (vec![p("config.json"), p("ae.pt")], vec![]),
            Self::QwenScope | Self::Goodfire | Self::DeepSeekR1 => (vec![path.to_string()], vec![]),
            Self::ConnorRobHookZ => {
                let stem = path.split(".pt").next().unwrap_or(path);
                (vec![format!("{stem}_cfg.json"), path.to_string()], vec![])
            }
        }
    }

    /// Reads the SAE at `path` of repository `repo_id`, whose files are under `snapshot`.
    pub(crate) fn convert(self, repo_id: &str, path: &str, snapshot: &Path) -> Result<Converted> {
        let file = |name: &str| snapshot.join(path).join(name);
        match self {
            Self::Gemma2 => gemma_2(repo_id, path, Tensors::read(&file("params.npz"))?),
            Self::Gemma3 => {
                let raw = file("config.json");
                let raw = raw.is_file().then(|| read_json(&raw)).transpose()?;
                gemma_3(
                    repo_id,
                    path,
                    raw,
                    Tensors::read(&file("params.safetensors"))?,
                )
            }
            Self::LlamaScope => llama_scope(
                &read_json(&file("hyperparams.json"))?,
                Tensors::read(&file("checkpoints/final.safetensors"))?,
            ),
            Self::LlamaScopeR1Distill => llama_scope_r1(
                &read_json(&file("config.json"))?,
                Tensors::read(&file("sae_weights.safetensors"))?,
            ),
            Self::DictionaryLearning => dictionary_learning(
                &read_json(&file("config.json"))?,
                Tensors::read(&file("ae.pt"))?,
            ),
            Self::QwenScope => qwen_scope(repo_id, path, Tensors::read(&snapshot.join(path))?),
            Self::Goodfire => goodfire(repo_id, path, Tensors::read(&snapshot.join(path))?),
            Self::DeepSeekR1 => deepseek_r1(path, Tensors::read(&snapshot.join(path))?),
            Self::ConnorRobHookZ => {
                let (required, _) = self.files(path);
                connor_rob(
                    &read_json(&snapshot.join(&required[0]))?,
                    Tensors::read(&snapshot.join(path))?,
                )
            }
        }
    }
}

pub(super) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.display().to_string(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// A field of a converter's JSON file, with an error naming it.
pub(super) fn field<'v>(value: &'v Value, path: &[&str], origin: &str) -> Result<&'v Value> {
    let mut v = value;
    for key in path {
        v = v.get(key).ok_or_else(|| Error::Config {
            path: origin.into(),
            reason: format!("missing field `{}`", path.join(".")),
        })?;
    }
    Ok(v)
}

pub(super) fn int_field(value: &Value, path: &[&str], origin: &str) -> Result<i64> {
    let v = field(value, path, origin)?;
    v.as_i64().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be an integer, got {v}", path.join(".")),
    })
}

pub(super) fn float_field(value: &Value, path: &[&str], origin: &str) -> Result<f64> {
    let v = field(value, path, origin)?;
    v.as_f64().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be a number, got {v}", path.join(".")),
    })
}

pub(super) fn str_field<'v>(value: &'v Value, path: &[&str], origin: &str) -> Result<&'v str> {
    let v = field(value, path, origin)?;
    v.as_str().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be a string, got {v}", path.join(".")),
    })
}

/// `d_in`, `d_sae` from an encoder weight of shape `[d_in, d_sae]`.
pub(super) fn sizes(w_enc: &Tensor, t: &Tensors) -> Result<(i64, i64)> {
    match w_enc.size()[..] {
        [d_in, d_sae] => Ok((d_in, d_sae)),
        ref other => Err(Error::WeightFile {
            path: t.path.clone(),
            reason: format!("the encoder weight should be a matrix, it has shape {other:?}"),
        }),
    }
}

/// The config fields every converter sets, then its own.
pub(super) fn config(
    architecture: &str,
    w_enc: &Tensor,
    t: &Tensors,
    own: Value,
) -> Result<Map<String, Value>> {
    let (d_in, d_sae) = sizes(w_enc, t)?;
    let mut cfg = Map::new();
    cfg.insert("architecture".into(), json!(architecture));
    cfg.insert("d_in".into(), json!(d_in));
    cfg.insert("d_sae".into(), json!(d_sae));
    cfg.insert("dtype".into(), json!("float32"));
    cfg.insert("hook_head_index".into(), Value::Null);
    cfg.insert("prepend_bos".into(), json!(true));
    if let Value::Object(own) = own {
        cfg.extend(own);
    }
    Ok(cfg)
}

/// `W_enc`, `W_dec`, `b_enc`, `b_dec` from a pair of `nn.Linear` layers named
/// `{encoder}.weight` / `.bias` and `{decoder}.weight` / `.bias` (weights stored `[out, in]`).
pub(super) fn linear_pair(
    t: &mut Tensors,
    encoder: &str,
    decoder: &str,
) -> Result<Vec<(&'static str, Tensor)>> {
    Ok(vec![
        ("W_enc", t.take_t(&format!("{encoder}.weight"))?),
        ("W_dec", t.take_t(&format!("{decoder}.weight"))?),
        ("b_enc", t.take(&format!("{encoder}.bias"))?),
        ("b_dec", t.take(&format!("{decoder}.bias"))?),
    ])
}

pub(super) fn converted(cfg: Map<String, Value>, tensors: Vec<(&str, Tensor)>) -> Converted {
    Converted {
        cfg,
        tensors: tensors
            .into_iter()
            .map(|(n, t)| (n.to_string(), t))
            .collect(),
    }
}

/// SAELens drops a `scaling_factor` of all ones and refuses any other (its Gemma configs say
/// `finetuning_scaling_factor: false`).
pub(super) fn check_scaling_factor(t: &mut Tensors) -> Result<()> {
    if !t.has("scaling_factor") {
        return Ok(());
    }
    let s = t.take("scaling_factor")?;
    if s.f_ne(1.0)?.f_any()?.int64_value(&[]) != 0 {
        return Err(Error::WeightFile {
            path: t.path.clone(),
            reason: "it has a `scaling_factor` other than 1, which SAELens refuses for this \
                     format (finetuning_scaling_factor is false)"
                .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_after_a_prefix_as_saelens_regexes_find_them() {
        assert_eq!(
            number_after("layer_12/width_16k/average_l0_82", "layer_"),
            Some(12)
        );
        assert_eq!(
            number_after("DeepSeek-R1-Distill-Llama-8B-SAE-l19.pt", "l"),
            Some(19)
        );
        assert_eq!(number_after("layer7.sae.pt", "layer"), Some(7));
        assert_eq!(number_after("embedding/width_4k", "layer_"), None);
    }

    #[test]
    fn transcoders_and_unknown_converters_are_refused_by_name() {
        let e = Format::from_name("mwhanna_transcoder", "layer_0.safetensors")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transcoder") && e.contains("gemma_2"), "{e}");
        let e = Format::from_name("gemma_3", "transcoder_all/layer_0_width_16k_l0_big")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transcoder_all/layer_0"), "{e}");
        let e = Format::from_name("sparsify", "x").unwrap_err().to_string();
        assert!(e.contains("sparsify") && e.contains("llama_scope"), "{e}");
        assert_eq!(
            Format::from_name("gemma_3", "resid_post/layer_3_width_16k_l0_small").unwrap(),
            Format::Gemma3
        );
    }
}
