//! Llama Scope (`hyperparams.json` + `checkpoints/final.safetensors`) and Llama Scope R1
//! Distill (`config.json` + `sae_weights.safetensors`).

use mechlens_core::Result;
use serde_json::{Value, json};
use tch::{Kind, Tensor};

use super::{Converted, config, converted, float_field, int_field, linear_pair, str_field};
use crate::pretrained::files::Tensors;

/// What SAELens' two Llama Scope converters share: the model, the dataset, and a constant
/// input scale (`expected_average_only_in`) that `from_pretrained` folds in.
fn llama_scope_config(hook: &str) -> Value {
    json!({
        "model_name": "meta-llama/Llama-3.1-8B", "hook_name": hook,
        "activation_fn": "relu", "dataset_path": "cerebras/SlimPajama-627B",
        "context_size": 1024, "apply_b_dec_to_input": false,
        "normalize_activations": "expected_average_only_in",
    })
}

pub(super) fn llama_scope(hyper: &Value, mut t: Tensors) -> Result<Converted> {
    let origin = "Llama Scope hyperparams.json";
    let d_in = int_field(hyper, &["d_model"], origin)?;
    let average_norm = float_field(hyper, &["dataset_average_activation_norm", "in"], origin)?;
    // The threshold is scaled as SAELens' later fold of the norm scaling factor into W_enc
    // requires (its converter's comment says the same).
    let threshold =
        float_field(hyper, &["jump_relu_threshold"], origin)? * (d_in as f64).sqrt() / average_norm;
    let hook = str_field(hyper, &["hook_point_in"], origin)?;
    let mut tensors = linear_pair(&mut t, "encoder", "decoder")?;
    let cfg = config("jumprelu", &tensors[0].1, &t, llama_scope_config(hook))?;
    let d_sae = tensors[0].1.size()[1];
    // float32 ones times the threshold, as SAELens computes it.
    let threshold = Tensor::f_full(
        [d_sae],
        threshold as f32 as f64,
        (Kind::Float, tch::Device::Cpu),
    )?;
    tensors.push(("threshold", threshold));
    Ok(converted(cfg, tensors))
}

pub(super) fn llama_scope_r1(raw: &Value, mut t: Tensors) -> Result<Converted> {
    let hook = str_field(raw, &["hook_point_in"], "Llama Scope R1 config.json")?;
    let mut tensors = linear_pair(&mut t, "encoder", "decoder")?;
    let cfg = config("jumprelu", &tensors[0].1, &t, llama_scope_config(hook))?;
    tensors.push(("threshold", t.take("log_jumprelu_threshold")?.f_exp()?));
    Ok(converted(cfg, tensors))
}
