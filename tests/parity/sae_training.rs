//! SAE training: ground truth recovered on the toy data of Sharkey et al. (2022), resumed runs
//! equal to uninterrupted ones bit for bit, trained SAEs of every architecture loadable by
//! SAELens with the same outputs, and the errors for bad data and unusable folders.

use mechlens_core::{Error, Result};
use mechlens_sae::Sae;
use mechlens_sae::metrics::SparsityReport;
use mechlens_sae::train::{
    ActivationSource, TensorSource, TrainArchitecture, TrainConfig, Trainer,
};
use mechlens_toys::{
    SparseFeatures, SparseFeaturesOptions, feature_uniqueness, mean_correlation_coefficient, mmcs,
    mmcs_sweep,
};
use tch::{Device, Kind, Tensor};

use mechlens_tests::{run_check, save_for_saelens, temp_dir};

/// Steps of the toy run (batches of 1024): MMCS 0.93 after 1500, 0.967 after 2000, 0.994
/// after 3000 here.
const TOY_STEPS: usize = 2400;

fn small(arch: TrainArchitecture, steps: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(arch, 16, 48)
        .batch_size(64)
        .total_steps(steps);
    cfg.lr = 3e-3;
    cfg.log_every = 5;
    cfg.dead_feature_window = 3;
    cfg
}

fn toy16() -> SparseFeatures {
    SparseFeatures::new(SparseFeaturesOptions {
        n_features: 32,
        d: 16,
        mean_active: 3.0,
        seed: 5,
        ..SparseFeaturesOptions::default()
    })
    .unwrap()
}

fn every_architecture() -> Vec<TrainArchitecture> {
    vec![
        TrainArchitecture::standard(1e-2),
        TrainArchitecture::topk(4),
        TrainArchitecture::batch_topk(4.0),
        TrainArchitecture::jumprelu(1e-2),
        TrainArchitecture::gated(1e-2),
    ]
}

#[test]
fn resumed_training_is_bit_identical_for_every_architecture() {
    for arch in every_architecture() {
        let name = arch.name();
        let mut straight = Trainer::new(small(arch.clone(), 20)).unwrap();
        straight.run(&mut toy16()).unwrap();

        let dir = temp_dir(&format!("ckpt-{name}"));
        let mut cfg = small(arch, 20);
        cfg.checkpoint_every = Some(10);
        cfg.checkpoint_dir = Some(dir.clone());
        let mut first = Trainer::new(cfg).unwrap();
        first.train_steps(&mut toy16(), 13).unwrap(); // stops after step 13; checkpoint at 10
        drop(first);
        let mut resumed = Trainer::resume(&dir).unwrap();
        assert_eq!(resumed.step(), 10, "{name}");
        resumed.run(&mut toy16()).unwrap();

        let (a, b) = (straight.sae().unwrap(), resumed.sae().unwrap());
        for ((n, x), (_, y)) in a.named_parameters().into_iter().zip(b.named_parameters()) {
            assert!(x.equal(y), "{name}: {n} differs after resume");
        }
        assert_eq!(straight.log(), resumed.log(), "{name}: logs differ");
        let frame = resumed.log_frame().unwrap();
        assert_eq!(frame.height(), 5, "{name}: rows at steps 0, 5, 10, 15, 19");
        // Training did something: the reconstruction improved.
        let log = resumed.log();
        assert!(
            log.last().unwrap().mse_loss < log[0].mse_loss,
            "{name}: {log:?}"
        );
    }
}

