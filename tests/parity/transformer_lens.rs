//! Every TransformerLens hook value on the GPT-2 fixture, unprocessed, with the opt-in hooks,
//! and with TransformerLens' default weight processing.

use std::collections::HashMap;

use mechlens_core::{CacheFilter, HookPoint};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tests::{assert_close, fixture, load, max_diff};
use tch::{Kind, Tensor};

fn tl(name: &str) -> HashMap<String, Tensor> {
    load(&format!("{}/{name}.safetensors", fixture("tl_gpt2", "dir")))
}

fn tokens() -> Tensor {
    load(&fixture("gpt2", "reference"))["tokens"].shallow_clone()
}

/// Compares every activation TransformerLens cached with ours of the same name.
fn compare_all(
    model: &HookedTransformer,
    reference: &HashMap<String, Tensor>,
    what: &str,
) -> Tensor {
    let (logits, cache) = model.run_with_cache(tokens(), CacheFilter::All).unwrap();
    let mut compared = 0;
    let mut failures = Vec::new();
    for (name, expected) in reference {
        if name == "logits" {
            continue;
        }
        let point: HookPoint = name.parse().unwrap();
        let ours = cache.get(point).unwrap_or_else(|e| panic!("{what}: {e}"));
        let d = max_diff(name, ours, expected);
        if d > 1e-4 {
            failures.push(format!("{name}: max |Δ| = {d:e}"));
        }
        compared += 1;
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{what}: {} hooks differ from TransformerLens:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared >= 40, "{what}: only {compared} hooks compared");
    assert_close(
        &format!("{what} logits"),
        &logits,
        &reference["logits"],
        1e-4,
    );
    logits
}

#[test]
fn every_hook_equals_transformer_lens_unprocessed() {
    let model =
        HookedTransformer::from_pretrained(&fixture("tl_gpt2", "model"), LoadOptions::default())
            .unwrap();
    let reference = tl("raw");
    let _ = compare_all(&model, &reference, "raw");
    // Our cache has exactly TransformerLens' hook set for this model.
    let ours: Vec<String> = model
        .hook_points()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut theirs: Vec<&String> = reference.keys().filter(|k| *k != "logits").collect();
    theirs.sort();
    let mut ours_sorted: Vec<&String> = ours.iter().collect();
    ours_sorted.sort();
    assert_eq!(ours_sorted, theirs);
}

#[test]
fn opt_in_hooks_equal_transformer_lens() {
    let mut model =
        HookedTransformer::from_pretrained(&fixture("tl_gpt2", "model"), LoadOptions::default())
            .unwrap();
    model.set_use_attn_result(true);
    model.set_use_split_qkv_input(true);
    model.set_use_hook_mlp_in(true);
    let _ = compare_all(&model, &tl("opt_in"), "opt-in");
}

#[test]
fn processed_weights_equal_transformer_lens_and_keep_log_probs() {
    let raw =
        HookedTransformer::from_pretrained(&fixture("tl_gpt2", "model"), LoadOptions::default())
            .unwrap();
    let processed = HookedTransformer::from_pretrained(
        &fixture("tl_gpt2", "model"),
        LoadOptions::transformer_lens(),
    )
    .unwrap();
    let logits = compare_all(&processed, &tl("processed"), "processed");
    let raw_logits = raw.forward(tokens()).unwrap();
    assert_close(
        "log-softmax processed vs raw",
        &logits.log_softmax(-1, Kind::Float),
        &raw_logits.log_softmax(-1, Kind::Float),
        1e-4,
    );
    // Processing folded the norms: centred writing weights have zero mean over d_model.
    let w_o_mean = processed
        .w_o()
        .unwrap()
        .mean_dim(-1, false, Kind::Float)
        .abs()
        .max()
        .double_value(&[]);
    assert!(w_o_mean < 1e-6, "W_O not centred: {w_o_mean}");
}
