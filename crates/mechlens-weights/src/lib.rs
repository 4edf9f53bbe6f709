//! Weight analysis for hooked transformers: what a model's weights compute, read without
//! running it.
//!
//! - [`FactoredMatrix`]: a low-rank product `A·B` kept factored (TransformerLens' class):
//!   SVD from the factors, eigenvalues, norms, composition, indexing over `[layer, head]`.
//! - [`Circuits`] (implemented for `HookedTransformer`): `qk()`, `ov()`, full circuits through
//!   the embeddings on a token subset, composition scores, OV copying scores, spectra.
//! - [`svd_interpretation`]: singular directions of OV and MLP weights read through the
//!   unembedding (Millidge & Black 2022), as a table.
//! - [`lapack`]: the same SVD and eigen calls in f64 with LAPACK.
//!
//! Every analysis returns tensors, and a DataFrame where a table is the natural reading.

mod circuits;
mod factored_matrix;
pub mod lapack;
mod svd_interpretation;

pub use circuits::{
    Circuit, Circuits, Composition, composition_scores, effective_rank,
    positive_eigenvalue_fraction,
};
pub use factored_matrix::FactoredMatrix;
/// The array crate of [`lapack`]'s results, so its types can be named.
pub use ndarray;
pub use svd_interpretation::{SvdComponent, SvdOptions, svd_interpretation};
