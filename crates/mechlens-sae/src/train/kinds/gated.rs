//! Gated SAEs: a gate path (`x·W_enc + b_gate > 0`) decides which latents fire, a magnitude
//! path (`relu(x·(W_enc·exp(r_mag)) + b_mag)`) how strongly (SAELens `gated`). The L1 falls
//! on the gate path's ReLU, and the gate path's own reconstruction is an auxiliary loss so
//! that it learns to reconstruct too.

use mechlens_core::Result;
use serde::{Deserialize, Serialize};
use tch::Kind;

use super::{Encoded, StepInput, TrainArchitecture, TrainKind, param, weighted_l1};
use crate::config::Architecture;
use crate::train::loss::squared_error;

/// Settings of a Gated run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gated {
    /// L1 coefficient.
    pub l1_coefficient: f64,
}

impl TrainArchitecture {
    /// Gated with L1 coefficient `l1`.
    pub fn gated(l1: f64) -> Self {
        Self::Gated(Gated { l1_coefficient: l1 })
    }
}

impl TrainKind for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }

    fn saved_as(&self) -> Architecture {
        Architecture::Gated
    }

    fn sparsity_coefficient(&self) -> f64 {
        self.l1_coefficient
    }

    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded> {
        let sae = input.sae;
        let gate = input
            .sae_in
            .f_matmul(&sae.w_enc)?
            .f_add(param(&sae.b_gate)?)?;
        let open = gate.f_gt(0.0)?.f_to_kind(Kind::Float)?.detach();
        let w_mag = sae.w_enc.f_mul(&param(&sae.r_mag)?.f_exp()?)?;
        let mag = input
            .sae_in
            .f_matmul(&w_mag)?
            .f_add(param(&sae.b_mag)?)?
            .f_relu()?;
        let acts = mag.f_mul(&open)?;
        let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
        let gate_relu = gate.f_relu()?;
        let l1 = weighted_l1(&gate_relu, input.w_dec_norm)?;
        let via_gate = gate_relu.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
        let aux = squared_error(&(input.unscale)(via_gate)?, input.x)?;
        Ok(Encoded {
            acts: acts.detach(),
            out,
            sparsity: l1.f_mul_scalar(input.st.sparsity_coefficient)?,
            aux,
        })
    }
}
