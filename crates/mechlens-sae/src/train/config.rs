//! [`TrainConfig`]: everything a training run depends on. Defaults follow SAELens'
//! `LanguageModelSAERunnerConfig` and training-SAE configs where they have one.

use serde::{Deserialize, Serialize};

use super::kinds::TrainArchitecture;
use crate::config::{ActivationNorm, SaeConfig};

/// How the learning rate moves after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Constant (then the optional linear decay).
    Constant,
    /// Cosine from `lr` to `lr_end` over the steps after warm-up.
    Cosine,
}

/// A training run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture and sparsity penalty.
    pub sae: TrainArchitecture,
    /// Width of the activations.
    pub d_in: i64,
    /// Number of latents.
    pub d_sae: i64,
    /// Activations per step.
    pub batch_size: i64,
    /// Steps in the whole run.
    pub total_steps: usize,
    /// Peak learning rate (SAELens 3e-4).
    pub lr: f64,
    /// Final learning rate of the cosine or decay phase (SAELens: lr / 10).
    pub lr_end: f64,
    /// Linear warm-up from ~0 to `lr` over this many steps.
    pub lr_warm_up_steps: usize,
    /// Linear decay to `lr_end` over the last this many steps.
    pub lr_decay_steps: usize,
    /// Schedule between warm-up and decay.
    pub lr_schedule: LrSchedule,
    /// Adam β₁ (0.9).
    pub adam_beta1: f64,
    /// Adam β₂ (0.999).
    pub adam_beta2: f64,
    /// Linear warm-up of the L1/L0 coefficient from 0 over this many steps.
    pub sparsity_warm_up_steps: usize,
    /// Global gradient-norm clip (1.0; `None` to disable).
    pub clip_grad_norm: Option<f64>,
    /// A latent that has not fired for this many steps is dead (SAELens 1000).
    pub dead_feature_window: usize,
    /// Subtract `b_dec` from inputs before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input scaling (`expected_average_only_in` is fitted on the first batches and folded
    /// into the saved weights).
    pub normalize_activations: ActivationNorm,
    /// Decoder rows start at this norm (SAELens 0.1); `None` keeps Kaiming-uniform norms.
    pub decoder_init_norm: Option<f64>,
    /// TopK/BatchTopK: rank by pre-activation × decoder norm (SAELens default for training).
    pub rescale_acts_by_decoder_norm: bool,
    /// Seed of the initial weights (batches are seeded by the source).
    pub seed: u64,
    /// Log a row every this many steps.
    pub log_every: usize,
    /// Write a checkpoint every this many steps (needs `checkpoint_dir`).
    pub checkpoint_every: Option<usize>,
    /// Folder of checkpoints (`step_00000100/` ...).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Print a progress line every this many steps (0: silent).
    pub progress_every: usize,
    /// Model and hook the activations come from (written into the SAE's metadata).
    pub model_name: Option<String>,
    /// Hook point the activations come from.
    pub hook_name: Option<String>,
}

impl TrainConfig {
    /// SAELens' defaults for `sae` on `d_in` → `d_sae`: batches of 4096 activations, 488
    /// steps (SAELens' 2,000,000 training tokens); set them with
    /// [`TrainConfig::batch_size`] and [`TrainConfig::total_steps`], or any field directly.
    ///
    /// ```
    /// # use mechlens_sae::train::{TrainArchitecture, TrainConfig};
    /// let cfg = TrainConfig::new(TrainArchitecture::topk(32), 512, 4096)
    ///     .batch_size(1024)
    ///     .total_steps(2_000);
    /// assert_eq!((cfg.batch_size, cfg.total_steps), (1024, 2_000));
    /// ```
    pub fn new(sae: TrainArchitecture, d_in: i64, d_sae: i64) -> Self {
        let (batch_size, total_steps) = (4096, 488);
        let lr = 3e-4;
        Self {
            rescale_acts_by_decoder_norm: sae.kind().selects_top_k(),
            sae,
            d_in,
            d_sae,
            batch_size,
            total_steps,
            lr,
            lr_end: lr / 10.0,
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            lr_schedule: LrSchedule::Constant,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            sparsity_warm_up_steps: 0,
            clip_grad_norm: Some(1.0),
            dead_feature_window: 1000,
            apply_b_dec_to_input: true,
            normalize_activations: ActivationNorm::None,
            decoder_init_norm: Some(0.1),
            seed: 42,
            log_every: 10,
            checkpoint_every: None,
            checkpoint_dir: None,
            progress_every: 0,
            model_name: None,
            hook_name: None,
        }
    }