#[test]
fn trained_saes_of_every_architecture_load_in_saelens() {
    let dir = temp_dir("sae-trained");
    let x = toy16().sample(50, 999).unwrap().1;
    for arch in every_architecture() {
        let name = arch.name();
        let mut trainer = Trainer::new(small(arch, 30)).unwrap();
        trainer.run(&mut toy16()).unwrap();
        let sae = trainer.sae().unwrap();
        save_for_saelens(&sae, &x, &dir.join(name));
        // BatchTopK is saved as JumpReLU, as SAELens does.
        let reloaded = Sae::load(dir.join(name).join("sae"), Device::Cpu).unwrap();
        assert_eq!(
            reloaded.cfg.architecture,
            trainer.config().sae.inference(),
            "{name}"
        );
    }
    let report = run_check("check_sae_saved.py", &dir);
    assert_eq!(
        report.lines().filter(|l| l.ends_with(" ok")).count(),
        5,
        "{report}"
    );
}

/// Row block `step` of a tensor: the batches in order, as another library reads them.
struct InOrder(Tensor);

impl ActivationSource for InOrder {
    fn d_in(&self) -> i64 {
        self.0.size()[1]
    }
    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        Ok(self.0.f_narrow(0, step as i64 * batch_size, batch_size)?)
    }
}

/// Every architecture trained by SAELens' own `SAETrainer` from the same starting weights on
/// the same batches (`check_saelens_training.py`) ends at our weights: the losses, the
/// hand-written and autograd gradients, clipping, Adam, dead-latent tracking, AuxK and
/// BatchTopK's threshold together. The Standard runs go through both of its paths: one SAE
/// has about half its latents active, one about 1%.
#[test]
fn training_steps_equal_saelens_sae_trainer() {
    let dir = temp_dir("sae-vs-saetrainer");
    let (d_in, d_sae, batch, steps) = (16, 48, 64, 8usize);
    let x = toy16().sample(steps as i64 * batch, 77).unwrap().1;
    Tensor::write_safetensors(&[("x", &x)], dir.join("batches.safetensors")).unwrap();
    let cases = every_architecture()
        .into_iter()
        .map(|a| (a.name().to_string(), a, 0.0))
        .chain([(
            "standard-sparse".to_string(),
            TrainArchitecture::standard(1e-2),
            -0.25,
        )]);
    for (name, arch, b_enc_shift) in cases {
        let mut cfg = TrainConfig::new(arch.clone(), d_in, d_sae)
            .batch_size(batch)
            .total_steps(steps);
        cfg.lr = 1e-3;
        cfg.dead_feature_window = 2;
        // The layout each architecture trains: BatchTopK trains a TopK SAE.
        let mut layout = cfg.sae_config();
        if let TrainArchitecture::BatchTopK(batch_topk) = &arch {
            layout.architecture = mechlens_sae::Architecture::TopK;
            layout.k = Some(batch_topk.k.ceil() as i64);
        }
        let mut start = Sae::init(layout, Some(0.3), 9).unwrap();
        tch::manual_seed(3);
        for p in start.parameters_mut().into_iter().skip(2) {
            *p = &*p + Tensor::randn(p.size(), (Kind::Float, Device::Cpu)) * 0.05;
        }
        if let Some(b_enc) = start.b_enc.as_mut() {
            *b_enc = &*b_enc + b_enc_shift;
        }
        if let Some(t) = start.threshold.as_mut() {
            *t = t.abs() + 0.05;
        }
        let case = dir.join(&name);
        start.save(case.join("start")).unwrap();
        cfg.log_every = 1;
        let mut trainer = Trainer::from_sae(cfg.clone(), &start).unwrap();
        trainer.run(&mut InOrder(x.shallow_clone())).unwrap();
        // Each Standard run stays on one side of the sparse path's 2.5% threshold, and the
        // TopK kinds reach AuxK (latents dead after two steps).
        let density: Vec<f64> = trainer.log().iter().map(|r| r.l0 / d_sae as f64).collect();
        match name.as_str() {
            "standard" => assert!(density.iter().all(|&d| d > 0.3), "{density:?}"),
            "standard-sparse" => {
                assert!(density.iter().all(|&d| d > 0.0 && d < 0.02), "{density:?}")
            }
            "topk" | "batchtopk" => assert!(trainer.log().iter().any(|r| r.aux_loss > 0.0)),
            _ => {}
        }
        trainer.sae().unwrap().save(case.join("ours")).unwrap();
        let mut settings = serde_json::to_value(&arch).unwrap();
        for (key, value) in [
            ("d_in", serde_json::json!(d_in)),
            ("d_sae", serde_json::json!(d_sae)),
            ("batch_size", serde_json::json!(batch)),
            ("steps", serde_json::json!(steps)),
            ("lr", serde_json::json!(cfg.lr)),
            ("adam_beta1", serde_json::json!(cfg.adam_beta1)),
            ("adam_beta2", serde_json::json!(cfg.adam_beta2)),
            (
                "dead_feature_window",
                serde_json::json!(cfg.dead_feature_window),
            ),
            (
                "apply_b_dec_to_input",
                serde_json::json!(cfg.apply_b_dec_to_input),
            ),
            (
                "rescale_acts_by_decoder_norm",
                serde_json::json!(cfg.rescale_acts_by_decoder_norm),
            ),
        ] {
            settings[key] = value;
        }
        std::fs::write(case.join("train.json"), settings.to_string()).unwrap();
    }
    let report = run_check("check_saelens_training.py", &dir);
    assert_eq!(
        report.lines().filter(|l| l.ends_with(" ok")).count(),
        6,
        "{report}"
    );
}

