//! Hand-written backward passes for the Standard (ReLU + L1) and TopK training steps.
//!
//! Autograd's backward through `relu(x·W_enc)·W_dec` costs four `[batch, d_sae]`-sized
//! matmuls plus the forward's two, and spends one of them on a gradient nobody needs (the
//! input's, only to reach `b_dec`). Written out:
//! - Standard: `b_dec`'s share through the input is `−W_enc · Σ_rows ∂pre`, a mat-vec; the
//!   L1 term joins the ReLU's backward pass. Five dense matmuls instead of six, with the
//!   passes between them fused ([`crate::fused`]). Below 2.5% active latents the
//!   decode and the three backward products run over the fired entries, as TopK's do.
//! - TopK: only `k` entries per row of `∂pre` are non-zero, so `∂W_enc` and `∂W_dec` are
//!   sparse × dense products, and `∂acts` at the chosen latents is a sampled product (both
//!   are libtorch's embedding-bag backward kernels). One dense matmul (the encoder's
//!   forward) instead of two; the AuxK loss takes the same sparse route.
//!
//! The forward values are the autograd path's ([`super::loss::forward`]) to float rounding;
//! the gradients equal autograd's (tested below) and SAELens' `SAETrainer` ends at the same
//! weights (the parity tests).

use crate::fused;
use mechlens_core::Result;
use tch::{Kind, Tensor};

use super::kinds::TrainArchitecture;
use super::loss::{Active, StepOut, StepState, sparse_decode, squared_error};
use crate::config::ActivationNorm;
use crate::sae::{Sae, bag_sums};

/// Gradients in [`Sae::parameters_mut`]'s order for these architectures:
/// `W_enc, W_dec, b_enc, b_dec`.
pub(crate) type Grads = Vec<Tensor>;

/// The step's losses and gradients by hand where `arch` has a hand-written backward
/// ([`super::kinds::TrainKind::hand_written`]); `None` where it goes through autograd.
pub(crate) fn step(
    sae: &Sae,
    arch: &TrainArchitecture,
    x: &Tensor,
    st: &StepState<'_>,
) -> Option<Result<(StepOut, Grads)>> {
    arch.kind().hand_written(sae, x, st)
}

/// What both hand-written steps start from: the encoder's input and `b_enc`; `None` where
/// the inputs are rescaled per token (`ConstantNormRescale`), which only autograd follows.
pub(crate) fn prepared(sae: &Sae, x: &Tensor) -> Option<Result<(Tensor, Tensor)>> {
    if sae.cfg.normalize_activations == ActivationNorm::ConstantNormRescale {
        return None;
    }
    let prepare = || -> Result<(Tensor, Tensor)> {
        let _guard = tch::no_grad_guard();
        let sae_in = if sae.cfg.apply_b_dec_to_input {
            x.f_sub(&sae.b_dec)?
        } else {
            x.shallow_clone()
        };
        let b_enc = sae.b_enc.as_ref().ok_or_else(|| {
            mechlens_core::Error::invalid("SAE", "training needs b_enc, and this SAE has none")
        })?;
        Ok((sae_in, b_enc.shallow_clone()))
    };
    Some(prepare())
}

/// `∂b_dec`: the output's share `Σ_rows ∂out`, minus the input's share `W_enc · ∂b_enc` when
/// the input was centred by `b_dec`.
fn b_dec_grad(sae: &Sae, grad_out_sums: Tensor, grad_b_enc: &Tensor) -> Result<Tensor> {
    Ok(if sae.cfg.apply_b_dec_to_input {
        grad_out_sums.f_sub(&sae.w_enc.f_mv(grad_b_enc)?)?
    } else {
        grad_out_sums
    })
}

/// The decoder's bias and SAELens' MSE with its gradient, in one pass over `out` (see
/// [`fused::bias_residual_grad_`]): `(mse, ∂out, Σ_rows ∂out)`.
fn reconstruction_loss(
    sae: &Sae,
    out: &mut Tensor,
    x: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let batch = x.size()[0] as f64;
    let (grad_out, squares, grad_out_sums) =
        fused::bias_residual_grad_(out, &sae.b_dec, x, 2.0 / batch)?;
    let mse = Tensor::f_full([], squares / batch, (Kind::Float, x.device()))?;
    Ok((mse, grad_out, grad_out_sums))
}

/// Below this share of active latents a Standard step skips the zeros: the decode and the
/// three backward products run over the latents that fired, through the embedding-bag
/// kernels TopK uses, instead of dense matmuls. A trained ReLU SAE spends nearly all its
/// steps far below it (L0 in the tens to hundreds, of thousands of latents); a fresh one starts
/// near half. At d_in 512, d_sae 4096, batch 4096 on 2 cores the two paths cost the same
/// near 3% active; at 1.8% the sparse one takes 60% of the dense one's time, at 0.3% a third.
const SPARSE_BELOW: f64 = 0.025;

