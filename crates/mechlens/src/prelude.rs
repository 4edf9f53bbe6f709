//! Everything a notebook cell needs in scope: `use mechlens::prelude::*;`
//!
//! The kernel's `prelude.rs` imports this, so every cell sees the display trait (which makes
//! the last expression of a cell render as a table, chart or summary), the common `tch` and
//! `polars` names, and plotters' drawing vocabulary. Whole crates are reachable too, as
//! `tch::...`, `polars::...` and `plotters::...`.

pub use mechlens_analysis::{
    Ablation, CacheAnalysis, Component, Decompose, DetectOptions, DlaBy, ErrorMeasure, HeadInput,
    HeadPattern, LensOptions, LogitLens, PatchSpec, PatchTarget, Pos, Receiver, ResidOptions,
    Scores, Stack, ablate, ablate_each_head, ablation_hooks, activation_patch, attribution_patch,
    detect_head, direct_logit_attribution, generic_activation_patch, generic_attribution_patch,
    induction_scores, logit_lens, patching_correlation, path_patch, path_patch_senders,
    repeated_random_tokens,
};
pub use mechlens_core::device::best_device;
pub use mechlens_core::progress::Progress;
pub use mechlens_core::{
    ActivationCache, CacheFilter, Hook, HookPoint, Hooks, Intervention, SaeSite,
};
pub use mechlens_models::{
    Activation, GenerateOptions, HookedEncoder, HookedTransformer, HookedTransformerConfig,
    LoadOptions, NormType, PaddingSide, PositionalType, Processing, TokenBatch, Tokenizer, Tokens,
};
pub use mechlens_sae::absorption::{Absorption, absorption};
pub use mechlens_sae::eval::{SaeReport, SpliceReport};
pub use mechlens_sae::features::{
    TopActivationOptions, activation_histogram, latent_activations, logit_effects, top_activations,
};
pub use mechlens_sae::metrics::SparsityReport;
pub use mechlens_sae::store::{ActivationStore, StoreOptions};
pub use mechlens_sae::train::{
    ActivationSource, LrSchedule, TensorSource, TrainArchitecture, TrainConfig, Trainer,
};
pub use mechlens_sae::{
    ActivationNorm, Architecture, Sae, SaeConfig, SaeSplicing, ShardWriter, ShardedActivations,
    SpliceOptions,
};
pub use mechlens_spd::{
    Apd, ApdConfig, Decomposable, OutputLoss, Spd, SpdConfig, TmsTarget, TransformerTarget,
    ground_truth_scores,
};
pub use mechlens_tables::{
    df_to_tensor, ndarray_to_df, ndarray_to_tensor, read_numeric_csv, tensor_to_df,
    tensor_to_ndarray,
};
pub use mechlens_toys::{
    FeatureTree, ToySaeOptions, ToySaeRun, TreeBatch, TreeFeature, feature_absorption,
    feature_latents, matched_rows, train_toy_sae,
};
pub use mechlens_toys::{
    GrokkingOptions, InductionBatch, InductionData, InductionObjective, InductionOptions,
    ModularData, NEURON_CLUSTER_THRESHOLD, ProgressMeasures, SparseFeatures, SparseFeaturesOptions,
    ToyModel, ToyModelOptions, ToyTrainOptions, clustered_neuron_share, embedding_frequency_power,
    feature_uniqueness, fourier_basis, grid_logits, grid_loss, grokking_config, induction_probe,
    key_frequencies, key_frequency_logits, masked_next_token_loss, max_cosine,
    mean_correlation_coefficient, mmcs, mmcs_sweep, neuron_frequency_share, progress_measures,
};
pub use mechlens_train::{
    AdamWConfig, Batch, Decay, FullBatch, MiniBatches, ModelTrainConfig, ModelTrainer, Schedule,
    TrainData,
};
pub use mechlens_viz::{
    AttentionOptions, Chart, ColoredTokens, DashboardOptions, FeatureDashboard, Heatmap,
    NotebookDisplay, Panel, Scale, Svg, ToHtml, TopKTokens, View, attention_patterns,
    attention_patterns_with, svg_chart,
};
pub use mechlens_weights::{
    Circuit, Circuits, Composition, FactoredMatrix, SvdComponent, SvdOptions, svd_interpretation,
};

pub use std::path::{Path, PathBuf};
pub use std::rc::Rc;

pub use plotters;
pub use plotters::prelude::*;
pub use polars;
pub use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, IntoLazy, NamedFrom, PolarsResult, Series, col, df,
    lit,
};
pub use tch;
pub use tch::{Device, IndexOp, Kind, Tensor};
