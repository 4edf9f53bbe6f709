//! `mechlens train-toy grokking --out DIR [--epochs N] [--work DIR] [--seed N]`.
//!
//! Trains the grokking model of Nanda et al. (2023) with the paper's settings
//! ([`GrokkingOptions`]' defaults, 20,000 epochs; `--seed` seeds both the initialisation and
//! the split, 0 by default as in the paper), printing progress lines and writing a
//! checkpoint every 100 epochs into `--work` (default `target/train-toy/grokking`); run again,
//! it resumes from the newest one (refusing checkpoints another set-up wrote: `setup.txt`
//! names the one they belong to). At the end it reads every checkpoint with the final model's
//! key frequencies (as the paper does) and writes into `--out`:
//!
//! - `config.json`, `model.safetensors`: the trained model (TransformerLens' layout);
//! - `log.csv`: `epoch, train_loss, test_loss, test_accuracy` (train loss every 10 epochs, the
//!   test columns every 100, empty between);
//! - `progress.csv`: the progress measures of every checkpoint (`epoch, train_loss, test_loss,
//!   train_accuracy, test_accuracy, restricted_loss, excluded_loss, key_power_share,
//!   clustered_share`);
//! - `run.json`: the settings, the key frequencies and the wall time.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tables::numeric_csv;
use mechlens_toys::{
    GrokkingOptions, clustered_neuron_share, embedding_frequency_power, key_frequencies,
    progress_measures,
};
use mechlens_train::{FullBatch, ModelTrainer};

use super::{checkpoints, finish_run, io, write_file};

/// Share of the embedding's non-constant Fourier power the key frequencies hold together:
/// the fewest frequencies reaching it are the key ones (the paper's five hold 93.9%).
const KEY_SHARE: f64 = 0.9;

/// Trains (or resumes) `epochs` epochs with checkpoints in `work`, then writes `out`.
pub fn run(epochs: usize, seed: u64, work: &Path, out: &Path) -> Result<()> {
    let mut opts = GrokkingOptions {
        epochs,
        model_seed: seed,
        data_seed: seed,
        progress_every: 100,
        ..GrokkingOptions::default()
    };
    let started = Instant::now();
    let ckpt_dir = work.join("checkpoints");
    opts.checkpoint_dir = Some(ckpt_dir.clone());
    let data = opts.data()?;
    let mut trainer: ModelTrainer = opts.trainer(&data)?;
    let setup = format!("{:?}, seed {seed}", opts.setup);
    let marker = work.join("setup.txt");
    let existing = checkpoints(&ckpt_dir)?;
    if !existing.is_empty() {
        let theirs = std::fs::read_to_string(&marker).unwrap_or_else(|_| "unrecorded".into());
        if theirs.trim() != setup {
            return Err(Error::invalid(
                "--work",
                format!(
                    "{} holds checkpoints of another run (set-up {}), and this one is set-up {setup}; remove the folder or pass another --work",
                    ckpt_dir.display(),
                    theirs.trim()
                ),
            ));
        }
    } else {
        std::fs::create_dir_all(work).map_err(io("creating", work))?;
        write_file(&marker, &setup)?;
    }
    if let Some((_, newest)) = existing.last() {
        trainer.resume_from(newest)?;
        println!(
            "resuming from {} (epoch {})",
            newest.display(),
            trainer.step()
        );
    }
    println!(
        "grokking: p = {}, {} training pairs, {} epochs; checkpoints in {}",
        opts.p,
        data.train.len(),
        opts.epochs,
        ckpt_dir.display()
    );
    trainer.run(&mut FullBatch(data.train.share()))?;
    let trained = started.elapsed().as_secs_f64();

    let power = embedding_frequency_power(&trainer.model().w_e(), opts.p)?;
    let (keys, share) = key_frequencies(&power, KEY_SHARE)?;
    println!(
        "key frequencies {keys:?} hold {:.1}% of the embedding's Fourier power",
        share * 100.0
    );
    let mut progress = String::from(
        "epoch,train_loss,test_loss,train_accuracy,test_accuracy,restricted_loss,excluded_loss,key_power_share,clustered_share\n",
    );
    for (epoch, dir) in checkpoints(&ckpt_dir)? {
        if epoch > opts.epochs {
            continue;
        }
        let model =
            HookedTransformer::from_pretrained(&dir.to_string_lossy(), LoadOptions::default())?;
        let m = progress_measures(&model, &data, &keys)?;
        let clustered = clustered_neuron_share(&model, &data)?;
        writeln!(
            progress,
            "{epoch},{:.6e},{:.6e},{:.6},{:.6},{:.6e},{:.6e},{:.6},{clustered:.6}",
            m.train_loss,
            m.test_loss,
            m.train_accuracy,
            m.test_accuracy,
            m.restricted_loss,
            m.excluded_loss,
            m.key_power_share
        )
        .ok();
    }

    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    trainer.model().save(out)?;
    // The trainer's log as the committed file's columns: epoch, train loss, test metrics.
    let mut log = trainer
        .log_frame()?
        .select(["step", "loss", "test_loss", "test_accuracy"])?;
    log.rename("step", "epoch".into())?;
    log.rename("loss", "train_loss".into())?;
    let log = numeric_csv(&log)?;
    let write = |name: &str, text: &str| write_file(&out.join(name), text);
    write("log.csv", &log)?;
    write("progress.csv", &progress)?;
    let run = serde_json::json!({
        "command": format!(
            "mechlens train-toy grokking --out {} --epochs {}{}",
            out.display(),
            opts.epochs,
            if seed == 0 { String::new() } else { format!(" --seed {seed}") }
        ),
        "p": opts.p,
        "train_fraction": opts.train_fraction,
        "data_seed": opts.data_seed,
        "model_seed": opts.model_seed,
        "setup": format!("{:?}", opts.setup),
        "clustered_neuron_share": clustered_neuron_share(trainer.model(), &data)?,
        "epochs": opts.epochs,
        "lr": opts.lr,
        "weight_decay": opts.weight_decay,
        "betas": [opts.betas.0, opts.betas.1],
        "measure_every": opts.measure_every,
        "key_frequencies": keys,
        "key_power_share": share,
        "key_share_threshold": KEY_SHARE,
        "train_seconds_this_invocation": (trained * 10.0).round() / 10.0,
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
