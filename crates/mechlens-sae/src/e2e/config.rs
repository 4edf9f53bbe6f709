//! [`E2eConfig`]: what an end-to-end SAE is trained on and how.

use mechlens_core::{Error, Result};

/// What the SAE's output is asked to preserve (Braun et al. 2024).
#[derive(Clone, Debug, PartialEq)]
pub enum E2eLoss {
    /// The activation itself: MSE between the SAE's output and its input ("local").
    Local,
    /// The model's output: KL divergence from the original next-token distribution to the one
    /// with the SAE spliced in ("e2e").
    EndToEnd,
    /// The KL term plus MSE between the spliced and the original activations at later hook
    /// points, `coeff / hooks.len()` each ("e2e + ds"), so that the SAE's output keeps the
    /// model on its own computational path.
    EndToEndDownstream {
        /// Later hook points, e.g. every later `hook_resid_post`.
        hooks: Vec<String>,
        /// Total weight of the downstream terms.
        coeff: f64,
    },
}

impl E2eLoss {
    /// `local`, `e2e` or `e2e+ds`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::EndToEnd => "e2e",
            Self::EndToEndDownstream { .. } => "e2e+ds",
        }
    }
}

/// An end-to-end SAE run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct E2eConfig {
    /// The hook point the SAE reads and replaces, e.g. `blocks.2.hook_resid_pre`.
    pub hook: String,
    /// Latents.
    pub d_sae: i64,
    /// What the output must preserve.
    pub loss: E2eLoss,
    /// Weight of the sparsity penalty `mean_token ‖c‖₁ / d_in` (the paper's normalisation).
    pub sparsity_coeff: f64,
    /// Adam's peak learning rate (5e-4 in the paper's GPT-2 runs).
    pub lr: f64,
    /// Linear warm-up steps, then cosine to 0.
    pub warmup_steps: usize,
    /// Steps.
    pub steps: usize,
    /// Log a row every this many steps.
    pub log_every: usize,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl E2eConfig {
    /// Settings for `hook` with `d_sae` latents and `loss`: sparsity 1.0, lr 5e-4, 1,000
    /// steps with 50 of warm-up, a log row every 50.
    pub fn new(hook: &str, d_sae: i64, loss: E2eLoss) -> Self {
        Self {
            hook: hook.to_string(),
            d_sae,
            loss,
            sparsity_coeff: 1.0,
            lr: 5e-4,
            warmup_steps: 50,
            steps: 1000,
            log_every: 50,
            seed: 0,
        }
    }

    /// Checks the settings (the hook points are checked against the model by `E2eSae::new`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first unusable setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(Error::invalid(what, why));
        if self.d_sae < 1 {
            return bad("d_sae", format!("must be at least 1, got {}", self.d_sae));
        }
        for (name, v) in [("sparsity_coeff", self.sparsity_coeff), ("lr", self.lr)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, format!("must be finite and not negative, got {v}"));
            }
        }
        if let E2eLoss::EndToEndDownstream { hooks, coeff } = &self.loss {
            if hooks.is_empty() {
                return bad(
                    "downstream hooks",
                    "e2e+ds needs at least one later hook point to compare".into(),
                );
            }
            if !(coeff.is_finite() && *coeff >= 0.0) {
                return bad(
                    "downstream coeff",
                    format!("must be finite and not negative, got {coeff}"),
                );
            }
        }
        Ok(())
    }
}
