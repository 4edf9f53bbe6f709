//! Conversions between tch tensors, ndarray arrays and polars DataFrames, in one place.
//!
//! DataFrames are in long format: one row per entry, one integer column per named dim and a
//! `value` column, which is what group-bys, joins and the chart builder want.

use mechlens_core::{Error, Result};
use ndarray::{ArrayD, IxDyn};
use polars::prelude::{Column, DataFrame};
use tch::{Kind, Tensor};

use crate::values::{IntoValues, column};

/// A tensor as a long DataFrame: a `u32` column per dim, named by `dims`, and an `f64`
/// column named `value` (the inverse of [`df_to_tensor`]). One row per entry, in row-major
/// order: the shape polars' group-bys and joins and the chart builder want.
///
/// ```
/// use mechlens_tables::tensor_to_df;
/// use tch::Tensor;
///
/// let scores = Tensor::from_slice(&[0.1f32, 0.9, 0.4, 0.2]).reshape([2, 2]);
/// let df = tensor_to_df(&scores, &["layer", "head"], "score")?;
/// assert_eq!(df.shape(), (4, 3));
/// # Ok::<(), mechlens_core::Error>(())
/// ```
///
/// # Shapes
/// - `tensor`: any shape with `dims.len()` dims, any device.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `dims` does not name every dim.
pub fn tensor_to_df(tensor: &Tensor, dims: &[&str], value: &str) -> Result<DataFrame> {
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
    columns.push(Column::new(value.into(), values));
    Ok(DataFrame::new_infer_height(columns)?)
}

/// The tensor a long DataFrame describes: `dims` are its index columns (0-based integers),
/// `value` its values; the shape is one more than each index column's largest entry, and
/// entries with no row are NaN.
///
/// # Shapes
/// - returns `[max(dims[0]) + 1, max(dims[1]) + 1, ...]`, `f64`, on the CPU.
///
/// # Errors
/// [`Error::InvalidInput`] for a missing column, a negative or non-integer index, or a
/// tensor of more than 2^31 entries.
pub fn df_to_tensor(df: &DataFrame, dims: &[&str], value: &str) -> Result<Tensor> {
    let values = column(df, value)?.into_values(value)?;
    let mut indices = Vec::with_capacity(dims.len());
    for &d in dims {
        let idx = column(df, d)?.into_values(d)?;
        if let Some(bad) = idx.iter().find(|&&i| !(i >= 0.0 && i.fract() == 0.0)) {
            return Err(Error::invalid(
                format!("index column `{d}`"),
                format!("{bad} is not a non-negative integer index"),
            ));
        }
        indices.push(idx);
    }
    let shape: Vec<i64> = indices
        .iter()
        .map(|idx| idx.iter().fold(-1.0f64, |a, &b| a.max(b)) as i64 + 1)
        .collect();
    let total: i64 = shape.iter().product();
    if total > i64::from(i32::MAX) {
        return Err(Error::invalid(
            "long DataFrame",
            format!("its indices span {shape:?}, over 2^31 entries"),
        ));
    }
    let mut dense = vec![f64::NAN; total as usize];
    for (row, &v) in values.iter().enumerate() {
        let flat = indices
            .iter()
            .zip(&shape)
            .fold(0i64, |acc, (idx, &n)| acc * n + idx[row] as i64);
        dense[flat as usize] = v;
    }
    Ok(Tensor::from_slice(&dense).f_reshape(shape.as_slice())?)
}

/// A tensor as an `f64` ndarray of the same shape (copied to the CPU).
///
/// # Errors
/// libtorch's errors only.
pub fn tensor_to_ndarray(tensor: &Tensor) -> Result<ArrayD<f64>> {
    let shape: Vec<usize> = tensor.size().iter().map(|&d| d as usize).collect();
    let flat = tensor
        .f_detach()?
        .f_to_device(tch::Device::Cpu)?
        .f_to_kind(Kind::Double)?
        .f_reshape([-1])?;
    let data = Vec::<f64>::try_from(flat)?;
    ArrayD::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| Error::invalid("tensor to ndarray", e.to_string()))
}

/// An ndarray as an `f64` tensor of the same shape, on the CPU.
///
/// # Errors
/// libtorch's errors only.
pub fn ndarray_to_tensor<A, S, D>(array: &ndarray::ArrayBase<S, D>) -> Result<Tensor>
where
    A: Copy + Into<f64>,
    S: ndarray::Data<Elem = A>,
    D: ndarray::Dimension,
{
    // `iter` walks in logical (row-major) order whatever the memory layout.
    let data: Vec<f64> = array.iter().map(|&v| v.into()).collect();
    let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
    Ok(Tensor::from_slice(&data).f_reshape(shape.as_slice())?)
}

/// An ndarray as a long DataFrame (see [`tensor_to_df`]).
///
/// # Errors
/// As [`tensor_to_df`].
pub fn ndarray_to_df<A, S, D>(
    array: &ndarray::ArrayBase<S, D>,
    dims: &[&str],
    value: &str,
) -> Result<DataFrame>
where
    A: Copy + Into<f64>,
    S: ndarray::Data<Elem = A>,
    D: ndarray::Dimension,
{
    tensor_to_df(&ndarray_to_tensor(array)?, dims, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_df_tensor_round_trip() -> Result<()> {
        let t = Tensor::arange(24, (Kind::Double, tch::Device::Cpu)).reshape([2, 3, 4]);
        let df = tensor_to_df(&t, &["layer", "head", "pos"], "value")?;
        assert_eq!(df.shape(), (24, 4));
        let back = df_to_tensor(&df, &["layer", "head", "pos"], "value")?;
        assert_eq!(back.size(), vec![2, 3, 4]);
        assert!(back.equal(&t));
        Ok(())
    }

    #[test]
    fn ndarray_round_trips_and_keeps_logical_order() -> Result<()> {
        let a = ndarray::arr2(&[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        // A transposed view: memory order differs from logical order.
        let t = ndarray_to_tensor(&a.t())?;
        assert_eq!(t.size(), vec![3, 2]);
        assert_eq!(t.double_value(&[0, 1]), 4.0);
        let back = tensor_to_ndarray(&t)?;
        assert_eq!(back.shape(), &[3, 2]);
        assert_eq!(back[[2, 0]], 3.0);
        let df = ndarray_to_df(&a, &["row", "col"], "value")?;
        assert_eq!(df.shape(), (6, 3));
        Ok(())
    }

    #[test]
    fn missing_entries_are_nan_and_bad_indices_are_errors() -> Result<()> {
        let df = polars::df!("i" => &[0i64, 2], "value" => &[1.0, 3.0])?;
        let t = df_to_tensor(&df, &["i"], "value")?;
        assert_eq!(t.size(), vec![3]);
        assert!(t.double_value(&[1]).is_nan());
        let bad = polars::df!("i" => &[-1i64], "value" => &[1.0])?;
        let err = df_to_tensor(&bad, &["i"], "value")
            .expect_err("negative")
            .to_string();
        assert!(
            err.contains("-1 is not a non-negative integer index"),
            "{err}"
        );
        assert!(df_to_tensor(&df, &["j"], "value").is_err());
        assert!(tensor_to_df(&t, &["a", "b"], "value").is_err());
        Ok(())
    }
}
