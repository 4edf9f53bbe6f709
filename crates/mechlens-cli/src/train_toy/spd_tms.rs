//! `mechlens train-toy spd-tms --out DIR [--steps N]`, and `spd-tms-identity` (the same
//! with one identity matrix between the toy's maps, decomposed too).
//!
//! Reproduction 06's run (Bushnaq et al. 2025, TMS 5-2): the toy model of superposition it
//! decomposes (5 features in 2 dimensions, 8 instances, ~15 s) and the stochastic parameter
//! decomposition of the best instance's two maps with the paper's settings (C = 20, batch
//! 4,096, 10,000 steps; ~4 minutes on 2 cores). Writes into `--out`:
//!
//! - `toy.safetensors`: the toy model (`ToyModel::load`); `mechlens_spd::tms_instance` picks
//!   the decomposed instance again;
//! - `spd.safetensors`: the decomposition (`Spd::load_parameters`);
//! - `log.csv`: the losses every 100 steps;
//! - `run.json`: the settings, the instance and the wall time.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_spd::{TmsTarget, spd_tms, tms_5_2_toy, tms_instance};
use mechlens_tables::numeric_csv;

use super::{finish_run, io, write_file};

/// The paper's steps.
pub const STEPS: usize = 10_000;

/// Trains the toy and its decomposition for `steps` steps and writes `out`; with
/// `identity_layers` identity matrices between the toy's two maps (the paper's TMS 5-2 +
/// identity variant), decomposed too.
pub fn run(steps: usize, identity_layers: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    println!("spd-tms: training the toy model (5 features in 2 dimensions, 8 instances)");
    let toy = tms_5_2_toy()?;
    toy.save(&out.join("toy.safetensors"))?;
    let instance = tms_instance(&toy)?;
    let toy_seconds = started.elapsed().as_secs_f64();
    println!(
        "spd-tms: decomposing instance {instance} with {identity_layers} identity layer(s), {steps} steps"
    );
    let spd_started = Instant::now();
    let target = TmsTarget::from_toy(&toy, instance, identity_layers)?;
    let spd = spd_tms(&target, steps)?;
    spd.save(&out.join("spd.safetensors"))?;
    write_file(&out.join("log.csv"), &numeric_csv(&spd.log_frame()?)?)?;
    let round = |s: f64| (s * 10.0).round() / 10.0;
    let toy_name = if identity_layers == 0 {
        "spd-tms"
    } else {
        "spd-tms-identity"
    };
    let run = serde_json::json!({
        "command": format!("mechlens train-toy {toy_name} --out {} --steps {steps}", out.display()),
        "instance": instance,
        "identity_layers": identity_layers,
        "steps": steps,
        "c": spd.config.c,
        "batch_size": spd.config.batch_size,
        "toy_seconds": round(toy_seconds),
        "spd_seconds": round(spd_started.elapsed().as_secs_f64()),
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
