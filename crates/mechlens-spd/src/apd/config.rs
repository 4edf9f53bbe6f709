//! [`ApdConfig`]: an APD run's settings, defaulting to the APD paper's TMS 5-2 configuration.

use mechlens_core::{Error, Result};

/// An APD run's settings (defaults: Braun et al. 2025's `tms_5-2` top-k config).
#[derive(Clone, Debug, PartialEq)]
pub struct ApdConfig {
    /// Parameter components `C`; each spans every decomposed layer (5).
    pub c: i64,
    /// Rank of each component in each layer; `None`: `min(d_in, d_out) + 1`, as the paper's
    /// TMS model (3 for TMS 5-2).
    pub rank: Option<i64>,
    /// Components kept per sample on average: the batch's `floor(top_k · batch)` largest
    /// attributions over all samples and components are kept (batch top-k; 0.211).
    pub top_k: f64,
    /// Faithfulness `Σ_l ‖W_l − Σ_c P_c,l‖²` over the decomposed weights' entries (1.0).
    pub param_match_coeff: f64,
    /// Minimality: the output with only the top-k components against the target's (1.0).
    pub topk_recon_coeff: f64,
    /// Simplicity: the kept components' Schatten `p`-norms (0.7).
    pub schatten_coeff: f64,
    /// The Schatten norm's `p` (1.0).
    pub schatten_p: f64,
    /// Samples per step (2048).
    pub batch_size: i64,
    /// Steps (20,000).
    pub steps: usize,
    /// Learning rate after the warm-up, held constant (3e-2).
    pub lr: f64,
    /// Share of the steps over which the learning rate rises linearly from 0 (0.05).
    pub lr_warmup_fraction: f64,
    /// Pairs `(layer, source)`: `layer`'s components are `source`'s transposed, as the toy
    /// model of superposition's tied `linear2 = linear1ᵀ` (empty).
    pub tied_transposed: Vec<(String, String)>,
    /// Log a row every this many steps (100).
    pub log_every: usize,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for ApdConfig {
    fn default() -> Self {
        Self {
            c: 5,
            rank: None,
            top_k: 0.211,
            param_match_coeff: 1.0,
            topk_recon_coeff: 1.0,
            schatten_coeff: 0.7,
            schatten_p: 1.0,
            batch_size: 2048,
            steps: 20_000,
            lr: 3e-2,
            lr_warmup_fraction: 0.05,
            tied_transposed: Vec::new(),
            log_every: 100,
            seed: 0,
        }
    }
}

impl ApdConfig {
    /// Checks the settings (the tied layers are checked against the target by `Apd::new`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first unusable setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(Error::invalid(what, why));
        if self.c < 1 {
            return bad(
                "C",
                format!("needs at least 1 parameter component, got {}", self.c),
            );
        }
        if let Some(rank) = self.rank
            && rank < 1
        {
            return bad("rank", format!("must be at least 1, got {rank}"));
        }
        if !(self.schatten_p.is_finite() && self.schatten_p > 0.0) {
            return bad(
                "schatten_p",
                format!(
                    "the Schatten norm's p must be positive, got {}",
                    self.schatten_p
                ),
            );
        }
        if !(self.top_k.is_finite() && self.top_k > 0.0 && self.top_k <= self.c as f64) {
            return bad(
                "top_k",
                format!(
                    "components kept per sample must be in (0, C = {}], got {}",
                    self.c, self.top_k
                ),
            );
        }
        if self.batch_size < 1 || (self.top_k * self.batch_size as f64) < 1.0 {
            return bad(
                "batch_size",
                format!(
                    "must be at least 1 and keep at least one component (top_k · batch ≥ 1), got {} with top_k {}",
                    self.batch_size, self.top_k
                ),
            );
        }
        if !(0.0..1.0).contains(&self.lr_warmup_fraction) {
            return bad(
                "lr_warmup_fraction",
                format!("must be in [0, 1), got {}", self.lr_warmup_fraction),
            );
        }
        for (name, v) in [
            ("param_match_coeff", self.param_match_coeff),
            ("topk_recon_coeff", self.topk_recon_coeff),
            ("schatten_coeff", self.schatten_coeff),
            ("lr", self.lr),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, format!("must be finite and not negative, got {v}"));
            }
        }
        Ok(())
    }
}
