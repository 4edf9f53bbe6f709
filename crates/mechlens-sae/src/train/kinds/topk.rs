//! TopK SAEs: the `k` largest pre-activations of each token, ReLU'd, the rest zero (SAELens
//! `topk`), with the AuxK loss: the largest pre-activations of dead latents reconstruct the
//! residual. Trained through the hand-written backward ([`super::super::backward`]).
//! [`ranked_pre`] and [`topk_aux`] are shared with BatchTopK.

use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{Encoded, StepInput, TrainArchitecture, TrainKind, param, zero};
use crate::config::{Architecture, SaeConfig};
use crate::sae::Sae;
use crate::train::backward::{self, Grads};
use crate::train::loss::{StepOut, StepState, sparse_decode, squared_error};

/// Settings of a TopK run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// Active latents per token.
    pub k: i64,
    /// AuxK coefficient (SAELens `aux_loss_coefficient`, 1.0).
    pub aux_loss_coefficient: f64,
}

impl TrainArchitecture {
    /// TopK with `k` active latents.
    pub fn topk(k: i64) -> Self {
        Self::TopK(TopK {
            k,
            aux_loss_coefficient: 1.0,
        })
    }
}

impl TrainKind for TopK {
    fn name(&self) -> &'static str {
        "topk"
    }

    fn saved_as(&self) -> Architecture {
        Architecture::TopK
    }

    fn selects_top_k(&self) -> bool {
        true
    }

    fn validate(&self, d_sae: i64) -> Result<()> {
        let k = self.k;
        if !(1..=d_sae).contains(&k) {
            return Err(Error::invalid(
                "k",
                format!("must be in 1..={d_sae} (d_sae), got {k}"),
            ));
        }
        Ok(())
    }

    fn saved_config(&self, cfg: &mut SaeConfig) {
        cfg.k = Some(self.k);
    }

    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded> {
        let (sae, st) = (input.sae, input.st);
        let ranked = ranked_pre(sae, input.sae_in, input.w_dec_norm, st.rescale)?;
        let (values, indices) = ranked.f_topk(self.k, -1, true, false)?;
        let values = values.f_relu()?;
        let out = sparse_decode(sae, &values, &indices, input.w_dec_norm, st.rescale)?
            .f_add(&sae.b_dec)?;
        let acts = ranked
            .f_zeros_like()?
            .f_scatter(-1, &indices, &values.detach())?;
        let aux = topk_aux(sae, input.x, &out, &ranked, st, input.w_dec_norm)?
            .f_mul_scalar(self.aux_loss_coefficient)?;
        Ok(Encoded {
            acts,
            out,
            sparsity: zero(input.x),
            aux,
        })
    }

    fn hand_written(
        &self,
        sae: &Sae,
        x: &Tensor,
        st: &StepState<'_>,
    ) -> Option<Result<(StepOut, Grads)>> {
        backward::prepared(sae, x).map(|r| {
            r.and_then(|(sae_in, b_enc)| {
                backward::topk(
                    sae,
                    &b_enc,
                    x,
                    &sae_in,
                    st,
                    self.k,
                    self.aux_loss_coefficient,
                )
            })
        })
    }
}

/// TopK kinds rank pre-activations, times decoder norms when `rescale` (SAELens'
/// `rescale_acts_by_decoder_norm`).
pub(super) fn ranked_pre(
    sae: &Sae,
    sae_in: &Tensor,
    norms: &Tensor,
    rescale: bool,
) -> Result<Tensor> {
    let pre = sae_in.f_matmul(&sae.w_enc)?.f_add(param(&sae.b_enc)?)?;
    Ok(if rescale { pre.f_mul(norms)? } else { pre })
}

/// SAELens' AuxK: the `min(d_in/2, n_dead)` largest dead pre-activations reconstruct the
/// (detached) residual, scaled by `min(n_dead / (d_in/2), 1)`.
pub(super) fn topk_aux(
    sae: &Sae,
    x: &Tensor,
    out: &Tensor,
    ranked: &Tensor,
    st: &StepState<'_>,
    norms: &Tensor,
) -> Result<Tensor> {
    if st.n_dead == 0 {
        return Ok(zero(x));
    }
    let half = (sae.cfg.d_in / 2).max(1);
    let scale = (st.n_dead as f64 / half as f64).min(1.0);
    let k_aux = half.min(st.n_dead);
    let residual = x.f_sub(out)?.detach();
    let masked = ranked.f_where_scalarother(st.dead, f64::NEG_INFINITY)?;
    let (values, indices) = masked.f_topk(k_aux, -1, true, false)?;
    let recons = sparse_decode(sae, &values, &indices, norms, st.rescale)?;
    Ok(squared_error(&recons, &residual)?.f_mul_scalar(scale)?)
}
