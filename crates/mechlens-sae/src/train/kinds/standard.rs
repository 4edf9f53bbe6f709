//! Standard (ReLU) SAEs: `relu(x·W_enc + b_enc)`, with an L1 penalty on the activations
//! weighted by decoder row norms (SAELens `standard`). Trained through the hand-written
//! backward ([`super::super::backward`]).

use mechlens_core::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{Encoded, StepInput, TrainArchitecture, TrainKind, param, weighted_l1, zero};
use crate::config::Architecture;
use crate::sae::Sae;
use crate::train::backward::{self, Grads};
use crate::train::loss::{StepOut, StepState};

/// Settings of a Standard run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standard {
    /// L1 coefficient (SAELens `l1_coefficient`).
    pub l1_coefficient: f64,
}

impl TrainArchitecture {
    /// ReLU with L1 coefficient `l1`.
    pub fn standard(l1: f64) -> Self {
        Self::Standard(Standard { l1_coefficient: l1 })
    }
}

impl TrainKind for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn saved_as(&self) -> Architecture {
        Architecture::Standard
    }

    fn sparsity_coefficient(&self) -> f64 {
        self.l1_coefficient
    }

    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded> {
        let sae = input.sae;
        let pre = input
            .sae_in
            .f_matmul(&sae.w_enc)?
            .f_add(param(&sae.b_enc)?)?;
        let acts = pre.f_relu()?;
        let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
        let l1 = weighted_l1(&acts, input.w_dec_norm)?;
        Ok(Encoded {
            sparsity: l1.f_mul_scalar(input.st.sparsity_coefficient)?,
            aux: zero(input.x),
            acts,
            out,
        })
    }

    fn hand_written(
        &self,
        sae: &Sae,
        x: &Tensor,
        st: &StepState<'_>,
    ) -> Option<Result<(StepOut, Grads)>> {
        backward::prepared(sae, x)
            .map(|r| r.and_then(|(sae_in, b_enc)| backward::standard(sae, &b_enc, x, &sae_in, st)))
    }
}
