//! Stochastic Parameter Decomposition (Bushnaq et al. 2025): each chosen weight matrix of a
//! trained model is split into `C` rank-one subcomponents, `W ≈ Σ_c V_c U_cᵀ`, and a small
//! function per subcomponent predicts from the input how much that subcomponent matters
//! (its causal importance). Training asks that the model's output survive any random
//! ablation of the unimportant subcomponents while as few as possible are important:
//! subcomponents become the mechanisms the model uses, input by input.
//!
//! - [`Decomposable`]: a model that names its linear maps and lets SPD compute them. The
//!   toy model of superposition is one ([`TmsTarget`], with the paper's identity variant).
//! - [`Spd`]: the decomposition and its training ([`SpdConfig`], the paper's TMS defaults):
//!   faithfulness warm-up, stochastic reconstruction (all layers and layer-wise),
//!   importance minimality, the delta component, a cosine learning rate, a log.
//! - [`TransformerTarget`]: a `HookedTransformer`'s attention and MLP maps, decomposed in
//!   place through hooks (rows are tokens; [`OutputLoss::Kl`] compares next-token
//!   distributions).
//! - Scores: [`ground_truth_scores`] (MMCS, ML2R), [`Spd::alive_components`],
//!   [`Spd::causal_importances`] on probe inputs, [`Spd::run_masked`].
//! - Reproduction 06's run: [`tms_5_2_toy`], [`tms_instance`], [`spd_tms`]; reproduction
//!   07's: the toy model of compressed computation on its embedding's span
//!   ([`ResidMlpTarget`], [`spd_resid_mlp`]).
//! - [`Spd::save`] and [`Spd::load_parameters`]: a trained decomposition in one file.
//! - [`Apd`]: attribution-based parameter decomposition (Braun et al. 2025), the method SPD
//!   replaced, on the same targets ([`ApdConfig`], the APD paper's TMS defaults;
//!   [`apd_tms`] for reproduction 06's comparison run).

mod apd;
mod components;
mod config;
mod decomposition;
mod metrics;
mod resid_mlp;
mod save;
mod shared;
mod target;
mod tms;
mod tms_run;
mod transformer;

pub use apd::{Apd, ApdConfig, ComponentFactors};
pub use components::{
    CausalImportanceMlps, LinearComponents, lower_hard_sigmoid, upper_leaky_hard_sigmoid,
};
pub use config::{OutputLoss, SpdConfig};
pub use decomposition::Spd;
pub use metrics::{GroundTruthScores, ground_truth_scores};
pub use resid_mlp::{RESID_MLP_LAYERS, ResidMlpTarget, resid_mlp_spd_config, spd_resid_mlp};
pub use target::{Decomposable, LinearFn};
pub use tms::TmsTarget;
pub use tms_run::{
    TMS_FEATURE_PROBABILITY, TMS_LAYERS, apd_tms, apd_tms_config, spd_tms, tms_5_2_toy,
    tms_instance,
};
pub use transformer::TransformerTarget;
