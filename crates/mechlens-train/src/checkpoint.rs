//! Checkpoints of a model training run: `step_NNNNNNNN/` holding the model as a loadable
//! folder (`config.json`, `model.safetensors`), AdamW's moments (`optimizer.safetensors`) and
//! the run's state and log (`trainer.json`). Written into a temporary folder and renamed, so
//! a folder that exists is complete. [`ModelTrainer::resume_from`] continues to the same bits
//! the uninterrupted run reaches.

use std::path::Path;

use mechlens_checkpoint::{atomic, safetensors};
use mechlens_core::{Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::config::ModelTrainConfig;
use crate::log::LogRow;
use crate::trainer::ModelTrainer;

/// `trainer.json`.
#[derive(Serialize, Deserialize)]
struct State {
    step: usize,
    adam_steps: usize,
    config: ModelTrainConfig,
    log: Vec<LogRow>,
}

/// The folder of the checkpoint after `step` steps.
pub fn step_dir(dir: &Path, step: usize) -> std::path::PathBuf {
    dir.join(format!("step_{step:08}"))
}

pub(crate) fn save(trainer: &ModelTrainer, dir: &Path) -> Result<()> {
    atomic::create_dir(dir)?;
    let target = step_dir(dir, trainer.step);
    let tmp = atomic::temp_name(&target);
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    atomic::create_dir(&tmp)?;
    trainer.model.save(&tmp)?;
    let _guard = tch::no_grad_guard();
    let mut moments: Vec<(String, Tensor)> = Vec::new();
    for (((name, _), m), v) in trainer
        .params
        .iter()
        .zip(&trainer.adam.m)
        .zip(&trainer.adam.v)
    {
        moments.push((format!("m.{name}"), m.shallow_clone()));
        moments.push((format!("v.{name}"), v.shallow_clone()));
    }
    let refs: Vec<(&str, Tensor)> = moments
        .iter()
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    safetensors::write(&refs, &tmp.join("optimizer.safetensors"))?;
    let state = State {
        step: trainer.step,
        adam_steps: trainer.adam.steps,
        config: trainer.cfg.clone(),
        log: trainer.log.clone(),
    };
    let json = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::invalid("trainer state", e.to_string()))?;
    atomic::write(&tmp.join("trainer.json"), &json)?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|source| Error::Io {
            action: "replacing",
            path: target.clone(),
            source,
        })?;
    }
    atomic::rename_dir(&tmp, &target)
}

impl ModelTrainer {
    /// Continues the run saved in `step_dir` (a `step_NNNNNNNN/` folder): its weights, AdamW's
    /// moments, step and log replace this trainer's. The trainer must have been made for a
    /// model of the same config; its own settings (this `ModelTrainConfig`) apply from here.
    ///
    /// # Errors
    /// [`Error::Training`] when the checkpoint is of another model config or lacks a
    /// parameter; [`Error::Io`]/[`Error::Config`] when its files cannot be read.
    pub fn resume_from(&mut self, step_dir: &Path) -> Result<()> {
        let stop = |reason: String| Error::Training {
            step: self.step,
            reason,
        };
        let ours = self
            .model
            .transformer_config()
            .ok_or_else(|| stop("this model was not built from a config, so it cannot be resumed from a checkpoint".into()))?
            .clone();
        let saved = HookedTransformer::from_pretrained(
            &step_dir.to_string_lossy(),
            LoadOptions {
                device: self.model.device(),
                ..LoadOptions::default()
            },
        )?;
        let theirs = saved
            .transformer_config()
            .ok_or_else(|| stop(format!("{} holds no model config", step_dir.display())))?;
        if *theirs != ours {
            return Err(stop(format!(
                "the checkpoint in {} is of another model config ({}), and this run trains {}; resume with the config it was saved with",
                step_dir.display(),
                theirs.summary(),
                ours.summary()
            )));
        }
        let bytes = std::fs::read(step_dir.join("trainer.json")).map_err(|source| Error::Io {
            action: "reading",
            path: step_dir.join("trainer.json"),
            source,
        })?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path: step_dir.join("trainer.json").display().to_string(),
            reason: e.to_string(),
        })?;
        let moments = safetensors::read(&step_dir.join("optimizer.safetensors"))?;
        let find = |name: String| -> Result<Tensor> {
            moments
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| stop(format!("{} lacks {name}", step_dir.display())))
        };
        let weights = saved.named_parameters();
        let _guard = tch::no_grad_guard();
        // Every weight, frozen ones too; AdamW's moments for the trained ones.
        for (name, p) in self.model.named_parameters() {
            let from = weights
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| stop(format!("the checkpoint's model lacks {name}")))?;
            p.shallow_clone().f_copy_(from)?;
        }
        for (i, (name, _)) in self.params.iter().enumerate() {
            self.adam.m[i].f_copy_(&find(format!("m.{name}"))?)?;
            self.adam.v[i].f_copy_(&find(format!("v.{name}"))?)?;
        }
        self.adam.steps = state.adam_steps;
        self.step = state.step;
        self.log = state.log;
        Ok(())
    }
}
