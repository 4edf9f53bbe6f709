//! `mechlens train-toy induction --out DIR [--steps N]`.
//!
//! Reproduction 02's two runs (Olsson et al. 2022): the attention-only model with two layers
//! and, as the control, with one, each trained for 4,000 steps on induction data
//! ([`mechlens_toys::train_induction`]; ~1 minute each on 2 cores). Writes into `--out`:
//!
//! - `two-layer/` and `one-layer/`: each model (`config.json`, `model.safetensors`, which
//!   `HookedTransformer::from_pretrained` reads) and its `log.csv` (`step, loss, lr` every
//!   step's log row and `repeated_loss` every 250 steps);
//! - `run.json`: the settings and the wall time.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_tables::numeric_csv;
use mechlens_toys::{INDUCTION_LOG_EVERY, train_induction};

use super::{finish_run, io, write_file};

/// Trains both models for `steps` steps and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    let mut seconds = Vec::new();
    for (layers, name) in [(2, "two-layer"), (1, "one-layer")] {
        let start = Instant::now();
        println!("induction: {layers}-layer attention-only model, {steps} steps");
        let trainer = train_induction(layers, steps)?;
        let dir = out.join(name);
        trainer.model().save(&dir)?;
        write_file(&dir.join("log.csv"), &numeric_csv(&trainer.log_frame()?)?)?;
        seconds.push((start.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    }
    let run = serde_json::json!({
        "command": format!("mechlens train-toy induction --out {} --steps {steps}", out.display()),
        "steps": steps,
        "log_every": INDUCTION_LOG_EVERY,
        "train_seconds": {"two-layer": seconds[0], "one-layer": seconds[1]},
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
