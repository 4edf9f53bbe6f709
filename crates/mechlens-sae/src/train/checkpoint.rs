//! Checkpoints: `DIR/step_NNNNNNNN/` holding the training weights (`sae_weights.safetensors`,
//! SAELens' names, with `cfg.json`), the optimiser and dead-latent state
//! (`trainer_state.safetensors`) and the rest (`trainer.json`: step, config, log). Each is
//! written into a hidden temporary folder that is renamed into place when complete.

use std::path::{Path, PathBuf};

use mechlens_checkpoint::Checkpoint as Weights;
use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{LogRow, TrainConfig, Trainer};
use mechlens_checkpoint::{atomic, safetensors};

use crate::format::{CFG_FILE, WEIGHTS_FILE};

const STATE_FILE: &str = "trainer_state.safetensors";
const META_FILE: &str = "trainer.json";

#[derive(Serialize, Deserialize)]
struct Meta {
    step: usize,
    topk_threshold: f64,
    norm_scale: Option<f64>,
    config: TrainConfig,
    log: Vec<LogRow>,
}

/// Fails early, with the folder named, when checkpoints could not be written there.
pub(crate) fn check_writable(dir: &Path) -> Result<()> {
    atomic::create_dir(dir)?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|source| Error::Io {
        action: "writing a checkpoint into",
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub(crate) fn save(trainer: &Trainer, dir: &Path) -> Result<PathBuf> {
    let name = format!("step_{:08}", trainer.step);
    let final_dir = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    atomic::create_dir(&tmp)?;
    let cpu =
        |t: &Tensor| -> Result<Tensor> { Ok(t.detach().f_to_device(Device::Cpu)?.f_contiguous()?) };
    let params = trainer.sae.named_parameters();
    let weights: Vec<(&str, Tensor)> = params
        .iter()
        .map(|(n, t)| Ok((*n, cpu(t)?)))
        .collect::<Result<_>>()?;
    safetensors::write(&weights, &tmp.join(WEIGHTS_FILE))?;
    let names: Vec<String> = params
        .iter()
        .flat_map(|(n, _)| [format!("adam_m.{n}"), format!("adam_v.{n}")])
        .collect();
    let mut state: Vec<(&str, Tensor)> = Vec::new();
    for (i, (m, v)) in trainer.adam_m.iter().zip(&trainer.adam_v).enumerate() {
        state.push((&names[2 * i], cpu(m)?));
        state.push((&names[2 * i + 1], cpu(v)?));
    }
    state.push(("steps_since_fired", cpu(&trainer.steps_since_fired)?));
    safetensors::write(&state, &tmp.join(STATE_FILE))?;
    let json = |v: &serde_json::Value| {
        serde_json::to_vec_pretty(v).map_err(|e| Error::invalid("checkpoint", e.to_string()))
    };
    atomic::write(&tmp.join(CFG_FILE), &json(&trainer.sae.cfg.to_json())?)?;
    let meta = Meta {
        step: trainer.step,
        topk_threshold: trainer.topk_threshold,
        norm_scale: trainer.norm_scale,
        config: trainer.cfg.clone(),
        log: trainer.log.clone(),
    };
    let meta =
        serde_json::to_value(&meta).map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
    atomic::write(&tmp.join(META_FILE), &json(&meta)?)?;
    let _ = std::fs::remove_dir_all(&final_dir);
    atomic::rename_dir(&tmp, &final_dir)?;
    Ok(final_dir)
}

/// The newest complete checkpoint under `dir`.
pub(crate) fn latest(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        action: "reading checkpoints from",
        path: dir.to_path_buf(),
        source,
    })?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step_"))
                && p.join(META_FILE).is_file()
        })
        .max()
        .ok_or_else(|| Error::Training {
            step: 0,
            reason: format!(
                "no checkpoint (step_*/ with {META_FILE}) in {}",
                dir.display()
            ),
        })
}

impl Trainer {
    /// Continues the run whose checkpoints are in `dir` (the newest `step_*` there, or `dir`
    /// itself when it is one checkpoint).
    ///
    /// # Errors
    /// [`Error::Training`] when there is no checkpoint, [`Error::Io`] / [`Error::WeightFile`] /
    /// [`Error::Config`] when one is unreadable.
    pub fn resume(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let ckpt = if dir.join(META_FILE).is_file() {
            dir.to_path_buf()
        } else {
            latest(dir)?
        };
        let meta_path = ckpt.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|source| Error::Io {
            action: "reading",
            path: meta_path.clone(),
            source,
        })?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: meta_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut trainer = Trainer::new(meta.config)?;
        let weights =
            Weights::from_safetensors(&[ckpt.join(WEIGHTS_FILE)], Kind::Float, Device::Cpu)?;
        let state = Weights::from_safetensors(&[ckpt.join(STATE_FILE)], Kind::Float, Device::Cpu)?;
        let names = trainer.sae.parameter_names();
        for (i, p) in trainer.sae.parameters_mut().into_iter().enumerate() {
            let shape = p.size();
            *p = weights.get(names[i], &shape)?.set_requires_grad(true);
            trainer.adam_m[i] = state.get(&format!("adam_m.{}", names[i]), &shape)?;
            trainer.adam_v[i] = state.get(&format!("adam_v.{}", names[i]), &shape)?;
        }
        let d_sae = trainer.cfg.d_sae;
        trainer.steps_since_fired = state
            .get("steps_since_fired", &[d_sae])?
            .f_to_kind(Kind::Int64)?;
        trainer.step = meta.step;
        trainer.topk_threshold = meta.topk_threshold;
        trainer.norm_scale = meta.norm_scale;
        trainer.log = meta.log;
        Ok(trainer)
    }
}
