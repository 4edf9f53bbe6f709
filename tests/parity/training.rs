//! Training models built from a config (mechlens-train): the loop learns, checkpoints
//! resume to the same bits, and every bad input stops with an error that names it.

use mechlens_core::{Error, Hooks};
use mechlens_models::{HookedTransformer, HookedTransformerConfig};
use mechlens_train::{
    Batch, FullBatch, MiniBatches, ModelTrainConfig, ModelTrainer, Schedule, TrainData,
};
use tch::{Device, Kind, Tensor};

use mechlens_tests::temp_dir;

fn small(attn_only: bool) -> HookedTransformerConfig {
    HookedTransformerConfig {
        n_layers: 1,
        d_model: 32,
        n_heads: 2,
        d_vocab: 12,
        n_ctx: 16,
        attn_only,
        ..Default::default()
    }
}

/// Rows of the cycle 0, 1, ..., 11, 0, ... starting at different offsets: the next token is
/// a function of the current one, so the loss can go to ~0.
fn cycles(rows: i64, len: i64) -> Tensor {
    let start = Tensor::arange(rows, (Kind::Int64, Device::Cpu)).unsqueeze(1);
    let pos = Tensor::arange(len, (Kind::Int64, Device::Cpu)).unsqueeze(0);
    (start + pos).remainder(12)
}

