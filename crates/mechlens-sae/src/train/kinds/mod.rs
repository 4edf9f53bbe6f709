//! The SAE kinds a run can train, one file each. A kind owns everything that differs between
//! architectures: its settings (the struct inside [`TrainArchitecture`]), how they are
//! checked, the layout it trains and the one it is saved as, its training forward pass and
//! loss terms, an optional hand-written backward, and what it does before and after a step.
//! The trainer ([`super::Trainer`]) only calls [`TrainKind`]'s methods.
//!
//! Adding a kind: a new file with a settings struct and `impl TrainKind`, its constructor on
//! [`TrainArchitecture`], and one line in the `train_kinds!` list below.

mod batch_topk;
mod gated;
mod jumprelu;
mod standard;
mod topk;

use mechlens_core::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use batch_topk::BatchTopK;
pub use gated::Gated;
pub use jumprelu::JumpRelu;
pub use standard::Standard;
pub use topk::TopK;

use super::backward::Grads;
use super::loss::{Active, StepOut, StepState};
use crate::config::{Architecture, SaeConfig};
use crate::sae::Sae;

/// What a kind's training forward pass reads.
pub(crate) struct StepInput<'a> {
    pub sae: &'a Sae,
    /// The batch in the input's own units `[batch, d_in]`.
    pub x: &'a Tensor,
    /// What the encoder sees: `x`, scaled when the run rescales inputs, minus `b_dec` when
    /// `apply_b_dec_to_input`.
    pub sae_in: &'a Tensor,
    /// Decoder row norms `[d_sae]`.
    pub w_dec_norm: &'a Tensor,
    /// Per-run state (dead latents, the warmed-up sparsity coefficient).
    pub st: &'a StepState<'a>,
    /// Back to the input's units from the scaled ones (`ConstantNormRescale`).
    pub unscale: &'a dyn Fn(Tensor) -> Result<Tensor>,
}

/// What a kind's forward pass gives the shared loss: activations, the reconstruction in the
/// encoder's units, and its sparsity and auxiliary loss terms (scalars).
pub(crate) struct Encoded {
    pub acts: Tensor,
    pub out: Tensor,
    pub sparsity: Tensor,
    pub aux: Tensor,
}

/// One SAE kind's training behaviour. Defaults suit a kind with nothing special to do.
pub(crate) trait TrainKind {
    /// SAELens' training architecture name.
    fn name(&self) -> &'static str;

    /// The inference architecture the trained SAE is saved as.
    fn saved_as(&self) -> Architecture;

    /// The L1/L0 coefficient that `sparsity_warm_up_steps` warms up (0: none).
    fn sparsity_coefficient(&self) -> f64 {
        0.0
    }

    /// Whether it keeps the largest pre-activations (TopK kinds: ranked by decoder norm when
    /// `rescale_acts_by_decoder_norm`, with the AuxK loss on dead latents).
    fn selects_top_k(&self) -> bool {
        false
    }

    /// Its settings against the run's `d_sae`: each bad one named.
    fn validate(&self, _d_sae: i64) -> Result<()> {
        Ok(())
    }

    /// The saved SAE's config, from the run's (sets what only this kind has, e.g. `k`).
    fn saved_config(&self, _cfg: &mut SaeConfig) {}

    /// The layout trained, when it differs from the saved one.
    fn training_layout(&self, _cfg: &mut SaeConfig) {}

    /// After initialisation (e.g. the starting threshold).
    fn init(&self, _sae: &mut Sae) -> Result<()> {
        Ok(())
    }

    /// Before each step's forward pass (e.g. keeping thresholds non-negative).
    fn before_step(&self, _sae: &mut Sae) -> Result<()> {
        Ok(())
    }

    /// The training forward pass and this kind's loss terms, for autograd.
    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded>;

    /// A hand-written forward and backward ([`super::backward`]) where this kind has one;
    /// `None` goes through autograd.
    fn hand_written(
        &self,
        _sae: &Sae,
        _x: &Tensor,
        _st: &StepState<'_>,
    ) -> Option<Result<(StepOut, Grads)>> {
        None
    }

