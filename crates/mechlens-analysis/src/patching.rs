//! Activation patching: run the corrupted prompt, copy one activation (at one layer, and one
//! position and/or head) from the clean run, and measure a metric of the logits; repeat for
//! every index. TransformerLens' `patching` module, with its ready-made targets.
//!
//! Two things make it fast without changing a number. A patch at layer `L` cannot change
//! anything before `L`, so each patched run starts from the corrupted run's residual stream
//! entering `L` (`forward_from_layer`); and the runs of one layer are batched together, each
//! batch row group with its own patch, since rows of a batch do not interact.

use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, Hooks, Result};
use mechlens_models::HookedTransformer;
use tch::Tensor;

use crate::Scores;
use crate::scores::scalar_metric;

/// One axis a patch is indexed along: its name in the result and the activation dim it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchAxis {
    /// Column name in the table (`"pos"`, `"head"`, `"dest_pos"`).
    pub name: &'static str,
    /// The activation's dim (`hook_z` is `[batch, pos, head, d_head]`: pos 1, head 2).
    pub dim: i64,
}

const POS: PatchAxis = PatchAxis {
    name: "pos",
    dim: 1,
};
const HEAD_BPHD: PatchAxis = PatchAxis {
    name: "head",
    dim: 2,
};
const HEAD_PATTERN: PatchAxis = PatchAxis {
    name: "head",
    dim: 1,
};
const DEST_PATTERN: PatchAxis = PatchAxis {
    name: "dest_pos",
    dim: 2,
};

/// What to patch: the hook point at each layer and the axes to index it by.
#[derive(Clone, Debug)]
pub struct PatchSpec {
    /// The activation at layer `l`.
    pub point: fn(usize) -> HookPoint,
    /// Axes after the layer, in the result's order.
    pub axes: Vec<PatchAxis>,
}

/// TransformerLens' ready-made patching targets (`get_act_patch_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchTarget {
    /// `resid_pre` by layer × pos.
    ResidPre,
    /// `resid_mid` by layer × pos.
    ResidMid,
    /// `attn_out` by layer × pos.
    AttnOut,
    /// `mlp_out` by layer × pos.
    MlpOut,
    /// Each head's output (`hook_z`) at every position, by layer × head.
    HeadOutAllPos,
    /// Each head's output by layer × pos × head.
    HeadOutByPos,
    /// Queries by layer × head, all positions.
    HeadQAllPos,
    /// Keys by layer × head (key/value heads for grouped-query attention).
    HeadKAllPos,
    /// Values by layer × head.
    HeadVAllPos,
    /// Attention patterns by layer × head, all positions.
    HeadPatternAllPos,
    /// Queries by layer × pos × head.
    HeadQByPos,
    /// Keys by layer × pos × head.
    HeadKByPos,
    /// Values by layer × pos × head.
    HeadVByPos,
    /// Attention patterns by layer × head × destination position.
    HeadPatternByDestPos,
}

impl PatchTarget {
    /// The hook point and axes it patches.
    pub fn spec(self) -> PatchSpec {
        use PatchTarget as T;
        let (point, axes): (fn(usize) -> HookPoint, Vec<PatchAxis>) = match self {
            T::ResidPre => (HookPoint::ResidPre, vec![POS]),
            T::ResidMid => (HookPoint::ResidMid, vec![POS]),
            T::AttnOut => (HookPoint::AttnOut, vec![POS]),
            T::MlpOut => (HookPoint::MlpOut, vec![POS]),
            T::HeadOutAllPos => (HookPoint::Z, vec![HEAD_BPHD]),
            T::HeadOutByPos => (HookPoint::Z, vec![POS, HEAD_BPHD]),
            T::HeadQAllPos => (HookPoint::Q, vec![HEAD_BPHD]),
            T::HeadKAllPos => (HookPoint::K, vec![HEAD_BPHD]),
            T::HeadVAllPos => (HookPoint::V, vec![HEAD_BPHD]),
            T::HeadPatternAllPos => (HookPoint::Pattern, vec![HEAD_PATTERN]),
            T::HeadQByPos => (HookPoint::Q, vec![POS, HEAD_BPHD]),
            T::HeadKByPos => (HookPoint::K, vec![POS, HEAD_BPHD]),
            T::HeadVByPos => (HookPoint::V, vec![POS, HEAD_BPHD]),
            T::HeadPatternByDestPos => (HookPoint::Pattern, vec![HEAD_PATTERN, DEST_PATTERN]),
        };
        PatchSpec { point, axes }
    }
}

/// How many patched runs share one batch.
const RUNS_PER_BATCH: usize = 16;

