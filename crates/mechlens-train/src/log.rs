//! The training log: one row per logged step, as a DataFrame for the notebook.

use mechlens_core::{Error, Result};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

/// One logged step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// The step (0-based) whose loss this is.
    pub step: usize,
    /// Its training loss.
    pub loss: f64,
    /// Its learning rate.
    pub lr: f64,
    /// Metrics computed after this step, by name.
    pub metrics: Vec<(String, f64)>,
}

/// `step`, `loss`, `lr`, then a column per metric name (`names` first, then any other name
/// the rows carry), null where a row lacks it.
pub(crate) fn log_frame(rows: &[LogRow], names: &[&str]) -> Result<DataFrame> {
    let mut all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    for row in rows {
        for (name, _) in &row.metrics {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
    }
    let mut columns = vec![
        Column::new(
            "step".into(),
            rows.iter().map(|r| r.step as u64).collect::<Vec<_>>(),
        ),
        Column::new(
            "loss".into(),
            rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
        ),
        Column::new("lr".into(), rows.iter().map(|r| r.lr).collect::<Vec<_>>()),
    ];
    for name in &all {
        let values: Vec<Option<f64>> = rows
            .iter()
            .map(|r| r.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    DataFrame::new_infer_height(columns).map_err(Error::from)
}

/// A hand-written loop's log as a table (SPD, APD, end-to-end SAEs): `step`, `lr`, then one
/// column per name of `losses`, from rows `(step, lr, losses)`.
///
/// # Errors
/// Only if polars cannot build the frame.
pub fn log_table<const N: usize>(
    rows: &[(usize, f64, [f64; N])],
    losses: [&str; N],
) -> Result<DataFrame> {
    let mut columns = vec![
        Column::new(
            "step".into(),
            rows.iter().map(|r| r.0 as u64).collect::<Vec<_>>(),
        ),
        Column::new("lr".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
    ];
    for (i, name) in losses.iter().enumerate() {
        columns.push(Column::new(
            (*name).into(),
            rows.iter().map(|r| r.2[i]).collect::<Vec<_>>(),
        ));
    }
    Ok(DataFrame::new(rows.len(), columns)?)
}
