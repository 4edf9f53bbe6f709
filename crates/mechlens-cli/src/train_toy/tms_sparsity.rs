//! `mechlens train-toy tms-sparsity --out DIR [--steps N]`.
//!
//! The dimensions-per-feature sweep of Elhage et al. (2022, "Toy Models of Superposition",
//! section "Feature Dimensionality"): 100 features of equal importance in 10 hidden
//! dimensions, one instance per feature probability, 30 probabilities log-spaced from 1 to
//! 0.001, trained as one batched model (batch 1024, AdamW 1e-3, 10,000 steps). Writes into
//! `--out`:
//!
//! - `model.safetensors`: the trained model ([`ToyModel::load`] reads it);
//! - `log.csv`: `step, loss, loss_0, ...` every 100 steps;
//! - `run.json`: the settings and the wall time.
//!
//! It takes ~9 minutes on 2 cores, so it does not resume: a rerun starts over.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_tables::numeric_csv;
use mechlens_toys::{ToyModel, ToyModelOptions, ToyTrainOptions};

use super::{finish_run, io, write_file};

/// Steps of the full run (the calibration: 10,000).
pub const STEPS: usize = 10_000;
const FEATURES: usize = 100;
const HIDDEN: usize = 10;
const LEVELS: usize = 30;
const SEED: u64 = 0;

/// The feature probability of instance `i`: `10^(−3i/29)`, from 1 down to 0.001.
pub fn probability(i: usize) -> f64 {
    10f64.powf(-3.0 * i as f64 / (LEVELS - 1) as f64)
}

/// Trains the sweep for `steps` steps and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    let opts =
        ToyModelOptions::per_instance(FEATURES, HIDDEN, LEVELS, |_, _| 1.0, |i, _| probability(i))
            .seed(SEED);
    let mut model = ToyModel::new(&opts)?;
    println!(
        "tms-sparsity: {FEATURES} features in {HIDDEN} dimensions, {LEVELS} probabilities from 1 to 0.001, {steps} steps"
    );
    let train = ToyTrainOptions {
        steps,
        log_every: 100,
        progress_every: 500,
        ..ToyTrainOptions::default()
    };
    let log = model.train(&train)?;
    let seconds = started.elapsed().as_secs_f64();

    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    model.save(&out.join("model.safetensors"))?;
    write_file(&out.join("log.csv"), &numeric_csv(&log)?)?;
    let run = serde_json::json!({
        "command": format!("mechlens train-toy tms-sparsity --out {} --steps {steps}", out.display()),
        "features": FEATURES,
        "hidden": HIDDEN,
        "importance": 1.0,
        "probabilities": (0..LEVELS).map(probability).collect::<Vec<_>>(),
        "seed": SEED,
        "steps": steps,
        "batch": train.batch,
        "lr": train.lr,
        "train_seconds": (seconds * 10.0).round() / 10.0,
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
