//! What a chart or view accepts as a list of numbers or labels: slices and vectors of any
//! numeric type, 1-D tensors, and DataFrame columns, all read as `f64`.

use mechlens_core::{Error, Result};
use polars::prelude::{Column, DataFrame, DataType, Series};
use tch::{Kind, Tensor};

/// A number a chart can plot.
pub trait ToF64: Copy {
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

macro_rules! to_f64 {
    ($($t:ty),*) => {$(
        impl ToF64 for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
to_f64!(f64, f32, i64, i32, i16, i8, u64, u32, u16, u8, usize);

/// Anything that reads as a list of `f64`: `&[T]`, `&Vec<T>`, `Vec<T>`, `&[T; N]` for a
/// numeric `T`, a 1-D `&Tensor`, a `&Column` or `&Series` of a numeric dtype.
pub trait IntoValues {
    /// The values; `what` names them in an error.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] or [`Error::ShapeMismatch`] naming `what` when the input is not
    /// a flat list of numbers.
    fn into_values(self, what: &str) -> Result<Vec<f64>>;
}

impl<T: ToF64> IntoValues for &[T] {
    fn into_values(self, _: &str) -> Result<Vec<f64>> {
        Ok(self.iter().map(|v| v.to_f64()).collect())
    }
}

impl<T: ToF64> IntoValues for &Vec<T> {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        self.as_slice().into_values(what)
    }
}

impl<T: ToF64> IntoValues for Vec<T> {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        self.as_slice().into_values(what)
    }
}

impl<T: ToF64, const N: usize> IntoValues for &[T; N] {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        self.as_slice().into_values(what)
    }
}

impl IntoValues for &Tensor {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        tensor_values(self, what)
    }
}

impl IntoValues for &Series {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        series_values(self, what)
    }
}

impl IntoValues for &Column {
    fn into_values(self, what: &str) -> Result<Vec<f64>> {
        series_values(self.as_materialized_series(), what)
    }
}

/// A 1-D tensor (or one with a single non-unit dim) as `f64`s, copied to the CPU.
///
/// # Errors
/// [`Error::ShapeMismatch`] for a tensor with more than one dim of size > 1.
pub fn tensor_values(t: &Tensor, what: &str) -> Result<Vec<f64>> {
    if !t.defined() {
        return Err(Error::invalid(what, "the tensor is undefined"));
    }
    let size = t.size();
    if size.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(Error::ShapeMismatch {
            what: what.to_string(),
            expected: "a 1-D tensor (one value per point)".into(),
            got: size,
        });
    }
    let flat = t
        .f_detach()?
        .f_to_device(tch::Device::Cpu)?
        .f_to_kind(Kind::Double)?
        .f_reshape([-1])?;
    Ok(Vec::<f64>::try_from(flat)?)
}

fn series_values(s: &Series, what: &str) -> Result<Vec<f64>> {
    if !s.dtype().is_primitive_numeric() {
        return Err(Error::invalid(
            what,
            format!(
                "column `{}` has dtype {}, expected a number",
                s.name(),
                s.dtype()
            ),
        ));
    }
    let cast = s
        .cast(&DataType::Float64)
        .map_err(|e| Error::invalid(what, e.to_string()))?;
    let ca = cast
        .f64()
        .map_err(|e| Error::invalid(what, e.to_string()))?;
    // A null is a missing point: NaN, which charts leave out and count.
    Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// The column called `name`, found by comparing names one by one.
///
/// polars' own lookup hashes the name with a per-process seed; in evcxr each cell is its own
/// library with its own seed, so a DataFrame made in one cell is not found by name in the
/// next. A linear scan does not hash.
///
/// # Errors
/// [`Error::InvalidInput`] listing the frame's columns when there is none called `name`.
pub fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.columns()
        .iter()
        .find(|c| c.name().as_str() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = df.columns().iter().map(|c| c.name().as_str()).collect();
            Error::invalid(
                "column",
                format!("`{name}` is not in the DataFrame; its columns are {names:?}"),
            )
        })
}

/// A column's values as text (numbers formatted, nulls as "null"), for labels and groups.
///
/// # Errors
/// As [`column`].
pub fn column_strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = column(df, name)?;
    let s = c.as_materialized_series();
    (0..s.len())
        .map(|i| {
            s.get(i)
                .map(|v| match v {
                    polars::prelude::AnyValue::String(s) => s.to_string(),
                    polars::prelude::AnyValue::StringOwned(s) => s.to_string(),
                    other => other.to_string(),
                })
                .map_err(|e| Error::invalid("column", e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    #[test]
    fn slices_tensors_and_columns_read_alike() -> Result<()> {
        let expected = vec![1.0, 2.0, 3.0];
        assert_eq!((&[1i64, 2, 3]).into_values("x")?, expected);
        assert_eq!(vec![1.0f32, 2.0, 3.0].into_values("x")?, expected);
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).reshape([1, 3]);
        assert_eq!((&t).into_values("x")?, expected);
        let df = df!("a" => &[1i32, 2, 3], "s" => &["x", "y", "z"])?;
        assert_eq!(column(&df, "a")?.into_values("x")?, expected);
        assert_eq!(column_strings(&df, "s")?, vec!["x", "y", "z"]);
        Ok(())
    }

    #[test]
    fn wrong_inputs_name_what_was_expected() -> Result<()> {
        let grid = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        let err = (&grid).into_values("y").expect_err("2-D").to_string();
        assert!(
            err.contains("1-D tensor") && err.contains("[2, 3]"),
            "{err}"
        );
        let df = df!("s" => &["x"])?;
        let err = column(&df, "value")
            .expect_err("no such column")
            .to_string();
        assert!(err.contains("`value`") && err.contains("[\"s\"]"), "{err}");
        let err = column(&df, "s")?
            .into_values("y")
            .expect_err("strings")
            .to_string();
        assert!(err.contains("dtype str"), "{err}");
        Ok(())
    }
}
