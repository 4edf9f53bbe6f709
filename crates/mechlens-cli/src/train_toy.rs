//! `mechlens train-toy TOY --out DIR [...]`: trains the toy model a reproduction notebook
//! loads, too long to train in the notebook itself, and writes it with its logs. Each toy is
//! its own file; this one parses the arguments and holds what they share.
//!
//! - `grokking --out DIR [--epochs N] [--work DIR] [--seed N]` (`grokking.rs`): Nanda et al. 2023.
//! - `tms-sparsity --out DIR [--steps N]` (`tms_sparsity.rs`): Elhage et al. 2022's
//!   dimensions-per-feature sweep.
//! - `induction --out DIR [--steps N]` (`induction.rs`): Olsson et al. 2022's two- and
//!   one-layer attention-only models, under both training objectives.
//! - `spd-tms --out DIR [--steps N]` (`spd_tms.rs`): Bushnaq et al. 2025's stochastic
//!   parameter decomposition of TMS 5-2 (`spd-tms-identity`: with an identity layer).
//! - `apd-tms --out DIR [--steps N]` (`apd_tms.rs`): Braun et al. 2025's attribution-based
//!   parameter decomposition of the same toy, the comparison reproduction 06 makes.
//! - `spd-resid-mlp --out DIR [--steps N]` (`spd_resid_mlp.rs`): the toy model of compressed
//!   computation and its stochastic parameter decomposition (reproduction 07).
//! - `e2e-saes --out DIR [--steps N]` (`e2e_saes.rs`): end-to-end against local SAEs on
//!   BabyLlama, a sweep of sparsity coefficients (reproduction 08).
//! - `e2e-directions --out DIR [--steps N]` (`e2e_directions.rs`): four independently seeded
//!   SAEs trained longer, for reproduction 08's dictionary comparison.

mod apd_tms;
mod e2e_directions;
mod e2e_saes;
mod grokking;
mod induction;
mod spd_resid_mlp;
mod spd_tms;
mod tms_sparsity;

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};

pub const USAGE: &str = "mechlens train-toy grokking --out DIR [--epochs N] [--work DIR] [--seed N]
       mechlens train-toy tms-sparsity --out DIR [--steps N]
       mechlens train-toy induction --out DIR [--steps N]
       mechlens train-toy spd-tms --out DIR [--steps N]
       mechlens train-toy spd-tms-identity --out DIR [--steps N]
       mechlens train-toy apd-tms --out DIR [--steps N]
       mechlens train-toy spd-resid-mlp --out DIR [--steps N] [--model-steps N]
       mechlens train-toy e2e-saes --out DIR [--steps N]
       mechlens train-toy e2e-directions --out DIR [--steps N]";

/// Parses the arguments after `train-toy` and runs.
pub fn run(args: &[String]) -> Result<()> {
    let bad = |reason: String| Error::invalid("arguments", format!("{reason}; usage: {USAGE}"));
    let (toy, rest) = args
        .split_first()
        .ok_or_else(|| bad("name the toy to train".into()))?;
    let (mut out, mut work, mut length, mut model_steps) = (None, None, None, None);
    let mut seed = None;
    let mut words = rest.iter();
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        match (toy.as_str(), flag.as_str()) {
            (_, "--out") => out = Some(PathBuf::from(value)),
            ("grokking", "--work") => work = Some(PathBuf::from(value)),
            ("grokking", "--seed") => {
                seed = Some(value.parse::<u64>().map_err(|_| {
                    bad(format!("{flag} must be a whole number ≥ 0, got {value:?}"))
                })?);
            }
            ("spd-resid-mlp", "--model-steps") => {
                model_steps = Some(value.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(
                    || {
                        bad(format!(
                            "{flag} must be a positive whole number, got {value:?}"
                        ))
                    },
                )?);
            }
            ("grokking", "--epochs")
            | (
                "tms-sparsity" | "induction" | "spd-tms" | "spd-tms-identity" | "apd-tms"
                | "spd-resid-mlp" | "e2e-saes" | "e2e-directions",
                "--steps",
            ) => {
                length = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or_else(|| {
                            bad(format!(
                                "{flag} must be a positive whole number, got {value:?}"
                            ))
                        })?,
                );
            }
            _ => return Err(bad(format!("{toy} has no option {flag}"))),
        }
    }
    let out = out.ok_or_else(|| bad("--out DIR is required".into()))?;
    match toy.as_str() {
        "grokking" => grokking::run(
            length.unwrap_or(mechlens_toys::GrokkingOptions::default().epochs),
            seed.unwrap_or(0),
            &work.unwrap_or_else(|| PathBuf::from("target/train-toy/grokking")),
            &out,
        ),
        "tms-sparsity" => tms_sparsity::run(length.unwrap_or(tms_sparsity::STEPS), &out),
        "induction" => induction::run(length.unwrap_or(mechlens_toys::INDUCTION_STEPS), &out),
        "spd-tms" => spd_tms::run(length.unwrap_or(spd_tms::STEPS), 0, &out),
        "spd-tms-identity" => spd_tms::run(length.unwrap_or(spd_tms::STEPS), 1, &out),
        "apd-tms" => apd_tms::run(length.unwrap_or(apd_tms::STEPS), &out),
        "e2e-saes" => e2e_saes::run(length.unwrap_or(e2e_saes::STEPS), &out),
        "e2e-directions" => e2e_directions::run(length.unwrap_or(e2e_directions::STEPS), &out),
        "spd-resid-mlp" => {
            spd_resid_mlp::run(length.unwrap_or(spd_resid_mlp::STEPS), model_steps, &out)
        }
        _ => Err(bad(format!(
            "unknown toy {toy:?} (known: grokking, tms-sparsity, induction, spd-tms, spd-tms-identity, apd-tms, spd-resid-mlp, e2e-saes, e2e-directions)"
        ))),
    }
}

/// An I/O error naming the action and the path.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Writes `text` to `path` through a temporary file, so a reader never sees half of it.
fn write_file(path: &Path, text: &str) -> Result<()> {
    mechlens_checkpoint::atomic::write(path, text.as_bytes())
}

/// Ends a run: its settings as `out/run.json`, and a line saying how long it all took.
fn finish_run(out: &Path, run: &serde_json::Value, started: std::time::Instant) -> Result<()> {
    write_file(
        &out.join("run.json"),
        &serde_json::to_string_pretty(run).unwrap_or_default(),
    )?;
    println!(
        "wrote {} in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The `step_NNNNNNNN` checkpoint folders under `dir` with their steps, oldest first.
fn checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io("listing", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| {
            let step = p
                .file_name()?
                .to_str()?
                .strip_prefix("step_")?
                .parse()
                .ok()?;
            Some((step, p))
        })
        .collect();
    found.sort();
    Ok(found)
}