fn params(trainer: &ModelTrainer) -> Vec<(String, Tensor)> {
    trainer
        .model()
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

#[test]
fn training_learns_a_deterministic_sequence_and_logs_it() {
    let model = HookedTransformer::from_config(&small(false), 3).unwrap();
    let cfg = ModelTrainConfig::new(150, Schedule::constant(1e-2)).log_every(50);
    let mut trainer = ModelTrainer::new(model, cfg)
        .unwrap()
        .with_metric("accuracy", 75, |m| {
            let tokens = cycles(4, 16);
            let pred = m.forward(&tokens)?.argmax(-1, false);
            let right = pred.narrow(1, 0, 15).eq_tensor(&tokens.narrow(1, 1, 15));
            Ok(right
                .to_kind(Kind::Float)
                .mean(Kind::Float)
                .double_value(&[]))
        });
    let mut data = FullBatch(Batch::next_token(&cycles(12, 16)).unwrap());
    trainer.run(&mut data).unwrap();
    let log = trainer.log_frame().unwrap();
    let loss: Vec<f64> = log
        .column("loss")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    // Uniform guessing over 12 tokens is ln 12 = 2.48 nats.
    assert!(loss[0] > 2.0, "first loss {}", loss[0]);
    assert!(*loss.last().unwrap() < 0.05, "last loss {loss:?}");
    let acc = log.column("accuracy").unwrap().f64().unwrap();
    assert_eq!(acc.last(), Some(1.0));
    // Steps 0, 50, 100, the last, and 75 where the metric was computed.
    assert_eq!(log.column("step").unwrap().len(), 5);
}

#[test]
fn a_resumed_run_ends_at_the_same_bits_as_the_uninterrupted_one() {
    let dir = temp_dir("model-resume");
    let cfg = ModelTrainConfig::new(20, Schedule::constant(3e-3))
        .weight_decay(0.1)
        .checkpoints(&dir, 10);
    let data = || MiniBatches::new(Batch::next_token(&cycles(12, 16)).unwrap(), 4, 9).unwrap();

    let model = HookedTransformer::from_config(&small(true), 5).unwrap();
    let mut whole = ModelTrainer::new(model, cfg.clone()).unwrap();
    whole.run(&mut data()).unwrap();

    let model = HookedTransformer::from_config(&small(true), 77).unwrap();
    let mut resumed = ModelTrainer::new(model, cfg).unwrap();
    resumed
        .resume_from(&mechlens_train::checkpoint::step_dir(&dir, 10))
        .unwrap();
    assert_eq!(resumed.step(), 10);
    resumed.run(&mut data()).unwrap();
    for ((name, a), (_, b)) in params(&whole).iter().zip(params(&resumed)) {
        assert!(a.equal(&b), "{name} differs after resuming");
    }
    assert_eq!(
        whole.log_frame().unwrap(),
        resumed.log_frame().unwrap(),
        "the log carries over"
    );
}

#[test]
fn frozen_parameters_stay_put_and_survive_a_resume_while_the_rest_trains() {
    let dir = temp_dir("model-frozen");
    let biases = ["blocks.0.attn.b_q", "blocks.0.mlp.b_in", "unembed.b_u"];
    let cfg = ModelTrainConfig::new(20, Schedule::constant(1e-2))
        .weight_decay(1.0)
        .freeze(biases)
        .checkpoints(&dir, 10);
    let data = || FullBatch(Batch::next_token(&cycles(12, 16)).unwrap());
    let model = HookedTransformer::from_config(&small(false), 2).unwrap();
    // Non-zero starting values, so that weight decay would move them if it reached them.
    let _guard = tch::no_grad_guard();
    for (name, t) in model.named_parameters() {
        if biases.contains(&name.as_str()) {
            let _ = t.shallow_clone().fill_(0.5);
        }
    }
    drop(_guard);
    let before: Vec<(String, Tensor)> = model
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    let mut whole = ModelTrainer::new(model, cfg.clone()).unwrap();
    whole.run(&mut data()).unwrap();
    for ((name, a), (_, b)) in before.iter().zip(params(&whole)) {
        let frozen = biases.contains(&name.as_str());
        assert_eq!(a.equal(&b), frozen, "{name}: frozen {frozen}");
    }
    // Resumed into a model whose frozen values differ: the checkpoint's values come back.
    let other = HookedTransformer::from_config(&small(false), 9).unwrap();
    let mut resumed = ModelTrainer::new(other, cfg.clone()).unwrap();
    resumed
        .resume_from(&mechlens_train::checkpoint::step_dir(&dir, 10))
        .unwrap();
    resumed.run(&mut data()).unwrap();
    for ((name, a), (_, b)) in params(&whole).iter().zip(params(&resumed)) {
        assert!(a.equal(&b), "{name} differs after resuming");
    }

    let model = HookedTransformer::from_config(&small(false), 0).unwrap();
    let err = ModelTrainer::new(
        model,
        ModelTrainConfig::new(5, Schedule::constant(1e-3)).freeze(["blocks.0.attn.b_x"]),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("blocks.0.attn.b_x") && err.contains("blocks.0.attn.b_q"),
        "names the unknown parameter and the valid ones: {err}"
    );
}

#[test]
fn a_nan_loss_names_its_step_and_leaves_weights_and_checkpoints_alone() {
    let dir = temp_dir("model-nan");
    let model = HookedTransformer::from_config(&small(false), 1).unwrap();
    let cfg = ModelTrainConfig::new(10, Schedule::constant(1e-3)).checkpoints(&dir, 2);
    let mut trainer = ModelTrainer::new(model, cfg).unwrap();
    let mut data = FullBatch(Batch::next_token(&cycles(4, 8)).unwrap());
    trainer.train_steps(&mut data, 4).unwrap();
    let before = params(&trainer);
    // A hook that poisons the residual stream, kept on the model: hooks apply in training.
    trainer
        .model()
        .add_hooks(
            Hooks::new()
                .edit("blocks.0.hook_resid_mid", |x, _| Ok(x.full_like(f64::NAN)))
                .unwrap(),
        )
        .unwrap();
    let err = trainer.run(&mut data).unwrap_err();
    assert!(
        matches!(&err, Error::Training { step: 4, reason } if reason.contains("NaN") && reason.contains("intact")),
        "{err}"
    );
    for ((name, a), (_, b)) in before.iter().zip(params(&trainer)) {
        assert!(a.equal(&b), "{name} changed on a NaN step");
    }
    assert!(
        mechlens_train::checkpoint::step_dir(&dir, 4)
            .join("model.safetensors")
            .is_file()
    );
}

#[test]
fn bad_configs_and_data_are_errors_that_name_the_problem() {
    let bad = |cfg: HookedTransformerConfig, needle: &str| {
        let err = HookedTransformer::from_config(&cfg, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    };
    bad(
        HookedTransformerConfig {
            d_model: 30,
            n_heads: 4,
            ..small(false)
        },
        "n_heads 4 × d_head",
    );
    bad(
        HookedTransformerConfig {
            n_layers: 0,
            ..small(false)
        },
        "n_layers must be at least 1",
    );
    bad(
        HookedTransformerConfig {
            d_vocab: 0,
            ..small(false)
        },
        "d_vocab must be at least 1",
    );

    let model = HookedTransformer::from_config(&small(false), 0).unwrap();
    let mut trainer =
        ModelTrainer::new(model, ModelTrainConfig::new(5, Schedule::constant(1e-3))).unwrap();
    // A token id past the vocabulary (12).
    let tokens = Tensor::from_slice(&[1i64, 2, 30, 4]).view([1, 4]);
    let err = trainer
        .run(&mut FullBatch(Batch::next_token(&tokens).unwrap()))
        .unwrap_err();
    assert!(err.to_string().contains("30"), "{err}");
    // A target past the vocabulary.
    let mut data = |_step: usize| {
        Batch::last_position(
            &Tensor::from_slice(&[1i64, 2]).view([1, 2]),
            &Tensor::from_slice(&[12i64]),
        )
    };
    let err = trainer.run(&mut data).unwrap_err().to_string();
    assert!(err.contains("0..12") && err.contains("12"), "{err}");
    assert_eq!(trainer.step(), 0, "no step was taken");

    let model = HookedTransformer::from_config(&small(false), 0).unwrap();
    let err = ModelTrainer::new(model, ModelTrainConfig::new(0, Schedule::constant(1e-3)))
        .err()
        .unwrap();
    assert!(err.to_string().contains("total_steps"), "{err}");
}

#[test]
fn resuming_from_a_checkpoint_of_another_config_is_refused() {
    let dir = temp_dir("model-other-config");
    let model = HookedTransformer::from_config(&small(false), 0).unwrap();
    let cfg = ModelTrainConfig::new(2, Schedule::constant(1e-3)).checkpoints(&dir, 2);
    let mut trainer = ModelTrainer::new(model, cfg.clone()).unwrap();
    trainer
        .run(&mut FullBatch(Batch::next_token(&cycles(2, 8)).unwrap()))
        .unwrap();
    let other = HookedTransformer::from_config(
        &HookedTransformerConfig {
            d_model: 16,
            ..small(false)
        },
        0,
    )
    .unwrap();
    let mut other = ModelTrainer::new(other, cfg).unwrap();
    let err = other
        .resume_from(&mechlens_train::checkpoint::step_dir(&dir, 2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another model config") && err.contains("d_model 32"),
        "{err}"
    );
    assert_eq!(other.step(), 0);
}

#[test]
fn models_built_from_a_config_run_every_hook_and_save_and_load_back() {
    for (attn_only, norm) in [
        (true, None),
        (false, Some(mechlens_models::NormType::LayerNorm)),
        (false, Some(mechlens_models::NormType::Rms)),
    ] {
        let cfg = HookedTransformerConfig {
            normalization_type: norm,
            ..small(attn_only)
        };
        let model = HookedTransformer::from_config(&cfg, 11).unwrap();
        let tokens = cycles(2, 6);
        let (_, cache) = model
            .run_with_cache(&tokens, mechlens_core::CacheFilter::All)
            .unwrap();
        let logits = model.forward(&tokens).unwrap();
        for point in model.hook_points() {
            assert!(cache.get(point).is_ok(), "{point} fired in the forward");
        }
        let dir = temp_dir("model-save");
        model.save(&dir).unwrap();
        let back =
            HookedTransformer::from_pretrained(&dir.to_string_lossy(), Default::default()).unwrap();
        assert_eq!(back.transformer_config(), model.transformer_config());
        assert!(back.forward(&tokens).unwrap().equal(&logits), "{cfg:?}");
    }
}

/// The trainer runs the last block past attention only where the loss reads (modular
/// addition reads the last position): the logits there, and every weight's gradient, must
/// equal the full run's, for 1 and 2 layers, with and without an MLP and a norm.
#[test]
fn a_run_kept_to_the_scored_positions_has_the_full_runs_logits_and_gradients() {
    for (layers, attn_only, norm) in [
        (1, false, None),
        (2, false, Some(mechlens_models::NormType::LayerNorm)),
        (2, true, Some(mechlens_models::NormType::Rms)),
    ] {
        let cfg = HookedTransformerConfig {
            n_layers: layers,
            normalization_type: norm,
            ..small(attn_only)
        };
        let model = HookedTransformer::from_config(&cfg, 5).unwrap();
        for (_, p) in model.named_parameters() {
            let _ = p.shallow_clone().requires_grad_(true);
        }
        let tokens = cycles(3, 7);
        let keep = [2i64, 6];
        let grads = |logits: Tensor| -> Vec<Tensor> {
            let targets = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([3, 2]);
            let loss = logits
                .reshape([-1, 12])
                .cross_entropy_for_logits(&targets.reshape([-1]));
            for (_, p) in model.named_parameters() {
                p.shallow_clone().zero_grad();
            }
            loss.backward();
            model
                .named_parameters()
                .iter()
                .map(|(_, p)| p.grad().copy())
                .collect()
        };
        let index = Tensor::from_slice(&keep);
        let full = model.forward_with_grad(&tokens, Hooks::new()).unwrap();
        let full_kept = full.index_select(1, &index);
        let kept = model
            .forward_with_grad_at(&tokens, Hooks::new(), &keep)
            .unwrap();
        assert_eq!(kept.size(), [3, 2, 12]);
        let diff = (&kept - &full_kept).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{cfg:?}: logits differ by {diff}");
        for (a, b) in grads(full_kept.shallow_clone()).iter().zip(grads(kept)) {
            assert!(
                a.allclose(&b, 1e-5, 1e-6, false),
                "{cfg:?}: gradients differ"
            );
        }
        // With a hook, the run is the full one: the hook sees every position.
        let seen = std::cell::Cell::new(0);
        let last = format!("blocks.{}.hook_resid_post", layers - 1);
        let hooks = Hooks::new()
            .read(last.as_str(), |act| {
                seen.set(act.size()[1]);
                Ok(())
            })
            .unwrap();
        let hooked = model.forward_with_grad_at(&tokens, hooks, &keep).unwrap();
        assert_eq!(seen.get(), 7, "{cfg:?}: the hook saw every position");
        assert!((&hooked - &full_kept).abs().max().double_value(&[]) < 1e-6);
        let err = model
            .forward_with_grad_at(&tokens, Hooks::new(), &[7])
            .unwrap_err()
            .to_string();
        assert!(err.contains("0..7"), "{err}");
    }
}

#[allow(dead_code)]
fn _data_is_object_safe(_: &mut dyn TrainData) {}

#[test]
fn adamw_steps_equal_torch_optim_adamw() {
    use mechlens_train::{AdamW, AdamWConfig};
    let dir = temp_dir("adamw");
    let cfg = AdamWConfig {
        betas: (0.9, 0.98),
        eps: 1e-8,
        weight_decay: 0.1,
    };
    tch::manual_seed(3);
    let starts = [
        Tensor::randn([4, 3], (Kind::Float, Device::Cpu)),
        Tensor::randn([5], (Kind::Float, Device::Cpu)),
    ];
    let params: Vec<Tensor> = starts.iter().map(Tensor::copy).collect();
    let mut adam = AdamW::new(cfg, &params).unwrap();
    // A warm-up's zero first, then a decay; gradients of every scale, some exactly zero.
    let lrs = [0.0, 1e-3, 2e-3, 1e-2, 5e-3, 1e-3, 1e-4];
    let mut saved: Vec<(String, Tensor)> = Vec::new();
    for (i, start) in starts.iter().enumerate() {
        saved.push((format!("p{i}.start"), start.copy()));
    }
    for (step, lr) in lrs.iter().enumerate() {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|p| {
                let g = Tensor::randn(p.size(), (Kind::Float, Device::Cpu))
                    * 10f64.powi(step as i32 - 3);
                g.masked_fill(
                    &Tensor::rand(p.size(), (Kind::Float, Device::Cpu)).lt(0.2),
                    0.0,
                )
            })
            .collect();
        adam.step(&params, &grads, *lr).unwrap();
        for (i, g) in grads.iter().enumerate() {
            saved.push((format!("p{i}.grad.{step}"), g.copy()));
        }
    }
    for (i, p) in params.iter().enumerate() {
        saved.push((format!("p{i}.ours"), p.copy()));
    }
    saved.push(("lr".into(), Tensor::from_slice(&lrs)));
    let named: Vec<(&str, &Tensor)> = saved.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&named, dir.join("adamw.safetensors")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"betas": [{}, {}], "eps": {}, "weight_decay": {}}}"#,
            cfg.betas.0, cfg.betas.1, cfg.eps, cfg.weight_decay
        ),
    )
    .unwrap();
    mechlens_tests::run_check("check_adamw.py", &dir);
}
