//! [`ModelTrainConfig`]: everything a training run of a model depends on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::adamw::AdamWConfig;
use crate::schedule::Schedule;

/// A model training run's settings.
///
/// ```
/// # use mechlens_train::{ModelTrainConfig, Schedule};
/// let cfg = ModelTrainConfig::new(2_000, Schedule::constant(1e-3)).weight_decay(1.0);
/// assert_eq!(cfg.optimizer.weight_decay, 1.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelTrainConfig {
    /// Steps in the whole run.
    pub total_steps: usize,
    /// Learning rate over the run.
    pub schedule: Schedule,
    /// AdamW's betas, ε and weight decay.
    pub optimizer: AdamWConfig,
    /// Global gradient-norm clip (`None`: no clipping).
    pub clip_grad_norm: Option<f64>,
    /// Cross-entropy on f64 logits (grokking: f32 rounding stalls a loss near 1e-7).
    pub loss_in_f64: bool,
    /// Log a row every this many steps (and at the last step).
    pub log_every: usize,
    /// Print a progress line every this many steps (0: silent).
    pub progress_every: usize,
    /// Write a checkpoint every this many steps (needs `checkpoint_dir`).
    pub checkpoint_every: Option<usize>,
    /// Folder of checkpoints (`step_00000100/` ...).
    pub checkpoint_dir: Option<PathBuf>,
    /// Parameters (by their name in `HookedTransformer::named_parameters`, e.g.
    /// `blocks.0.attn.b_q`) kept as they are: no gradient, no AdamW update, no weight decay.
    #[serde(default)]
    pub frozen: Vec<String>,
}

impl ModelTrainConfig {
    /// `total_steps` of AdamW (PyTorch's defaults) under `schedule`, a log row every 10
    /// steps, no clipping, no checkpoints, silent.
    pub fn new(total_steps: usize, schedule: Schedule) -> Self {
        Self {
            total_steps,
            schedule,
            optimizer: AdamWConfig::default(),
            clip_grad_norm: None,
            loss_in_f64: false,
            log_every: 10,
            progress_every: 0,
            checkpoint_every: None,
            checkpoint_dir: None,
            frozen: Vec::new(),
        }
    }

    /// The same with AdamW's β₁ and β₂.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.optimizer.betas = (beta1, beta2);
        self
    }

    /// The same with AdamW's weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.optimizer.weight_decay = weight_decay;
        self
    }

    /// The same with a log row every `every` steps.
    pub fn log_every(mut self, every: usize) -> Self {
        self.log_every = every;
        self
    }

    /// The same with a progress line every `every` steps.
    pub fn progress_every(mut self, every: usize) -> Self {
        self.progress_every = every;
        self
    }

    /// The same with `names` (as `HookedTransformer::named_parameters` spells them) frozen
    /// where they are, as TransformerLens' grokking demo freezes its biases at zero.
    pub fn freeze<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.frozen.extend(names.into_iter().map(Into::into));
        self
    }

    /// The same with a checkpoint into `dir` every `every` steps.
    pub fn checkpoints(mut self, dir: impl Into<PathBuf>, every: usize) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self.checkpoint_every = Some(every);
        self
    }
}
