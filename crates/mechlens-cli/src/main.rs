//! `mechlens`: long jobs outside a notebook.
//!
//! ```text
//! mechlens train-sae CONFIG.toml
//! ```
//!
//! trains an SAE as the config says (see `train_sae.rs` for the file's keys), with progress
//! lines, checkpoints, resume (`resume = true` continues from `[train] checkpoint_dir`), and
//! writes the SAE in SAELens' format.

mod train_sae;

use std::process::ExitCode;

const USAGE: &str = "usage: mechlens train-sae CONFIG.toml";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [command, config] if command == "train-sae" => train_sae::run(std::path::Path::new(config)),
        _ => {
            eprintln!("{USAGE}");
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
