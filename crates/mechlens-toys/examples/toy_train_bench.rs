//! Times training steps of the toy models for `make bench` (bench/toy_train_bench.py drives
//! it beside the same models in plain PyTorch and TransformerLens).
//!
//! Usage: toy_train_bench THREADS
//!
//! Prints `ready`, then answers each line on stdin with the milliseconds the steps took
//! (after one untimed step):
//! - `tms STEPS`: the toy model of superposition, 5 features in 2 dimensions, 10 instances,
//!   batch 1024, AdamW 1e-3;
//! - `induction STEPS`: the 2-layer attention-only induction model (d_model 64, 4 heads,
//!   vocabulary and context 64, LayerNorm), batch 32, AdamW 2e-3;
//! - `grokking EPOCHS`: the modular-addition model of Nanda et al. in the paper's set-up
//!   (p = 113, its split: a full batch of 3,830 pairs; no attention or unembedding biases),
//!   AdamW 1e-3, weight decay 1, betas (0.9, 0.98), loss in f64.

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_models::{HookedTransformer, HookedTransformerConfig};
use mechlens_toys::{
    GrokkingOptions, InductionData, InductionOptions, ToyModel, ToyModelOptions, ToyTrainOptions,
};
use mechlens_train::{FullBatch, ModelTrainConfig, ModelTrainer, Schedule};

fn tms(steps: usize) -> Result<f64> {
    let mut model = ToyModel::new(&ToyModelOptions::uniform(5, 2, 10, 1.0, 0.05))?;
    let opts = |steps| ToyTrainOptions {
        steps,
        log_every: 1_000_000,
        ..Default::default()
    };
    model.train(&opts(1))?;
    let start = Instant::now();
    model.train(&opts(steps))?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn induction(steps: usize) -> Result<f64> {
    let cfg = HookedTransformerConfig {
        n_layers: 2,
        d_model: 64,
        n_heads: 4,
        d_vocab: 64,
        n_ctx: 64,
        attn_only: true,
        ..Default::default()
    };
    let model = HookedTransformer::from_config(&cfg, 0)?;
    let train = ModelTrainConfig::new(steps + 1, Schedule::constant(2e-3)).log_every(1_000_000);
    let mut trainer = ModelTrainer::new(model, train)?;
    let mut data = InductionData::new(InductionOptions::default())?;
    trainer.train_steps(&mut data, 1)?;
    let start = Instant::now();
    trainer.train_steps(&mut data, steps)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn grokking(epochs: usize) -> Result<f64> {
    // The paper's set-up (its split, initialisation and biases), without the test metrics
    // the committed run logs; the warm-up does not change an epoch's cost.
    let opts = GrokkingOptions::default();
    let data = opts.data()?;
    let (model, absent_biases) = opts.initial_model()?;
    let mut train = ModelTrainConfig::new(epochs + 1, Schedule::constant(1e-3))
        .betas(0.9, 0.98)
        .weight_decay(1.0)
        .freeze(absent_biases)
        .log_every(1_000_000);
    train.loss_in_f64 = true;
    let mut trainer = ModelTrainer::new(model, train)?;
    let mut batches = FullBatch(data.train);
    trainer.train_steps(&mut batches, 1)?;
    let start = Instant::now();
    trainer.train_steps(&mut batches, epochs)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let threads: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::invalid("arguments", "THREADS"))?;
    tch::set_num_threads(threads);
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let ms = match words.as_slice() {
            ["tms", steps] => tms(steps.parse().unwrap_or(100))?,
            ["induction", steps] => induction(steps.parse().unwrap_or(100))?,
            ["grokking", epochs] => grokking(epochs.parse().unwrap_or(50))?,
            _ => return Err(Error::invalid("command", line.clone())),
        };
        println!("{ms}");
    }
    Ok(())
}
