//! The same SVD and eigenvalue calls in f64 on the CPU, with `ndarray` and LAPACK (the MKL
//! that libtorch carries, linked by symbol; see the workspace Cargo.toml): for double precision and results that do not depend on libtorch's
//! kernels or thread count.

use mechlens_core::{Error, Result};
use ndarray::{Array1, Array2, Axis};
use ndarray_linalg::{EigVals, JobSvd, SVDDC, c64};
use tch::{Device, Kind, Tensor};

use crate::FactoredMatrix;

fn lapack_err(what: &'static str) -> impl Fn(ndarray_linalg::error::LinalgError) -> Error {
    move |e| Error::invalid(format!("{what} (LAPACK)"), e.to_string())
}

/// A 2-D tensor as an f64 array (copied to the CPU).
///
/// # Errors
/// A tensor that is not 2-D.
pub fn to_array2(t: &Tensor) -> Result<Array2<f64>> {
    let size = t.size();
    if size.len() != 2 {
        return Err(Error::ShapeMismatch {
            what: "matrix for the f64 path".into(),
            expected: "[rows, cols]".into(),
            got: size,
        });
    }
    let values: Vec<f64> = Vec::try_from(
        t.f_detach()?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_contiguous()?
            .f_flatten(0, -1)?,
    )?;
    Array2::from_shape_vec((size[0] as usize, size[1] as usize), values)
        .map_err(|e| Error::invalid("matrix for the f64 path", e.to_string()))
}

/// Thin SVD `(U, S, V)` with `m = U·diag(S)·Vᵀ`, `S` descending (V, not Vᵀ, as
/// [`FactoredMatrix::svd`] returns).
///
/// # Errors
/// LAPACK's failure to converge.
pub fn svd(m: &Array2<f64>) -> Result<(Array2<f64>, Array1<f64>, Array2<f64>)> {
    let (u, s, vt) = m.svddc(JobSvd::Some).map_err(lapack_err("SVD"))?;
    match (u, vt) {
        (Some(u), Some(vt)) => Ok((u, s, vt.reversed_axes())),
        _ => Err(Error::invalid(
            "SVD (LAPACK)",
            "no singular vectors returned",
        )),
    }
}

/// Singular values, descending.
///
/// # Errors
/// LAPACK's failure to converge.
pub fn singular_values(m: &Array2<f64>) -> Result<Array1<f64>> {
    let (_, s, _) = m.svddc(JobSvd::None).map_err(lapack_err("SVD"))?;
    Ok(s)
}

/// Eigenvalues of a square matrix (complex, in LAPACK's order).
///
/// # Errors
/// A non-square matrix, or LAPACK's failure to converge.
pub fn eigenvalues(m: &Array2<f64>) -> Result<Array1<c64>> {
    if m.nrows() != m.ncols() {
        return Err(Error::invalid(
            "eigenvalues",
            format!("need a square matrix, got {}×{}", m.nrows(), m.ncols()),
        ));
    }
    m.eigvals().map_err(lapack_err("eigenvalues"))
}

impl FactoredMatrix {
    fn factors_f64(&self, what: &str) -> Result<(Array2<f64>, Array2<f64>)> {
        if self.ndim() != 2 {
            return Err(Error::invalid(
                format!("FactoredMatrix::{what}"),
                format!(
                    "the f64 path takes one matrix; this one has leading dims {:?} — index it first",
                    &self.shape()[..self.ndim() - 2]
                ),
            ));
        }
        Ok((to_array2(self.a())?, to_array2(self.b())?))
    }

    /// [`FactoredMatrix::svd`] in f64 with LAPACK, from the factors as there.
    ///
    /// # Errors
    /// Leading dims (index to one matrix first), or LAPACK's failure to converge.
    pub fn svd_f64(&self) -> Result<(Array2<f64>, Array1<f64>, Array2<f64>)> {
        let (a, b) = self.factors_f64("svd_f64")?;
        let (ua, sa, va) = svd(&a)?;
        let (ub, sb, vb) = svd(&b)?;
        // diag(Sa)·Vaᵀ·Ub·diag(Sb)
        let middle =
            (&va.t().dot(&ub) * &sa.view().insert_axis(Axis(1))) * sb.view().insert_axis(Axis(0));
        let (um, sm, vm) = svd(&middle)?;
        Ok((ua.dot(&um), sm, vb.dot(&vm)))
    }

    /// [`FactoredMatrix::eigenvalues`] in f64 with LAPACK (those of `B·A`).
    ///
    /// # Errors
    /// Leading dims, a non-square product, or LAPACK's failure to converge.
    pub fn eigenvalues_f64(&self) -> Result<Array1<c64>> {
        let (a, b) = self.factors_f64("eigenvalues_f64")?;
        if a.nrows() != b.ncols() {
            return Err(Error::invalid(
                "FactoredMatrix::eigenvalues_f64",
                format!(
                    "needs a square matrix (ldim == rdim), this one is {:?}",
                    self.shape()
                ),
            ));
        }
        eigenvalues(&b.dot(&a))
    }
}
