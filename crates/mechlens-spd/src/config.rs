//! [`SpdConfig`]: an SPD run's settings, defaulting to the paper's TMS 5-2 configuration.

use mechlens_core::{Error, Result};
use mechlens_train::Decay;
use tch::Tensor;

/// An SPD run's settings (defaults: the SPD paper's `tms_5-2` config).
#[derive(Clone, Debug, PartialEq)]
pub struct SpdConfig {
    /// Subcomponents per decomposed matrix (20).
    pub c: i64,
    /// Hidden width of each causal-importance MLP (16).
    pub ci_hidden: i64,
    /// Importance minimality coefficient (3e-3).
    pub importance_minimality_coeff: f64,
    /// The `p` of `Σ |g|^p` (1.0).
    pub p: f64,
    /// Stochastic reconstruction, every decomposed layer masked at once (1.0).
    pub stochastic_recon_coeff: f64,
    /// Stochastic reconstruction, one layer masked at a time (1.0).
    pub stochastic_recon_layerwise_coeff: f64,
    /// Faithfulness `‖W − V·U‖²` (used when `use_delta_component` is false; 0 by default).
    pub faithfulness_coeff: f64,
    /// Give `W − V·U` a mask of its own (uniform noise) instead of a faithfulness loss (true).
    pub use_delta_component: bool,
    /// Samples per step (4096).
    pub batch_size: i64,
    /// Steps after the warm-up (10,000).
    pub steps: usize,
    /// Peak learning rate (1e-3).
    pub lr: f64,
    /// How it moves over the steps (cosine to 0; the residual-MLP config holds it constant).
    pub lr_decay: Decay,
    /// Steps that fit `V·U` to `W` alone before SPD starts (200).
    pub faithfulness_warmup_steps: usize,
    /// Their learning rate (0.01).
    pub faithfulness_warmup_lr: f64,
    /// Their weight decay (0.1).
    pub faithfulness_warmup_weight_decay: f64,
    /// A subcomponent is alive when its importance exceeds this on some sample (0.1).
    pub ci_alive_threshold: f64,
    /// Log a row every this many steps (100).
    pub log_every: usize,
    /// How the decomposed model's output is compared with the target's (mean squared
    /// error; a language model's logits: KL divergence, as the paper's LM runs).
    pub output_loss: OutputLoss,
    /// Seed of the initial weights and of the masks' noise.
    pub seed: u64,
}

/// How stochastic reconstruction compares two outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLoss {
    /// Mean squared error over every output entry (toy models).
    Mse,
    /// `KL(p_target ‖ p_decomposed)` of the softmax over the last dim, mean over the other
    /// dims (a language model's next-token distributions).
    Kl,
}

impl OutputLoss {
    /// The loss of `output` against `target`, both `[..., d_out]`.
    ///
    /// # Errors
    /// libtorch's, for outputs of different shapes.
    pub fn between(self, output: &Tensor, target: &Tensor) -> Result<Tensor> {
        match self {
            Self::Mse => Ok(output.f_mse_loss(target, tch::Reduction::Mean)?),
            Self::Kl => mechlens_train::kl_divergence(target, output),
        }
    }
}

impl Default for SpdConfig {
    fn default() -> Self {
        Self {
            c: 20,
            ci_hidden: 16,
            importance_minimality_coeff: 3e-3,
            p: 1.0,
            stochastic_recon_coeff: 1.0,
            stochastic_recon_layerwise_coeff: 1.0,
            faithfulness_coeff: 0.0,
            use_delta_component: true,
            batch_size: 4096,
            steps: 10_000,
            lr: 1e-3,
            lr_decay: Decay::Cosine { final_lr: 0.0 },
            faithfulness_warmup_steps: 200,
            faithfulness_warmup_lr: 0.01,
            faithfulness_warmup_weight_decay: 0.1,
            ci_alive_threshold: 0.1,
            log_every: 100,
            output_loss: OutputLoss::Mse,
            seed: 0,
        }
    }
}

impl SpdConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first unusable setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(Error::invalid(what, why));
        if self.c < 1 {
            return bad(
                "C",
                format!("needs at least 1 subcomponent per matrix, got {}", self.c),
            );
        }
        if self.ci_hidden < 1 {
            return bad(
                "ci_hidden",
                format!("must be at least 1, got {}", self.ci_hidden),
            );
        }
        if !(self.p.is_finite() && self.p > 0.0) {
            return bad(
                "p",
                format!(
                    "the importance penalty's p must be positive, got {}",
                    self.p
                ),
            );
        }
        if self.batch_size < 1 {
            return bad(
                "batch_size",
                format!("must be at least 1, got {}", self.batch_size),
            );
        }
        for (name, v) in [
            (
                "importance_minimality_coeff",
                self.importance_minimality_coeff,
            ),
            ("stochastic_recon_coeff", self.stochastic_recon_coeff),
            (
                "stochastic_recon_layerwise_coeff",
                self.stochastic_recon_layerwise_coeff,
            ),
            ("faithfulness_coeff", self.faithfulness_coeff),
            ("lr", self.lr),
            ("faithfulness_warmup_lr", self.faithfulness_warmup_lr),
            (
                "faithfulness_warmup_weight_decay",
                self.faithfulness_warmup_weight_decay,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, format!("must be finite and not negative, got {v}"));
            }
        }
        Ok(())
    }
}
