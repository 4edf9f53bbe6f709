//! SPD's training mechanics on a matrix that is a sum of rank-one pieces, and its refusals of
//! bad settings, names and losses, each with the reason.

use mechlens_core::{Error, Result};
use mechlens_spd::{Spd, SpdConfig};
use tch::{Device, Kind, Tensor};

mod common;
use common::{five_pieces, sparse_batch};

fn small(steps: usize) -> SpdConfig {
    SpdConfig {
        c: 10,
        batch_size: 1024,
        steps,
        log_every: 50,
        ..SpdConfig::default()
    }
}

#[test]
fn training_fits_the_masked_model_to_the_target_and_logs_each_interval() {
    let _rng = common::rng_lock();
    // Full recovery of the five pieces (MMCS ≈ 1, one important subcomponent per feature)
    // needs the paper's 10,000 steps at batch 4096; this checks the mechanics in 300.
    let (model, _) = five_pieces();
    let cfg = small(300);
    let mut spd = Spd::new(&model, &["map"], cfg.clone()).unwrap();
    spd.train(&model, &mut |_| Ok(sparse_batch(cfg.batch_size)))
        .unwrap();
    let log = spd.log_frame().unwrap();
    assert_eq!(log.height(), 300 / 50 + 1);
    let recon: Vec<f64> = log
        .column("stochastic_recon")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(Option::unwrap)
        .collect();
    let (first, last) = (recon[0], recon[recon.len() - 1]);
    // Seen: 5× to 12× lower over seeds.
    assert!(
        last < first / 2.0,
        "stochastic reconstruction {first} -> {last}"
    );
    // Training again past the end is a no-op.
    spd.train(&model, &mut |_| panic!("no batch should be drawn"))
        .unwrap();
    assert_eq!(spd.step(), 300);
}

#[test]
fn unknown_layers_and_bad_settings_are_refused_with_the_reason() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let err = |r: Result<Spd>| r.err().expect("should be refused").to_string();
    let e = err(Spd::new(&model, &["mlp"], small(1)));
    assert!(e.contains("\"mlp\"") && e.contains("[\"map\"]"), "{e}");
    let e = err(Spd::new(&model, &[], small(1)));
    assert!(e.contains("at least one"), "{e}");
    let e = err(Spd::new(&model, &["map", "map"], small(1)));
    assert!(e.contains("more than once"), "{e}");
    let e = err(Spd::new(&model, &["map"], SpdConfig { c: 0, ..small(1) }));
    assert!(e.contains("C") && e.contains("got 0"), "{e}");
    let e = err(Spd::new(&model, &["map"], SpdConfig { p: 0.0, ..small(1) }));
    assert!(e.contains("p must be positive"), "{e}");
    let spd = Spd::new(&model, &["map"], small(1)).unwrap();
    let e = spd.scores_against(
        "other",
        &Tensor::zeros([1, 5, 4], (Kind::Float, Device::Cpu)),
    );
    assert!(e.unwrap_err().to_string().contains("not decomposed"));
    let e = spd.run_masked(&model, &sparse_batch(4), &[]).unwrap_err();
    assert!(e.to_string().contains("one per decomposed layer"), "{e}");
}

#[test]
fn a_loss_that_stops_being_finite_names_the_step_and_keeps_the_weights() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let mut spd = Spd::new(&model, &["map"], small(20)).unwrap();
    let before = spd.components[0].v.copy();
    // Batches 0-2 are fine; batch 3 holds a NaN.
    let e = spd
        .train(&model, &mut |step| {
            let x = sparse_batch(64);
            Ok(if step == 3 { x * f64::NAN } else { x })
        })
        .unwrap_err();
    assert!(matches!(e, Error::Training { step: 3, .. }), "{e}");
    assert_eq!(spd.step(), 3);
    // Three steps moved the weights; the failed one did not add a fourth.
    assert!(!spd.components[0].v.equal(&before));
    let after_three = spd.components[0].v.copy();
    let e = spd.train(&model, &mut |_| Ok(sparse_batch(64) * f64::NAN));
    assert!(e.is_err());
    assert!(spd.components[0].v.equal(&after_three));
}

#[test]
fn a_batch_of_the_wrong_width_is_a_shape_error() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let mut spd = Spd::new(&model, &["map"], small(2)).unwrap();
    let e = spd
        .train(&model, &mut |_| {
            Ok(Tensor::zeros([8, 3], (Kind::Float, Device::Cpu)))
        })
        .unwrap_err();
    assert!(!matches!(e, Error::Training { .. }), "{e}");
}

#[test]
fn a_saved_decomposition_loads_into_a_fresh_one_and_a_mismatched_one_is_refused() {
    let _rng = common::rng_lock();
    let (model, _) = five_pieces();
    let mut spd = Spd::new(&model, &["map"], small(30)).unwrap();
    spd.train(&model, &mut |_| Ok(sparse_batch(256))).unwrap();
    let dir = std::env::temp_dir().join(format!("mechlens-spd-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spd.safetensors");
    spd.save(&path).unwrap();

    // A fresh decomposition (other initial weights) becomes the saved one.
    let mut fresh = Spd::new(
        &model,
        &["map"],
        SpdConfig {
            seed: 5,
            ..small(30)
        },
    )
    .unwrap();
    assert!(!fresh.components[0].v.equal(&spd.components[0].v));
    fresh.load_parameters(&path).unwrap();
    assert_eq!(fresh.step(), 30);
    for (a, b) in fresh.parameters().iter().zip(spd.parameters()) {
        assert!(a.equal(&b));
    }
    let probes = Tensor::eye(5, (Kind::Float, Device::Cpu)) * 0.75;
    let (mine, theirs) = (
        fresh.causal_importances(&model, &probes).unwrap(),
        spd.causal_importances(&model, &probes).unwrap(),
    );
    assert!(mine[0].equal(&theirs[0]));
    // Training on from the loaded step is a no-op at the end.
    fresh
        .train(&model, &mut |_| panic!("no batch should be drawn"))
        .unwrap();

    // Another C: refused, naming the tensor and both shapes, and nothing changed.
    let mut other = Spd::new(&model, &["map"], SpdConfig { c: 7, ..small(30) }).unwrap();
    let before = other.components[0].v.copy();
    let e = other.load_parameters(&path).unwrap_err().to_string();
    assert!(
        e.contains("`map.V` is [5, 10]") && e.contains("[5, 7] here"),
        "{e}"
    );
    assert!(other.components[0].v.equal(&before));
    assert_eq!(other.step(), 0);
    let e = other
        .load_parameters(&dir.join("missing.safetensors"))
        .unwrap_err();
    assert!(e.to_string().contains("missing.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
