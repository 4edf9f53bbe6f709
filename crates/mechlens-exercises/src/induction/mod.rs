//! Set E2, induction heads (Olsson et al. 2022; ARENA 1.2): repeated random tokens, the
//! detection patterns of previous-token, duplicate-token and induction heads and how a head's
//! attention is scored against them, the induction stripe, direct logit attribution, head
//! ablation, the full OV circuit, and composition scores; each checked against
//! mechlens-analysis and mechlens-weights (themselves tested against TransformerLens), or,
//! where the library has no function of its own, the formula ARENA uses, written out.

mod ablation;
mod circuits;
mod detect;
#[cfg(test)]
mod tests;

/// The checks of set E2 (re-exported flat in [`crate::check`]).
pub mod checks {
    pub use super::ablation::{head_ablation_increase, logit_attribution};
    pub use super::circuits::{composition_score, full_ov_circuit, top_1_accuracy};
    pub use super::detect::{
        duplicate_token_pattern, head_scores, induction_pattern, induction_stripe_score,
        previous_token_pattern, repeat_tokens,
    };
}
