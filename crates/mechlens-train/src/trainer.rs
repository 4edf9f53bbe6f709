//! [`ModelTrainer`]: trains a [`HookedTransformer`]'s weights in place.
//!
//! Each step: the step's batch from [`TrainData`], logits with the autograd graph kept (the
//! model's persistent hooks apply, so hooks work during training), cross-entropy over the
//! scored positions, backward, optional global-norm clipping, AdamW at the schedule's rate.
//! A NaN or infinite loss stops the run with [`Error::Training`] before the weights change.

use std::time::Duration;

use mechlens_core::progress::Progress;
use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::DataFrame;
use tch::{Kind, Tensor};

use crate::adamw::AdamW;
use crate::config::ModelTrainConfig;
use crate::data::{Batch, IGNORE, TrainData};
use crate::log::{LogRow, log_frame};

/// What a metric computes from the model (run under `no_grad`).
type MetricFn = Box<dyn FnMut(&HookedTransformer) -> Result<f64>>;

/// A metric logged every `every` steps.
pub(crate) struct Metric {
    pub name: String,
    pub every: usize,
    pub f: MetricFn,
}

/// A training run that owns its model (a notebook keeps the trainer in one variable and
/// reads the model through [`ModelTrainer::model`]).
pub struct ModelTrainer {
    pub(crate) model: HookedTransformer,
    pub(crate) cfg: ModelTrainConfig,
    pub(crate) params: Vec<(String, Tensor)>,
    pub(crate) adam: AdamW,
    pub(crate) step: usize,
    pub(crate) log: Vec<LogRow>,
    metrics: Vec<Metric>,
}

