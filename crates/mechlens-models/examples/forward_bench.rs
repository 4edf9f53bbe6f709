//! Times a forward pass without hooks and `run_with_cache` with every hook, for `make bench`
//! (bench/model_bench.py runs it beside Hugging Face and TransformerLens).
//!
//! Usage: forward_bench MODEL_DIR BATCH POS RUNS THREADS
//! Prints one JSON object: medians in milliseconds.

use std::time::Instant;

use mechlens_core::CacheFilter;
use mechlens_models::{HookedTransformer, LoadOptions};
use tch::{Device, Kind, Tensor};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> mechlens_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        return Err(mechlens_core::Error::invalid(
            "arguments",
            "MODEL_DIR BATCH POS RUNS THREADS",
        ));
    }
    let num = |i: usize| {
        args[i]
            .parse::<i64>()
            .map_err(|e| mechlens_core::Error::invalid("argument", e.to_string()))
    };
    let (batch, pos, runs, threads) = (num(2)?, num(3)?, num(4)? as usize, num(5)?);
    tch::set_num_threads(threads as i32);
    let model = HookedTransformer::from_pretrained(&args[1], LoadOptions::default())?;
    tch::manual_seed(0);
    let vocab = model.cfg().d_vocab as i64;
    let tokens = Tensor::randint(vocab, [batch, pos], (Kind::Int64, Device::Cpu));
    let time = |f: &dyn Fn() -> mechlens_core::Result<()>| -> mechlens_core::Result<f64> {
        f()?; // warm-up
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            f()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(times))
    };
    let forward = time(&|| model.forward(&tokens).map(|_| ()))?;
    let cache = time(&|| model.run_with_cache(&tokens, CacheFilter::All).map(|_| ()))?;
    println!("{{\"forward_ms\": {forward:.3}, \"cache_ms\": {cache:.3}}}");
    Ok(())
}
