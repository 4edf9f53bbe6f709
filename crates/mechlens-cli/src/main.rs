//! `mechlens`: long jobs outside a notebook.
//!
//! ```text
//! mechlens train-sae CONFIG.toml
//! ```
//!
//! trains an SAE as the config says (see `train_sae.rs` for the file's keys), with progress
//! lines, checkpoints, resume (`resume = true` continues from `[train] checkpoint_dir`), and
//! writes the SAE in SAELens' format.
//!
//! ```text
//! mechlens train-toy grokking --out DIR [--epochs N] [--work DIR] [--seed N]
//! ```
//!
//! trains a toy model of a reproduction (see `train_toy.rs`), resumable, and writes the model
//! with its training log and progress measures.

mod train_sae;
mod train_toy;

use std::process::ExitCode;

fn usage() -> String {
    format!(
        "usage: mechlens train-sae CONFIG.toml\n       {}",
        train_toy::USAGE
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [command, config] if command == "train-sae" => train_sae::run(std::path::Path::new(config)),
        [command, rest @ ..] if command == "train-toy" => train_toy::run(rest),
        _ => {
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
