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
use tch::{Kind, Tensor};

use super::files::Tensors;

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

fn bad_path(what: &str, path: &str, expected: &str) -> Error {
    Error::invalid(
        what,
        format!("cannot read `{path}`: expected {expected}, as SAELens' converter does"),
    )
}

/// The number right after the first `prefix` in `s` that is followed by a digit.
fn number_after(s: &str, prefix: &str) -> Option<i64> {
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

fn read_json(path: &Path) -> Result<Value> {
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
fn field<'v>(value: &'v Value, path: &[&str], origin: &str) -> Result<&'v Value> {
    let mut v = value;
    for key in path {
        v = v.get(key).ok_or_else(|| Error::Config {
            path: origin.into(),
            reason: format!("missing field `{}`", path.join(".")),
        })?;
    }
    Ok(v)
}

fn int_field(value: &Value, path: &[&str], origin: &str) -> Result<i64> {
    let v = field(value, path, origin)?;
    v.as_i64().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be an integer, got {v}", path.join(".")),
    })
}

fn float_field(value: &Value, path: &[&str], origin: &str) -> Result<f64> {
    let v = field(value, path, origin)?;
    v.as_f64().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be a number, got {v}", path.join(".")),
    })
}

fn str_field<'v>(value: &'v Value, path: &[&str], origin: &str) -> Result<&'v str> {
    let v = field(value, path, origin)?;
    v.as_str().ok_or_else(|| Error::Config {
        path: origin.into(),
        reason: format!("`{}` must be a string, got {v}", path.join(".")),
    })
}

/// `d_in`, `d_sae` from an encoder weight of shape `[d_in, d_sae]`.
fn sizes(w_enc: &Tensor, t: &Tensors) -> Result<(i64, i64)> {
    match w_enc.size()[..] {
        [d_in, d_sae] => Ok((d_in, d_sae)),
        ref other => Err(Error::WeightFile {
            path: t.path.clone(),
            reason: format!("the encoder weight should be a matrix, it has shape {other:?}"),
        }),
    }
}

/// The config fields every converter sets, then its own.
fn config(
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

fn converted(cfg: Map<String, Value>, tensors: Vec<(&str, Tensor)>) -> Converted {
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
fn check_scaling_factor(t: &mut Tensors) -> Result<()> {
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

fn gemma_2(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
    check_scaling_factor(&mut t)?;
    let embedding = path.contains("embedding");
    let layer = match number_after(path, "layer_") {
        Some(l) => l,
        None if embedding => 0,
        None => {
            return Err(bad_path(
                "Gemma Scope folder",
                path,
                "`layer_N` in the folder name",
            ));
        }
    };
    const MODELS: [(&str, &str); 6] = [
        ("2b-it", "gemma-2-2b-it"),
        ("9b-it", "gemma-2-9b-it"),
        ("27b-it", "gemma-2-27b-it"),
        ("2b", "gemma-2-2b"),
        ("9b", "gemma-2-9b"),
        ("27b", "gemma-2-27b"),
    ];
    let model = MODELS
        .iter()
        .find(|(key, _)| repo_id.contains(key))
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            bad_path(
                "Gemma Scope repository",
                repo_id,
                "2b, 9b or 27b in the name",
            )
        })?;
    let hook = if repo_id.contains("res") && !embedding {
        format!("blocks.{layer}.hook_resid_post")
    } else if repo_id.contains("res") {
        "hook_embed".into()
    } else if repo_id.contains("mlp") {
        format!("blocks.{layer}.hook_mlp_out")
    } else if repo_id.contains("att") {
        format!("blocks.{layer}.attn.hook_z")
    } else {
        return Err(bad_path(
            "Gemma Scope repository",
            repo_id,
            "res, mlp or att in the name",
        ));
    };
    let mut w_enc = t.take_first(&["W_enc", "w_enc"])?;
    let mut w_dec = t.take_first(&["W_dec", "w_dec"])?;
    let cfg = config(
        "jumprelu",
        &w_enc,
        &t,
        json!({
            "model_name": model, "hook_name": hook, "activation_fn": "relu",
            "dataset_path": "monology/pile-uncopyrighted", "context_size": 1024,
            "apply_b_dec_to_input": false, "normalize_activations": null,
        }),
    )?;
    if embedding {
        // Trained on embeddings scaled by sqrt(d_model) (Gemma's embedding multiplier).
        let scale = (cfg["d_in"].as_f64().unwrap_or(1.0)).sqrt();
        w_enc = w_enc.f_div_scalar(scale)?;
        w_dec = w_dec.f_mul_scalar(scale)?;
    }
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", w_dec),
            ("b_enc", t.take("b_enc")?),
            ("b_dec", t.take("b_dec")?),
            ("threshold", t.take("threshold")?),
        ],
    ))
}

