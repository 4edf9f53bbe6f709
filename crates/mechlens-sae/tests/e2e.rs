//! End-to-end SAEs: the spliced identity has zero KL and downstream error, training lowers
//! what each loss asks, gradients reach the SAE through a frozen model, the result is an
//! SAELens SAE that splices back with the KL it trained on, and bad inputs are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::rc::Rc;

use mechlens_core::Error;
use mechlens_models::{HookedTransformer, HookedTransformerConfig};
use mechlens_sae::e2e::{E2eConfig, E2eLoss, E2eSae, kl_divergence};
use mechlens_sae::eval::SpliceReport;
use mechlens_sae::{Architecture, Sae, SaeConfig};
use tch::{Device, Kind, Tensor};

fn model() -> HookedTransformer {
    let cfg = HookedTransformerConfig {
        n_layers: 3,
        d_model: 16,
        n_heads: 2,
        d_vocab: 20,
        n_ctx: 12,
        ..Default::default()
    };
    HookedTransformer::from_config(&cfg, 3).unwrap()
}

fn tokens(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(20, [4, 12], (Kind::Int64, Device::Cpu))
}

const HOOK: &str = "blocks.1.hook_resid_pre";

/// `c = ReLU([x, −x])`, `x̂ = c [I; −I]`: the identity, as a 32-latent standard SAE.
fn identity_sae() -> Sae {
    let mut cfg = SaeConfig::new(Architecture::Standard, 16, 32);
    cfg.apply_b_dec_to_input = false;
    let mut sae = Sae::init(cfg, Some(1.0), 0).unwrap();
    let eye = Tensor::eye(16, (Kind::Float, Device::Cpu));
    sae.w_enc = Tensor::cat(&[&eye, &(-&eye)], 1);
    sae.w_dec = Tensor::cat(&[&eye, &(-&eye)], 0);
    sae.b_enc = Some(Tensor::zeros([32], (Kind::Float, Device::Cpu)));
    sae.b_dec = Tensor::zeros([16], (Kind::Float, Device::Cpu));
    sae
}

fn first_logged(run: &E2eSae, name: &str) -> f64 {
    run.log_frame()
        .unwrap()
        .column(name)
        .unwrap()
        .f64()
        .unwrap()
        .get(0)
        .unwrap()
}

#[test]
fn a_spliced_identity_sae_changes_nothing() {
    let model = model();
    let downstream = E2eLoss::EndToEndDownstream {
        hooks: vec![
            "blocks.1.hook_resid_post".into(),
            "blocks.2.hook_resid_post".into(),
        ],
        coeff: 1.0,
    };
    let mut cfg = E2eConfig::new(HOOK, 32, downstream);
    cfg.steps = 1;
    cfg.lr = 0.0;
    let mut run = E2eSae::from_sae(&model, cfg, &identity_sae()).unwrap();
    run.train(&model, &mut |_| Ok(tokens(0))).unwrap();
    assert!(
        first_logged(&run, "kl").abs() < 1e-9,
        "KL {}",
        first_logged(&run, "kl")
    );
    assert!(
        first_logged(&run, "mse") < 1e-10,
        "downstream MSE {}",
        first_logged(&run, "mse")
    );
    // And its latents: each coordinate is on in exactly one of its two latents (or neither).
    assert!(first_logged(&run, "l0") <= 16.0);
    assert!(
        kl_divergence(
            &model.forward(tokens(0)).unwrap(),
            &model.forward(tokens(0)).unwrap()
        )
        .unwrap()
        .double_value(&[])
        .abs()
            < 1e-9
    );
}

