//! What a training run records: a [`LogRow`] every `log_every` steps (loss parts, L0,
//! explained variance, dead latents), as rows or as a DataFrame, and progress lines.

use mechlens_core::progress::Progress;
use mechlens_core::{Error, Result};
use polars::prelude::{Column, DataFrame};
use tch::{Kind, Tensor};

use super::{Trainer, loss};

/// One logged step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRow {
    /// Step (0-based) the row describes.
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Sparsity coefficient used (after warm-up).
    pub sparsity_coefficient: f64,
    /// Total loss.
    pub loss: f64,
    /// Reconstruction loss (Σ over d_in, mean over batch).
    pub mse_loss: f64,
    /// L1 / L0 penalty.
    pub sparsity_loss: f64,
    /// AuxK or gate-path reconstruction loss.
    pub aux_loss: f64,
    /// Mean active latents per input.
    pub l0: f64,
    /// 1 − mean squared error / mean variance of the batch.
    pub explained_variance: f64,
    /// Latents that have not fired for `dead_feature_window` steps.
    pub dead_latents: i64,
}

impl Trainer {
    pub(super) fn log_row(
        &self,
        step: usize,
        lr: f64,
        coefficient: f64,
        x: &Tensor,
        out: &loss::StepOut,
    ) -> Result<LogRow> {
        let sq = |t: Tensor| -> Result<f64> {
            Ok(t.f_square()?
                .f_sum_dim_intlist(-1, false, Kind::Double)?
                .f_mean(Kind::Double)?
                .double_value(&[]))
        };
        let err = sq(x.f_sub(&out.out)?)?;
        let var = sq(x.f_sub(&x.f_mean_dim(0, true, Kind::Float)?)?)?;
        let dead = self
            .steps_since_fired
            .f_gt(self.cfg.dead_feature_window as i64)?;
        Ok(LogRow {
            step,
            lr,
            sparsity_coefficient: coefficient,
            loss: out.loss.double_value(&[]),
            mse_loss: out.mse.double_value(&[]),
            sparsity_loss: out.sparsity.double_value(&[]),
            aux_loss: out.aux.double_value(&[]),
            l0: out.active.l0()?,
            explained_variance: 1.0 - err / var,
            dead_latents: dead.f_sum(Kind::Int64)?.int64_value(&[]),
        })
    }

    /// A progress line: steps done, rate, time left, and the last logged loss and L0.
    pub(super) fn report(&self, progress: &mut Progress) {
        if let Some(last) = self.log.last() {
            progress.note(format!("loss {:.4}  l0 {:.1}", last.loss, last.l0));
        }
        progress.advance(self.step as u64 - progress.done());
    }

    /// The logged rows.
    pub fn log(&self) -> &[LogRow] {
        &self.log
    }

    /// The log as a DataFrame: step, lr, sparsity_coefficient, loss, mse_loss,
    /// sparsity_loss, aux_loss, l0, explained_variance, dead_latents.
    ///
    /// # Errors
    /// Only if polars refuses the columns (it does not for equal lengths).
    pub fn log_frame(&self) -> Result<DataFrame> {
        let col = |name: &str, f: &dyn Fn(&LogRow) -> f64| {
            Column::new(name.into(), self.log.iter().map(f).collect::<Vec<f64>>())
        };
        let columns = vec![
            Column::new(
                "step".into(),
                self.log.iter().map(|r| r.step as i64).collect::<Vec<i64>>(),
            ),
            col("lr", &|r| r.lr),
            col("sparsity_coefficient", &|r| r.sparsity_coefficient),
            col("loss", &|r| r.loss),
            col("mse_loss", &|r| r.mse_loss),
            col("sparsity_loss", &|r| r.sparsity_loss),
            col("aux_loss", &|r| r.aux_loss),
            col("l0", &|r| r.l0),
            col("explained_variance", &|r| r.explained_variance),
            Column::new(
                "dead_latents".into(),
                self.log
                    .iter()
                    .map(|r| r.dead_latents)
                    .collect::<Vec<i64>>(),
            ),
        ];
        DataFrame::new_infer_height(columns).map_err(Error::from)
    }
}
