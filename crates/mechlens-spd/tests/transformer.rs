//! SPD on a `HookedTransformer`: the spliced maps compute what the model computes (GPT-2-,
//! attention-only- and Llama-shaped models, BabyLlama's gated MLP and rotary attention), a
//! decomposition that is exactly the weights' SVD reproduces the model and ablates like the
//! edited weights, every hook point fires in a decomposed run, training lowers the KL, and
//! bad inputs are named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mechlens_core::CacheFilter;
use mechlens_models::{HookedTransformer, HookedTransformerConfig, LoadOptions, NormType};
use mechlens_spd::{Decomposable, OutputLoss, Spd, SpdConfig, TransformerTarget};
use tch::{Device, Kind, Tensor};

mod common;

const VOCAB: i64 = 50;

fn config(norm: Option<NormType>, attn_only: bool) -> HookedTransformerConfig {
    HookedTransformerConfig {
        n_layers: 2,
        d_model: 32,
        n_heads: 4,
        d_mlp: Some(64),
        d_vocab: VOCAB as usize,
        n_ctx: 16,
        act_fn: mechlens_models::Activation::Gelu,
        normalization_type: norm,
        attn_only,
        ..Default::default()
    }
}

/// A model from `cfg` with every bias and norm parameter moved off its initial value
/// (TransformerLens' initialisation leaves biases at 0 and norm weights at 1, which would
/// hide a splice that drops one).
fn model_with_biases(cfg: &HookedTransformerConfig, seed: u64) -> HookedTransformer {
    let model = HookedTransformer::from_config(cfg, seed).unwrap();
    tch::manual_seed(seed as i64);
    tch::no_grad(|| {
        for (name, t) in model.named_parameters() {
            if name.contains(".b_") || name.contains(".ln") {
                t.shallow_clone().copy_(&(&t + t.randn_like() * 0.3));
            }
        }
    });
    model
}

fn tokens(seed: i64, vocab: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(vocab, [3, 12], (Kind::Int64, Device::Cpu))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.f_sub(b).unwrap().abs().max().double_value(&[])
}

#[test]
fn every_spliced_map_computes_what_the_model_computes() {
    let _rng = common::rng_lock();
    for (what, cfg) in [
        ("LayerNorm + MLP", config(Some(NormType::LayerNorm), false)),
        ("RMSNorm + MLP", config(Some(NormType::Rms), false)),
        ("attention-only, no norm", config(None, true)),
    ] {
        let model = model_with_biases(&cfg, 3);
        let target = TransformerTarget::new(&model).unwrap();
        let x = tokens(1, VOCAB);
        let want = model.forward(&x).unwrap();
        let got = tch::no_grad(|| target.forward(&x)).unwrap();
        let names: Vec<String> = target.linears().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names.len(),
            if cfg.attn_only { 8 } else { 12 },
            "{what}: {names:?}"
        );
        assert!(
            max_diff(&got, &want) < 1e-5,
            "{what}: {}",
            max_diff(&got, &want)
        );
    }
}

#[test]
fn babyllamas_gated_mlp_and_rotary_attention_splice_exactly() {
    let _rng = common::rng_lock();
    let model = mechlens_models::datasets::babyllama(LoadOptions::default()).unwrap();
    let target = TransformerTarget::new(&model).unwrap();
    let names: Vec<String> = target.linears().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"blocks.0.mlp.W_gate".to_string()),
        "{names:?}"
    );
    let x = tokens(2, model.cfg().d_vocab as i64);
    let want = model.forward(&x).unwrap();
    let got = tch::no_grad(|| target.forward(&x)).unwrap();
    let scale = want.abs().max().double_value(&[]);
    assert!(
        max_diff(&got, &want) < 1e-5 * scale,
        "{}",
        max_diff(&got, &want)
    );
}

/// An SPD of `layers` whose subcomponents are exactly each weight's SVD pieces
/// (`V = U_svd·diag(S)`, `U = V_svdᵀ`), so `Σ_c V_c U_c = W` in closed form.
fn exact_decomposition(target: &TransformerTarget, layers: &[&str]) -> Spd {
    let c = 32;
    let mut spd = Spd::new(
        target,
        layers,
        SpdConfig {
            c,
            ..SpdConfig::default()
        },
    )
    .unwrap();
    tch::no_grad(|| {
        for (l, comp) in spd.components.iter_mut().enumerate() {
            let w = spd_weight(target, layers[l]);
            // `svd` (thin) returns V, not Vᵀ.
            let (u, s, v) = w.svd(true, true);
            let k = s.size()[0];
            assert_eq!(k, c, "test sizes: every map here has rank {c}");
            comp.v.copy_(&u.f_mul(&s.unsqueeze(0)).unwrap());
            comp.u.copy_(&v.tr());
        }
    });
    spd
}

fn spd_weight(target: &TransformerTarget, name: &str) -> Tensor {
    target
        .linears()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap()
        .1
        .detach()
        .copy()
}

