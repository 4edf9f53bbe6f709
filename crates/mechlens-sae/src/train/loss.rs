//! One training forward pass per architecture, with SAELens' losses:
//! MSE summed over `d_in` and averaged over the batch, plus
//! - Standard: L1 of activations × decoder row norms;
//! - TopK / BatchTopK: AuxK — the top `d_in/2` dead latents reconstruct the residual;
//! - JumpReLU: L0 through a straight-through estimator with a rectangle kernel;
//! - Gated: L1 of the gate path's ReLU × decoder norms, and the gate path's own
//!   reconstruction.
//!
//! Straight-through gradients are written as `value.detach() + (s − s.detach())`, where `s` is
//! a surrogate whose gradient is the estimator's: the forward value is exact and autograd
//! gives SAELens' custom backward.

use mechlens_core::Result;
use tch::{Kind, Tensor};

use super::config::TrainArchitecture;
use crate::sae::{Sae, bag_sums, decode_rows};

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

fn rectangle(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_gt(-0.5)?
        .f_logical_and(&x.f_lt(0.5)?)?
        .f_to_kind(Kind::Float)?)
}

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
    let zero = || Tensor::zeros([], (Kind::Float, x.device()));
    let w_dec_norm = sae.w_dec.f_norm_scalaropt_dim(2, [1], false)?;
    let (acts, out, sparsity, aux) = match arch {
        TrainArchitecture::Standard { .. } => {
            let pre = sae_in.f_matmul(&sae.w_enc)?.f_add(b(&sae.b_enc)?)?;
            let acts = pre.f_relu()?;
            let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
            let l1 = acts
                .f_mul(&w_dec_norm)?
                .f_sum_dim_intlist(-1, false, Kind::Float)?
                .f_mean(Kind::Float)?;
            (acts, out, l1.f_mul_scalar(st.sparsity_coefficient)?, zero())
        }
        TrainArchitecture::TopK {
            k,
            aux_loss_coefficient,
        } => {
            let ranked = ranked_pre(sae, &sae_in, &w_dec_norm, st.rescale)?;
            let (values, indices) = ranked.f_topk(*k, -1, true, false)?;
            let values = values.f_relu()?;
            let out = sparse_decode(sae, &values, &indices, &w_dec_norm, st.rescale)?
                .f_add(&sae.b_dec)?;
            let acts = ranked
                .f_zeros_like()?
                .f_scatter(-1, &indices, &values.detach())?;
            let aux = topk_aux(sae, x, &out, &ranked, st, &w_dec_norm)?
                .f_mul_scalar(*aux_loss_coefficient)?;
            (acts, out, zero(), aux)
        }
        TrainArchitecture::BatchTopK {
            k,
            aux_loss_coefficient,
            ..
        } => {
            let ranked = ranked_pre(sae, &sae_in, &w_dec_norm, st.rescale)?;
            let relu = ranked.f_relu()?;
            let batch = relu.size()[0];
            let keep = ((*k * batch as f64) as i64).clamp(1, relu.numel() as i64);
            let flat = relu.f_flatten(0, -1)?;
            let (values, indices) = flat.f_topk(keep, -1, true, false)?;
            let out = batch_sparse_decode(sae, &values, &indices, &w_dec_norm, st.rescale, batch)?
                .f_add(&sae.b_dec)?;
            let acts = flat
                .f_zeros_like()?
                .f_scatter(-1, &indices, &values.detach())?
                .f_view_as(&relu)?;
            let aux = topk_aux(sae, x, &out, &ranked, st, &w_dec_norm)?
                .f_mul_scalar(*aux_loss_coefficient)?;
            (acts, out, zero(), aux)
        }
        TrainArchitecture::JumpRelu { bandwidth, .. } => {
            let pre = sae_in.f_matmul(&sae.w_enc)?.f_add(b(&sae.b_enc)?)?;
            let threshold = b(&sae.threshold)?;
            let open = pre.f_gt_tensor(threshold)?.f_to_kind(Kind::Float)?.detach();
            let kernel = rectangle(
                &pre.detach()
                    .f_sub(&threshold.detach())?
                    .f_div_scalar(*bandwidth)?,
            )?;
            // d acts / d threshold = −(threshold / bandwidth) · rect((pre − threshold) / bandwidth)
            let s = kernel
                .f_mul(&threshold.detach())?
                .f_mul(threshold)?
                .f_div_scalar(-*bandwidth)?;
            let acts = pre.f_mul(&open)?.f_add(&s.f_sub(&s.detach())?)?;
            let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
            // L0 = Σ step(pre − threshold); d/d threshold = −(1 / bandwidth) · rect(·)
            let s = kernel.f_mul(threshold)?.f_div_scalar(-*bandwidth)?;
            let step = open.f_add(&s.f_sub(&s.detach())?)?;
            let l0 = step
                .f_sum_dim_intlist(-1, false, Kind::Float)?
                .f_mean(Kind::Float)?;
            (
                acts.detach(),
                out,
                l0.f_mul_scalar(st.sparsity_coefficient)?,
                zero(),
            )
        }
        TrainArchitecture::Gated { .. } => {
            let gate = sae_in.f_matmul(&sae.w_enc)?.f_add(b(&sae.b_gate)?)?;
            let open = gate.f_gt(0.0)?.f_to_kind(Kind::Float)?.detach();
            let w_mag = sae.w_enc.f_mul(&b(&sae.r_mag)?.f_exp()?)?;
            let mag = sae_in.f_matmul(&w_mag)?.f_add(b(&sae.b_mag)?)?.f_relu()?;
            let acts = mag.f_mul(&open)?;
            let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
            let gate_relu = gate.f_relu()?;
            let l1 = gate_relu
                .f_mul(&w_dec_norm)?
                .f_sum_dim_intlist(-1, false, Kind::Float)?
                .f_mean(Kind::Float)?;
            let via_gate = gate_relu.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
            let aux = squared_error(&unscale(via_gate)?, x)?;
            (
                acts.detach(),
                out,
                l1.f_mul_scalar(st.sparsity_coefficient)?,
                aux,
            )
        }
    };
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

