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
    /// After warm-up.
    pub decay: Decay,
}

impl Schedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Self {
            lr,
            warmup_steps: 0,
            decay: Decay::Constant,
        }
    }

    /// The learning rate at `step` (0-based) of a run of `total_steps`.
    pub fn at(&self, step: usize, total_steps: usize) -> f64 {
        let warm = self.warmup_steps;
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
}
