//! Analyses of a hooked transformer's runs, as TransformerLens and the ARENA exercises do
//! them, each returning tensors and, where a table is the natural reading, a long-format
//! polars DataFrame.
//!
//! - [`CacheAnalysis`] (on `ActivationCache`): `accumulated_resid`, `decompose_resid`,
//!   `stack_head_results`, `compute_head_results`, `get_neuron_results`,
//!   `apply_ln_to_stack`, `logit_attrs`, returning labelled [`Stack`]s.
//! - [`logit_lens`] (layer × position → top tokens, the answer's rank and probability) and
//!   [`direct_logit_attribution`] per head or per layer.
//! - Head detectors: [`detect_head`] (previous-token, duplicate-token, induction, or your own
//!   pattern; TransformerLens' scores) and ARENA's [`induction_scores`] on
//!   [`repeated_random_tokens`].
//! - Ablations: [`ablate`] heads, neurons or layer outputs (zero, mean over the batch,
//!   resample from another prompt; at chosen positions), [`ablate_each_head`] for a sweep.
//! - Activation patching: [`activation_patch`] with TransformerLens' ready-made targets
//!   ([`PatchTarget`]) and [`generic_activation_patch`] for any hook point and axes;
//!   [`attribution_patch`] estimates them all from one forward and one backward pass, and
//!   [`patching_correlation`] says how well.
//! - Path patching: [`path_patch`] measures a head's effect along chosen paths only (into
//!   later heads' query, key or value inputs, [`Receiver`], or straight to the logits);
//!   [`path_patch_senders`] sweeps every earlier head.

mod ablation;
mod attribution;
mod detectors;
mod lens;
mod patching;
mod path_patching;
mod resid;
mod scores;
mod stack;

pub use ablation::{Ablation, Component, ablate, ablate_each_head, ablation_hooks};
pub use attribution::{attribution_patch, generic_attribution_patch, patching_correlation};
pub use detectors::{
    DetectOptions, ErrorMeasure, HeadPattern, detect_head, detection_pattern, induction_scores,
    induction_stripe, pattern_scores, repeat_tokens, repeated_random_tokens,
};
pub use lens::{DlaBy, LensOptions, LogitLens, direct_logit_attribution, logit_lens};
pub use patching::{PatchAxis, PatchSpec, PatchTarget, activation_patch, generic_activation_patch};
pub use path_patching::{HeadInput, Receiver, path_patch, path_patch_senders};
pub use resid::{CacheAnalysis, Decompose, ResidOptions};
pub use scores::Scores;
pub use stack::{Pos, Stack};
