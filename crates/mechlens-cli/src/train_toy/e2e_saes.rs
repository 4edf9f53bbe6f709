//! `mechlens train-toy e2e-saes --out DIR [--steps N]`: reproduction 08's run, end-to-end
//! against local SAEs on BabyLlama (Braun et al. 2024). The data is the model's own samples
//! (temperature 1 from BOS, 128 tokens: TinyStories-like by construction; 512 sequences to
//! train on, 64 others to evaluate on). At `blocks.2.hook_resid_pre` (the middle of its 5
//! layers), one SAE of 1,024 latents per kind and sparsity coefficient:
//!
//! - local: MSE to the input, coefficients 0.003, 0.01, 0.03, 0.1;
//! - e2e: KL through the model, coefficients 0.3, 1, 3, 10;
//! - e2e + ds: KL plus MSE at `blocks.3/4.hook_resid_pre` and `blocks.4.hook_resid_post`
//!   (total weight 2.5, the paper's GPT-2 value), coefficients 0.3, 1, 3, 10;
//!
//! each `--steps` steps (800) of Adam 1e-3 with 50 warm-up steps and a cosine, batch 8 × 128.
//! Writes into `--out`:
//!
//! - `metrics.csv`: per SAE, on the evaluation tokens: L0, dead latents, explained variance,
//!   CE loss with the SAE spliced in, the clean CE, KL;
//! - `decoders.safetensors`: every SAE's decoder (`{kind}-{coeff}`, `[1024, 128]`, float16) for
//!   comparing dictionaries;
//! - `eval_tokens.safetensors`: the evaluation tokens;
//! - `run.json`: the settings and the wall time.

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use mechlens_core::Result;
use mechlens_models::{GenerateOptions, HookedTransformer, LoadOptions, datasets};
use mechlens_sae::Sae;
use mechlens_sae::e2e::{E2eConfig, E2eLoss, E2eSae};
use mechlens_sae::eval::SpliceReport;
use mechlens_sae::metrics::SparsityReport;
use tch::{Device, Kind, Tensor};

use super::{finish_run, io, write_file};

/// Steps per SAE.
pub const STEPS: usize = 800;
/// Where the SAEs sit.
pub const HOOK: &str = "blocks.2.hook_resid_pre";
pub(super) const D_SAE: i64 = 1024;
pub(super) const DOWNSTREAM: [&str; 3] = [
    "blocks.3.hook_resid_pre",
    "blocks.4.hook_resid_pre",
    "blocks.4.hook_resid_post",
];
const LOCAL_COEFFS: [f64; 4] = [0.003, 0.01, 0.03, 0.1];
const E2E_COEFFS: [f64; 4] = [0.3, 1.0, 3.0, 10.0];

/// `n` of the model's own samples of 128 tokens from BOS, seeded.
pub(super) fn samples(model: &HookedTransformer, n: i64, seed: i64) -> Result<Tensor> {
    let bos = Tensor::full([n, 1], 1, (Kind::Int64, Device::Cpu));
    model.generate(
        &bos,
        &GenerateOptions {
            max_new_tokens: 127,
            temperature: 1.0,
            seed: Some(seed),
            use_kv_cache: true,
            ..GenerateOptions::default()
        },
    )
}

/// One SAE of reproduction 08, trained and measured on the evaluation tokens.
pub(super) struct Measured {
    pub sae: Rc<Sae>,
    pub sparsity: SparsityReport,
    pub splice: SpliceReport,
    pub seconds: f64,
}

