//! Decoding a few latents per row without the dense `[n, d_sae]` product: weighted sums of
//! decoder rows (libtorch's embedding bag), for TopK inference and sparse training steps.

use mechlens_core::Result;
use tch::{Kind, Tensor};

/// `Σ_j values[n, j] · W_dec[indices[n, j]]` (no bias) for `values`, `indices` `[n, k]`,
/// without the dense `[n, d_sae]` product; with `norms`, each value is first divided by its
/// latent's decoder norm (`rescale_acts_by_decoder_norm`).
pub(crate) fn decode_rows(
    w_dec: &Tensor,
    values: &Tensor,
    indices: &Tensor,
    norms: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, k) = (values.size()[0], values.size()[1]);
    let flat = indices.f_flatten(0, -1)?;
    let mut weights = values.f_flatten(0, -1)?;
    if let Some(norms) = norms {
        weights = weights.f_div(&norms.f_index_select(0, &flat)?)?;
    }
    let offsets = Tensor::f_arange_start_step(0, n * k, k, (Kind::Int64, values.device()))?;
    bag_sums(w_dec, &flat, &offsets, &weights)
}

/// `Σ weights[i] · table[indices[i]]` over each bag of `indices` starting at `offsets`:
/// libtorch's embedding bag in sum mode (an empty bag gives zeros). `[n_bags, d]`.
pub(crate) fn bag_sums(
    table: &Tensor,
    indices: &Tensor,
    offsets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let (out, _, _, _) = Tensor::f_embedding_bag(
        table,
        indices,
        offsets,
        false,
        0,
        false,
        Some(weights),
        false,
    )?;
    Ok(out)
}
