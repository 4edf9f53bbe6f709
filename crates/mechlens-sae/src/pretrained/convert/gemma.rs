//! Gemma Scope (`params.npz`) and Gemma Scope 2 (`params.safetensors`, optional `config.json`).

use mechlens_core::{Error, Result};
use serde_json::{Value, json};

use super::{Converted, bad_path, config, converted};
use super::{check_scaling_factor, number_after, str_field};
use crate::pretrained::files::Tensors;

pub(super) fn gemma_2(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
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
        let scale = (w_enc.size()[0] as f64).sqrt();
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

pub(super) fn gemma_3(
    repo_id: &str,
    path: &str,
    raw: Option<Value>,
    mut t: Tensors,
) -> Result<Converted> {
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
