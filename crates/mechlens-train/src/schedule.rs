//! The learning rate over a run: a linear warm-up, then constant, cosine or linear decay.

use serde::{Deserialize, Serialize};

/// How the learning rate moves after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Decay {
    /// Stays at the peak.
    Constant,
    /// Cosine from the peak to `final_lr` at the last step.
    Cosine {
        /// Learning rate at the end.
        final_lr: f64,
    },
    /// Linear from the peak to `final_lr` at the last step.
    Linear {
        /// Learning rate at the end.
        final_lr: f64,
    },
}

/// Whether a loop that logs every `every` steps logs step `step` of `total`: the intervals and
/// the last step (an `every` of 0 counts as 1).
pub fn log_due(step: usize, every: usize, total: usize) -> bool {
    step.is_multiple_of(every.max(1)) || step + 1 == total
}

/// Peak learning rate, warm-up and decay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The learning rate after warm-up.
    pub lr: f64,
    /// Steps of linear warm-up from `lr / warmup_steps` to `lr` (0: none).
    pub warmup_steps: usize,
    /// Start the warm-up at zero instead: `lr · min(step / warmup_steps, 1)`, as PyTorch's
    /// `LambdaLR(opt, lambda step: min(step / w, 1))` does in the grokking paper's code (its
    /// step 0 moves only the moments; the peak comes a step later).
    #[serde(default)]
    pub warmup_from_zero: bool,
    /// After warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Self {
            lr,
            warmup_steps: 0,
            warmup_from_zero: false,
            decay: Decay::Constant,
        }
    }

    /// The learning rate at `step` (0-based) of a run of `total_steps`.
    pub fn at(&self, step: usize, total_steps: usize) -> f64 {
        let warm = self.warmup_steps;
        if self.warmup_from_zero && step < warm {
            return self.lr * step as f64 / warm as f64;
        }
        if step < warm {
            return self.lr * (step + 1) as f64 / warm as f64;
        }
        let span = total_steps.saturating_sub(warm).saturating_sub(1).max(1) as f64;
        let t = ((step - warm) as f64 / span).min(1.0);
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine { final_lr } => {
                final_lr + 0.5 * (self.lr - final_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Decay::Linear { final_lr } => self.lr + (final_lr - self.lr) * t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_each_decay_reaches_its_end() {
        let mut s = Schedule {
            lr: 1.0,
            warmup_steps: 4,
            warmup_from_zero: false,
            decay: Decay::Cosine { final_lr: 0.1 },
        };
        assert_eq!(s.at(0, 14), 0.25);
        assert_eq!(s.at(3, 14), 1.0);
        assert!((s.at(13, 14) - 0.1).abs() < 1e-12);
        // Half way through the decay, cosine is at the mean of its ends.
        assert!((s.at(9, 15) - 0.55).abs() < 1e-12);
        s.decay = Decay::Linear { final_lr: 0.0 };
        assert!((s.at(9, 15) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::constant(0.3).at(100, 10), 0.3);
    }

    #[test]
    fn a_warm_up_from_zero_is_the_grokking_papers_lambda_lr() {
        // torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(step / 10, 1)), lr 1e-3:
        // 0, 1e-4, 2e-4, ... 1e-3 from step 10 on.
        let s = Schedule {
            warmup_steps: 10,
            warmup_from_zero: true,
            ..Schedule::constant(1e-3)
        };
        let lrs: Vec<f64> = [0, 1, 5, 9, 10, 11, 500].map(|t| s.at(t, 1000)).to_vec();
        let expected = [0.0, 1e-4, 5e-4, 9e-4, 1e-3, 1e-3, 1e-3];
        for (got, want) in lrs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-15, "{lrs:?}");
        }
        // Checkpoints written before this field existed read as the old warm-up.
        let old: Schedule = serde_json::from_str(
            r#"{"lr": 1.0, "warmup_steps": 2, "decay": {"kind": "constant"}}"#,
        )
        .unwrap();
        assert!(!old.warmup_from_zero);
    }
}