/// Trains an SAE at [`HOOK`] with `loss`, sparsity coefficient `coeff` and init seed `seed`
/// for `steps` steps (Adam 1e-3, 50 warm-up steps, cosine) on batches of 8 sequences
/// cycling through `train`, then measures it on `eval` (activations `eval_acts`).
#[allow(clippy::too_many_arguments)]
pub(super) fn train_and_measure(
    model: &HookedTransformer,
    loss: E2eLoss,
    coeff: f64,
    seed: u64,
    steps: usize,
    train: &Tensor,
    eval: &Tensor,
    eval_acts: &Tensor,
) -> Result<Measured> {
    let t = Instant::now();
    let mut cfg = E2eConfig::new(HOOK, D_SAE, loss);
    cfg.sparsity_coeff = coeff;
    cfg.lr = 1e-3;
    cfg.warmup_steps = 50;
    cfg.steps = steps;
    cfg.log_every = 100;
    cfg.seed = seed;
    let batches = train.size()[0] / 8;
    let mut sae_run = E2eSae::new(model, cfg)?;
    sae_run.train(model, &mut |step| {
        Ok(train.narrow(0, (step as i64 % batches) * 8, 8))
    })?;
    let sae = Rc::new(sae_run.sae("babyllama-tinystories")?);
    let sparsity = SparsityReport::measure(&sae, eval_acts, 4096)?;
    let splice = SpliceReport::measure(model, sae.clone(), None, eval)?;
    Ok(Measured {
        sae,
        sparsity,
        splice,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Writes `(name, tensor)` pairs to one safetensors file.
pub(super) fn write_tensors(named: &[(String, Tensor)], path: &Path) -> Result<()> {
    let refs: Vec<(&str, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    mechlens_checkpoint::safetensors::write(&refs, path)
}

/// Trains every SAE of the sweep for `steps` steps and writes `out`.
pub fn run(steps: usize, out: &Path) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    let model = datasets::babyllama(LoadOptions::default())?;
    println!("e2e-saes: sampling 512 + 64 sequences of 128 tokens from BabyLlama");
    let train = samples(&model, 512, 0)?;
    let eval = samples(&model, 64, 1)?;
    mechlens_checkpoint::safetensors::write(
        &[("tokens", eval.shallow_clone())],
        &out.join("eval_tokens.safetensors"),
    )?;
    let eval_acts = {
        let _guard = tch::no_grad_guard();
        model.run_to_hook(&eval, model.hook_point(HOOK)?)?
    };
    let mut runs: Vec<(&str, f64, E2eLoss)> = Vec::new();
    for c in LOCAL_COEFFS {
        runs.push(("local", c, E2eLoss::Local));
    }
    for c in E2E_COEFFS {
        runs.push(("e2e", c, E2eLoss::EndToEnd));
    }
    for c in E2E_COEFFS {
        runs.push((
            "e2e+ds",
            c,
            E2eLoss::EndToEndDownstream {
                hooks: DOWNSTREAM.iter().map(|h| (*h).to_string()).collect(),
                coeff: 2.5,
            },
        ));
    }
    let mut csv = String::from(
        "kind,sparsity_coeff,l0,dead_latents,explained_variance,ce_clean,ce_with_sae,ce_increase,kl,seconds\n",
    );
    let mut decoders: Vec<(String, Tensor)> = Vec::new();
    // The sweep's SAEs all start from E2eConfig's default seed (the committed run's).
    let default_seed = E2eConfig::new(HOOK, D_SAE, E2eLoss::Local).seed;
    for (kind, coeff, loss) in runs {
        let Measured {
            sae,
            sparsity,
            splice,
            seconds,
        } = train_and_measure(
            &model,
            loss,
            coeff,
            default_seed,
            steps,
            &train,
            &eval,
            &eval_acts,
        )?;
        decoders.push((format!("{kind}-{coeff}"), sae.w_dec.f_to_kind(Kind::Half)?));
        println!(
            "e2e-saes: {kind} {coeff}: L0 {:.1}, CE {:.4} (clean {:.4}), KL {:.4}, {seconds:.0} s",
            sparsity.l0, splice.ce_with_sae, splice.ce_clean, splice.kl_with_sae
        );
        csv.push_str(&format!(
            "{kind},{coeff},{},{},{},{},{},{},{},{seconds:.1}\n",
            sparsity.l0,
            sparsity.dead_latents,
            sparsity.explained_variance,
            splice.ce_clean,
            splice.ce_with_sae,
            splice.ce_with_sae - splice.ce_clean,
            splice.kl_with_sae,
        ));
    }
    write_file(&out.join("metrics.csv"), &csv)?;
    write_tensors(&decoders, &out.join("decoders.safetensors"))?;
    let run = serde_json::json!({
        "command": format!("mechlens train-toy e2e-saes --out {} --steps {steps}", out.display()),
        "hook": HOOK,
        "d_sae": D_SAE,
        "steps": steps,
        "batch": "8 x 128 tokens",
        "threads": tch::get_num_threads(),
    });
    finish_run(out, &run, started)
}