/// Rows whose share of active latents stands for the batch's (a million entries at d_sae
/// 4096: a sixteenth of a full pass).
const DENSITY_SAMPLE_ROWS: i64 = 256;

/// Standard's step (ReLU + L1) by hand.
pub(crate) fn standard(
    sae: &Sae,
    b_enc: &Tensor,
    x: &Tensor,
    sae_in: &Tensor,
    st: &StepState<'_>,
) -> Result<(StepOut, Grads)> {
    let _guard = tch::no_grad_guard();
    let batch = x.size()[0] as f64;
    // The biases go in after the products, fused with the passes that follow (see
    // crate::fused): `addmm` would first copy them into its output.
    let mut acts = sae_in.f_mm(&sae.w_enc)?;
    let col_sums = fused::bias_relu_column_sums_(&mut acts, b_enc)?;

    // L1 = c/B · Σ_s (Σ_rows acts)_s · ‖W_dec[s]‖
    let c = st.sparsity_coefficient / batch;
    let norms = sae.w_dec.f_norm_scalaropt_dim(2, [1], false)?;
    let sparsity = col_sums.f_dot(&norms)?.f_mul_scalar(c)?;
    // The L1's share of ∂W_dec, through the norms: c · Σ_rows acts / ‖W_dec[s]‖ times
    // W_dec[s]. The decode's share is added to it.
    let l1_scale = col_sums
        .f_div(&norms.f_clamp_min(1e-30)?)?
        .f_mul_scalar(c)?;
    let mut grad_w_dec = sae.w_dec.f_mul(&l1_scale.f_unsqueeze(1)?)?;
    // ∂acts = ∂out · W_decᵀ + c · norms; ∂pre is ∂acts where the latent fired, else 0.
    let l1_grad = norms.f_mul_scalar(c)?;

    // The density of the first rows decides: the path only changes the speed.
    let sample = acts.f_narrow(0, 0, acts.size()[0].min(DENSITY_SAMPLE_ROWS))?;
    let sparse = (fused::count_positive(&sample)? as f64) < SPARSE_BELOW * sample.numel() as f64;
    let (out, mse, grad_out_sums, grad_w_enc, grad_b_enc) = if sparse {
        let (values, columns, row_counts) = fused::positive_entries(&acts)?;
        let chosen = Chosen::ragged(&columns, &row_counts, sae.cfg.d_sae)?;
        let mut out = chosen.mm(&values, &sae.w_dec)?;
        let (mse, grad_out, grad_out_sums) = reconstruction_loss(sae, &mut out, x)?;
        grad_w_dec = grad_w_dec.f_add(&chosen.transposed_mm(&values, &grad_out)?)?;
        // Every listed entry fired, so ∂pre there is ∂acts.
        let grad_pre = chosen
            .sampled(&grad_out, &sae.w_dec)?
            .f_add(&l1_grad.f_index_select(0, &columns)?)?;
        let grad_w_enc = chosen
            .transposed_mm(&grad_pre, sae_in)?
            .f_tr()?
            .f_contiguous()?;
        let grad_b_enc = chosen.column_sums(&grad_pre)?;
        (out, mse, grad_out_sums, grad_w_enc, grad_b_enc)
    } else {
        let mut out = acts.f_mm(&sae.w_dec)?;
        let (mse, grad_out, grad_out_sums) = reconstruction_loss(sae, &mut out, x)?;
        let _ = grad_w_dec.f_addmm_(&acts.f_tr()?, &grad_out)?;
        let mut grad_pre = grad_out.f_mm(&sae.w_dec.f_tr()?)?;
        let grad_b_enc = fused::gated_bias_column_sums_(&mut grad_pre, &l1_grad, &acts)?;
        let grad_w_enc = sae_in.f_tr()?.f_mm(&grad_pre)?;
        (out, mse, grad_out_sums, grad_w_enc, grad_b_enc)
    };
    let grad_b_dec = b_dec_grad(sae, grad_out_sums, &grad_b_enc)?;
    let zero = Tensor::zeros([], (Kind::Float, x.device()));
    let out = StepOut {
        loss: mse.f_add(&sparsity)?,
        mse,
        sparsity,
        aux: zero,
        active: Active::NonNegative {
            acts,
            column_sums: col_sums,
        },
        out,
    };
    Ok((out, vec![grad_w_enc, grad_w_dec, grad_b_enc, grad_b_dec]))
}

