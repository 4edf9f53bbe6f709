//! `mechlens train-toy induction --out DIR [--steps N]`.
//!
//! Reproduction 02's runs (Olsson et al. 2022): the attention-only model with two layers and,
//! as the control, with one, each trained for 4,000 steps on induction data
//! ([`mechlens_toys::train_induction`]; under a minute each on 2 cores) under both objectives,
//! because which positions the loss scores decides which circuit forms. Writes into `--out`:
//!
//! - `repeated-tokens/` and `every-token/` (the [`InductionObjective`]), each with
//!   `two-layer/` and `one-layer/`: the model (`config.json`, `model.safetensors`, which
//!   `HookedTransformer::from_pretrained` reads) and its `log.csv` (`step, loss, lr` every
//!   step's log row and `repeated_loss`, on [`mechlens_toys::induction_probe`], every 250 steps);
//! - `run.json`: the settings and the wall times.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_tables::numeric_csv;
use mechlens_toys::{INDUCTION_LOG_EVERY, InductionObjective, train_induction};

use super::{finish_run, io, write_file};

/// The objectives and the folder each run goes in.
const OBJECTIVES: [(InductionObjective, &str); 2] = [
    (InductionObjective::RepeatedTokens, "repeated-tokens"),
    (InductionObjective::EveryToken, "every-token"),
];

/// Trains both models under both objectives for `steps` steps and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    let mut seconds = serde_json::Map::new();
    for (objective, folder) in OBJECTIVES {
        for (layers, name) in [(2, "two-layer"), (1, "one-layer")] {
            let start = Instant::now();
            println!("induction: {layers}-layer attention-only model, {folder}, {steps} steps");
            let trainer = train_induction(layers, steps, objective)?;
            let dir = out.join(folder).join(name);
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            trainer.model().save(&dir)?;
            write_file(&dir.join("log.csv"), &numeric_csv(&trainer.log_frame()?)?)?;
            let took = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            seconds.insert(format!("{folder}/{name}"), took.into());
        }
    }
    let run = serde_json::json!({
        "command": format!("mechlens train-toy induction --out {} --steps {steps}", out.display()),
        "steps": steps,
        "log_every": INDUCTION_LOG_EVERY,
        "train_seconds": seconds,
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