fn gemma_3(repo_id: &str, path: &str, raw: Option<Value>, mut t: Tensors) -> Result<Converted> {
    let layer = number_after(path, "layer_")
        .ok_or_else(|| bad_path("Gemma Scope 2 folder", path, "`layer_N` in the folder name"))?;
    let (hook, hf_hook) = if path.contains("resid_post") {
        (
            format!("blocks.{layer}.hook_resid_post"),
            format!("model.layers.{layer}.output"),
        )
    } else if path.contains("attn_out") {
        (
            format!("blocks.{layer}.attn.hook_z"),
            format!("model.layers.{layer}.self_attn.o_proj.input"),
        )
    } else if path.contains("mlp_out") {
        (
            format!("blocks.{layer}.hook_mlp_out"),
            format!("model.layers.{layer}.post_feedforward_layernorm.output"),
        )
    } else {
        return Err(bad_path(
            "Gemma Scope 2 folder",
            path,
            "resid_post, attn_out or mlp_out in the folder name",
        ));
    };
    let origin = format!("{repo_id}/{path}/config.json");
    let (mut model, hf_hook) = match &raw {
        Some(raw) => {
            let arch = raw.get("architecture").and_then(Value::as_str);
            if arch != Some("jump_relu") {
                return Err(Error::Config {
                    path: origin,
                    reason: format!("expected architecture `jump_relu`, got {arch:?}"),
                });
            }
            (
                str_field(raw, &["model_name"], &origin)?.to_string(),
                raw.get("hf_hook_point_in").cloned().unwrap_or(Value::Null),
            )
        }
        None => (repo_id.replace("gemma-scope-2", "gemma-3"), json!(hf_hook)),
    };
    if !model.contains("google") {
        model = format!("google/{model}");
    }
    model = model.replace("-v3", "-3");
    if model.contains("270m") {
        model = model.replace("-pt", "");
    }
    let w_enc = t.take("w_enc")?;
    let cfg = config(
        "jumprelu",
        &w_enc,
        &t,
        json!({
            "model_name": model, "hook_name": hook, "dataset_path": "monology/pile-uncopyrighted",
            "context_size": 1024, "apply_b_dec_to_input": false, "normalize_activations": "none",
            "reshape_activations": "none", "hf_hook_name": hf_hook,
        }),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take("w_dec")?),
            ("b_enc", t.take("b_enc")?),
            ("b_dec", t.take("b_dec")?),
            ("threshold", t.take("threshold")?),
        ],
    ))
}

fn llama_scope(hyper: &Value, mut t: Tensors) -> Result<Converted> {
    let origin = "Llama Scope hyperparams.json";
    let d_in = int_field(hyper, &["d_model"], origin)?;
    let average_norm = float_field(hyper, &["dataset_average_activation_norm", "in"], origin)?;
    // The threshold is scaled as SAELens' later fold of the norm scaling factor into W_enc
    // requires (its converter's comment says the same).
    let threshold =
        float_field(hyper, &["jump_relu_threshold"], origin)? * (d_in as f64).sqrt() / average_norm;
    let w_enc = t.take_t("encoder.weight")?;
    let cfg = config(
        "jumprelu",
        &w_enc,
        &t,
        json!({
            "model_name": "meta-llama/Llama-3.1-8B",
            "hook_name": str_field(hyper, &["hook_point_in"], origin)?,
            "activation_fn": "relu", "dataset_path": "cerebras/SlimPajama-627B",
            "context_size": 1024, "apply_b_dec_to_input": false,
            "normalize_activations": "expected_average_only_in",
        }),
    )?;
    let d_sae = cfg["d_sae"].as_i64().unwrap_or(0);
    // float32 ones times the threshold, as SAELens computes it.
    let threshold = Tensor::f_full(
        [d_sae],
        threshold as f32 as f64,
        (Kind::Float, tch::Device::Cpu),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take_t("decoder.weight")?),
            ("b_enc", t.take("encoder.bias")?),
            ("b_dec", t.take("decoder.bias")?),
            ("threshold", threshold),
        ],
    ))
}

fn llama_scope_r1(raw: &Value, mut t: Tensors) -> Result<Converted> {
    let origin = "Llama Scope R1 config.json";
    let w_enc = t.take_t("encoder.weight")?;
    let cfg = config(
        "jumprelu",
        &w_enc,
        &t,
        json!({
            "model_name": "meta-llama/Llama-3.1-8B",
            "hook_name": str_field(raw, &["hook_point_in"], origin)?,
            "activation_fn": "relu", "dataset_path": "cerebras/SlimPajama-627B",
            "context_size": 1024, "apply_b_dec_to_input": false,
            "normalize_activations": "expected_average_only_in",
        }),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take_t("decoder.weight")?),
            ("b_enc", t.take("encoder.bias")?),
            ("b_dec", t.take("decoder.bias")?),
            ("threshold", t.take("log_jumprelu_threshold")?.f_exp()?),
        ],
    ))
}