/// The chosen latents of each row, read as an embedding bag over the rows of a `[d_sae, d]`
/// table: libtorch's embedding-bag backward kernels then give the two sparse products the
/// gradients need, without a dense `[batch, d_sae]` tensor. TopK chooses `k` per row
/// ([`Chosen::new`]); a sparse ReLU step, the ones that fired ([`Chosen::ragged`]).
struct Chosen {
    flat: Tensor,
    /// The shape per-entry values come in: `[batch, k]`, or `[nnz]` for ragged rows.
    shape: Vec<i64>,
    d_sae: i64,
    offsets: Tensor,
    /// The row of each flat entry.
    offset2bag: Tensor,
    bag_size: Tensor,
}

/// libtorch's embedding-bag mode for sums.
const MODE_SUM: i64 = 0;

impl Chosen {
    fn new(indices: &Tensor, d_sae: i64) -> Result<Self> {
        let (batch, k) = (indices.size()[0], indices.size()[1]);
        let dev = indices.device();
        let rows = Tensor::f_arange(batch, (Kind::Int64, dev))?;
        Ok(Self {
            flat: indices.f_flatten(0, -1)?,
            shape: vec![batch, k],
            d_sae,
            offsets: rows.f_mul_scalar(k)?,
            offset2bag: rows.f_repeat_interleave_self_int(k, 0, None)?,
            bag_size: Tensor::f_full([batch], k, (Kind::Int64, dev))?,
        })
    }

    /// Row `n` chose `row_counts[n]` latents, listed row by row in `columns`.
    ///
    /// # Shapes
    /// - `columns`: `[nnz]`
    /// - `row_counts`: `[batch]`
    fn ragged(columns: &Tensor, row_counts: &Tensor, d_sae: i64) -> Result<Self> {
        let batch = row_counts.size()[0];
        let rows = Tensor::f_arange(batch, (Kind::Int64, columns.device()))?;
        Ok(Self {
            flat: columns.shallow_clone(),
            shape: columns.size(),
            d_sae,
            offsets: row_counts.f_cumsum(0, Kind::Int64)?.f_sub(row_counts)?,
            offset2bag: rows.f_repeat_interleave_self_tensor(row_counts, 0, None)?,
            bag_size: row_counts.shallow_clone(),
        })
    }

    /// `Σ_j values[n, j] · table[chosen[n, j]]` per row: `[batch, d]` from values in
    /// [`Chosen::shape`] and `table [d_sae, d]`.
    fn mm(&self, values: &Tensor, table: &Tensor) -> Result<Tensor> {
        bag_sums(table, &self.flat, &self.offsets, &values.f_flatten(0, -1)?)
    }

    /// `(g · Wᵀ)[n, chosen[n, j]]`, in [`Chosen::shape`], from `g [batch, d]` and
    /// `w [d_sae, d]`.
    fn sampled(&self, g: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(
            Tensor::f_internal_embedding_bag_per_sample_weights_backward(
                g,
                w,
                &self.flat,
                &self.offsets,
                &self.offset2bag,
                MODE_SUM,
                -1,
            )?
            .f_view(self.shape.as_slice())?,
        )
    }

    /// `Sᵀ · m` where `S [batch, d_sae]` holds `values` at the chosen latents:
    /// `[d_sae, d]` from `m [batch, d]`.
    fn transposed_mm(&self, values: &Tensor, m: &Tensor) -> Result<Tensor> {
        let no_max = Tensor::f_empty([0], (Kind::Int64, m.device()))?;
        Ok(Tensor::f_internal_embedding_bag_dense_backward(
            m,
            &self.flat,
            &self.offset2bag,
            &self.bag_size,
            &no_max,
            self.d_sae,
            false,
            MODE_SUM,
            Some(values.f_flatten(0, -1)?),
            -1,
        )?)
    }

    /// `Σ_rows S`: `[d_sae]`.
    fn column_sums(&self, values: &Tensor) -> Result<Tensor> {
        Ok(
            Tensor::f_zeros([self.d_sae], (Kind::Float, values.device()))?.f_index_add(
                0,
                &self.flat,
                &values.f_flatten(0, -1)?,
            )?,
        )
    }
}