/// Batches from the toy data, with NaN from step `bad` on.
struct Poisoned {
    inner: SparseFeatures,
    bad: usize,
}

impl ActivationSource for Poisoned {
    fn d_in(&self) -> i64 {
        self.inner.d_in()
    }
    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        let x = self.inner.batch(step, batch_size)?;
        Ok(if step >= self.bad {
            x.fill(f64::NAN)
        } else {
            x
        })
    }
}

#[test]
fn nan_stops_training_and_keeps_the_last_checkpoint() {
    let dir = temp_dir("ckpt-nan");
    let mut cfg = small(TrainArchitecture::standard(1e-2), 30);
    cfg.checkpoint_every = Some(10);
    cfg.checkpoint_dir = Some(dir.clone());
    let mut trainer = Trainer::new(cfg).unwrap();
    let err = trainer
        .run(&mut Poisoned {
            inner: toy16(),
            bad: 12,
        })
        .unwrap_err();
    assert!(matches!(err, Error::Training { step: 12, .. }), "{err}");
    assert!(err.to_string().contains("NaN"), "{err}");
    assert_eq!(trainer.step(), 12);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["step_00000010".to_string()],
        "only the good checkpoint"
    );
    let resumed = Trainer::resume(&dir).unwrap();
    assert_eq!(resumed.step(), 10);
    // The weights are finite: the NaN batch never reached them.
    let sae = trainer.sae().unwrap();
    for (n, t) in sae.named_parameters() {
        assert!(bool::try_from(t.isfinite().all()).unwrap(), "{n} has NaN");
    }
}

