//! `mechlens train-toy e2e-directions --out DIR [--steps N]`: the dictionary comparison of
//! reproduction 08 (Braun et al. 2024: e2e latents point elsewhere than local ones), with
//! what the sweep (`e2e_saes.rs`) lacks for it: every SAE starts from its own seed, and each
//! trains 4 × longer on 4 × more of BabyLlama's own samples. At `blocks.2.hook_resid_pre`,
//! 1,024 latents each:
//!
//! - two local SAEs at coefficient 0.003 (seeds 1 and 2): the baseline, how far two
//!   dictionaries trained the same way land from each other;
//! - e2e at coefficient 10 (seed 3) and e2e + ds at 10 (seed 4).
//!
//! Local 0.003 and e2e 10 are the two sweeps' closest points in CE increase (local's lowest,
//! e2e's highest): the paper compares SAEs of similar CE increase. Each trains `--steps`
//! steps (3,200) of Adam 1e-3 with 50 warm-up steps and a cosine, batch 8 × 128, on 2,048
//! sequences (seed 2; the sweep's evaluation sequences, seed 1, evaluate). Writes into `--out`:
//!
//! - `metrics.csv`: per SAE, on the evaluation tokens: L0, dead latents, explained variance,
//!   CE increase, KL;
//! - `saes.safetensors`: each SAE's decoder (`{name}.w_dec`, `[1024, 128]`, float16) and the
//!   log10 firing frequency of each latent on the evaluation tokens (`{name}.log10_density`);
//! - `run.json`: the settings and the wall time.

use std::path::Path;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_models::{LoadOptions, datasets};
use mechlens_sae::e2e::E2eLoss;
use tch::{Kind, Tensor};

use super::e2e_saes::{
    D_SAE, DOWNSTREAM, HOOK, Measured, samples, train_and_measure, write_tensors,
};
use super::{finish_run, io, write_file};

/// Steps per SAE.
pub const STEPS: usize = 3_200;
/// Training sequences (batches of 8 cycle through them).
const TRAIN_SEQUENCES: i64 = 2_048;

/// Trains the four SAEs for `steps` steps each and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    let model = datasets::babyllama(LoadOptions::default())?;
    println!("e2e-directions: sampling {TRAIN_SEQUENCES} + 64 sequences of 128 tokens");
    let train = samples(&model, TRAIN_SEQUENCES, 2)?;
    let eval = samples(&model, 64, 1)?;
    let eval_acts = {
        let _guard = tch::no_grad_guard();
        model.run_to_hook(&eval, model.hook_point(HOOK)?)?
    };
    let downstream = E2eLoss::EndToEndDownstream {
        hooks: DOWNSTREAM.iter().map(|h| (*h).to_string()).collect(),
        coeff: 2.5,
    };
    let runs = [
        ("local-a", E2eLoss::Local, 0.003, 1),
        ("local-b", E2eLoss::Local, 0.003, 2),
        ("e2e", E2eLoss::EndToEnd, 10.0, 3),
        ("e2e+ds", downstream, 10.0, 4),
    ];
    let mut csv = String::from(
        "name,sparsity_coeff,seed,l0,dead_latents,explained_variance,ce_increase,kl,seconds\n",
    );
    let mut saved: Vec<(String, Tensor)> = Vec::new();
    for (name, loss, coeff, seed) in runs {
        let Measured {
            sae,
            sparsity,
            splice,
            seconds,
        } = train_and_measure(&model, loss, coeff, seed, steps, &train, &eval, &eval_acts)?;
        saved.push((format!("{name}.w_dec"), sae.w_dec.f_to_kind(Kind::Half)?));
        saved.push((
            format!("{name}.log10_density"),
            sparsity.log10_density.shallow_clone(),
        ));
        println!(
            "e2e-directions: {name} ({coeff}, seed {seed}): L0 {:.1}, dead {}, CE +{:.4}, {seconds:.0} s",
            sparsity.l0,
            sparsity.dead_latents,
            splice.ce_with_sae - splice.ce_clean
        );
        csv.push_str(&format!(
            "{name},{coeff},{seed},{},{},{},{},{},{seconds:.1}\n",
            sparsity.l0,
            sparsity.dead_latents,
            sparsity.explained_variance,
            splice.ce_with_sae - splice.ce_clean,
            splice.kl_with_sae,
        ));
    }
    write_file(&out.join("metrics.csv"), &csv)?;
    write_tensors(&saved, &out.join("saes.safetensors"))?;
    let run = serde_json::json!({
        "command": format!("mechlens train-toy e2e-directions --out {} --steps {steps}", out.display()),
        "hook": HOOK,
        "d_sae": D_SAE,
        "steps": steps,
        "batch": "8 x 128 tokens",
        "train_sequences": TRAIN_SEQUENCES,
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