fn dictionary_learning(config_json: &Value, mut t: Tensors) -> Result<Converted> {
    let origin = "dictionary_learning config.json";
    let layer = int_field(config_json, &["trainer", "layer"], origin)?;
    let class = str_field(config_json, &["trainer", "dict_class"], origin)?;
    let lm_name = str_field(config_json, &["trainer", "lm_name"], origin)?;
    let context = int_field(config_json, &["buffer", "ctx_len"], origin)?;
    let topk = class == "AutoEncoderTopK";
    let (architecture, apply_b_dec) = match class {
        "GatedAutoEncoder" => ("gated", true),
        "MatryoshkaBatchTopKSAE" | "BatchTopKSAE" => ("jumprelu", true),
        // Its encoder does not subtract b_dec first.
        "JumpReluAutoEncoder" => ("jumprelu", false),
        _ => ("standard", true),
    };
    let kwargs = if topk {
        json!({"k": int_field(config_json, &["trainer", "k"], origin)?})
    } else {
        json!({})
    };
    let w_enc = if t.has("W_enc") {
        t.take("W_enc")?
    } else {
        t.take_t("encoder.weight")?
    };
    let cfg = config(
        architecture,
        &w_enc,
        &t,
        json!({
            "model_name": lm_name.rsplit('/').next().unwrap_or(lm_name),
            "hook_name": format!("blocks.{layer}.hook_resid_post"),
            "activation_fn": if topk { "topk" } else { "relu" },
            "activation_fn_kwargs": kwargs, "apply_b_dec_to_input": apply_b_dec,
            "dataset_path": "monology/pile-uncopyrighted", "context_size": context,
            "normalize_activations": "none", "neuronpedia_id": null,
        }),
    )?;
    let w_dec = if t.has("W_dec") {
        t.take("W_dec")?
    } else {
        t.take_t("decoder.weight")?
    };
    let mut tensors = vec![
        ("W_enc", w_enc),
        ("W_dec", w_dec),
        ("b_dec", t.take_first(&["b_dec", "bias", "decoder_bias"])?),
    ];
    for (theirs, ours) in [
        ("encoder.bias", "b_enc"),
        ("b_enc", "b_enc"),
        ("mag_bias", "b_mag"),
        ("gate_bias", "b_gate"),
        ("r_mag", "r_mag"),
    ] {
        if t.has(theirs) {
            tensors.retain(|(n, _)| *n != ours);
            tensors.push((ours, t.take(theirs)?));
        }
    }
    // AutoEncoderTopK saves a threshold too, but encodes with a per-token top-k.
    if architecture == "jumprelu" && t.has("threshold") {
        let threshold = t.take("threshold")?;
        let d_sae = cfg["d_sae"].as_i64().unwrap_or(0);
        let threshold = if threshold.dim() == 0 {
            threshold.f_expand([d_sae], false)?.f_contiguous()?
        } else {
            threshold
        };
        tensors.push(("threshold", threshold));
    }
    Ok(converted(cfg, tensors))
}