    /// After the weights were updated: `threshold` is the run's running threshold estimate.
    fn after_step(&self, _threshold: &mut f64, _active: &Active) -> Result<()> {
        Ok(())
    }

    /// Turns the trained weights into the saved SAE (`threshold` as in `after_step`, in the
    /// saved SAE's units).
    fn export(&self, _sae: &mut Sae, _threshold: f64) -> Result<()> {
        Ok(())
    }
}

/// Declares [`TrainArchitecture`] from the list of kinds, and its dispatch to them.
macro_rules! train_kinds {
    ($($(#[$doc:meta])* $variant:ident($kind:ty),)+) => {
        /// The architecture being trained and its sparsity mechanism. Serialised with
        /// SAELens' names in `architecture` beside the kind's settings, e.g.
        /// `{ "architecture": "topk", "k": 32, "aux_loss_coefficient": 1.0 }`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "architecture", rename_all = "lowercase")]
        pub enum TrainArchitecture {
            $($(#[$doc])* $variant($kind),)+
        }

        impl TrainArchitecture {
            pub(crate) fn kind(&self) -> &dyn TrainKind {
                match self {
                    $(Self::$variant(kind) => kind,)+
                }
            }
        }
    };
}

train_kinds! {
    /// ReLU with an L1 penalty on activations weighted by decoder row norms.
    Standard(Standard),
    /// `k` active latents per token, AuxK loss on dead latents.
    TopK(TopK),
    /// `k·batch` active latents per batch; saved as JumpReLU with the learned threshold.
    BatchTopK(BatchTopK),
    /// JumpReLU with an L0 penalty through a straight-through estimator.
    JumpRelu(JumpRelu),
    /// Gated SAE: L1 on the gate path plus its auxiliary reconstruction.
    Gated(Gated),
}

impl TrainArchitecture {
    /// The architecture it is saved as.
    pub fn inference(&self) -> Architecture {
        self.kind().saved_as()
    }

    /// SAELens' training architecture name.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// An optional parameter this kind needs.
pub(crate) fn param(t: &Option<Tensor>) -> Result<&Tensor> {
    t.as_ref().ok_or_else(|| {
        mechlens_core::Error::invalid("SAE", "a parameter of this architecture is missing")
    })
}

/// A scalar zero on `like`'s device.
pub(crate) fn zero(like: &Tensor) -> Tensor {
    Tensor::zeros([], (tch::Kind::Float, like.device()))
}

/// `Σ_s acts_s · ‖W_dec[s]‖` averaged over the batch: the L1 penalty of Standard and Gated.
pub(crate) fn weighted_l1(acts: &Tensor, w_dec_norm: &Tensor) -> Result<Tensor> {
    Ok(acts
        .f_mul(w_dec_norm)?
        .f_sum_dim_intlist(-1, false, tch::Kind::Float)?
        .f_mean(tch::Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI's `[train] sae = { architecture = "topk", k = 32, ... }` and saved training
    /// configs are this JSON: the kind's name beside its settings, flat.
    #[test]
    fn kinds_read_and_write_saelens_names_beside_their_settings() {
        let json = serde_json::to_value(TrainArchitecture::topk(32)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"architecture": "topk", "k": 32, "aux_loss_coefficient": 1.0})
        );
        for arch in [
            TrainArchitecture::standard(2.0),
            TrainArchitecture::topk(8),
            TrainArchitecture::batch_topk(4.5),
            TrainArchitecture::jumprelu(0.1),
            TrainArchitecture::gated(1.0),
        ] {
            let json = serde_json::to_value(&arch).unwrap();
            assert_eq!(json["architecture"], arch.name());
            let back: TrainArchitecture = serde_json::from_value(json).unwrap();
            assert_eq!(back, arch);
        }
        let missing: Result<TrainArchitecture, _> =
            serde_json::from_value(serde_json::json!({"architecture": "topk"}));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("missing field `k`")
        );
    }
}
