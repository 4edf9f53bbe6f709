//! `mechlens train-toy spd-resid-mlp --out DIR [--steps N] [--model-steps N]`: reproduction
//! 07's run, the toy
//! model of compressed computation (100 features, a random 1,000-wide embedding, 50 ReLU
//! neurons, `x + ReLU(x)`; 10,000 steps at batch 2,048) and the stochastic parameter
//! decomposition of its MLP with the SPD paper's 1-layer settings (C = 100 per map,
//! importance minimality 1e-5 with p = 2, constant lr 2e-3, batch 2,048) on the embedding's
//! 100-dim span (`mechlens_spd::ResidMlpTarget`). Writes into `--out`:
//!
//! - `model.safetensors`: the residual MLP (`ResidualMlp::load`);
//! - `spd.safetensors`: the decomposition (`Spd::load_parameters` with
//!   `resid_mlp_spd_config`);
//! - `model_log.csv` and `log.csv`: the model's and the decomposition's losses;
//! - `run.json`: the settings and the wall times.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_spd::{ResidMlpTarget, spd_resid_mlp};
use mechlens_tables::numeric_csv;
use mechlens_toys::{ResidualMlp, ResidualMlpOptions, ResidualMlpTrainOptions};

use super::{finish_run, io, write_file};

/// The decomposition's steps (the SPD repository's config; the paper ran 30,000).
pub const STEPS: usize = 20_000;

/// Trains the model (only its first `model_steps` of 10,000 when given, for the test that
/// checks them against the committed log) and its decomposition for `steps` steps, and
/// writes `out`.
pub fn run(steps: usize, model_steps: Option<usize>, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    println!("spd-resid-mlp: training the residual MLP (100 features, width 1000, 50 neurons)");
    let mut model = ResidualMlp::new(&ResidualMlpOptions::default())?;
    let model_log = model.train(&ResidualMlpTrainOptions {
        stop_after: model_steps,
        ..ResidualMlpTrainOptions::default()
    })?;
    model.save(&out.join("model.safetensors"))?;
    write_file(&out.join("model_log.csv"), &numeric_csv(&model_log)?)?;
    let model_seconds = started.elapsed().as_secs_f64();
    println!("spd-resid-mlp: decomposing mlp_in and mlp_out, {steps} steps");
    let spd_started = Instant::now();
    let target = ResidMlpTarget::from_model(&model)?;
    let spd = spd_resid_mlp(&model, &target, steps)?;
    spd.save(&out.join("spd.safetensors"))?;
    write_file(&out.join("log.csv"), &numeric_csv(&spd.log_frame()?)?)?;
    let round = |s: f64| (s * 10.0).round() / 10.0;
    let run = serde_json::json!({
        "command": format!("mechlens train-toy spd-resid-mlp --out {} --steps {steps}", out.display()),
        "steps": steps,
        "c": spd.config.c,
        "batch_size": spd.config.batch_size,
        "model_seconds": round(model_seconds),
        "spd_seconds": round(spd_started.elapsed().as_secs_f64()),
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
