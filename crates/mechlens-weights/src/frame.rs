//! Long-format DataFrames from tensors: one row per entry, one column per dim index, one
//! value column — the shape polars' group-bys, joins and our charts want.

use mechlens_core::{Error, Result};
use polars::prelude::*;
use tch::{Kind, Tensor};

/// Turns a polars error into ours, naming the table being built.
pub(crate) fn table_err(what: &str) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| Error::invalid(format!("{what} table"), e.to_string())
}

/// One row per entry of `tensor`: a `u32` column per dim (named by `dims`) and an `f64`
/// column `value_name`.
///
/// # Shapes
/// - `tensor`: any shape with `dims.len()` dims.
///
/// # Errors
/// `dims` does not name every dim.
pub fn long_frame(tensor: &Tensor, dims: &[&str], value_name: &str) -> Result<DataFrame> {
    let size = tensor.size();
    if size.len() != dims.len() {
        return Err(Error::ShapeMismatch {
            what: format!("tensor for a table with dims {dims:?}"),
            expected: format!("{} dims", dims.len()),
            got: size,
        });
    }
    let values: Vec<f64> = Vec::<f64>::try_from(
        tensor
            .f_detach()?
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_flatten(0, -1)?,
    )?;
    let mut columns: Vec<Column> = Vec::with_capacity(dims.len() + 1);
    // Row-major order: dim d's index changes every `stride` entries.
    let mut stride: usize = 1;
    let mut index_columns = Vec::with_capacity(dims.len());
    for (&name, &n) in dims.iter().zip(&size).rev() {
        let n = n as usize;
        let column: Vec<u32> = (0..values.len())
            .map(|i| ((i / stride) % n.max(1)) as u32)
            .collect();
        index_columns.push(Column::new(name.into(), column));
        stride *= n.max(1);
    }
    columns.extend(index_columns.into_iter().rev());
    columns.push(Column::new(value_name.into(), values));
    DataFrame::new_infer_height(columns).map_err(table_err(value_name))
}