impl ModelTrainer {
    /// A run over `model`'s weights from where they are now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for unusable settings (0 steps, a learning rate that is not a
    /// positive number, `checkpoint_every` without `checkpoint_dir`, 0 for `log_every` or
    /// `checkpoint_every`, a frozen name the model has no parameter of).
    pub fn new(model: HookedTransformer, cfg: ModelTrainConfig) -> Result<Self> {
        validate(&cfg)?;
        let all = model.named_parameters();
        if let Some(unknown) = cfg
            .frozen
            .iter()
            .find(|f| !all.iter().any(|(n, _)| n == *f))
        {
            let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::invalid(
                "frozen parameter",
                format!(
                    "the model has no parameter {unknown:?}; its parameters are {}",
                    names.join(", ")
                ),
            ));
        }
        // Frozen weights take no gradient and are not handed to AdamW (no decay either).
        let (frozen, params): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(n, _)| cfg.frozen.contains(n));
        for (_, p) in &frozen {
            let _ = p.shallow_clone().f_requires_grad_(false)?;
        }
        for (_, p) in &params {
            let _ = p.shallow_clone().f_requires_grad_(true)?;
        }
        let tensors: Vec<Tensor> = params.iter().map(|(_, p)| p.shallow_clone()).collect();
        Ok(Self {
            adam: AdamW::new(cfg.optimizer, &tensors)?,
            model,
            cfg,
            params,
            step: 0,
            log: Vec::new(),
            metrics: Vec::new(),
        })
    }

    /// Logs `f(model)` under `name` every `every` steps (and at the last step).
    pub fn with_metric(
        mut self,
        name: &str,
        every: usize,
        f: impl FnMut(&HookedTransformer) -> Result<f64> + 'static,
    ) -> Self {
        self.metrics.push(Metric {
            name: name.to_string(),
            every: every.max(1),
            f: Box::new(f),
        });
        self
    }

    /// The model being trained.
    pub fn model(&self) -> &HookedTransformer {
        &self.model
    }

    /// The model, ending the run.
    pub fn into_model(self) -> HookedTransformer {
        for (_, p) in &self.params {
            let _ = p.shallow_clone().f_requires_grad_(false);
        }
        self.model
    }

    /// The settings.
    pub fn config(&self) -> &ModelTrainConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The log: `step`, `loss`, `lr`, then one column per metric (null between its steps).
    ///
    /// # Errors
    /// [`Error::Table`] if polars fails.
    pub fn log_frame(&self) -> Result<DataFrame> {
        let names: Vec<&str> = self.metrics.iter().map(|m| m.name.as_str()).collect();
        log_frame(&self.log, &names)
    }

    /// Runs to `total_steps`.
    ///
    /// # Errors
    /// As [`ModelTrainer::train_steps`].
    pub fn run(&mut self, data: &mut dyn TrainData) -> Result<()> {
        self.train_steps(data, self.cfg.total_steps.saturating_sub(self.step))
    }

    /// Runs `n` more steps (never past `total_steps`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for token ids or targets outside the vocabulary;
    /// [`Error::Training`] for a NaN or infinite loss (weights untouched, earlier checkpoints
    /// intact); [`Error::Io`] when a checkpoint cannot be written; a metric's own error.
    pub fn train_steps(&mut self, data: &mut dyn TrainData, n: usize) -> Result<()> {
        let end = (self.step + n).min(self.cfg.total_steps);
        let every = self.cfg.progress_every;
        let mut progress = (every > 0).then(|| {
            Progress::new("steps", self.cfg.total_steps as u64)
                .starting_at(self.step as u64)
                .unit("steps")
                .every(Duration::ZERO)
        });
        while self.step < end {
            let loss = self.train_step(data)?;
            if let Some(progress) = progress.as_mut()
                && (self.step.is_multiple_of(every) || self.step == end)
            {
                progress.note(format!("loss {loss:.4}"));
                progress.advance((self.step as u64).saturating_sub(progress.done()));
            }
            if let (Some(every), Some(dir)) =
                (self.cfg.checkpoint_every, self.cfg.checkpoint_dir.clone())
                && self.step.is_multiple_of(every)
            {
                crate::checkpoint::save(self, &dir)?;
            }
        }
        Ok(())
    }

    /// One step; returns its loss.
    fn train_step(&mut self, data: &mut dyn TrainData) -> Result<f64> {
        let step = self.step;
        let batch = data.batch(step)?;
        check_targets(&batch, self.model.cfg().d_vocab as i64, step)?;
        // When the loss reads only some positions (modular addition reads the last), the
        // last block's MLP and the unembedding run only there: equal logits, less work.
        let scored = scored_positions(&batch.targets)?;
        let (logits, targets) = if scored.len() < batch.tokens.size()[1] as usize {
            let keep = Tensor::from_slice(&scored).f_to_device(batch.targets.device())?;
            let logits = self.model.forward_with_grad_at(
                &batch.tokens,
                mechlens_core::Hooks::new(),
                &scored,
            )?;
            (logits, batch.targets.f_index_select(1, &keep)?)
        } else {
            let logits = self
                .model
                .forward_with_grad(&batch.tokens, mechlens_core::Hooks::new())?;
            (logits, batch.targets.shallow_clone())
        };
        let loss = cross_entropy(&logits, &targets, self.cfg.loss_in_f64)?;
        let value = loss.f_double_value(&[])?;
        if !value.is_finite() {
            return Err(Error::Training {
                step,
                reason: format!(
                    "the loss is {value}; the weights were not updated{}",
                    self.cfg
                        .checkpoint_dir
                        .as_ref()
                        .map_or(String::new(), |d| format!(
                            ", and the checkpoints in {} are intact",
                            d.display()
                        ))
                ),
            });
        }
        let tensors = self.tensors();
        for p in &tensors {
            let mut p = p.shallow_clone();
            p.zero_grad();
        }
        loss.f_backward()?;
        let mut grads: Vec<Tensor> = tensors
            .iter()
            .map(|p| {
                let g = p.grad();
                if g.defined() { g } else { p.zeros_like() }
            })
            .collect();
        if let Some(max) = self.cfg.clip_grad_norm {
            clip(&mut grads, max)?;
        }
        let lr = self.cfg.schedule.at(step, self.cfg.total_steps);
        self.adam.step(&tensors, &grads, lr)?;
        self.step += 1;
        let last = self.step == self.cfg.total_steps;
        let mut row = LogRow {
            step,
            loss: value,
            lr,
            metrics: Vec::new(),
        };
        let _guard = tch::no_grad_guard();
        for m in &mut self.metrics {
            if step.is_multiple_of(m.every) || last {
                row.metrics.push((m.name.clone(), (m.f)(&self.model)?));
            }
        }
        if step.is_multiple_of(self.cfg.log_every.max(1)) || last || !row.metrics.is_empty() {
            self.log.push(row);
        }
        Ok(value)
    }

    pub(crate) fn tensors(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, p)| p.shallow_clone()).collect()
    }
}