#[test]
fn bad_training_inputs_are_errors() {
    // Empty dataset.
    let empty = Tensor::zeros([0, 16], (Kind::Float, Device::Cpu));
    let err = TensorSource::new(&empty, 0).err().unwrap().to_string();
    assert!(err.contains("empty"), "{err}");
    // Width differing from d_in.
    let mut trainer = Trainer::new(small(TrainArchitecture::standard(1e-2), 5)).unwrap();
    let mut wrong =
        TensorSource::new(&Tensor::ones([10, 8], (Kind::Float, Device::Cpu)), 0).unwrap();
    let err = trainer.run(&mut wrong).unwrap_err().to_string();
    assert!(err.contains("d_in=16") && err.contains('8'), "{err}");
    // A checkpoint folder that cannot be created (its parent is a file).
    let file = temp_dir("ckpt-file").join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let mut cfg = small(TrainArchitecture::standard(1e-2), 5);
    cfg.checkpoint_every = Some(1);
    cfg.checkpoint_dir = Some(file.join("checkpoints"));
    let err = Trainer::new(cfg).err().unwrap().to_string();
    assert!(err.contains("plain-file/checkpoints"), "{err}");
    // k out of range; no checkpoint to resume.
    let err = Trainer::new(small(TrainArchitecture::topk(49), 5))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("1..=48"), "{err}");
    let err = Trainer::resume(temp_dir("ckpt-none"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no checkpoint"), "{err}");
    // Starting weights of another architecture or width; the SAE given is left as it was.
    let standard = small(TrainArchitecture::standard(1e-2), 5);
    let topk = Sae::init(
        small(TrainArchitecture::topk(4), 5).sae_config(),
        Some(0.1),
        1,
    )
    .unwrap();
    let err = Trainer::from_sae(standard.clone(), &topk)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("TopK SAE") && err.contains("standard"),
        "{err}"
    );
    let mut wide = standard.clone();
    wide.d_in = 24;
    let narrow = Sae::init(standard.sae_config(), Some(0.1), 1).unwrap();
    let before = narrow.w_enc.copy();
    let err = Trainer::from_sae(wide, &narrow).err().unwrap().to_string();
    assert!(
        err.contains("W_enc") && err.contains("[24, 48]") && err.contains("[16, 48]"),
        "{err}"
    );
    assert_eq!(narrow.w_enc, before);
    let mut no_bias = Sae::init(standard.sae_config(), Some(0.1), 1).unwrap();
    no_bias.b_enc = None;
    let err = Trainer::from_sae(standard, &no_bias)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no b_enc"), "{err}");
}

/// Sharkey et al.'s setting: 512 true features in 256 dimensions, ~5 active, correlated,
/// decaying rates. A ReLU SAE with 1024 latents recovers them (MMCS ≥ 0.95), and SAELens'
/// synthetic-data metrics on the same SAE and samples equal ours.
#[test]
fn toy_dictionary_recovers_the_true_features() {
    let toy = SparseFeatures::sharkey(0).unwrap();
    let mut cfg = TrainConfig::new(TrainArchitecture::standard(0.1), 256, 1024)
        .batch_size(1024)
        .total_steps(TOY_STEPS);
    cfg.lr = 1e-3;
    cfg.lr_warm_up_steps = 50;
    cfg.lr_decay_steps = TOY_STEPS / 5;
    cfg.lr_end = 1e-4;
    cfg.log_every = 250;
    let mut trainer = Trainer::new(cfg).unwrap();
    trainer
        .run(&mut SparseFeatures::sharkey(0).unwrap())
        .unwrap();
    let sae = trainer.sae().unwrap();
    let score = mmcs(&sae.w_dec, &toy.directions).unwrap();
    println!("MMCS {score:.4}; log:\n{}", trainer.log_frame().unwrap());
    assert!(score >= 0.95, "MMCS {score}");

    // Held-out samples (batch numbers past the training run).
    let (coefficients, activations) = toy.sample(20_000, 1_000_000).unwrap();
    let report = SparsityReport::measure(&sae, &activations, 4096).unwrap();
    let true_l0 = coefficients
        .ne(0.0)
        .to_kind(Kind::Double)
        .sum(Kind::Double)
        .double_value(&[])
        / 20_000.0;
    let ours = serde_json::json!({
        "true_l0": true_l0,
        "sae_l0": report.l0,
        "dead_latents": report.dead_latents,
        "shrinkage": report.l2_ratio,
        "explained_variance": report.explained_variance,
        "mcc": mean_correlation_coefficient(&sae.w_dec, &toy.directions).unwrap(),
        "uniqueness": feature_uniqueness(&sae.w_dec, &toy.directions).unwrap(),
    });
    println!("{ours:#}");
    let dir = temp_dir("synthetic-evals");
    sae.save(dir.join("sae")).unwrap();
    let samples = [
        ("coefficients", coefficients),
        ("activations", activations),
        ("directions", toy.directions.shallow_clone()),
    ];
    Tensor::write_safetensors(&samples, dir.join("samples.safetensors")).unwrap();
    std::fs::write(dir.join("ours.json"), ours.to_string()).unwrap();
    run_check("check_synthetic_evals.py", &dir);
}

