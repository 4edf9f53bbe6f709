//! Times SAE training steps on BabyLlama for `make bench` (bench/e2e_bench.py drives it):
//! the same SAE (2,048 latents at `blocks.2.hook_resid_pre`, batch 8 × 128 tokens) trained
//! locally, end to end, and end to end with downstream terms.
//!
//! Usage: e2e_bench THREADS
//!
//! Prints `ready`, then answers each line on stdin with the milliseconds the steps took
//! (after one untimed step): `local STEPS`, `e2e STEPS`, `e2e-ds STEPS`.

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_models::{GenerateOptions, HookedTransformer, LoadOptions, datasets};
use mechlens_sae::e2e::{E2eConfig, E2eLoss, E2eSae};
use tch::{Device, Kind, Tensor};

const HOOK: &str = "blocks.2.hook_resid_pre";

fn time(model: &HookedTransformer, tokens: &Tensor, loss: E2eLoss, steps: usize) -> Result<f64> {
    let mut cfg = E2eConfig::new(HOOK, 2048, loss);
    cfg.steps = 1;
    cfg.log_every = 1_000_000;
    let mut run = E2eSae::new(model, cfg)?;
    let mut data = |s: usize| Ok(tokens.narrow(0, (s as i64 % 4) * 8, 8));
    run.train(model, &mut data)?;
    run.config.steps = 1 + steps;
    let start = Instant::now();
    run.train(model, &mut data)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let threads: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::invalid("arguments", "THREADS"))?;
    tch::set_num_threads(threads);
    let model = datasets::babyllama(LoadOptions::default())?;
    // The model's own samples: 32 sequences of 128 tokens from BOS.
    let bos = Tensor::full([32, 1], 1, (Kind::Int64, Device::Cpu));
    let tokens = model.generate(
        &bos,
        &GenerateOptions {
            max_new_tokens: 127,
            temperature: 1.0,
            seed: Some(0),
            use_kv_cache: true,
            ..GenerateOptions::default()
        },
    )?;
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kind, steps) = match words.as_slice() {
            [kind, steps] => (*kind, steps.parse().unwrap_or(20)),
            _ => return Err(Error::invalid("command", line.clone())),
        };
        let loss = match kind {
            "local" => E2eLoss::Local,
            "e2e" => E2eLoss::EndToEnd,
            "e2e-ds" => E2eLoss::EndToEndDownstream {
                hooks: vec![
                    "blocks.3.hook_resid_pre".into(),
                    "blocks.4.hook_resid_pre".into(),
                    "blocks.4.hook_resid_post".into(),
                ],
                coeff: 2.5,
            },
            _ => return Err(Error::invalid("command", line.clone())),
        };
        println!("{}", time(&model, &tokens, loss, steps)?);
    }
    Ok(())
}
