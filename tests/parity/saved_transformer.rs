//! Models built from a config and saved (`HookedTransformer::save`) load in TransformerLens:
//! `HookedTransformer(HookedTransformerConfig(**config.json))` given our `model.safetensors`
//! gives our logits within 1e-5 and records our hooks in our order
//! (tests/fixtures/check_saved_transformer.py), for attention-only, no-norm, LayerNorm, RMSNorm
//! and rotary variants; and GPT-2-shaped ones exported with `save_hugging_face` load in
//! transformers' `GPT2LMHeadModel` with our logits (tests/fixtures/check_hf_export.py).

use mechlens_checkpoint::safetensors;
use mechlens_models::{
    Activation, HookedTransformer, HookedTransformerConfig, NormType, PositionalType,
};
use tch::Tensor;

use mechlens_tests::{run_check, temp_dir};

/// The small config both checks vary.
fn small_base() -> HookedTransformerConfig {
    HookedTransformerConfig {
        n_layers: 2,
        d_model: 24,
        n_heads: 3,
        d_vocab: 19,
        n_ctx: 12,
        ..Default::default()
    }
}

/// Two sequences of 8 tokens, also written to `dir/tokens.json` for the Python check.
fn tokens_for_check(dir: &std::path::Path) -> Tensor {
    let tokens =
        Tensor::from_slice(&[3i64, 7, 1, 18, 0, 5, 5, 9, 2, 11, 4, 6, 13, 8, 12, 1]).view([2, 8]);
    std::fs::write(
        dir.join("tokens.json"),
        serde_json::to_string(&Vec::<Vec<i64>>::try_from(&tokens).unwrap()).unwrap(),
    )
    .unwrap();
    tokens
}

/// Runs the Python check on `dir` and asserts it compared `models` models.
fn check_in_python(script: &str, dir: &std::path::Path, models: usize) {
    let report = run_check(script, dir);
    assert_eq!(
        report
            .lines()
            .filter(|l| l.contains("max |Δ logits|"))
            .count(),
        models,
        "{report}"
    );
}

#[test]
fn saved_models_give_our_logits_and_hooks_in_transformer_lens() {
    let dir = temp_dir("saved-for-tl");
    let base = small_base();
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
    let tokens = tokens_for_check(&dir);
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
    check_in_python("check_saved_transformer.py", &dir, 5);
}

/// A GPT-2-shaped model built from a config, every weight (biases and norms included) moved
/// off its initial value, exported with `save_hugging_face`: `transformers`'
/// `GPT2LMHeadModel.from_pretrained` gives our logits within 1e-5
/// (tests/fixtures/check_hf_export.py), and mechlens reads the folder back as a GPT-2.
#[test]
fn gpt2_shaped_models_exported_for_transformers_give_our_logits() {
    let dir = temp_dir("saved-for-hf");
    let base = HookedTransformerConfig {
        d_mlp: Some(40),
        ..small_base()
    };
    let tokens = tokens_for_check(&dir);
    for (name, act) in [
        ("gelu_new", Activation::GeluTanh),
        ("relu", Activation::Relu),
    ] {
        let cfg = HookedTransformerConfig {
            act_fn: act,
            ..base.clone()
        };
        let model = HookedTransformer::from_config(&cfg, 4).unwrap();
        tch::manual_seed(4);
        {
            let _guard = tch::no_grad_guard();
            for (param, t) in model.named_parameters() {
                if param != "unembed.b_u" {
                    let noise = t.randn_like() * 0.2;
                    let _ = t.shallow_clone().f_add_(&noise).unwrap();
                }
            }
        }
        let folder = dir.join(name);
        model.save_hugging_face(&folder).unwrap();
        let logits = model.forward(&tokens).unwrap();
        safetensors::write(
            &[("logits", logits.shallow_clone())],
            &folder.join("ours.safetensors"),
        )
        .unwrap();
        let back = HookedTransformer::from_pretrained(
            &folder.to_string_lossy(),
            mechlens_models::LoadOptions::default(),
        )
        .unwrap();
        let diff = (back.forward(&tokens).unwrap() - &logits)
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-5,
            "{name}: mechlens reads the export back {diff} off"
        );
    }
    check_in_python("check_hf_export.py", &dir, 2);
}

/// What GPT-2 cannot hold is refused with the reason, and nothing is written.
#[test]
fn models_gpt2_cannot_hold_are_not_exported() {
    let dir = temp_dir("refused-for-hf");
    let base = HookedTransformerConfig {
        n_layers: 1,
        d_model: 16,
        n_heads: 2,
        d_vocab: 11,
        n_ctx: 8,
        ..Default::default()
    };
    let refused = |cfg: HookedTransformerConfig, bias: bool| -> String {
        let model = HookedTransformer::from_config(&cfg, 0).unwrap();
        if bias {
            let _guard = tch::no_grad_guard();
            for (name, t) in model.named_parameters() {
                if name == "unembed.b_u" {
                    let _ = t.shallow_clone().f_add_scalar_(0.5).unwrap();
                }
            }
        }
        let folder = dir.join("x");
        let err = model.save_hugging_face(&folder).unwrap_err().to_string();
        assert!(!folder.join("model.safetensors").exists(), "{err}");
        err
    };
    let attn_only = refused(
        HookedTransformerConfig {
            attn_only: true,
            ..base.clone()
        },
        false,
    );
    assert!(attn_only.contains("attention-only"), "{attn_only}");
    let rms = refused(
        HookedTransformerConfig {
            normalization_type: Some(NormType::Rms),
            ..base.clone()
        },
        false,
    );
    assert!(rms.contains("normalisation"), "{rms}");
    let rotary = refused(
        HookedTransformerConfig {
            positional_embedding_type: PositionalType::Rotary,
            ..base.clone()
        },
        false,
    );
    assert!(rotary.contains("positions"), "{rotary}");
    let bias = refused(base, true);
    assert!(bias.contains("b_U is non-zero"), "{bias}");
}
