//! Ablations: knock out heads, neurons or whole layer outputs (optionally at some positions
//! only) and see what the model does without them. Zero ablation sets the activation to 0,
//! mean ablation to its mean over the batch (per position), resample ablation to the same
//! activation from another, randomly chosen, prompt of the batch.

use mechlens_core::shape::check_index;
use mechlens_core::{CacheFilter, Error, HookPoint, Hooks, Result, SplitMix64};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use crate::Scores;
use crate::scores::scalar_metric;

/// What an ablated activation is replaced with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ablation {
    /// Zeros.
    Zero,
    /// Its mean over the batch, at each position.
    Mean,
    /// The activation of another prompt of the batch (a derangement drawn from `seed`).
    Resample {
        /// Seed of the permutation.
        seed: u64,
    },
}

/// One component to ablate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// A head's output (`hook_z[:, :, head]`).
    Head {
        /// Layer.
        layer: usize,
        /// Head.
        head: usize,
    },
    /// An MLP neuron (`mlp.hook_post[..., neuron]`).
    Neuron {
        /// Layer.
        layer: usize,
        /// Neuron.
        neuron: usize,
    },
    /// A layer's whole attention output (`hook_attn_out`).
    Attn {
        /// Layer.
        layer: usize,
    },
    /// A layer's whole MLP output (`hook_mlp_out`).
    Mlp {
        /// Layer.
        layer: usize,
    },
}

impl Component {
    /// The hook point it lives at, and `(dim, index)` within that activation, if any:
    /// `hook_z` is `[batch, pos, head, d_head]` and `hook_post` `[batch, pos, d_mlp]`.
    fn site(self) -> (HookPoint, Option<(i64, i64)>) {
        match self {
            Self::Head { layer, head } => (HookPoint::Z(layer), Some((2, head as i64))),
            Self::Neuron { layer, neuron } => (HookPoint::MlpPost(layer), Some((2, neuron as i64))),
            Self::Attn { layer } => (HookPoint::AttnOut(layer), None),
            Self::Mlp { layer } => (HookPoint::MlpOut(layer), None),
        }
    }

    fn check(self, model: &HookedTransformer) -> Result<()> {
        let cfg = model.cfg();
        let (layer, inner) = match self {
            Self::Head { layer, head } => (layer, Some(("head", head, cfg.n_heads))),
            Self::Neuron { layer, neuron } => (layer, Some(("neuron", neuron, cfg.d_mlp))),
            Self::Attn { layer } | Self::Mlp { layer } => (layer, None),
        };
        check_index("layer", layer as i64, cfg.n_layers, "the model")?;
        match inner {
            Some((what, i, n)) => check_index(what, i as i64, n, &format!("layer {layer}")),
            None => Ok(()),
        }
    }
}

/// A permutation of `0..n` with no fixed point (Sattolo's algorithm on SplitMix64), so every
/// prompt takes another's activation.
fn derangement(n: i64, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed);
    let mut p: Vec<i64> = (0..n).collect();
    for i in (1..n as usize).rev() {
        let j = rng.below(i as u64) as usize;
        p.swap(i, j);
    }
    p
}

