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
};
use tch::{Device, Kind, Tensor};

use mechlens_tests::{run_check, save_for_saelens, temp_dir};

/// Steps of the toy run (batches of 1024): MMCS 0.93 after 1500, 0.967 after 2000, 0.994
/// after 3000 here.
const TOY_STEPS: usize = 2400;

fn small(arch: TrainArchitecture, steps: usize) -> TrainConfig {
    let mut cfg = TrainConfig::new(arch, 16, 48, 64, steps);
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
}

/// Sharkey et al.'s setting: 512 true features in 256 dimensions, ~5 active, correlated,
/// decaying rates. A ReLU SAE with 1024 latents recovers them (MMCS ≥ 0.95), and SAELens'
/// synthetic-data metrics on the same SAE and samples equal ours.
#[test]
fn toy_dictionary_recovers_the_true_features() {
    let toy = SparseFeatures::sharkey(0).unwrap();
    let mut cfg = TrainConfig::new(TrainArchitecture::standard(0.1), 256, 1024, 1024, TOY_STEPS);
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