fn qwen_scope(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
    let layer = number_after(path, "layer")
        .filter(|_| path.ends_with(".sae.pt"))
        .ok_or_else(|| bad_path("Qwen Scope file", path, "`layerN.sae.pt`"))?;
    // Qwen/SAE-Res-{model}-W{N}K-L0_{k}
    let parsed = repo_id.split_once("SAE-Res-").and_then(|(_, rest)| {
        let (model_and_width, k) = rest.rsplit_once("-L0_")?;
        let (model, width) = model_and_width.rsplit_once("-W")?;
        width.strip_suffix('K')?.parse::<i64>().ok()?;
        Some((model.to_string(), k.parse::<i64>().ok()?))
    });
    let (model_key, k) = parsed.ok_or_else(|| {
        bad_path(
            "Qwen Scope repository",
            repo_id,
            "`SAE-Res-{model}-W{N}K-L0_{k}`",
        )
    })?;
    const MODELS: [(&str, &str); 7] = [
        ("Qwen3-1.7B-Base", "Qwen/Qwen3-1.7B-Base"),
        ("Qwen3-8B-Base", "Qwen/Qwen3-8B-Base"),
        ("Qwen3-30B-A3B-Base", "Qwen/Qwen3-30B-A3B-Base"),
        ("Qwen3.5-2B-Base", "Qwen/Qwen3.5-2B-Base"),
        ("Qwen3.5-9B-Base", "Qwen/Qwen3.5-9B-Base"),
        ("Qwen3.5-27B", "Qwen/Qwen3.5-27B"),
        ("Qwen3.5-35B-A3B-Base", "Qwen/Qwen3.5-35B-A3B-Base"),
    ];
    let model = MODELS
        .iter()
        .find(|(key, _)| *key == model_key)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let known: Vec<&str> = MODELS.iter().map(|(k, _)| *k).collect();
            bad_path(
                "Qwen Scope model",
                &model_key,
                &format!("one of {}", known.join(", ")),
            )
        })?;
    // Stored as W_enc [d_sae, d_in], W_dec [d_in, d_sae]: the transpose of SAELens' layout.
    let w_enc = t.take_t("W_enc")?;
    let cfg = config(
        "topk",
        &w_enc,
        &t,
        json!({
            "activation_fn": "topk", "activation_fn_kwargs": {"k": k}, "context_size": 1024,
            "model_name": model, "hook_name": format!("blocks.{layer}.hook_resid_post"),
            "hf_hook_name": format!("model.layers.{layer}"), "dataset_path": null,
            "normalize_activations": "none", "apply_b_dec_to_input": false,
        }),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take_t("W_dec")?),
            ("b_enc", t.take("b_enc")?),
            ("b_dec", t.take("b_dec")?),
        ],
    ))
}

fn goodfire(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
    const KNOWN: [(&str, &str, &str, &str); 2] = [
        (
            "Goodfire/Llama-3.3-70B-Instruct-SAE-l50",
            "Llama-3.3-70B-Instruct-SAE-l50.pt",
            "meta-llama/Llama-3.3-70B-Instruct",
            "blocks.50.hook_resid_post",
        ),
        (
            "Goodfire/Llama-3.1-8B-Instruct-SAE-l19",
            "Llama-3.1-8B-Instruct-SAE-l19.pth",
            "meta-llama/Llama-3.1-8B-Instruct",
            "blocks.19.hook_resid_post",
        ),
    ];
    let (_, _, model, hook) = KNOWN
        .iter()
        .find(|(repo, file, _, _)| *repo == repo_id && *file == path)
        .ok_or_else(|| {
            bad_path(
                "Goodfire SAE",
                &format!("{repo_id}/{path}"),
                "one of Goodfire's two Llama SAEs SAELens lists",
            )
        })?;
    let w_enc = t.take_t("encoder_linear.weight")?;
    let cfg = config(
        "standard",
        &w_enc,
        &t,
        json!({"model_name": model, "hook_name": hook, "dataset_path": "lmsys/lmsys-chat-1m",
               "apply_b_dec_to_input": false}),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take_t("decoder_linear.weight")?),
            ("b_enc", t.take("encoder_linear.bias")?),
            ("b_dec", t.take("decoder_linear.bias")?),
        ],
    ))
}

fn deepseek_r1(path: &str, mut t: Tensors) -> Result<Converted> {
    let layer = number_after(path, "l")
        .ok_or_else(|| bad_path("DeepSeek R1 SAE file", path, "`l{layer}` in the name"))?;
    let w_enc = t.take_t("encoder.weight")?;
    let cfg = config(
        "standard",
        &w_enc,
        &t,
        json!({
            "context_size": 1024, "model_name": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
            "hook_name": format!("blocks.{layer}.hook_resid_post"),
            "dataset_path": "lmsys/lmsys-chat-1m", "activation_fn": "relu",
            "normalize_activations": "none", "apply_b_dec_to_input": false,
        }),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take_t("decoder.weight")?),
            ("b_enc", t.take("encoder.bias")?),
            ("b_dec", t.take("decoder.bias")?),
        ],
    ))
}

fn connor_rob(raw: &Value, mut t: Tensors) -> Result<Converted> {
    let origin = "hook_z SAE _cfg.json";
    let w_enc = t.take("W_enc")?;
    let cfg = config(
        "standard",
        &w_enc,
        &t,
        json!({
            "model_name": "gpt2-small", "hook_name": str_field(raw, &["act_name"], origin)?,
            "activation_fn": "relu", "apply_b_dec_to_input": true,
            "dataset_path": "Skylion007/openwebtext", "context_size": 128,
            "normalize_activations": "none", "reshape_activations": "hook_z",
        }),
    )?;
    Ok(converted(
        cfg,
        vec![
            ("W_enc", w_enc),
            ("W_dec", t.take("W_dec")?),
            ("b_enc", t.take("b_enc")?),
            ("b_dec", t.take("b_dec")?),
        ],
    ))
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
