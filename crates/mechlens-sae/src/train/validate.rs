//! Checks a [`TrainConfig`] before any work: every bad field named with what was expected.

use mechlens_core::{Error, Result};

use super::TrainConfig;
use crate::config::ActivationNorm;

pub(super) fn validate(cfg: &TrainConfig) -> Result<()> {
    let bad = |what: &str, reason: String| Err(Error::invalid(what, reason));
    if cfg.d_in <= 0 || cfg.d_sae <= 0 || cfg.batch_size <= 0 {
        return bad(
            "training config",
            format!(
                "d_in, d_sae and batch_size must be positive, got {}, {}, {}",
                cfg.d_in, cfg.d_sae, cfg.batch_size
            ),
        );
    }
    if cfg.total_steps == 0 {
        return bad("total_steps", "must be at least 1".into());
    }
    cfg.sae.kind().validate(cfg.d_sae)?;
    if cfg.normalize_activations == ActivationNorm::ConstantNormRescale
        && cfg.sae.kind().selects_top_k()
    {
        return bad("normalize_activations", "TopK's AuxK loss works in the input's units; use none or expected_average_only_in (as SAELens requires)".into());
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
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return bad("lr", format!("must be a positive number, got {}", cfg.lr));
    }
    Ok(())
}
