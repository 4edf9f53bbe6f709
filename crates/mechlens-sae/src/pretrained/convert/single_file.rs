//! Formats with one PyTorch file per SAE: Qwen Scope, Goodfire, DeepSeek R1, and the GPT-2
//! `hook_z` SAEs (with a `_cfg.json` beside).

use mechlens_core::Result;
use serde_json::{Value, json};

use super::{Converted, bad_path, config, converted, linear_pair};
use super::{number_after, str_field};
use crate::pretrained::files::Tensors;

pub(super) fn qwen_scope(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
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

pub(super) fn goodfire(repo_id: &str, path: &str, mut t: Tensors) -> Result<Converted> {
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
    let tensors = linear_pair(&mut t, "encoder_linear", "decoder_linear")?;
    let cfg = config(
        "standard",
        &tensors[0].1,
        &t,
        json!({"model_name": model, "hook_name": hook, "dataset_path": "lmsys/lmsys-chat-1m",
               "apply_b_dec_to_input": false}),
    )?;
    Ok(converted(cfg, tensors))
}

pub(super) fn deepseek_r1(path: &str, mut t: Tensors) -> Result<Converted> {
    let layer = number_after(path, "l")
        .ok_or_else(|| bad_path("DeepSeek R1 SAE file", path, "`l{layer}` in the name"))?;
    let tensors = linear_pair(&mut t, "encoder", "decoder")?;
    let cfg = config(
        "standard",
        &tensors[0].1,
        &t,
        json!({
            "context_size": 1024, "model_name": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
            "hook_name": format!("blocks.{layer}.hook_resid_post"),
            "dataset_path": "lmsys/lmsys-chat-1m", "activation_fn": "relu",
            "normalize_activations": "none", "apply_b_dec_to_input": false,
        }),
    )?;
    Ok(converted(cfg, tensors))
}

pub(super) fn connor_rob(raw: &Value, mut t: Tensors) -> Result<Converted> {
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