/// Patches `target` for every layer and index, running `corrupted` with the activation from
/// `clean` (a cache of the clean run holding it), and applies `metric` to each run's logits.
///
/// # Shapes
/// - `corrupted`: `[batch, pos]` tokens, the same shape as the clean run's
/// - `metric`: `[batch, pos, d_vocab]` logits → a scalar
///
/// # Errors
/// Clean activations missing from the cache (named, with how to cache them), clean and
/// corrupted activations of different shapes, a metric that does not return a scalar.
pub fn activation_patch(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    target: PatchTarget,
    metric: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    generic_activation_patch(model, corrupted, clean, &target.spec(), metric)
}

/// [`activation_patch`] for any hook point and axes (TL's `generic_activation_patch`).
///
/// # Errors
/// As [`activation_patch`].
pub fn generic_activation_patch(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    spec: &PatchSpec,
    metric: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    let n_layers = model.cfg().n_layers;
    let points: Vec<HookPoint> = (0..n_layers).map(spec.point).collect();
    // The corrupted run: residual entering each layer, and the patched activation's shape.
    let mut wanted: Vec<HookPoint> = (0..n_layers).map(HookPoint::ResidPre).collect();
    wanted.extend(&points);
    let (_, corrupt) = model.run_with_cache(corrupted, CacheFilter::Names(wanted))?;
    let first = clean.get(points[0])?;
    let sizes: Vec<i64> = spec
        .axes
        .iter()
        .map(|a| {
            first.size().get(a.dim as usize).copied().ok_or_else(|| {
                Error::invalid(
                    "patch axis",
                    format!(
                        "`{}` is dim {} but {} has shape {:?}",
                        a.name,
                        a.dim,
                        points[0],
                        first.size()
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let per_layer: usize = sizes.iter().map(|&s| s as usize).product();
    let indices: Vec<Vec<i64>> = (0..per_layer).map(|i| unravel(i, &sizes)).collect();
    let mut scores = Vec::with_capacity(n_layers * per_layer);
    for (layer, &point) in points.iter().enumerate() {
        let clean_act = clean_activation(model, clean, point, corrupt.get(point)?)?;
        let resid = corrupt.get(HookPoint::ResidPre(layer))?;
        let batch = resid.size()[0];
        for chunk in indices.chunks(RUNS_PER_BATCH) {
            let runs = chunk.len() as i64;
            let stacked = resid.f_repeat([runs, 1, 1])?;
            let chunk_owned: Vec<Vec<i64>> = chunk.to_vec();
            let axes = spec.axes.clone();
            let clean_for_hook = clean_act.shallow_clone();
            let hooks = Hooks::new().edit(point, move |act: &Tensor, _point| {
                let act = act.f_contiguous()?.f_detach_copy()?;
                for (run, index) in chunk_owned.iter().enumerate() {
                    let mut dst = act.f_narrow(0, run as i64 * batch, batch)?;
                    let mut src = clean_for_hook.shallow_clone();
                    for (axis, &i) in axes.iter().zip(index) {
                        dst = dst.f_narrow(axis.dim, i, 1)?;
                        src = src.f_narrow(axis.dim, i, 1)?;
                    }
                    dst.f_copy_(&src)?;
                }
                Ok(act)
            })?;
            let logits = model.forward_from_layer_with_hooks(&stacked, layer, hooks)?;
            for run in 0..runs {
                let value = metric(&logits.f_narrow(0, run * batch, batch)?)?;
                scores.push(scalar_metric(&value, "patching metric")?);
            }
        }
    }
    let mut shape = vec![n_layers as i64];
    shape.extend(&sizes);
    patch_result(
        Tensor::from_slice(&scores).f_view(shape.as_slice())?,
        spec,
        "metric",
    )
}

/// The clean run's activation at `point`, on the model's device, checked against the
/// corrupted run's.
pub(crate) fn clean_activation(
    model: &HookedTransformer,
    clean: &ActivationCache,
    point: HookPoint,
    corrupt_act: &Tensor,
) -> Result<Tensor> {
    let clean_act = clean.get(point)?.f_to_device(model.device())?;
    if clean_act.size() != corrupt_act.size() {
        return Err(Error::invalid(
            "clean and corrupted runs",
            format!(
                "{point} is {:?} in the clean cache but {:?} on the corrupted tokens; patching needs prompts of the same shape",
                clean_act.size(),
                corrupt_act.size()
            ),
        ));
    }
    Ok(clean_act)
}

/// `scores` (`[layer, axes...]`) with their long table, the value column named `value_name`.
pub(crate) fn patch_result(scores: Tensor, spec: &PatchSpec, value_name: &str) -> Result<Scores> {
    let mut dims = vec!["layer"];
    dims.extend(spec.axes.iter().map(|a| a.name));
    Scores::new(scores, &dims, value_name)
}

/// Row-major index `i` into `sizes`.
fn unravel(mut i: usize, sizes: &[i64]) -> Vec<i64> {
    let mut index = vec![0; sizes.len()];
    for (slot, &n) in index.iter_mut().zip(sizes).rev() {
        *slot = (i % n as usize) as i64;
        i /= n as usize;
    }
    index
}
