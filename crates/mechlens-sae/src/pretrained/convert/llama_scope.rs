//! Llama Scope (`hyperparams.json` + `checkpoints/final.safetensors`) and Llama Scope R1
//! Distill (`config.json` + `sae_weights.safetensors`).

use mechlens_core::Result;
use serde_json::{Value, json};

use super::{Converted, config, converted};
use crate::pretrained::files::Tensors;
use tch::{Kind, Tensor};

use super::{float_field, int_field, str_field};

pub(super) fn llama_scope(hyper: &Value, mut t: Tensors) -> Result<Converted> {
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

pub(super) fn llama_scope_r1(raw: &Value, mut t: Tensors) -> Result<Converted> {
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
