//! Toy settings with known ground truth, for testing and teaching dictionary learning.
//!
//! - [`SparseFeatures`]: the toy data of Sharkey, Braun & Millidge (2022), "Taking features
//!   out of superposition with sparse autoencoders": unit-norm ground-truth directions in a
//!   smaller space, sparse coefficients with correlated firing and decaying probability.
//! - [`mmcs`]: the Mean Max Cosine Similarity between a learned dictionary and the truth;
//!   [`mean_correlation_coefficient`] and [`feature_uniqueness`]: SAELens' one-to-one scores.
//! - [`mmcs_sweep`]: their grid of ReLU SAEs on toy data (L1 coefficient × dictionary size),
//!   each scored by MMCS; toy data is an `ActivationSource` for mechlens-sae's trainer.
//! - [`ToyModel`]: the toy models of superposition (Elhage et al. 2022), many instances as
//!   one batched model, with dimensions per feature and per-feature dimensionality.
//! - [`ModularData`] and the Fourier analyses of modular addition (Nanda et al. 2023):
//!   [`fourier_basis`], [`embedding_frequency_power`], [`key_frequencies`],
//!   [`neuron_frequency_share`], [`key_frequency_logits`] (restricted and excluded logits);
//!   [`GrokkingOptions`], the paper's grokking run ([`paper_grokking_model`], its own
//!   initialisation), and its [`progress_measures`].
//! - [`FeatureTree`]: orthogonal features where a child fires only with its parent
//!   (Chanin et al. 2024), a toy SAE trained on it ([`train_toy_sae`], tied or untied) and
//!   the parent's absorption by the child ([`feature_absorption`]).
//! - [`InductionData`]: random tokens with a segment repeated at a random length and offset
//!   (Olsson et al. 2022), training data for mechlens-train, and the positions only an
//!   induction head can predict.
//! - [`ResidualMlp`]: the toy model of compressed computation (Braun et al. 2025): 100
//!   features through a random 1,000-wide embedding and 50 ReLU neurons, `x + ReLU(x)`.

mod absorption;
mod feature_tree;
mod grokking;
mod grokking_paper;
mod induction;
mod induction_run;
mod matching;
mod modular;
mod python_random;
mod residual_mlp;
mod sae_source;
mod sparse_features;
mod superposition;
mod superposition_batch;
mod superposition_gradient;
mod sweep;

pub use absorption::{
    ToySaeOptions, ToySaeRun, feature_absorption, feature_latents, train_toy_sae,
};
pub use feature_tree::{FeatureTree, TreeBatch, TreeFeature};
pub use grokking::{
    GrokkingOptions, GrokkingSetup, ProgressMeasures, clustered_neuron_share, grid_logits,
    progress_measures,
};
pub use grokking_paper::{paper_absent_biases, paper_grokking_model};
pub use induction::{
    InductionBatch, InductionData, InductionObjective, InductionOptions, masked_next_token_loss,
};
pub use induction_run::{
    INDUCTION_LOG_EVERY, INDUCTION_PROBE_ROWS, INDUCTION_STEPS, induction_model, induction_probe,
    train_induction,
};
pub use matching::{feature_uniqueness, matched_rows, mean_correlation_coefficient};
pub use modular::{
    ModularData, NEURON_CLUSTER_THRESHOLD, embedding_frequency_power, fourier_basis, grid_loss,
    grokking_config, is_prime, key_frequencies, key_frequency_logits, neuron_frequency_share,
};
pub use residual_mlp::{ResidualMlp, ResidualMlpOptions, ResidualMlpTrainOptions};
pub use sparse_features::{SparseFeatures, SparseFeaturesOptions, max_cosine, mmcs};
pub use superposition::{ToyModel, ToyModelOptions, ToyTrainOptions};
pub use sweep::mmcs_sweep;
