//! [`mmcs_sweep`]: Sharkey, Braun & Millidge's grid on toy data with known features — one
//! ReLU SAE per (L1 coefficient, dictionary ratio), scored by how well its decoder rows
//! recover the true directions (MMCS).

use mechlens_core::{Error, Result};
use mechlens_sae::train::{TrainArchitecture, TrainConfig, Trainer};
use polars::prelude::{Column, DataFrame};

use crate::{SparseFeatures, SparseFeaturesOptions, mmcs};

/// Trains one ReLU SAE per pair of `l1_coefficients` × `dictionary_ratios` on the toy data
/// `toy`, with `template`'s other settings (learning rate, steps, batch size, seed ...);
/// `d_in` is the toy's dimension and `d_sae` is `ratio × n_features`. Each run sees the same
/// batches.
///
/// Returns one row per run: `l1_coefficient`, `dictionary_ratio`, `d_sae`, `mmcs`, and the
/// last logged `l0` and `dead_latents` (null when the template logs nothing).
///
/// # Errors
/// [`Error::InvalidInput`] for an empty grid, a ratio below 1, a coefficient that is not
/// finite and non-negative, or a template that is not a ReLU (`Standard`) SAE; the trainer's
/// errors (a NaN loss stops the sweep and names the run).
pub fn mmcs_sweep(
    toy: &SparseFeaturesOptions,
    template: &TrainConfig,
    l1_coefficients: &[f64],
    dictionary_ratios: &[i64],
) -> Result<DataFrame> {
    if l1_coefficients.is_empty() || dictionary_ratios.is_empty() {
        return Err(Error::invalid(
            "sweep grid",
            "needs at least one L1 coefficient and one dictionary ratio",
        ));
    }
    if let Some(r) = dictionary_ratios.iter().find(|&&r| r < 1) {
        return Err(Error::invalid(
            "dictionary ratio",
            format!("latents per true feature must be at least 1, got {r}"),
        ));
    }
    if let Some(l1) = l1_coefficients
        .iter()
        .find(|l1| !(l1.is_finite() && **l1 >= 0.0))
    {
        return Err(Error::invalid(
            "L1 coefficient",
            format!("expected a finite number ≥ 0, got {l1}"),
        ));
    }
    if !matches!(template.sae, TrainArchitecture::Standard { .. }) {
        return Err(Error::invalid(
            "sweep template",
            format!(
                "the sweep varies the L1 coefficient of a ReLU SAE; the template trains {:?}",
                template.sae
            ),
        ));
    }
    let truth = SparseFeatures::new(toy.clone())?;
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut l0s, mut dead) = (Vec::new(), Vec::new());
    for &l1 in l1_coefficients {
        for &ratio in dictionary_ratios {
            let mut cfg = template.clone();
            cfg.sae = TrainArchitecture::standard(l1);
            cfg.d_in = toy.d;
            cfg.d_sae = toy.n_features * ratio;
            let mut trainer = Trainer::new(cfg)?;
            trainer
                .run(&mut SparseFeatures::new(toy.clone())?)
                .map_err(|e| match e {
                    Error::Training { step, reason } => Error::Training {
                        step,
                        reason: format!("sweep run with L1 {l1}, ratio {ratio}: {reason}"),
                    },
                    other => other,
                })?;
            let score = mmcs(&trainer.sae()?.w_dec, &truth.directions)?;
            let last = trainer.log().last();
            columns.0.push(l1);
            columns.1.push(ratio);
            columns.2.push(toy.n_features * ratio);
            columns.3.push(score);
            l0s.push(last.map(|row| row.l0));
            dead.push(last.map(|row| row.dead_latents));
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("l1_coefficient".into(), columns.0),
        Column::new("dictionary_ratio".into(), columns.1),
        Column::new("d_sae".into(), columns.2),
        Column::new("mmcs".into(), columns.3),
        Column::new("l0".into(), l0s),
        Column::new("dead_latents".into(), dead),
    ])
    .map_err(Error::from)
}
