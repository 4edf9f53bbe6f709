//! Every bad input gives an error that names what was wrong and what was expected; none
//! panics.

use std::path::{Path, PathBuf};

use mechlens_core::{CacheFilter, Hooks, Intervention};
use mechlens_models::{HookedEncoder, HookedTransformer, LoadOptions};
use mechlens_tests::{fixture, temp_dir};
use tch::{Kind, Tensor};

fn gpt2() -> HookedTransformer {
    HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default()).unwrap()
}

/// A copy of the gpt2 fixture folder with `config.json` edited by `edit`.
fn edited_copy(edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = PathBuf::from(fixture("gpt2", "model"));
    let dir = temp_dir("model");
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match HookedTransformer::from_pretrained(dir.to_str().unwrap(), LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
}

#[test]
fn unknown_hook_name_suggests_the_closest() {
    let model = gpt2();
    let err = model
        .hook_point("blocks.1.attn.hook_patern")
        .unwrap_err()
        .to_string();
    contains_all(
        &err,
        &[
            "blocks.1.attn.hook_patern",
            "blocks.1.attn.hook_pattern",
            "hook_points()",
        ],
    );
    // A real TransformerLens name this architecture lacks (no rotary in GPT-2).
    let err = model
        .hook_point("blocks.0.attn.hook_rot_q")
        .unwrap_err()
        .to_string();
    contains_all(&err, &["unknown hook point", "blocks.0.attn.hook_rot_q"]);
    let err = model
        .hook_point("blocks.7.hook_resid_pre")
        .unwrap_err()
        .to_string();
    contains_all(&err, &["blocks.1.hook_resid_pre"]);
    let err = CacheFilter::names(["hook_embedding"])
        .unwrap_err()
        .to_string();
    contains_all(&err, &["hook_embed"]);
    let hooks = Hooks::new()
        .intervene("blocks.5.hook_mlp_out", Intervention::Zero)
        .unwrap();
    let err = model
        .run_with_hooks(Tensor::from_slice(&[1i64, 2]), hooks)
        .unwrap_err()
        .to_string();
    contains_all(&err, &["blocks.5.hook_mlp_out", "blocks.1.hook_mlp_out"]);
}

#[test]
fn wrong_replacement_shape_names_hook_and_both_shapes() {
    let model = gpt2();
    let bad = Tensor::zeros([1, 3, 31], (Kind::Float, tch::Device::Cpu));
    let hooks = Hooks::new()
        .intervene("blocks.0.hook_resid_mid", Intervention::Replace(bad))
        .unwrap();
    let err = model
        .run_with_hooks(Tensor::from_slice(&[1i64, 2, 3]), hooks)
        .unwrap_err()
        .to_string();
    contains_all(
        &err,
        &["blocks.0.hook_resid_mid", "[1, 3, 30]", "[1, 3, 31]"],
    );
    let hooks = Hooks::new()
        .edit("blocks.1.attn.hook_z", |z, _| Ok(z.narrow(2, 0, 1)))
        .unwrap();
    let err = model
        .run_with_hooks(Tensor::from_slice(&[1i64, 2, 3]), hooks)
        .unwrap_err()
        .to_string();
    contains_all(
        &err,
        &["blocks.1.attn.hook_z", "[1, 3, 5, 6]", "[1, 3, 1, 6]"],
    );
}

#[test]
fn bad_tokens_are_refused() {
    let model = gpt2();
    let err = model
        .forward(Tensor::from_slice(&[1i64, 97]))
        .unwrap_err()
        .to_string();
    contains_all(&err, &["97", "outside the vocabulary 0..97"]);
    let err = model
        .forward(Tensor::from_slice(&[-1i64]))
        .unwrap_err()
        .to_string();
    contains_all(&err, &["-1", "outside the vocabulary"]);
    let long = Tensor::zeros([1, 33], (Kind::Int64, tch::Device::Cpu));
    let err = model.forward(&long).unwrap_err().to_string();
    contains_all(&err, &["33 tokens", "n_ctx = 32"]);
    let err = model
        .forward(Tensor::zeros([1, 0], (Kind::Int64, tch::Device::Cpu)))
        .unwrap_err()
        .to_string();
    contains_all(&err, &["empty"]);
    let err = model
        .forward(Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)))
        .unwrap_err()
        .to_string();
    contains_all(&err, &["integer token ids", "Float"]);
    let err = model.forward("text").unwrap_err().to_string();
    contains_all(&err, &["no tokenizer"]);
    let err = model
        .loss(Tensor::from_slice(&[1i64]))
        .unwrap_err()
        .to_string();
    contains_all(&err, &["at least two tokens"]);
    let err = model
        .forward_from_layer(
            &Tensor::zeros([1, 2, 7], (Kind::Float, tch::Device::Cpu)),
            1,
        )
        .unwrap_err()
        .to_string();
    contains_all(&err, &["residual", "[_, _, 30]", "[1, 2, 7]"]);
    let err = model
        .forward_to_layer(Tensor::from_slice(&[1i64]), 3)
        .unwrap_err()
        .to_string();
    contains_all(&err, &["stop_at_layer", "layer 3"]);
}

