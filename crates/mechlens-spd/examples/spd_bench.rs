//! Times SPD training steps for `make bench` (bench/spd_bench.py drives it beside the same
//! losses written in plain PyTorch).
//!
//! Usage: spd_bench THREADS
//!
//! Prints `ready`, then answers each line on stdin with the milliseconds the steps took:
//! - `spd STEPS`: SPD of a TMS 5-2 target's two maps with the paper's settings (C = 20,
//!   importance MLPs of width 16, batch 4,096, stochastic reconstruction all layers and
//!   layer-wise, importance minimality, the delta component), after one untimed step (which
//!   also runs the faithfulness warm-up).

use std::io::BufRead;
use std::time::Instant;

use mechlens_core::{Error, Result};
use mechlens_spd::{Spd, SpdConfig, TMS_FEATURE_PROBABILITY, TMS_LAYERS, TmsTarget};
use tch::{Device, Kind, Tensor};

/// A TMS 5-2 target with fixed random weights (the step's cost does not depend on them).
fn target() -> TmsTarget {
    tch::manual_seed(0);
    TmsTarget {
        w: Tensor::randn([2, 5], (Kind::Float, Device::Cpu)),
        b: Tensor::zeros([5], (Kind::Float, Device::Cpu)),
        identity_layers: 0,
    }
}

fn spd(steps: usize) -> Result<f64> {
    let target = target();
    let config = SpdConfig {
        steps: 1,
        ..SpdConfig::default()
    };
    let batch = config.batch_size;
    let mut spd = Spd::new(&target, &TMS_LAYERS, config)?;
    let mut data = |_| target.batch(batch, TMS_FEATURE_PROBABILITY);
    spd.train(&target, &mut data)?;
    spd.config.steps = 1 + steps;
    let start = Instant::now();
    spd.train(&target, &mut data)?;
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
            ["spd", steps] => spd(steps.parse().unwrap_or(100))?,
            _ => return Err(Error::invalid("command", line.clone())),
        };
        println!("{ms}");
    }
    Ok(())
}