#[test]
fn an_exact_decomposition_reproduces_the_model_and_ablates_like_the_edited_weight() {
    let _rng = common::rng_lock();
    let model = model_with_biases(&config(Some(NormType::LayerNorm), false), 5);
    let target = TransformerTarget::new(&model).unwrap();
    let layers = ["blocks.0.attn.W_O", "blocks.1.mlp.W_out"];
    let spd = exact_decomposition(&target, &layers);
    let x = tokens(3, VOCAB);
    let rows = x.numel() as i64;
    let want = model.forward(&x).unwrap();
    let ones: Vec<Tensor> = (0..2)
        .map(|_| Tensor::ones([rows, 32], (Kind::Float, Device::Cpu)))
        .collect();
    let all = spd.run_masked(&target, &x, &ones).unwrap();
    assert!(max_diff(&all, &want) < 1e-4, "{}", max_diff(&all, &want));

    // Drop W_out's third SVD piece on every token; then the same on the model's own weight.
    let masks = ones.iter().map(|m| m.copy()).collect::<Vec<_>>();
    let _ = masks[1].narrow(1, 2, 1).fill_(0.0);
    let ablated = spd.run_masked(&target, &x, &masks).unwrap();
    let w_out = target
        .linears()
        .into_iter()
        .find(|(n, _)| n == "blocks.1.mlp.W_out")
        .unwrap()
        .1;
    let original = w_out.detach().copy();
    let piece = spd.components[1]
        .v
        .narrow(1, 2, 1)
        .matmul(&spd.components[1].u.narrow(0, 2, 1));
    tch::no_grad(|| {
        let _ = w_out.shallow_clone().f_sub_(&piece).unwrap();
    });
    let edited = model.forward(&x).unwrap();
    tch::no_grad(|| w_out.shallow_clone().copy_(&original));
    assert!(
        max_diff(&ablated, &edited) < 1e-4,
        "{}",
        max_diff(&ablated, &edited)
    );
    assert!(
        max_diff(&ablated, &want) > 1e-3,
        "the piece changes the output"
    );
}

#[test]
fn a_decomposed_run_fires_every_hook_point_and_caches_the_decomposed_activations() {
    let _rng = common::rng_lock();
    let model = model_with_biases(&config(Some(NormType::LayerNorm), false), 5);
    let target = TransformerTarget::new(&model).unwrap();
    let layers = ["blocks.1.mlp.W_out"];
    let spd = exact_decomposition(&target, &layers);
    let x = tokens(4, VOCAB);
    let zeros = vec![Tensor::zeros(
        [x.numel() as i64, 32],
        (Kind::Float, Device::Cpu),
    )];
    let linears = target.linears();
    let mut linear = spd.masked_linear(&linears, &zeros).unwrap();
    let (logits, cache) = target
        .run_with_cache(&x, &mut linear, CacheFilter::All)
        .unwrap();
    let (_, own) = model.run_with_cache(&x, CacheFilter::All).unwrap();
    assert!(own.len() > 20);
    for point in own.hook_points() {
        assert!(cache.contains(point), "{point} missing");
    }
    // Every subcomponent of W_out masked off: that block's MLP writes only its bias.
    let mlp_out = cache.get("blocks.1.hook_mlp_out").unwrap();
    let b_out = model.b_out().unwrap().get(1);
    assert!(max_diff(mlp_out, &b_out.expand_as(mlp_out)) < 1e-6);
    let resid = cache.get("blocks.1.hook_resid_post").unwrap();
    let own_logits = model.forward(&x).unwrap();
    assert!(max_diff(&logits, &own_logits) > 1e-3);
    assert_eq!(
        resid.size(),
        own.get("blocks.1.hook_resid_post").unwrap().size()
    );
}

#[test]
fn training_with_the_kl_lowers_the_stochastic_reconstruction() {
    let _rng = common::rng_lock();
    let model = model_with_biases(&config(Some(NormType::LayerNorm), false), 7);
    let target = TransformerTarget::new(&model).unwrap();
    let config = SpdConfig {
        c: 16,
        batch_size: 4,
        steps: 150,
        lr: 3e-3,
        log_every: 10,
        output_loss: OutputLoss::Kl,
        ..SpdConfig::default()
    };
    let mut spd = Spd::new(
        &target,
        &["blocks.0.mlp.W_in", "blocks.0.mlp.W_out"],
        config,
    )
    .unwrap();
    spd.train(&target, &mut |step| {
        tch::manual_seed(100 + step as i64);
        Ok(Tensor::randint(VOCAB, [4, 12], (Kind::Int64, Device::Cpu)))
    })
    .unwrap();
    let log = spd.log_frame().unwrap();
    let recon: Vec<f64> = log
        .column("stochastic_recon")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let first: f64 = recon[..3].iter().sum::<f64>() / 3.0;
    let last: f64 = recon[recon.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.5 * first, "KL {first} → {last}");
    // Per-token importances: one row per token.
    let x = tokens(9, VOCAB);
    let ci = spd.causal_importances(&target, &x).unwrap();
    assert_eq!(ci[0].size(), vec![x.numel() as i64, 16]);
}

#[test]
fn bad_inputs_are_named() {
    let _rng = common::rng_lock();
    let mut model =
        HookedTransformer::from_config(&config(Some(NormType::LayerNorm), false), 1).unwrap();
    {
        let target = TransformerTarget::new(&model).unwrap();
        let e = Spd::new(&target, &["blocks.0.mlp.W_up"], SpdConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("W_up") && e.contains("blocks.0.mlp.W_in"), "{e}");
        let e = Spd::new(
            &target,
            &["blocks.0.mlp.W_in"],
            SpdConfig {
                p: 0.0,
                ..SpdConfig::default()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("p"), "{e}");
    }
    model.set_use_attn_in(true);
    let e = TransformerTarget::new(&model).err().unwrap().to_string();
    assert!(e.contains("set_use_attn_in"), "{e}");
}
