//! `FactoredMatrix`: a low-rank product `A·B` kept as its factors (TransformerLens' class of
//! the same name). A head's QK circuit is `[d_model, d_model]` but has rank `d_head`: keeping
//! `A` `[.., d_model, d_head]` and `B` `[.., d_head, d_model]` makes its SVD, norm and
//! eigenvalues cost `d_head`-sized work instead of `d_model`-sized.

use std::cell::OnceCell;

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

/// `A·B` over leading (batch) dims, e.g. `[n_layers, n_heads]`.
///
/// # Shapes
/// - `A`: `[..., ldim, mdim]`, `B`: `[..., mdim, rdim]`; the leading dims broadcast.
/// - The matrix: `[..., ldim, rdim]`.
pub struct FactoredMatrix {
    a: Tensor,
    b: Tensor,
    /// `(U, S, V)`, computed once from the factors.
    svd: OnceCell<(Tensor, Tensor, Tensor)>,
}

impl Clone for FactoredMatrix {
    fn clone(&self) -> Self {
        Self {
            a: self.a.shallow_clone(),
            b: self.b.shallow_clone(),
            svd: OnceCell::new(),
        }
    }
}

impl std::fmt::Debug for FactoredMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FactoredMatrix: Shape({:?}), Hidden Dim({})",
            self.shape(),
            self.mdim()
        )
    }
}

fn leading(t: &Tensor) -> Vec<i64> {
    let size = t.size();
    size[..size.len().saturating_sub(2)].to_vec()
}

