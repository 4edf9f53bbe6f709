//! [`Scores`]: what every analysis that scores many things returns (heads, layers ×
//! positions, patches): the scores as a tensor, and the same as a long table to filter, join
//! or plot.

use mechlens_core::Result;
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