/// TopK kinds rank pre-activations, times decoder norms when `rescale` (SAELens'
/// `rescale_acts_by_decoder_norm`).
fn ranked_pre(sae: &Sae, sae_in: &Tensor, norms: &Tensor, rescale: bool) -> Result<Tensor> {
    let pre = sae_in.f_matmul(&sae.w_enc)?.f_add(b(&sae.b_enc)?)?;
    Ok(if rescale { pre.f_mul(norms)? } else { pre })
}

fn b(t: &Option<Tensor>) -> Result<&Tensor> {
    t.as_ref().ok_or_else(|| {
        mechlens_core::Error::invalid("SAE", "a parameter of this architecture is missing")
    })
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

/// BatchTopK's decode from the `keep` largest entries of the flattened `[batch, d_sae]`
/// activations (`flat_indices` into it): rows hold different numbers of latents, so an
/// embedding bag per row with offsets from the per-row counts. `[batch, d_in]`, no bias.
fn batch_sparse_decode(
    sae: &Sae,
    values: &Tensor,
    flat_indices: &Tensor,
    norms: &Tensor,
    rescale: bool,
    batch: i64,
) -> Result<Tensor> {
    let d_sae = sae.cfg.d_sae;
    // Flat indices are row-major: sorting them groups each row's latents together.
    let (sorted, order) = flat_indices.f_sort(-1, false)?;
    let latents = sorted.f_remainder(d_sae)?;
    let rows = sorted.f_div_scalar_mode(d_sae, "floor")?;
    let counts = rows.f_bincount::<Tensor>(None, batch)?;
    let offsets = counts.f_cumsum(0, Kind::Int64)?.f_sub(&counts)?;
    let mut weights = values.f_index_select(0, &order)?;
    if rescale {
        weights = weights.f_div(&norms.f_index_select(0, &latents)?)?;
    }
    bag_sums(&sae.w_dec, &latents, &offsets, &weights)
}

/// SAELens' AuxK: the `min(d_in/2, n_dead)` largest dead pre-activations reconstruct the
/// (detached) residual, scaled by `min(n_dead / (d_in/2), 1)`.
fn topk_aux(
    sae: &Sae,
    x: &Tensor,
    out: &Tensor,
    ranked: &Tensor,
    st: &StepState<'_>,
    norms: &Tensor,
) -> Result<Tensor> {
    if st.n_dead == 0 {
        return Ok(Tensor::zeros([], (Kind::Float, x.device())));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, SaeConfig};

    #[test]
    fn batch_topk_sparse_decode_equals_the_dense_product() {
        let (batch, d_in, d_sae) = (6, 5, 12);
        let sae = Sae::init(
            SaeConfig::new(Architecture::Standard, d_in, d_sae),
            Some(0.3),
            1,
        )
        .unwrap();
        tch::manual_seed(2);
        let acts = Tensor::randn([batch, d_sae], (Kind::Float, tch::Device::Cpu)).relu();
        // Row 3 keeps nothing: an empty bag.
        let acts = acts.index_fill(0, &Tensor::from_slice(&[3i64]), 0.0);
        let (values, indices) = acts.flatten(0, -1).topk(20, -1, true, false);
        let kept = acts
            .flatten(0, -1)
            .zeros_like()
            .scatter(-1, &indices, &values)
            .view([batch, d_sae]);
        let norms = sae.w_dec.norm_scalaropt_dim(2, [1], false);
        for rescale in [false, true] {
            let ours =
                batch_sparse_decode(&sae, &values, &indices, &norms, rescale, batch).unwrap();
            let weights = if rescale {
                kept.divide(&norms)
            } else {
                kept.shallow_clone()
            };
            let dense = weights.matmul(&sae.w_dec);
            let err = ours.f_sub(&dense).unwrap().abs().max().double_value(&[]);
            assert!(err < 1e-6, "rescale {rescale}: {err}");
        }
    }
}