/// Sharkey et al.'s L1 × dictionary-ratio grid on a small toy (64 features in 32 dimensions):
/// one row per run, each equal to the same run trained on its own; the best run finds the
/// features; too weak and too strong a penalty both do worse than the middle one (dense
/// mixtures, or features squeezed out), and there a larger dictionary does better. Here:
/// mean MMCS 0.62 / 0.93 / 0.81 for L1 0.01 / 0.1 / 1.0; 0.86 → 0.97 from ratio 1 to 4.
#[test]
fn mmcs_sweep_tabulates_the_l1_by_ratio_grid() {
    let toy = SparseFeaturesOptions {
        n_features: 64,
        d: 32,
        mean_active: 3.0,
        seed: 1,
        ..SparseFeaturesOptions::default()
    };
    let mut template = TrainConfig::new(TrainArchitecture::standard(0.0), 32, 64)
        .batch_size(256)
        .total_steps(600);
    template.lr = 3e-3;
    template.log_every = 100;
    let (l1s, ratios) = ([0.01, 0.1, 1.0], [1i64, 2, 4]);
    let table = mmcs_sweep(&toy, &template, &l1s, &ratios).unwrap();
    println!("{table}");
    assert_eq!(table.shape(), (9, 6));
    let column = |name: &str| -> Vec<f64> {
        table
            .column(name)
            .unwrap()
            .as_materialized_series()
            .cast(&polars::prelude::DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    };
    let (l1_col, ratio_col, scores) = (
        column("l1_coefficient"),
        column("dictionary_ratio"),
        column("mmcs"),
    );
    assert_eq!(
        column("d_sae"),
        ratio_col.iter().map(|r| r * 64.0).collect::<Vec<_>>()
    );

    // The (0.1, 2) cell, trained on its own.
    let mut cfg = template.clone();
    cfg.sae = TrainArchitecture::standard(0.1);
    cfg.d_sae = 128;
    let mut trainer = Trainer::new(cfg).unwrap();
    trainer
        .run(&mut SparseFeatures::new(toy.clone()).unwrap())
        .unwrap();
    let alone = mmcs(
        &trainer.sae().unwrap().w_dec,
        &SparseFeatures::new(toy.clone()).unwrap().directions,
    )
    .unwrap();
    let row = (0..9)
        .find(|&i| l1_col[i] == 0.1 && ratio_col[i] == 2.0)
        .unwrap();
    assert_eq!(scores[row], alone);

    let best = scores.iter().cloned().fold(f64::MIN, f64::max);
    assert!(best > 0.9, "best MMCS {best}");
    let mean_at = |l1: f64| {
        let v: Vec<f64> = (0..9)
            .filter(|&i| l1_col[i] == l1)
            .map(|i| scores[i])
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean_at(0.01) < mean_at(0.1), "{table}");
    assert!(mean_at(1.0) < mean_at(0.1), "{table}");
    let at = |l1: f64, r: f64| {
        scores[(0..9)
            .find(|&i| l1_col[i] == l1 && ratio_col[i] == r)
            .unwrap()]
    };
    assert!(at(0.1, 4.0) > at(0.1, 1.0), "{table}");

    // Bad grids are named errors.
    let err = |l1: &[f64], r: &[i64], t: &TrainConfig| {
        mmcs_sweep(&toy, t, l1, r).unwrap_err().to_string()
    };
    assert!(err(&[], &[1], &template).contains("at least one"));
    assert!(err(&[0.1], &[0], &template).contains("got 0"));
    assert!(err(&[f64::NAN], &[1], &template).contains("NaN"));
    let mut topk = template.clone();
    topk.sae = TrainArchitecture::topk(4);
    assert!(err(&[0.1], &[1], &topk).contains("TopK"));
}