/// With `rescale` (SAELens' `rescale_acts_by_decoder_norm`) latents are ranked by
/// `pre · ‖W_dec[s]‖` and decoded with `relu(ranked) / ‖W_dec[s]‖`: the ranking changes,
/// but the decoded weight is `relu(pre)` again, so no gradient reaches the norms (autograd's
/// two terms cancel to rounding) and `∂pre = ∂weight` through the same chain of scalings.
pub(crate) fn topk(
    sae: &Sae,
    b_enc: &Tensor,
    x: &Tensor,
    sae_in: &Tensor,
    st: &StepState<'_>,
    k: i64,
    aux_coefficient: f64,
) -> Result<(StepOut, Grads)> {
    let _guard = tch::no_grad_guard();
    let batch = x.size()[0] as f64;
    let d_sae = sae.cfg.d_sae;
    let pre = b_enc.f_addmm(sae_in, &sae.w_enc)?;
    let norms = sae.w_dec.f_norm_scalaropt_dim(2, [1], false)?;
    let ranked = if st.rescale { pre.f_mul(&norms)? } else { pre };
    let (values, indices) = ranked.f_topk(k, -1, true, false)?;
    let acts = values.f_relu()?;
    let mut out = sparse_decode(sae, &acts, &indices, &norms, st.rescale)?;
    let (mse, grad_out, grad_out_sums) = reconstruction_loss(sae, &mut out, x)?;

    let chosen = Chosen::new(&indices, d_sae)?;
    let main = chosen.backward(&acts, &values, &grad_out, sae, &norms, st.rescale, true)?;
    let mut grad_w_dec = main.w_dec;
    // ∂W_encᵀ [d_sae, d_in], transposed once at the end.
    let mut grad_w_enc_t = chosen.transposed_mm(&main.pre, sae_in)?;
    let mut grad_b_enc = chosen.column_sums(&main.pre)?;

    let mut aux = Tensor::zeros([], (Kind::Float, x.device()));
    if st.n_dead > 0 {
        // SAELens' AuxK, as in loss::topk_aux: the dead latents' largest (ranked)
        // pre-activations reconstruct the detached residual.
        let half = (sae.cfg.d_in / 2).max(1);
        let scale = (st.n_dead as f64 / half as f64).min(1.0) * aux_coefficient;
        let residual = x.f_sub(&out)?;
        let masked = ranked.f_where_scalarother(st.dead, f64::NEG_INFINITY)?;
        let (aux_values, aux_indices) = masked.f_topk(half.min(st.n_dead), -1, true, false)?;
        drop(masked);
        let recons = sparse_decode(sae, &aux_values, &aux_indices, &norms, st.rescale)?;
        aux = squared_error(&recons, &residual)?.f_mul_scalar(scale)?;
        let grad_recons = recons.f_sub(&residual)?.f_mul_scalar(2.0 * scale / batch)?;
        let aux_chosen = Chosen::new(&aux_indices, d_sae)?;
        let g = aux_chosen.backward(
            &aux_values,
            &aux_values,
            &grad_recons,
            sae,
            &norms,
            st.rescale,
            false,
        )?;
        grad_w_dec = grad_w_dec.f_add(&g.w_dec)?;
        grad_w_enc_t = grad_w_enc_t.f_add(&aux_chosen.transposed_mm(&g.pre, sae_in)?)?;
        grad_b_enc = grad_b_enc.f_add(&aux_chosen.column_sums(&g.pre)?)?;
    }
    let grad_b_dec = b_dec_grad(sae, grad_out_sums, &grad_b_enc)?;
    let zero = Tensor::zeros([], (Kind::Float, x.device()));
    let out = StepOut {
        loss: mse.f_add(&aux)?,
        mse,
        sparsity: zero,
        aux,
        active: Active::Sparse {
            values: acts,
            indices,
        },
        out,
    };
    let grad_w_enc = grad_w_enc_t.f_tr()?.f_contiguous()?;
    Ok((out, vec![grad_w_enc, grad_w_dec, grad_b_enc, grad_b_dec]))
}

/// The gradients one sparse decode passes back.
struct DecodeGrads {
    /// `∂W_dec` through the decode, `[d_sae, d_in]`.
    w_dec: Tensor,
    /// `∂pre` at the chosen latents, `[batch, k]`.
    pre: Tensor,
}

impl Chosen {
    /// Backward of `decode(acts) = Σ_j weight[n, j] · W_dec[indices[n, j]]` with
    /// `weight = acts / ‖W_dec[idx]‖` when `rescale`, else `acts`; `acts = relu(values)`
    /// when `relu`, else `values`; `values = pre · ‖W_dec[idx]‖` when `rescale`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        acts: &Tensor,
        values: &Tensor,
        grad_out: &Tensor,
        sae: &Sae,
        norms: &Tensor,
        rescale: bool,
        relu: bool,
    ) -> Result<DecodeGrads> {
        let chosen_norms = if rescale {
            Some(
                norms
                    .f_index_select(0, &self.flat)?
                    .f_view(self.shape.as_slice())?,
            )
        } else {
            None
        };
        let (weights, grad_acts) = match &chosen_norms {
            Some(n) => (
                acts.f_div(n)?,
                self.sampled(grad_out, &sae.w_dec)?.f_div(n)?,
            ),
            None => (acts.shallow_clone(), self.sampled(grad_out, &sae.w_dec)?),
        };
        let grad_values = if relu {
            values.f_threshold_backward(&grad_acts, 0.0)?
        } else {
            grad_acts
        };
        Ok(DecodeGrads {
            w_dec: self.transposed_mm(&weights, grad_out)?,
            pre: match &chosen_norms {
                Some(n) => grad_values.f_mul(n)?,
                None => grad_values,
            },
        })
    }
}

#[cfg(test)]
mod tests;
