//! dictionary_learning / SAEBench: `config.json` + `ae.pt`, one of five dictionary classes.

use mechlens_core::Result;
use serde_json::{Value, json};

use super::{Converted, config, converted};
use super::{int_field, str_field};
use crate::pretrained::files::Tensors;

pub(super) fn dictionary_learning(config_json: &Value, mut t: Tensors) -> Result<Converted> {
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
        let threshold = if threshold.dim() == 0 {
            let d_sae = tensors[0].1.size()[1];
            threshold.f_expand([d_sae], false)?.f_contiguous()?
        } else {
            threshold
        };
        tensors.push(("threshold", threshold));
    }
    Ok(converted(cfg, tensors))
}
