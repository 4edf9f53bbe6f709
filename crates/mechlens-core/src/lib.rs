//! Core types shared by every mechlens crate.
//!
//! - [`Error`] / [`Result`]: the one error type. Library code returns it for every bad input
//!   (wrong shape, missing file, unknown name) instead of panicking, because a panic in a
//!   notebook cell costs the user the cell and an abort costs them every variable.
//! - [`device`]: which device to run on, and the loader that makes libtorch's CUDA backend
//!   visible to `tch` (see that module for why it is needed).
//! - [`shape`]: checks that turn a shape mismatch into an [`Error`] naming both shapes.

pub mod device;
mod error;
pub mod shape;

pub use error::{Error, Result};
