//! Models built from a config and saved (`HookedTransformer::save`) load in TransformerLens:
//! `HookedTransformer(HookedTransformerConfig(**config.json))` given our `model.safetensors`
//! gives our logits within 1e-5 and records our hooks in our order
//! (tests/fixtures/check_saved_transformer.py), for attention-only, no-norm, LayerNorm, RMSNorm
//! and rotary variants.

use mechlens_checkpoint::safetensors;
use mechlens_models::{
    Activation, HookedTransformer, HookedTransformerConfig, NormType, PositionalType,
};
use tch::Tensor;

use mechlens_tests::{run_check, temp_dir};

#[test]
fn saved_models_give_our_logits_and_hooks_in_transformer_lens() {
    let dir = temp_dir("saved-for-tl");
    let base = HookedTransformerConfig {
        n_layers: 2,
        d_model: 24,
        n_heads: 3,
        d_vocab: 19,
        n_ctx: 12,
        ..Default::default()
    };
    let variants = [
        (
            "attn_only_no_norm",
            HookedTransformerConfig {
                attn_only: true,
                normalization_type: None,
                ..base.clone()
            },
        ),
        (
            "attn_only_ln",
            HookedTransformerConfig {
                attn_only: true,
                ..base.clone()
            },
        ),
        (
            "mlp_no_norm",
            HookedTransformerConfig {
                normalization_type: None,
                act_fn: Activation::Relu,
                ..base.clone()
            },
        ),
        (
            "mlp_ln_gelu",
            HookedTransformerConfig {
                act_fn: Activation::Gelu,
                d_mlp: Some(40),
                ..base.clone()
            },
        ),
        (
            "rms_rotary_d_head",
            HookedTransformerConfig {
                normalization_type: Some(NormType::Rms),
                positional_embedding_type: PositionalType::Rotary,
                d_head: 10,
                act_fn: Activation::Silu,
                ..base.clone()
            },
        ),
    ];
    let tokens =
        Tensor::from_slice(&[3i64, 7, 1, 18, 0, 5, 5, 9, 2, 11, 4, 6, 13, 8, 12, 1]).view([2, 8]);
    std::fs::write(
        dir.join("tokens.json"),
        serde_json::to_string(&Vec::<Vec<i64>>::try_from(&tokens).unwrap()).unwrap(),
    )
    .unwrap();
    for (seed, (name, cfg)) in variants.into_iter().enumerate() {
        let model = HookedTransformer::from_config(&cfg, seed as u64).unwrap();
        let folder = dir.join(name);
        model.save(&folder).unwrap();
        let logits = model.forward(&tokens).unwrap();
        safetensors::write(&[("logits", logits)], &folder.join("ours.safetensors")).unwrap();
        let hooks: Vec<String> = model
            .hook_points()
            .iter()
            .map(ToString::to_string)
            .collect();
        std::fs::write(
            folder.join("hooks.json"),
            serde_json::to_string(&hooks).unwrap(),
        )
        .unwrap();
    }
    let report = run_check("check_saved_transformer.py", &dir);
    assert_eq!(
        report
            .lines()
            .filter(|l| l.contains("max |Δ logits|"))
            .count(),
        5,
        "{report}"
    );
}