fn broadcast_leading(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = a.len().checked_sub(n - i).map_or(1, |j| a[j]);
            let db = b.len().checked_sub(n - i).map_or(1, |j| b[j]);
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Thin SVD `(U, S, V)` of the last two dims, `m = U·diag(S)·Vᵀ`.
///
/// tch's `linalg_svd` always passes a `driver`, which libtorch refuses on the CPU; `svd` is
/// the same LAPACK call (gesdd) without one, and returns `V` rather than `Vᵀ`.
pub(crate) fn thin_svd(m: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Ok(m.f_svd(true, true)?)
}

impl FactoredMatrix {
    /// `A·B` from its factors.
    ///
    /// # Errors
    /// A factor with fewer than 2 dims, inner dims that differ, or leading dims that do not
    /// broadcast.
    pub fn new(a: Tensor, b: Tensor) -> Result<Self> {
        if a.dim() < 2 || b.dim() < 2 {
            return Err(Error::ShapeMismatch {
                what: "FactoredMatrix factors".into(),
                expected: "A [..., ldim, mdim] and B [..., mdim, rdim]".into(),
                got: if a.dim() < 2 { a.size() } else { b.size() },
            });
        }
        let (sa, sb) = (a.size(), b.size());
        if sa[sa.len() - 1] != sb[sb.len() - 2] {
            return Err(Error::invalid(
                "FactoredMatrix factors",
                format!(
                    "inner dims differ: A is {sa:?}, B is {sb:?} (A's last dim must equal B's second-to-last)"
                ),
            ));
        }
        let lead = broadcast_leading(&leading(&a), &leading(&b)).ok_or_else(|| {
            Error::invalid(
                "FactoredMatrix factors",
                format!("leading dims do not broadcast: A is {sa:?}, B is {sb:?}"),
            )
        })?;
        let with = |tail: [i64; 2]| [lead.as_slice(), &tail].concat();
        let a = a.f_broadcast_to(with([sa[sa.len() - 2], sa[sa.len() - 1]]).as_slice())?;
        let b = b.f_broadcast_to(with([sb[sb.len() - 2], sb[sb.len() - 1]]).as_slice())?;
        Ok(Self {
            a,
            b,
            svd: OnceCell::new(),
        })
    }

    /// The left factor, `[..., ldim, mdim]`.
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// The right factor, `[..., mdim, rdim]`.
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    /// `[..., ldim, rdim]`.
    pub fn shape(&self) -> Vec<i64> {
        let mut shape = leading(&self.a);
        shape.extend([self.ldim(), self.rdim()]);
        shape
    }

    /// Number of dims of the matrix, leading dims included.
    pub fn ndim(&self) -> usize {
        self.a.dim()
    }

    /// Rows of the product.
    pub fn ldim(&self) -> i64 {
        self.a.size()[self.a.dim() - 2]
    }

    /// The inner (hidden) dim: the product's rank is at most this.
    pub fn mdim(&self) -> i64 {
        self.a.size()[self.a.dim() - 1]
    }

    /// Columns of the product.
    pub fn rdim(&self) -> i64 {
        self.b.size()[self.b.dim() - 1]
    }

    /// The product `A·B`, `[..., ldim, rdim]` (materialised: mind its size).
    pub fn ab(&self) -> Result<Tensor> {
        Ok(self.a.f_matmul(&self.b)?)
    }

    /// `B·A`, `[..., mdim, mdim]`; needs `rdim == ldim`.
    ///
    /// # Errors
    /// A non-square product.
    pub fn ba(&self) -> Result<Tensor> {
        self.square("BA")?;
        Ok(self.b.f_matmul(&self.a)?)
    }

    fn square(&self, what: &str) -> Result<()> {
        if self.ldim() == self.rdim() {
            Ok(())
        } else {
            Err(Error::invalid(
                format!("FactoredMatrix {what}"),
                format!(
                    "needs a square matrix (ldim == rdim), this one is {:?}",
                    self.shape()
                ),
            ))
        }
    }

    /// The transpose `(A·B)ᵀ = Bᵀ·Aᵀ` (TransformerLens' `.T`).
    pub fn transpose(&self) -> Result<Self> {
        Self::new(self.b.f_transpose(-2, -1)?, self.a.f_transpose(-2, -1)?)
    }

    /// `self · other` for a matrix `other` `[..., rdim, n]`, kept factored through the
    /// smaller inner dim (as TransformerLens does).
    ///
    /// # Errors
    /// `other`'s rows differ from `rdim`.
    pub fn matmul(&self, other: &Tensor) -> Result<Self> {
        let size = other.size();
        if size.len() < 2 || size[size.len() - 2] != self.rdim() {
            return Err(Error::ShapeMismatch {
                what: "right operand of FactoredMatrix::matmul".into(),
                expected: format!("[..., {}, n]", self.rdim()),
                got: size,
            });
        }
        if self.rdim() > self.mdim() {
            Self::new(self.a.shallow_clone(), self.b.f_matmul(other)?)
        } else {
            Self::new(self.ab()?, other.shallow_clone())
        }
    }

    /// `other · self` for a matrix `other` `[..., n, ldim]`.
    ///
    /// # Errors
    /// `other`'s columns differ from `ldim`.
    pub fn rmatmul(&self, other: &Tensor) -> Result<Self> {
        let size = other.size();
        if size.len() < 2 || size[size.len() - 1] != self.ldim() {
            return Err(Error::ShapeMismatch {
                what: "left operand of FactoredMatrix::rmatmul".into(),
                expected: format!("[..., n, {}]", self.ldim()),
                got: size,
            });
        }
        if self.ldim() > self.mdim() {
            Self::new(other.f_matmul(&self.a)?, self.b.shallow_clone())
        } else {
            Self::new(other.shallow_clone(), self.ab()?)
        }
    }

    /// `self · v` for a vector `v` `[rdim]`: `[..., ldim]`.
    ///
    /// # Errors
    /// `v` is not `[rdim]`.
    pub fn matvec(&self, v: &Tensor) -> Result<Tensor> {
        if v.size() != [self.rdim()] {
            return Err(Error::ShapeMismatch {
                what: "vector of FactoredMatrix::matvec".into(),
                expected: format!("[{}]", self.rdim()),
                got: v.size(),
            });
        }
        Ok(self
            .a
            .f_matmul(&self.b.f_matmul(&v.f_unsqueeze(-1)?)?)?
            .f_squeeze_dim(-1)?)
    }

    /// `self · other` for two factored matrices.
    ///
    /// # Errors
    /// `other.ldim() != self.rdim()`.
    pub fn compose(&self, other: &FactoredMatrix) -> Result<Self> {
        if other.ldim() != self.rdim() {
            return Err(Error::invalid(
                "FactoredMatrix::compose",
                format!(
                    "left is {:?} and right is {:?}: left's columns must equal right's rows",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        self.matmul(other.a())?.matmul(other.b())
    }

    /// `s · A·B` (the scale goes into `A`).
    pub fn scale(&self, s: f64) -> Result<Self> {
        Self::new(self.a.f_mul_scalar(s)?, self.b.shallow_clone())
    }

    /// Selects along the leading dims (`&[layer]` or `&[layer, head]`), like TL's indexing.
    ///
    /// # Errors
    /// More indices than leading dims, or an index out of range (both named).
    pub fn index(&self, index: &[i64]) -> Result<Self> {
        let lead = leading(&self.a);
        if index.len() > lead.len() {
            return Err(Error::invalid(
                "FactoredMatrix index",
                format!(
                    "{index:?} has {} indices but the matrix {:?} has {} leading dims",
                    index.len(),
                    self.shape(),
                    lead.len()
                ),
            ));
        }
        let (mut a, mut b) = (self.a.shallow_clone(), self.b.shallow_clone());
        for (dim, (&i, &n)) in index.iter().zip(&lead).enumerate() {
            if i < -n || i >= n {
                return Err(Error::invalid(
                    "FactoredMatrix index",
                    format!("index {i} of leading dim {dim} is out of range 0..{n}"),
                ));
            }
            let i = if i < 0 { i + n } else { i };
            a = a.f_select(0, i)?;
            b = b.f_select(0, i)?;
        }
        Self::new(a, b)
    }

    /// Inserts a leading dim of size 1 at `dim`.
    pub fn unsqueeze(&self, dim: i64) -> Result<Self> {
        Self::new(self.a.f_unsqueeze(dim)?, self.b.f_unsqueeze(dim)?)
    }

    /// The thin SVD `(U, S, V)` with `A·B = U·diag(S)·Vᵀ`, from the factors (never forming
    /// `A·B`), computed once. Returned as TransformerLens does: `V`, not `Vᵀ`.
    ///
    /// # Shapes
    /// - `U`: `[..., ldim, mdim]`, `S`: `[..., mdim]`, `V`: `[..., rdim, mdim]`
    pub fn svd(&self) -> Result<(Tensor, Tensor, Tensor)> {
        if let Some((u, s, v)) = self.svd.get() {
            return Ok((u.shallow_clone(), s.shallow_clone(), v.shallow_clone()));
        }
        // A = Ua Sa Vaᵀ, B = Ub Sb Vbᵀ, so A·B = Ua (Sa Vaᵀ Ub Sb) Vbᵀ: only the small middle
        // matrix [mdim, mdim] needs a further SVD.
        let (ua, sa, va) = thin_svd(&self.a)?;
        let (ub, sb, vb) = thin_svd(&self.b)?;
        let middle = sa
            .f_unsqueeze(-1)?
            .f_mul(&va.f_transpose(-2, -1)?)?
            .f_matmul(&ub)?
            .f_mul(&sb.f_unsqueeze(-2)?)?;
        let (um, sm, vm) = thin_svd(&middle)?;
        let u = ua.f_matmul(&um)?;
        let v = vb.f_matmul(&vm)?;
        let _ = self
            .svd
            .set((u.shallow_clone(), sm.shallow_clone(), v.shallow_clone()));
        Ok((u, sm, v))
    }

    /// Singular values, `[..., mdim]`, descending.
    pub fn s(&self) -> Result<Tensor> {
        Ok(self.svd()?.1)
    }

    /// Left singular vectors, `[..., ldim, mdim]`.
    pub fn u(&self) -> Result<Tensor> {
        Ok(self.svd()?.0)
    }

    /// Right singular vectors, `[..., rdim, mdim]`.
    pub fn v(&self) -> Result<Tensor> {
        Ok(self.svd()?.2)
    }

    /// Eigenvalues of `A·B` that can be non-zero: those of `B·A`, complex, `[..., mdim]`.
    /// Computed in f32 at least (libtorch has no 16-bit `eig`).
    ///
    /// # Errors
    /// A non-square product.
    pub fn eigenvalues(&self) -> Result<Tensor> {
        let ba = self.ba()?;
        let ba = match ba.kind() {
            Kind::Half | Kind::BFloat16 => ba.f_to_kind(Kind::Float)?,
            _ => ba,
        };
        Ok(ba.f_linalg_eigvals()?)
    }

    /// Frobenius norm, `[...]`: `sqrt(Σ S²)`.
    pub fn norm(&self) -> Result<Tensor> {
        Ok(self
            .s()?
            .f_square()?
            .f_sum_dim_intlist(-1, false, None)?
            .f_sqrt()?)
    }

    /// The same matrix as `(U·√S, √S·Vᵀ)`: each factor carries half of each singular value.
    pub fn make_even(&self) -> Result<Self> {
        let (u, s, v) = self.svd()?;
        let root = s.f_sqrt()?;
        Self::new(
            u.f_mul(&root.f_unsqueeze(-2)?)?,
            root.f_unsqueeze(-1)?.f_mul(&v.f_transpose(-2, -1)?)?,
        )
    }

    /// `diag(S)·Vᵀ`, `[..., mdim, rdim]`: the matrix with its left orthogonal factor dropped.
    pub fn collapse_l(&self) -> Result<Tensor> {
        let (_, s, v) = self.svd()?;
        Ok(s.f_unsqueeze(-1)?.f_mul(&v.f_transpose(-2, -1)?)?)
    }

    /// `U·diag(S)`, `[..., ldim, mdim]`: the matrix with its right orthogonal factor dropped.
    pub fn collapse_r(&self) -> Result<Tensor> {
        let (u, s, _) = self.svd()?;
        Ok(u.f_mul(&s.f_unsqueeze(-2)?)?)
    }

    /// The first `k` entries along every dim of `A·B` (TransformerLens' `get_corner`), formed
    /// from `k` rows of `A` and `k` columns of `B` only: a glance at a matrix too large to print.
    pub fn get_corner(&self, k: i64) -> Result<Tensor> {
        let mut a = self.a.shallow_clone();
        let mut b = self.b.shallow_clone();
        for (dim, n) in leading(&self.a).into_iter().enumerate() {
            a = a.f_narrow(dim as i64, 0, k.min(n))?;
            b = b.f_narrow(dim as i64, 0, k.min(n))?;
        }
        let a = a.f_narrow(-2, 0, k.min(self.ldim()))?;
        let b = b.f_narrow(-1, 0, k.min(self.rdim()))?;
        Ok(a.f_matmul(&b)?)
    }
}
