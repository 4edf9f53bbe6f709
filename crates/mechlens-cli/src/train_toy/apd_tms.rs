//! `mechlens train-toy apd-tms --out DIR [--steps N]`: reproduction 06's comparison run,
//! attribution-based parameter decomposition (Braun et al. 2025) of the same TMS 5-2 toy SPD
//! decomposes (trained again from the same seed: the same `toy.safetensors`), with the APD
//! paper's settings (C = 5, rank 3, batch top-k 0.211, batch 2,048, 20,000 steps). Writes
//! into `--out`:
//!
//! - `toy.safetensors`: the toy model;
//! - `apd.safetensors`: the decomposition (`Apd::load_parameters`);
//! - `log.csv`: the losses every 100 steps;
//! - `run.json`: the settings, the instance and the wall time.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_spd::{TmsTarget, apd_tms, tms_5_2_toy, tms_instance};
use mechlens_tables::numeric_csv;

use super::{finish_run, io, write_file};

/// The APD paper's steps for TMS 5-2.
pub const STEPS: usize = 20_000;

/// Trains the toy and its APD decomposition for `steps` steps and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    println!("apd-tms: training the toy model (5 features in 2 dimensions, 8 instances)");
    let toy = tms_5_2_toy()?;
    toy.save(&out.join("toy.safetensors"))?;
    let instance = tms_instance(&toy)?;
    let toy_seconds = started.elapsed().as_secs_f64();
    println!("apd-tms: decomposing instance {instance}, {steps} steps");
    let apd_started = Instant::now();
    let target = TmsTarget::from_toy(&toy, instance, 0)?;
    let apd = apd_tms(&target, steps)?;
    apd.save(&out.join("apd.safetensors"))?;
    write_file(&out.join("log.csv"), &numeric_csv(&apd.log_frame()?)?)?;
    let round = |s: f64| (s * 10.0).round() / 10.0;
    let run = serde_json::json!({
        "command": format!("mechlens train-toy apd-tms --out {} --steps {steps}", out.display()),
        "instance": instance,
        "steps": steps,
        "c": apd.config.c,
        "top_k": apd.config.top_k,
        "batch_size": apd.config.batch_size,
        "toy_seconds": round(toy_seconds),
        "apd_seconds": round(apd_started.elapsed().as_secs_f64()),
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