#[test]
fn non_scalar_metric_is_refused() {
    let model = gpt2();
    let err = model
        .gradients(Tensor::from_slice(&[1i64, 2]), CacheFilter::All, |logits| {
            Ok(logits.shallow_clone())
        })
        .unwrap_err()
        .to_string();
    contains_all(&err, &["metric", "scalar", "[1, 2, 97]"]);
}

#[test]
fn missing_tensor_names_tensor_and_file() {
    let dir = edited_copy(|c| c["n_layer"] = 3.into());
    let err = load_err(&dir);
    contains_all(
        &err,
        &["weight `transformer.h.2.", "model.safetensors", "missing"],
    );
}

#[test]
fn wrong_tensor_shape_gives_both_shapes() {
    let dir = edited_copy(|c| c["vocab_size"] = 98.into());
    let err = load_err(&dir);
    contains_all(&err, &["transformer.wte.weight", "[97, 30]", "[98, 30]"]);
}

#[test]
fn truncated_or_corrupt_safetensors_is_refused() {
    let dir = edited_copy(|_| {});
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    contains_all(
        &load_err(&dir),
        &["model.safetensors", "truncated or corrupt"],
    );
    std::fs::write(&file, b"garbage").unwrap();
    contains_all(
        &load_err(&dir),
        &["model.safetensors", "not a valid safetensors file"],
    );
    std::fs::remove_file(&file).unwrap();
    contains_all(&load_err(&dir), &["no model.safetensors"]);
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let dir = edited_copy(|c| c["model_type"] = "mamba".into());
    contains_all(
        &load_err(&dir),
        &[
            "unsupported architecture `mamba`",
            "gpt2",
            "gpt_neox",
            "llama",
            "qwen2",
        ],
    );
    let dir = edited_copy(|c| c["model_type"] = "bert".into());
    contains_all(&load_err(&dir), &["HookedEncoder"]);
    let dir = PathBuf::from(fixture("gpt2", "model"));
    let err = HookedEncoder::from_pretrained(dir.to_str().unwrap(), LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    contains_all(&err, &["encoder architecture `gpt2`", "bert"]);
}

#[test]
fn malformed_config_is_refused() {
    let dir = edited_copy(|_| {});
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"gpt2\", ").unwrap();
    contains_all(&load_err(&dir), &["config.json", "not valid JSON"]);
    let dir = edited_copy(|c| {
        c.as_object_mut().unwrap().remove("n_embd");
    });
    contains_all(&load_err(&dir), &["config.json", "n_embd"]);
    let dir = edited_copy(|c| c["n_head"] = 7.into());
    contains_all(
        &load_err(&dir),
        &["config.json", "7 heads do not divide d_model = 30"],
    );
    let dir = edited_copy(|c| c["activation_function"] = "swoosh".into());
    contains_all(&load_err(&dir), &["swoosh", "gelu_new"]);
    contains_all(
        &load_err(Path::new("/nonexistent/model")),
        &["/nonexistent/model", "Hugging Face cache"],
    );
}

#[test]
fn truncated_llama2c_checkpoint_is_refused() {
    let src = mechlens_models::datasets::file("babyllama-tinystories", "model.bin").unwrap();
    let dir = temp_dir("llama2c");
    let bytes = std::fs::read(&src).unwrap();
    let file = dir.join("model.bin");
    std::fs::write(&file, &bytes[..bytes.len() - 1000]).unwrap();
    let err = HookedTransformer::from_llama2c(&file, None, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    contains_all(&err, &["model.bin", "truncated", &bytes.len().to_string()]);
    std::fs::write(&file, &bytes[..10]).unwrap();
    let err = HookedTransformer::from_llama2c(&file, None, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    contains_all(&err, &["28-byte"]);
}