#[test]
fn kl_divergence_is_the_closed_form() {
    // Two tokens' distributions over 2 outcomes: KL(p‖q) = Σ p log(p/q), mean over tokens.
    let p = Tensor::from_slice(&[0.5f64.ln(), 0.5f64.ln(), 0.9f64.ln(), 0.1f64.ln()])
        .reshape([1, 2, 2]);
    let q = Tensor::from_slice(&[0.25f64.ln(), 0.75f64.ln(), 0.5f64.ln(), 0.5f64.ln()])
        .reshape([1, 2, 2]);
    let want = (0.5 * (0.5f64 / 0.25).ln()
        + 0.5 * (0.5f64 / 0.75).ln()
        + 0.9 * (0.9f64 / 0.5).ln()
        + 0.1 * (0.1f64 / 0.5).ln())
        / 2.0;
    let got = kl_divergence(&p, &q).unwrap().double_value(&[]);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn each_loss_trains_down_and_the_model_stays_frozen() {
    let model = model();
    let before: Vec<Tensor> = model_weights(&model);
    for loss in [
        E2eLoss::Local,
        E2eLoss::EndToEnd,
        E2eLoss::EndToEndDownstream {
            hooks: vec!["blocks.2.hook_resid_post".into()],
            coeff: 1.0,
        },
    ] {
        let name = loss.name();
        let mut cfg = E2eConfig::new(HOOK, 32, loss.clone());
        cfg.steps = 60;
        cfg.lr = 3e-3;
        cfg.warmup_steps = 5;
        cfg.log_every = 59;
        cfg.sparsity_coeff = 0.01;
        let mut run = E2eSae::new(&model, cfg).unwrap();
        run.train(&model, &mut |step| Ok(tokens(step as i64 % 8)))
            .unwrap();
        let log = run.log_frame().unwrap();
        let col = if loss == E2eLoss::Local { "mse" } else { "kl" };
        let values = log.column(col).unwrap().f64().unwrap();
        let (first, last) = (
            values.get(0).unwrap(),
            values.get(values.len() - 1).unwrap(),
        );
        assert!(last < first / 2.0, "{name}: {col} {first} -> {last}");
        // The saved SAE splices back in with the KL the run measured on the same tokens.
        let sae = run.sae("test-model").unwrap();
        assert_eq!(sae.cfg.hook_name(), Some(HOOK));
        if loss != E2eLoss::Local {
            let report = SpliceReport::measure(&model, Rc::new(sae), None, &tokens(3)).unwrap();
            let clean = model.forward(tokens(3)).unwrap();
            let sae = run.sae("test-model").unwrap();
            let spliced = {
                let _g = tch::no_grad_guard();
                let mut hooks = mechlens_core::Hooks::new();
                hooks.push(
                    model.hook_point(HOOK).unwrap(),
                    mechlens_core::Hook::Splice(Rc::new(mechlens_sae::SplicedSae::new(
                        Rc::new(sae),
                        false,
                    ))),
                );
                model.run_with_hooks(tokens(3), hooks).unwrap()
            };
            let ours = kl_divergence(&clean, &spliced).unwrap().double_value(&[]);
            assert!(
                (report.kl_with_sae - ours).abs() < 1e-5,
                "{name}: {} vs {ours}",
                report.kl_with_sae
            );
        }
    }
    for (a, b) in model_weights(&model).iter().zip(&before) {
        assert!(a.equal(b), "a model weight changed");
    }
}

fn model_weights(model: &HookedTransformer) -> Vec<Tensor> {
    model
        .named_parameters()
        .into_iter()
        .map(|(_, t)| t.detach().copy())
        .collect()
}

#[test]
fn bad_settings_and_hooks_are_refused_with_the_reason() {
    let model = model();
    let err = |cfg: E2eConfig| E2eSae::new(&model, cfg).err().expect("refused").to_string();
    let e = err(E2eConfig::new(
        "blocks.9.hook_resid_pre",
        32,
        E2eLoss::EndToEnd,
    ));
    assert!(e.contains("blocks.9.hook_resid_pre"), "{e}");
    let e = err(E2eConfig::new(HOOK, 0, E2eLoss::EndToEnd));
    assert!(e.contains("d_sae") && e.contains("got 0"), "{e}");
    let e = err(E2eConfig::new(
        HOOK,
        32,
        E2eLoss::EndToEndDownstream {
            hooks: vec![],
            coeff: 1.0,
        },
    ));
    assert!(e.contains("at least one later hook"), "{e}");
    let e = err(E2eConfig::new(
        HOOK,
        32,
        E2eLoss::EndToEndDownstream {
            hooks: vec![HOOK.into()],
            coeff: 1.0,
        },
    ));
    assert!(e.contains("the SAE's own hook point"), "{e}");
    let e = err(E2eConfig::new(
        HOOK,
        32,
        E2eLoss::EndToEndDownstream {
            hooks: vec!["blocks.7.hook_resid_post".into()],
            coeff: 1.0,
        },
    ));
    assert!(e.contains("blocks.7.hook_resid_post"), "{e}");
    let mut cfg = E2eConfig::new(HOOK, 32, E2eLoss::EndToEnd);
    cfg.sparsity_coeff = f64::NAN;
    assert!(err(cfg).contains("sparsity_coeff"));
    // A starting SAE of the wrong size is named.
    let e = E2eSae::from_sae(
        &model,
        E2eConfig::new(HOOK, 8, E2eLoss::EndToEnd),
        &identity_sae(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("16 → 32") && e.contains("16 → 8"), "{e}");
}

#[test]
fn a_loss_that_stops_being_finite_names_the_step_and_keeps_the_sae() {
    let model = model();
    let mut sae = identity_sae();
    sae.b_dec = Tensor::full([16], f64::NAN, (Kind::Float, Device::Cpu));
    let mut cfg = E2eConfig::new(HOOK, 32, E2eLoss::EndToEnd);
    cfg.steps = 3;
    let mut run = E2eSae::from_sae(&model, cfg, &sae).unwrap();
    let before = run.sae("m").unwrap();
    let e = run.train(&model, &mut |_| Ok(tokens(0))).unwrap_err();
    assert!(matches!(e, Error::Training { step: 0, .. }), "{e}");
    assert_eq!(run.step(), 0);
    let after = run.sae("m").unwrap();
    assert!(after.w_enc.equal(&before.w_enc));
}
