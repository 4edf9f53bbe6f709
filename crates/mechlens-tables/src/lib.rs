//! Tables for mechlens, used by every crate that returns or reads one.
//!
//! - [`convert`]: tensor ↔ ndarray ↔ long-format DataFrame ([`tensor_to_df`] /
//!   [`df_to_tensor`]: one row per entry, one integer column per named dim, one value column).
//! - [`values`]: anything that reads as a list of numbers or labels (slices, 1-D tensors,
//!   DataFrame columns), for charts and views.
//! - [`histogram`]: numpy-style equal-width bins, as counts or as a table.
//! - [`csv`]: numeric CSV files (training logs) to and from DataFrames.
//!
//! A polars failure converts into [`mechlens_core::Error::Table`] with `?`.

pub mod convert;
pub mod csv;
pub mod histogram;
pub mod values;

pub use convert::{
    df_to_tensor, ndarray_to_df, ndarray_to_tensor, tensor_to_df, tensor_to_ndarray,
};
pub use csv::{numeric_csv, read_numeric_csv};
pub use histogram::{Bins, bin_counts, histogram};
