//! Toy settings with known ground truth, for testing and teaching dictionary learning.
//!
//! - [`SparseFeatures`]: the toy data of Sharkey, Braun & Millidge (2022), "Taking features
//!   out of superposition with sparse autoencoders": unit-norm ground-truth directions in a
//!   smaller space, sparse coefficients with correlated firing and decaying probability.
//! - [`mmcs`]: the Mean Max Cosine Similarity between a learned dictionary and the truth;
//!   [`mean_correlation_coefficient`] and [`feature_uniqueness`]: SAELens' one-to-one scores.
//! - [`mmcs_sweep`]: their grid of ReLU SAEs on toy data (L1 coefficient × dictionary size),
//!   each scored by MMCS; toy data is an `ActivationSource` for mechlens-sae's trainer.

mod matching;
mod sae_source;
mod sparse_features;
mod sweep;

pub use matching::{feature_uniqueness, mean_correlation_coefficient};
pub use sparse_features::{SparseFeatures, SparseFeaturesOptions, max_cosine, mmcs};
pub use sweep::mmcs_sweep;
