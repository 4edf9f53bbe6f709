//! Times full activation patching of `resid_pre` (every layer × position) and attribution
//! patching of the same, for `make bench` (bench/patch_bench.py drives it beside
//! TransformerLens' `patching.get_act_patch_resid_pre`).
//!
//! Usage: patch_bench MODEL_DIR POS THREADS
//!
//! Builds a clean and a corrupted prompt of POS random tokens (the same seeds as the driver),
//! prints `ready`, then answers each line on stdin (`activation` or `attribution`) with the
//! milliseconds one full run took.

use std::io::BufRead;
use std::time::Instant;

use mechlens_analysis::{PatchTarget, activation_patch, attribution_patch};
use mechlens_core::{CacheFilter, Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use tch::{Kind, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err(Error::invalid("arguments", "MODEL_DIR POS THREADS"));
    }
    let num = |i: usize| {
        args[i]
            .parse::<i64>()
            .map_err(|e| Error::invalid("argument", e.to_string()))
    };
    let (pos, threads) = (num(2)?, num(3)?);
    tch::set_num_threads(threads as i32);
    let model = HookedTransformer::from_pretrained(&args[1], LoadOptions::default())?;
    let vocab = model.cfg().d_vocab as i64;
    tch::manual_seed(0);
    let clean = Tensor::randint(vocab, [1, pos], (Kind::Int64, tch::Device::Cpu));
    // The corrupted prompt differs in its first half.
    let corrupted = clean.copy();
    corrupted.narrow(1, 0, pos / 2).copy_(&Tensor::randint(
        vocab,
        [1, pos / 2],
        (Kind::Int64, tch::Device::Cpu),
    ));
    let (_, clean_cache) = model.run_with_cache(
        &clean,
        CacheFilter::by_name(|n| n.ends_with("hook_resid_pre")),
    )?;
    let metric = |logits: &Tensor| -> Result<Tensor> {
        let last = logits.select(1, -1);
        Ok(last.select(1, 0).mean(Kind::Float) - last.select(1, 1).mean(Kind::Float))
    };
    let run = |what: &str| -> Result<f64> {
        let start = Instant::now();
        match what {
            "activation" => drop(activation_patch(
                &model,
                &corrupted,
                &clean_cache,
                PatchTarget::ResidPre,
                metric,
            )?),
            "attribution" => drop(attribution_patch(
                &model,
                &corrupted,
                &clean_cache,
                PatchTarget::ResidPre,
                metric,
            )?),
            other => {
                return Err(Error::invalid(
                    "command",
                    format!("`{other}`; expected activation or attribution"),
                ));
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    run("activation")?;
    run("attribution")?;
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        println!("{:.3}", run(line.trim())?);
    }
    Ok(())
}
