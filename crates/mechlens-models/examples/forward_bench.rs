//! Times a forward pass without hooks and `run_with_cache` with every hook, for `make bench`
//! (bench/model_bench.py drives it beside Hugging Face and TransformerLens).
//!
//! Usage: forward_bench MODEL_DIR BATCH POS THREADS
//!
//! Loads the model, warms both paths up, prints `ready`, then answers each line on stdin
//! (`forward` or `cache`) with the milliseconds one run took. The driver interleaves these
//! runs with its peers' so that a slow spell of a shared machine hits all of them alike.

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{CacheFilter, Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err(Error::invalid("arguments", "MODEL_DIR BATCH POS THREADS"));
    }
    let num = |i: usize| {
        args[i]
            .parse::<i64>()
            .map_err(|e| Error::invalid("argument", e.to_string()))
    };
    let (batch, pos, threads) = (num(2)?, num(3)?, num(4)?);
    tch::set_num_threads(threads as i32);
    let model = HookedTransformer::from_pretrained(&args[1], LoadOptions::default())?;
    tch::manual_seed(0);
    let vocab = model.cfg().d_vocab as i64;
    let tokens = Tensor::randint(vocab, [batch, pos], (Kind::Int64, Device::Cpu));
    let run = |what: &str| -> Result<f64> {
        let start = Instant::now();
        match what {
            "forward" => drop(model.forward(&tokens)?),
            "cache" => drop(model.run_with_cache(&tokens, CacheFilter::All)?),
            other => {
                return Err(Error::invalid(
                    "command",
                    format!("`{other}`; expected forward or cache"),
                ));
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    run("forward")?;
    run("cache")?;
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        println!("{:.3}", run(line.trim())?);
    }
    Ok(())
}