    /// The same with `batch_size` activations per step.
    pub fn batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The same with `total_steps` steps.
    pub fn total_steps(mut self, total_steps: usize) -> Self {
        self.total_steps = total_steps;
        self
    }

    /// The learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let warm = self.lr_warm_up_steps;
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let decay_start = self
            .total_steps
            .saturating_sub(self.lr_decay_steps)
            .max(warm);
        if self.lr_decay_steps > 0 && step >= decay_start {
            let t = (step - decay_start + 1) as f64 / self.lr_decay_steps as f64;
            return self.lr + (self.lr_end - self.lr) * t.min(1.0);
        }
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let span = decay_start.saturating_sub(warm).max(1) as f64;
                let t = (step - warm) as f64 / span;
                self.lr_end
                    + 0.5 * (self.lr - self.lr_end) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// The sparsity coefficient at `step`, after its warm-up.
    pub fn sparsity_coefficient_at(&self, step: usize) -> f64 {
        let c = self.sae.kind().sparsity_coefficient();
        let warm = self.sparsity_warm_up_steps;
        if step < warm {
            c * (step + 1) as f64 / warm as f64
        } else {
            c
        }
    }

    /// The inference config of the SAE this run produces.
    pub fn sae_config(&self) -> SaeConfig {
        let mut cfg = SaeConfig::new(self.sae.inference(), self.d_in, self.d_sae);
        cfg.apply_b_dec_to_input = self.apply_b_dec_to_input;
        cfg.normalize_activations = match self.normalize_activations {
            // Fitted scale is folded into the weights when saved.
            ActivationNorm::ExpectedAverageOnlyIn => ActivationNorm::None,
            other => other,
        };
        self.sae.kind().saved_config(&mut cfg);
        let meta = &mut cfg.metadata;
        if let Some(m) = &self.model_name {
            meta.insert("model_name".into(), m.clone().into());
        }
        if let Some(h) = &self.hook_name {
            meta.insert("hook_name".into(), h.clone().into());
        }
        meta.insert("training_architecture".into(), self.sae.name().into());
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_warm_up_then_decay() {
        let mut cfg = TrainConfig::new(TrainArchitecture::standard(1.0), 4, 8)
            .batch_size(2)
            .total_steps(100);
        cfg.lr_warm_up_steps = 10;
        cfg.lr_decay_steps = 20;
        assert!((cfg.lr_at(0) - 3e-5).abs() < 1e-12);
        assert!((cfg.lr_at(9) - 3e-4).abs() < 1e-12);
        assert!((cfg.lr_at(50) - 3e-4).abs() < 1e-12);
        assert!((cfg.lr_at(99) - 3e-5).abs() < 1e-12);
        cfg.lr_decay_steps = 0;
        cfg.lr_schedule = LrSchedule::Cosine;
        assert!((cfg.lr_at(10) - 3e-4).abs() < 1e-12);
        assert!((cfg.lr_at(55) - (3e-5 + 0.5 * 2.7e-4)).abs() < 1e-12);
        cfg.sparsity_warm_up_steps = 4;
        assert_eq!(cfg.sparsity_coefficient_at(1), 0.5);
        assert_eq!(cfg.sparsity_coefficient_at(7), 1.0);
    }
}
