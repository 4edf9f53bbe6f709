//! Attribution patching (Nanda 2023): a first-order estimate of every activation patch at
//! once. With the corrupted run's gradient `∂metric/∂act`, patching in the clean activation
//! changes the metric by about `(clean − corrupted) · ∂metric/∂act`, summed over the dims a
//! patch covers. One forward and one backward pass on the corrupted prompt, however many
//! patches are estimated.

use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, Result};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use crate::patching::{clean_activation, patch_result};
use crate::{PatchSpec, PatchTarget, Scores};

/// Estimates [`crate::activation_patch`]'s `metric(patched) − metric(corrupted)` for every
/// index of `target`, from one forward and one backward pass.
///
/// # Errors
/// As [`crate::activation_patch`].
pub fn attribution_patch(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    target: PatchTarget,
    metric: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    generic_attribution_patch(model, corrupted, clean, &target.spec(), metric)
}

/// [`attribution_patch`] for any hook point and axes.
///
/// # Errors
/// As [`crate::activation_patch`].
pub fn generic_attribution_patch(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    spec: &PatchSpec,
    metric: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    let n_layers = model.cfg().n_layers;
    let points: Vec<HookPoint> = (0..n_layers).map(spec.point).collect();
    let run =
        model.gradients_with_activations(corrupted, CacheFilter::Names(points.clone()), metric)?;
    let (acts, grads) = (run.activations, run.gradients);
    let mut layers = Vec::with_capacity(n_layers);
    for point in points {
        let corrupt_act = acts.get(point)?;
        let clean_act = clean_activation(model, clean, point, corrupt_act)?;
        let effect = clean_act
            .f_sub(corrupt_act)?
            .f_mul(grads.get(point)?)?
            .f_to_kind(Kind::Double)?;
        // Keep the patch axes (in order), sum every other dim (batch included).
        let keep: Vec<i64> = spec.axes.iter().map(|a| a.dim).collect();
        let front: Vec<i64> = (0..keep.len() as i64).collect();
        let moved = effect.f_movedim(keep.as_slice(), front.as_slice())?;
        let rest: Vec<i64> = (keep.len() as i64..moved.dim() as i64).collect();
        layers.push(moved.f_sum_dim_intlist(rest.as_slice(), false, Kind::Double)?);
    }
    patch_result(
        Tensor::f_stack(&layers, 0)?.f_to_kind(Kind::Float)?,
        spec,
        "attribution",
    )
}

/// Pearson correlation of two patching results of the same shape (e.g. attribution against
/// activation patching).
///
/// # Errors
/// Results of different shapes, or one that is constant.
pub fn patching_correlation(a: &Scores, b: &Scores) -> Result<f64> {
    if a.scores.size() != b.scores.size() {
        return Err(Error::invalid(
            "patching results",
            format!(
                "shapes differ: {:?} vs {:?}",
                a.scores.size(),
                b.scores.size()
            ),
        ));
    }
    let x = a
        .scores
        .f_flatten(0, -1)?
        .f_to_kind(Kind::Double)?
        .f_to_device(tch::Device::Cpu)?;
    let y = b
        .scores
        .f_flatten(0, -1)?
        .f_to_kind(Kind::Double)?
        .f_to_device(tch::Device::Cpu)?;
    let (x, y) = (
        x.f_sub(&x.f_mean(Kind::Double)?)?,
        y.f_sub(&y.f_mean(Kind::Double)?)?,
    );
    let denom = x.f_norm()?.double_value(&[]) * y.f_norm()?.double_value(&[]);
    if denom == 0.0 {
        return Err(Error::invalid(
            "patching results",
            "one of them is constant: no correlation",
        ));
    }
    Ok(x.f_dot(&y)?.double_value(&[]) / denom)
}
