//! Times the activation store beside a bare forward over the same token windows, for
//! `make bench` (bench/sae_bench.py drives it).
//!
//! Usage: store_bench MODEL_DIR WINDOWS POS THREADS
//!
//! Prints `ready`, then answers each line on stdin with the milliseconds one pass over all
//! windows took: `forward` (the model's forward, batches of 8 windows, logits dropped),
//! `store LAYER` (`ActivationStore::from_tokens` at `blocks.LAYER.hook_resid_post`, same
//! batches).

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_sae::store::{ActivationStore, StoreOptions};
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err(Error::invalid("arguments", "MODEL_DIR WINDOWS POS THREADS"));
    }
    let num = |i: usize| {
        args[i]
            .parse::<i64>()
            .map_err(|e| Error::invalid("argument", e.to_string()))
    };
    let (windows, pos, threads) = (num(2)?, num(3)?, num(4)?);
    tch::set_num_threads(threads as i32);
    let model = HookedTransformer::from_pretrained(&args[1], LoadOptions::default())?;
    tch::manual_seed(0);
    let tokens = Tensor::randint(
        model.cfg().d_vocab as i64,
        [windows, pos],
        (Kind::Int64, Device::Cpu),
    );
    let opts = StoreOptions {
        context_size: pos,
        batch_windows: 8,
        ..StoreOptions::default()
    };
    let run = |line: &str| -> Result<f64> {
        let start = Instant::now();
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["forward"] => {
                for chunk in tokens.split(opts.batch_windows, 0) {
                    drop(model.forward(&chunk)?);
                }
            }
            ["trunk"] => {
                let n = model.cfg().n_layers;
                for chunk in tokens.split(opts.batch_windows, 0) {
                    drop(model.forward_to_layer(&chunk, n)?);
                }
            }
            ["store", layer] => {
                let hook = format!("blocks.{layer}.hook_resid_post");
                drop(ActivationStore::from_tokens(&model, &hook, &tokens, &opts)?);
            }
            _ => {
                return Err(Error::invalid(
                    "command",
                    format!("`{line}`; expected forward, trunk or store LAYER"),
                ));
            }
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    run("forward")?;
    run("store 0")?;
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Error::invalid("stdin", e.to_string()))?;
        println!("{:.3}", run(line.trim())?);
    }
    Ok(())
}
