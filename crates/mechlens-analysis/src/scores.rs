//! [`Scores`]: what every analysis that scores many things returns (heads, layers ×
//! positions, patches): the scores as a tensor, and the same as a long table to filter, join
//! or plot.

use mechlens_core::{Error, Result};
use polars::prelude::DataFrame;
use tch::Tensor;

/// Scores with their long table.
///
/// # Shapes
/// - `scores`: one dim per entry of the table's index columns, e.g. `[n_layers, n_heads]`
pub struct Scores {
    /// The scores, e.g. `[n_layers, n_heads]`.
    pub scores: Tensor,
    /// One row per score: a column per dim (`layer`, `head`, `pos`...) and the value column.
    pub table: DataFrame,
}

impl Scores {
    /// `scores` with its table, dims named `dims` and the value column `value`.
    pub(crate) fn new(scores: Tensor, dims: &[&str], value: &str) -> Result<Self> {
        let table = mechlens_tables::tensor_to_df(&scores, dims, value)?;
        Ok(Self { scores, table })
    }
}

/// The value of a metric that must be a scalar, as f64; `what` names it in the error.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the metric returned more (or less) than one element.
pub(crate) fn scalar_metric(value: &Tensor, what: &str) -> Result<f64> {
    if value.numel() != 1 {
        return Err(Error::ShapeMismatch {
            what: what.into(),
            expected: "a scalar (one element)".into(),
            got: value.size(),
        });
    }
    Ok(value.f_double_value(&[])?)
}
