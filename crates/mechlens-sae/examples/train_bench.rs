//! Times SAE training steps for `make bench` (bench/sae_bench.py drives it beside SAELens'
//! `SAETrainer.step` on the same random activations and settings).
//!
//! Usage: train_bench D_IN D_SAE BATCH THREADS
//!
//! Prints `ready`, then answers each line on stdin (`standard STEPS`, `topk K STEPS`, or
//! `standard-from SAE_DIR STEPS`: a ReLU SAE starting from saved weights) with the
//! milliseconds STEPS training steps took (after one untimed step).

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_sae::Sae;
use mechlens_sae::train::{TensorSource, TrainArchitecture, TrainConfig, Trainer};
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> Result<i64> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| Error::invalid("arguments", "D_IN D_SAE BATCH THREADS"))
    };
    let (d_in, d_sae, batch, threads) = (num(1)?, num(2)?, num(3)?, num(4)?);
    tch::set_num_threads(threads as i32);
    tch::manual_seed(0);
    let acts = Tensor::randn([8 * batch, d_in], (Kind::Float, Device::Cpu));
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let (arch, start, steps) = match words.as_slice() {
            ["standard", steps] => (TrainArchitecture::standard(5.0), None, steps),
            ["standard-from", dir, steps] => (
                TrainArchitecture::standard(5.0),
                Some(Sae::load(dir, Device::Cpu)?),
                steps,
            ),
            ["topk", k, steps] => (
                TrainArchitecture::topk(k.parse().unwrap_or(32)),
                None,
                steps,
            ),
            _ => return Err(Error::invalid("command", line.clone())),
        };
        let steps: usize = steps
            .parse()
            .map_err(|e: std::num::ParseIntError| Error::invalid("steps", e.to_string()))?;
        let mut cfg = TrainConfig::new(arch, d_in, d_sae)
            .batch_size(batch)
            .total_steps(steps + 1);
        cfg.log_every = steps + 1;
        let mut trainer = match &start {
            Some(sae) => Trainer::from_sae(cfg, sae)?,
            None => Trainer::new(cfg)?,
        };
        let mut source = TensorSource::new(&acts, 0)?;
        trainer.train_steps(&mut source, 1)?;
        let start = Instant::now();
        trainer.train_steps(&mut source, steps)?;
        println!("{}", start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}