/// Hooks that ablate `components` (at `positions` only, when given) with `ablation`, for a
/// run on `tokens` (mean and resample ablation read the batch's own activations first).
///
/// # Errors
/// A component out of range, a position out of range, resampling a batch of one prompt.
pub fn ablation_hooks(
    model: &HookedTransformer,
    tokens: &Tensor,
    components: &[Component],
    ablation: Ablation,
    positions: Option<&[i64]>,
) -> Result<Hooks<'static>> {
    for c in components {
        c.check(model)?;
    }
    let points: Vec<HookPoint> = components.iter().map(|c| c.site().0).collect();
    let batch = tokens.size().first().copied().unwrap_or(1);
    let source = match ablation {
        Ablation::Zero => None,
        Ablation::Mean | Ablation::Resample { .. } => {
            if matches!(ablation, Ablation::Resample { .. }) && batch < 2 {
                return Err(Error::invalid(
                    "resample ablation",
                    "needs a batch of at least 2 prompts to take activations from",
                ));
            }
            Some(
                model
                    .run_with_cache(tokens, CacheFilter::Names(points.clone()))?
                    .1,
            )
        }
    };
    let seq = tokens.size().last().copied().unwrap_or(0);
    let pos_index = match positions {
        Some(ps) => {
            if let Some(bad) = ps.iter().find(|&&p| p < -seq || p >= seq) {
                return Err(Error::invalid(
                    "position",
                    format!("{bad} is out of range for a sequence of {seq} positions"),
                ));
            }
            Some(Tensor::from_slice(
                &ps.iter()
                    .map(|&p| if p < 0 { p + seq } else { p })
                    .collect::<Vec<_>>(),
            ))
        }
        None => None,
    };
    let mut hooks = Hooks::new();
    for component in components {
        let (point, index) = component.site();
        let replacement: Option<Tensor> = match (&source, ablation) {
            (None, _) => None,
            (Some(cache), Ablation::Mean) => {
                let act = cache.get(point)?;
                Some(
                    act.f_mean_dim(0, true, Kind::Float)?
                        .f_to_kind(act.kind())?
                        .f_expand_as(act)?,
                )
            }
            (Some(cache), Ablation::Resample { seed }) => {
                let act = cache.get(point)?;
                let order =
                    Tensor::from_slice(&derangement(batch, seed)).f_to_device(act.device())?;
                Some(act.f_index_select(0, &order)?)
            }
            (Some(_), Ablation::Zero) => None,
        };
        let pos_index = pos_index.as_ref().map(Tensor::shallow_clone);
        hooks = hooks.edit(point, move |act: &Tensor, _| {
            let new = match &replacement {
                Some(r) => r.f_to_device(act.device())?,
                None => act.f_zeros_like()?,
            };
            // A mask over the activation: true where it is ablated.
            let mut mask = Tensor::f_ones(act.size().as_slice(), (Kind::Bool, act.device()))?;
            if let Some((dim, i)) = index {
                let keep = Tensor::f_zeros(act.size().as_slice(), (Kind::Bool, act.device()))?;
                let _ = keep.f_narrow(dim, i, 1)?.f_fill_(1)?;
                mask = mask.f_logical_and(&keep)?;
            }
            if let Some(ps) = &pos_index {
                let mut keep = Tensor::f_zeros(act.size().as_slice(), (Kind::Bool, act.device()))?;
                let _ = keep.f_index_fill_(1, &ps.f_to_device(act.device())?, 1)?;
                mask = mask.f_logical_and(&keep)?;
            }
            Ok(new.f_where_self(&mask, act)?)
        })?;
    }
    Ok(hooks)
}

/// Runs `tokens` with `components` ablated; returns the logits.
///
/// # Errors
/// As [`ablation_hooks`].
pub fn ablate(
    model: &HookedTransformer,
    tokens: &Tensor,
    components: &[Component],
    ablation: Ablation,
    positions: Option<&[i64]>,
) -> Result<Tensor> {
    let hooks = ablation_hooks(model, tokens, components, ablation, positions)?;
    model.run_with_hooks(tokens, hooks)
}

/// Ablates each head on its own and measures `metric(logits)`: `[n_layers, n_heads]`, and a
/// table `layer, head, metric`.
///
/// # Errors
/// As [`ablation_hooks`]; a metric that does not return a scalar.
pub fn ablate_each_head(
    model: &HookedTransformer,
    tokens: &Tensor,
    ablation: Ablation,
    metric: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    let (layers, heads) = (model.cfg().n_layers, model.cfg().n_heads);
    let mut scores = Vec::with_capacity(layers * heads);
    for layer in 0..layers {
        for head in 0..heads {
            let logits = ablate(
                model,
                tokens,
                &[Component::Head { layer, head }],
                ablation,
                None,
            )?;
            scores.push(scalar_metric(&metric(&logits)?, "ablation metric")?);
        }
    }
    let scores = Tensor::from_slice(&scores).f_view([layers as i64, heads as i64])?;
    Scores::new(scores, &["layer", "head"], "metric")
}