/// Mean cross-entropy over the scored positions.
///
/// # Shapes
/// - `logits`: `[batch, pos, d_vocab]`, `targets`: `[batch, pos]` → scalar
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, in_f64: bool) -> Result<Tensor> {
    let v = logits.size().last().copied().unwrap_or(0);
    let flat = logits.f_reshape([-1, v])?;
    let flat = if in_f64 {
        flat.f_to_kind(Kind::Double)?
    } else {
        flat
    };
    Ok(flat.f_cross_entropy_loss::<Tensor>(
        &targets.f_reshape([-1])?,
        None,
        tch::Reduction::Mean,
        IGNORE,
        0.0,
    )?)
}

fn check_targets(batch: &Batch, vocab: i64, step: usize) -> Result<()> {
    let t = &batch.targets;
    if t.size() != batch.tokens.size() {
        return Err(Error::ShapeMismatch {
            what: format!("targets of step {step}'s batch"),
            expected: format!("{:?} (the tokens' shape)", batch.tokens.size()),
            got: t.size(),
        });
    }
    let scored = t.f_masked_select(&t.f_ne(IGNORE)?)?;
    if scored.numel() == 0 {
        return Err(Error::invalid(
            format!("targets of step {step}'s batch"),
            "no position is scored (every target is IGNORE)",
        ));
    }
    let (lo, hi) = (
        scored.f_min()?.f_int64_value(&[])?,
        scored.f_max()?.f_int64_value(&[])?,
    );
    if lo < 0 || hi >= vocab {
        return Err(Error::invalid(
            format!("targets of step {step}'s batch"),
            format!(
                "token ids must be in 0..{vocab} (the model's vocabulary) or IGNORE ({IGNORE}), got {}",
                if lo < 0 { lo } else { hi }
            ),
        ));
    }
    Ok(())
}

/// The positions (columns) where any row of `targets` is scored.
fn scored_positions(targets: &Tensor) -> Result<Vec<i64>> {
    let any = targets
        .f_ne(IGNORE)?
        .f_any_dims(&[0i64][..], false)?
        .f_nonzero()?
        .f_flatten(0, -1)?;
    Ok(Vec::try_from(&any)?)
}

/// `torch.nn.utils.clip_grad_norm_`: scales every gradient by `max / (norm + 1e-6)` when the
/// global norm is above `max`.
fn clip(grads: &mut [Tensor], max: f64) -> Result<()> {
    let mut total = 0.0;
    for g in grads.iter() {
        total += g.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
    }
    let scale = max / (total.sqrt() + 1e-6);
    if scale < 1.0 {
        for g in grads.iter_mut() {
            *g = g.f_mul_scalar(scale)?;
        }
    }
    Ok(())
}

fn validate(cfg: &ModelTrainConfig) -> Result<()> {
    let bad = |what: &str, reason: String| Err(Error::invalid(what, reason));
    if cfg.total_steps == 0 {
        return bad("total_steps", "must be at least 1".into());
    }
    let lr = cfg.schedule.lr;
    if !(lr.is_finite() && lr > 0.0) {
        return bad("lr", format!("must be a positive number, got {lr}"));
    }
    if cfg.checkpoint_every.is_some() && cfg.checkpoint_dir.is_none() {
        return bad("checkpoint_every", "needs checkpoint_dir".into());
    }
    if cfg.checkpoint_every == Some(0) || cfg.log_every == 0 {
        return bad(
            "training config",
            "checkpoint_every and log_every must be at least 1".into(),
        );
    }
    let (b1, b2) = cfg.optimizer.betas;
    if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
        return bad("betas", format!("must each be in [0, 1), got ({b1}, {b2})"));
    }
    Ok(())
}
