//! Every decoder architecture against `transformers` on random weights with awkward shapes:
//! logits and hidden states ≤ 1e-4, attention patterns ≤ 1e-5.

use mechlens_core::{CacheFilter, HookPoint};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tests::{assert_close, fixture, fixtures, load};

fn check(name: &str) {
    let model = HookedTransformer::from_pretrained(&fixture(name, "model"), LoadOptions::default())
        .unwrap();
    let reference = load(&fixture(name, "reference"));
    let tokens = &reference["tokens"];
    let n_layers = fixtures()[name]["n_layers"].as_u64().unwrap() as usize;
    assert_eq!(model.cfg().n_layers, n_layers);
    // The model summary's parameter count is transformers' `num_parameters()`.
    let n_params = fixtures()[name]["n_params"].as_i64().unwrap();
    assert_eq!(model.n_params(), n_params, "{name} parameter count");

    let (logits, cache) = model.run_with_cache(tokens, CacheFilter::All).unwrap();
    assert_close(
        &format!("{name} logits (cached run)"),
        &logits,
        &reference["logits"],
        1e-4,
    );
    for layer in 0..n_layers {
        let hidden = &reference[&format!("hidden_{layer}")];
        assert_close(
            &format!("{name} resid_pre {layer}"),
            cache.get(HookPoint::ResidPre(layer)).unwrap(),
            hidden,
            1e-4,
        );
        let pattern = cache.get(HookPoint::Pattern(layer)).unwrap();
        assert_close(
            &format!("{name} pattern {layer}"),
            pattern,
            &reference[&format!("attn_{layer}")],
            1e-5,
        );
    }
    // transformers' last hidden state is after the final norm (weights applied), which is
    // what the unembedding reads.
    let last = &reference[&format!("hidden_{n_layers}")];
    assert_close(
        &format!("{name} final norm"),
        cache.get(HookPoint::UnembedIn).unwrap(),
        last,
        1e-4,
    );

    // Without hooks the fused attention kernel runs: same logits.
    let plain = model.forward(tokens).unwrap();
    assert_close(
        &format!("{name} logits (no hooks)"),
        &plain,
        &reference["logits"],
        1e-4,
    );
}

#[test]
fn gpt2_equals_transformers() {
    check("gpt2");
}

#[test]
fn gpt_neo_with_local_attention_equals_transformers() {
    check("gpt_neo");
}

#[test]
fn gpt_neox_parallel_partial_rotary_equals_transformers() {
    check("gpt_neox");
}

#[test]
fn gpt_neox_sequential_residual_equals_transformers() {
    check("gpt_neox_sequential");
}

#[test]
fn llama_gqa_untied_equals_transformers() {
    check("llama");
}

#[test]
fn llama3_rope_scaling_tied_equals_transformers() {
    check("llama3_scaled_tied");
}

#[test]
fn qwen2_qkv_bias_equals_transformers() {
    check("qwen2");
}

#[test]
fn pytorch_bin_and_sharded_safetensors_load_the_same_weights() {
    let reference = load(&fixture("gpt2", "reference"));
    let dir = std::path::PathBuf::from(fixture("gpt2", "model"))
        .parent()
        .unwrap()
        .to_path_buf();
    for variant in ["model_bin", "model_sharded"] {
        let path = dir.join(variant);
        let files: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expected = if variant == "model_bin" {
            "pytorch_model.bin"
        } else {
            "model.safetensors.index.json"
        };
        assert!(files.iter().any(|f| f == expected), "{variant}: {files:?}");
        let model =
            HookedTransformer::from_pretrained(path.to_str().unwrap(), LoadOptions::default())
                .unwrap();
        let logits = model.forward(&reference["tokens"]).unwrap();
        assert_close(
            &format!("{variant} logits"),
            &logits,
            &reference["logits"],
            1e-4,
        );
    }
}

#[test]
fn half_precision_runs_close_to_f32() {
    let reference = load(&fixture("llama", "reference"));
    for kind in [tch::Kind::BFloat16, tch::Kind::Half] {
        let opts = LoadOptions {
            kind,
            ..LoadOptions::default()
        };
        let model = HookedTransformer::from_pretrained(&fixture("llama", "model"), opts).unwrap();
        let logits = model.forward(&reference["tokens"]).unwrap();
        let (_, all) = model
            .run_with_cache(&reference["tokens"], CacheFilter::All)
            .unwrap();
        for (point, t) in all.iter() {
            assert_eq!(t.kind(), kind, "{point}");
        }
        assert_eq!(logits.kind(), kind);
        let (cached, cache) = model
            .run_with_cache(&reference["tokens"], CacheFilter::All)
            .unwrap();
        assert_eq!(cache.get(HookPoint::Ln1Normalized(0)).unwrap().kind(), kind);
        let scale = reference["logits"].abs().max().double_value(&[]);
        for (what, ours) in [("forward", &logits), ("cached", &cached)] {
            let d = mechlens_tests::max_diff(what, ours, &reference["logits"]);
            assert!(
                d < 0.05 * scale,
                "{kind:?} {what}: max |Δ| = {d} (logit scale {scale})"
            );
        }
    }
}
