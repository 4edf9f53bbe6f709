//! The autograd training step shared by every kind: input scaling and centring, the kind's
//! forward pass and loss terms ([`super::kinds`]), then SAELens' reconstruction error (MSE
//! summed over `d_in`, averaged over the batch). Also what a step reports ([`StepOut`],
//! [`Active`]) and the decode helpers the kinds and the hand-written backward share.

use mechlens_core::Result;
use tch::{Kind, Tensor};

use super::kinds::{Encoded, StepInput, TrainArchitecture};
use crate::sae::{Sae, decode_rows};

/// What one step computed.
pub(crate) struct StepOut {
    pub loss: Tensor,
    pub mse: Tensor,
    pub sparsity: Tensor,
    pub aux: Tensor,
    /// Latent activations (detached).
    pub active: Active,
    /// The reconstruction `[batch, d_in]` (detached).
    pub out: Tensor,
}

/// Per-run state the forward pass reads: dead latents and BatchTopK's threshold.
pub(crate) struct StepState<'a> {
    pub dead: &'a Tensor,
    pub n_dead: i64,
    pub sparsity_coefficient: f64,
    pub rescale: bool,
}

/// The training forward pass of `arch` on `x` `[batch, d_in]`, with the losses autograd
/// differentiates: the kind's own terms ([`super::kinds::TrainKind::encode`]) plus the reconstruction error.
pub(crate) fn forward(
    sae: &Sae,
    arch: &TrainArchitecture,
    x: &Tensor,
    st: &StepState<'_>,
) -> Result<StepOut> {
    // ConstantNormRescale: encode x·c (norm √d_in per token), decode back by 1/c; the MSE is
    // taken in the input's own units, as SAELens does.
    let coeff = match sae.cfg.normalize_activations {
        crate::ActivationNorm::ConstantNormRescale => Some(
            x.f_norm_scalaropt_dim(2, [-1], true)?
                .f_reciprocal()?
                .f_mul_scalar((sae.cfg.d_in as f64).sqrt())?,
        ),
        _ => None,
    };
    let unscale = |t: Tensor| -> Result<Tensor> {
        Ok(match &coeff {
            Some(c) => t.f_div(c)?,
            None => t,
        })
    };
    let x_in = match &coeff {
        Some(c) => x.f_mul(c)?,
        None => x.shallow_clone(),
    };
    let sae_in = if sae.cfg.apply_b_dec_to_input {
        x_in.f_sub(&sae.b_dec)?
    } else {
        x_in
    };
    let w_dec_norm = sae.w_dec.f_norm_scalaropt_dim(2, [1], false)?;
    let Encoded {
        acts,
        out,
        sparsity,
        aux,
    } = arch.kind().encode(&StepInput {
        sae,
        x,
        sae_in: &sae_in,
        w_dec_norm: &w_dec_norm,
        st,
        unscale: &unscale,
    })?;
    let out = unscale(out)?;
    let mse = squared_error(&out, x)?;
    let loss = mse.f_add(&sparsity)?.f_add(&aux)?;
    Ok(StepOut {
        loss,
        mse,
        sparsity,
        aux,
        active: Active::Dense(acts.detach()),
        out: out.detach(),
    })
}

/// Latent activations of one step, dense `[batch, d_sae]` or as each row's `k` largest
/// (`values`, `indices`: `[batch, k]`, everything else zero).
pub(crate) enum Active {
    Dense(Tensor),
    /// Non-negative activations with their column sums (a latent fired iff its sum is > 0).
    NonNegative {
        acts: Tensor,
        column_sums: Tensor,
    },
    Sparse {
        values: Tensor,
        indices: Tensor,
    },
}

impl Active {
    /// Which latents fired (> 0) for some row: `[d_sae]` bool.
    pub fn fired(&self, d_sae: i64) -> Result<Tensor> {
        Ok(match self {
            Active::Dense(acts) => acts.f_gt(0.0)?.f_any_dim(0, false)?,
            Active::NonNegative { column_sums, .. } => column_sums.f_gt(0.0)?,
            Active::Sparse { values, indices } => {
                let on = values.f_gt(0.0)?.f_to_kind(Kind::Float)?.f_flatten(0, -1)?;
                Tensor::f_zeros([d_sae], (Kind::Float, values.device()))?
                    .f_index_add(0, &indices.f_flatten(0, -1)?, &on)?
                    .f_gt(0.0)?
            }
        })
    }

    /// Mean number of active latents per row.
    pub fn l0(&self) -> Result<f64> {
        let values = match self {
            Active::Dense(acts) | Active::NonNegative { acts, .. } => acts,
            Active::Sparse { values, .. } => values,
        };
        let on = crate::fused::count_positive(values)?;
        Ok(on as f64 / values.size()[0].max(1) as f64)
    }

    /// The smallest positive activation, if any latent fired.
    pub fn min_positive(&self) -> Result<Option<f64>> {
        let values = match self {
            Active::Dense(acts)
            | Active::NonNegative { acts, .. }
            | Active::Sparse { values: acts, .. } => acts,
        };
        let positive = values.f_masked_select(&values.f_gt(0.0)?)?;
        if positive.numel() == 0 {
            return Ok(None);
        }
        Ok(Some(positive.f_min()?.double_value(&[])))
    }
}

/// `Σ_d (a − b)²`, averaged over the batch.
pub(crate) fn squared_error(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(a.f_sub(b)?
        .f_square()?
        .f_sum_dim_intlist(-1, false, Kind::Float)?
        .f_mean(Kind::Float)?)
}

/// TopK's training decode (no bias); the norms divide the values when `rescale`.
pub(crate) fn sparse_decode(
    sae: &Sae,
    values: &Tensor,
    indices: &Tensor,
    norms: &Tensor,
    rescale: bool,
) -> Result<Tensor> {
    decode_rows(&sae.w_dec, values, indices, rescale.then_some(norms))
}
