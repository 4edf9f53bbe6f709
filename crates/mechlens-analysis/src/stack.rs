//! A labelled stack of residual-stream components, and which positions to keep.

use mechlens_core::{Error, Result};
use mechlens_tables::tensor_to_df;
use polars::prelude::*;
use tch::Tensor;

/// Which positions an analysis keeps (TransformerLens' `pos_slice`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pos {
    /// Every position: the pos dim stays.
    #[default]
    All,
    /// One position (negative counts from the end): the pos dim is dropped, as TL does for
    /// an integer `pos_slice`.
    At(i64),
}

impl Pos {
    /// Applies the selection to `t` along `dim` (the position dim).
    ///
    /// # Errors
    /// A position out of range, named with the sequence length.
    pub fn apply(self, t: &Tensor, dim: i64) -> Result<Tensor> {
        match self {
            Self::All => Ok(t.shallow_clone()),
            Self::At(i) => {
                let size = t.size();
                let d = if dim < 0 {
                    size.len() as i64 + dim
                } else {
                    dim
                };
                let n = size.get(d as usize).copied().unwrap_or(0);
                if i < -n || i >= n {
                    return Err(Error::invalid(
                        "position",
                        format!("{i} is out of range for a sequence of {n} positions"),
                    ));
                }
                Ok(t.f_select(d, i)?)
            }
        }
    }
}

/// Components of the residual stream stacked on a new first dim, with their names
/// (`"embed"`, `"3_attn_out"`, `"L2H5"`, `"final_post"`, ...).
///
/// # Shapes
/// - `tensor`: `[components, batch, (pos,) d_model]`
pub struct Stack {
    /// The stacked components.
    pub tensor: Tensor,
    /// One name per component, in order.
    pub labels: Vec<String>,
}

impl Stack {
    /// Values with one entry per component (e.g. logit attributions, `[components, batch,
    /// (pos)]`) as a long table: `component` (the label), one index column per remaining dim
    /// (`batch`, `pos`), and `value_name`.
    ///
    /// # Errors
    /// `values`' first dim is not one per component.
    pub fn frame(&self, values: &Tensor, value_name: &str) -> Result<DataFrame> {
        let size = values.size();
        if size.first().copied() != Some(self.labels.len() as i64) {
            return Err(Error::ShapeMismatch {
                what: format!("values for the {} components of a stack", self.labels.len()),
                expected: format!("[{}, ...]", self.labels.len()),
                got: size,
            });
        }
        let dims: Vec<&str> = ["component", "batch", "pos"]
            .into_iter()
            .take(size.len())
            .collect();
        if size.len() > 3 {
            return Err(Error::ShapeMismatch {
                what: "values for a stack table".into(),
                expected: "[components, batch, pos] or fewer dims".into(),
                got: size,
            });
        }
        let mut frame = tensor_to_df(values, &dims, value_name)?;
        let index = frame.column("component").and_then(|c| c.u32().cloned())?;
        let names: Vec<&str> = index
            .into_no_null_iter()
            .map(|i| self.labels[i as usize].as_str())
            .collect();
        frame.with_column(Column::new("component".into(), names))?;
        Ok(frame)
    }
}
