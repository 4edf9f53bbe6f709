//! Path patching (Wang et al. 2022, "Interpretability in the Wild"; ARENA 1.4.1): how much of
//! a sender head's effect travels along chosen paths, into chosen receivers, rather than
//! everywhere its output goes.
//!
//! Activation patching asks "does this head matter?"; path patching asks "does it matter
//! *through that head's query* (or key, or value, or straight to the logits)?". Like
//! [`crate::activation_patch`], it runs the corrupted prompt and brings in clean activations,
//! so 1 (on a normalised metric) means the path restores the clean behaviour:
//!
//! 1. Run the corrupted prompt with the sender's output (`hook_z`) set to its clean value and
//!    every other head frozen at its corrupted value, so the sender's change reaches each
//!    later layer directly and through no other head. Record what each receiver reads: a
//!    head's query, key or value input (`hook_q_input`, ...), or the final residual stream.
//! 2. Run the corrupted prompt again with only the receivers' inputs set to what step 1
//!    recorded; everything else, the heads downstream of the receivers included, computes
//!    freely. The metric of that run is the path's effect.
//!
//! MLPs are recomputed in step 1, not frozen, as in the paper and ARENA: a path through an
//! MLP counts as part of the direct one. In an attention-only model a receiver's input in
//! step 1 is therefore exactly the corrupted one plus `(z_clean − z_corrupted) · W_O` of the
//! sender, and patching the sender into every later head and the logits at once is the same
//! as patching its output (the tests check both).

use mechlens_core::shape::check_index;
use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, Hooks, Result};
use mechlens_models::HookedTransformer;
use tch::Tensor;

use crate::Scores;
use crate::scores::scalar_metric;

/// Which input of a receiving head a path ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HeadInput {
    /// The query input (`hook_q_input`): what the head looks for.
    Q,
    /// The key input (`hook_k_input`): what each position offers to be found by.
    K,
    /// The value input (`hook_v_input`): what the head moves.
    V,
}

impl HeadInput {
    /// The hook point of this input at `layer`.
    pub fn point(self, layer: usize) -> HookPoint {
        match self {
            Self::Q => HookPoint::QInput(layer),
            Self::K => HookPoint::KInput(layer),
            Self::V => HookPoint::VInput(layer),
        }
    }
}

/// Where a path from the sender ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// One input of a head in a later layer.
    Head {
        /// Layer (after the sender's).
        layer: usize,
        /// Head (a key/value head for `K` and `V` under grouped-query attention).
        head: usize,
        /// Which input.
        input: HeadInput,
    },
    /// The final residual stream, read by the unembedding: the sender's direct effect on the
    /// logits (and through MLPs, which are recomputed).
    Logits,
}

impl Receiver {
    /// `input` of every head of `layer`, as receivers (e.g. all the induction layer's keys).
    pub fn layer(model: &HookedTransformer, layer: usize, input: HeadInput) -> Vec<Receiver> {
        let cfg = model.cfg();
        let heads = match input {
            HeadInput::Q => cfg.n_heads,
            HeadInput::K | HeadInput::V => cfg.n_kv_heads,
        };
        (0..heads)
            .map(|head| Receiver::Head { layer, head, input })
            .collect()
    }

    fn check(self, model: &HookedTransformer, sender_layer: usize) -> Result<()> {
        let Receiver::Head { layer, head, input } = self else {
            return Ok(());
        };
        let cfg = model.cfg();
        check_index("receiver layer", layer as i64, cfg.n_layers, "the model")?;
        let heads = match input {
            HeadInput::Q => cfg.n_heads,
            HeadInput::K | HeadInput::V => cfg.n_kv_heads,
        };
        check_index(
            "receiver head",
            head as i64,
            heads,
            &format!("layer {layer}"),
        )?;
        if layer <= sender_layer {
            return Err(Error::invalid(
                "path patching receivers",
                format!(
                    "the receiver {input:?} of L{layer}H{head} is not after the sender's layer {sender_layer}; a head reads only what earlier layers wrote"
                ),
            ));
        }
        Ok(())
    }
}

/// The effect of the path from `sender` (`(layer, head)`) to `receivers`: the corrupted
/// prompt is run with the receivers reading what they would if only the sender were clean
/// (see the module overview), and `metric` applied to its logits.
///
/// # Shapes
/// - `corrupted`: `[batch, pos]` tokens, the same shape as the clean run's
/// - `clean`: must hold the clean run's `hook_z` at the sender's layer
/// - `metric`: `[batch, pos, d_vocab]` logits → a scalar
///
/// # Errors
/// No receivers; a sender or receiver out of range; a receiver not after the sender; the
/// clean `hook_z` missing from the cache or of another shape; a metric that is not a scalar.
pub fn path_patch(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    sender: (usize, usize),
    receivers: &[Receiver],
    metric: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let corrupt = corrupted_run(model, corrupted, receivers)?;
    one_path(
        model, corrupted, clean, &corrupt, sender, receivers, &metric,
    )
}

/// [`path_patch`] from every head in the layers before the earliest receiving head (every
/// layer when the only receiver is [`Receiver::Logits`]) to `receivers`, as a `[layer, head]`
/// table (ARENA's `get_path_patch_head_to_heads`).
///
/// # Errors
/// As [`path_patch`]; receivers in layer 0 (no head can send to them).
pub fn path_patch_senders(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    receivers: &[Receiver],
    metric: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Scores> {
    let cfg = model.cfg();
    let layers = receivers
        .iter()
        .filter_map(|r| match r {
            Receiver::Head { layer, .. } => Some(*layer),
            Receiver::Logits => None,
        })
        .min()
        .unwrap_or(cfg.n_layers);
    if layers == 0 {
        return Err(Error::invalid(
            "path patching receivers",
            "a receiver is in layer 0, which no head comes before; choose receivers in later layers",
        ));
    }
    let corrupt = corrupted_run(model, corrupted, receivers)?;
    let mut scores = Vec::with_capacity(layers * cfg.n_heads);
    for layer in 0..layers {
        for head in 0..cfg.n_heads {
            scores.push(one_path(
                model,
                corrupted,
                clean,
                &corrupt,
                (layer, head),
                receivers,
                &metric,
            )?);
        }
    }
    let table = Tensor::from_slice(&scores).f_view([layers as i64, cfg.n_heads as i64])?;
    Scores::new(table, &["layer", "head"], "metric")
}

/// The corrupted run's `hook_z` at every layer and final residual stream, which step 1
/// freezes heads to and the logits receiver is measured from.
fn corrupted_run(
    model: &HookedTransformer,
    corrupted: &Tensor,
    receivers: &[Receiver],
) -> Result<ActivationCache> {
    if receivers.is_empty() {
        return Err(Error::invalid(
            "path patching receivers",
            "none given; name at least one head input (Receiver::Head) or Receiver::Logits",
        ));
    }
    let n_layers = model.cfg().n_layers;
    let mut wanted: Vec<HookPoint> = (0..n_layers).map(HookPoint::Z).collect();
    wanted.push(HookPoint::ResidPost(n_layers - 1));
    Ok(model
        .run_with_cache(corrupted, CacheFilter::Names(wanted))?
        .1)
}

/// Steps 1 and 2 of the module overview for one sender.
fn one_path(
    model: &HookedTransformer,
    corrupted: &Tensor,
    clean: &ActivationCache,
    corrupt: &ActivationCache,
    sender: (usize, usize),
    receivers: &[Receiver],
    metric: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let cfg = model.cfg();
    let (sender_layer, sender_head) = sender;
    check_index(
        "sender layer",
        sender_layer as i64,
        cfg.n_layers,
        "the model",
    )?;
    check_index(
        "sender head",
        sender_head as i64,
        cfg.n_heads,
        &format!("layer {sender_layer}"),
    )?;
    for r in receivers {
        r.check(model, sender_layer)?;
    }
    let last = cfg.n_layers - 1;
    let final_point = HookPoint::ResidPost(last);

    // Step 1: the sender clean, every other head from its layer on frozen at its corrupted
    // value; record the receivers' inputs.
    let sender_point = HookPoint::Z(sender_layer);
    let clean_z =
        crate::patching::clean_activation(model, clean, sender_point, corrupt.get(sender_point)?)?;
    let mut freeze = Hooks::new();
    for layer in sender_layer..cfg.n_layers {
        let mut frozen = corrupt.get(HookPoint::Z(layer))?.shallow_clone();
        if layer == sender_layer {
            frozen = frozen.f_contiguous()?.f_detach_copy()?;
            let head = sender_head as i64;
            frozen
                .f_narrow(2, head, 1)?
                .f_copy_(&clean_z.f_narrow(2, head, 1)?)?;
        }
        freeze = freeze.edit(HookPoint::Z(layer), move |_act: &Tensor, _point| {
            Ok(frozen.shallow_clone())
        })?;
    }
    let mut recorded: Vec<HookPoint> = receivers
        .iter()
        .filter_map(|r| match r {
            Receiver::Head { layer, input, .. } => Some(input.point(*layer)),
            Receiver::Logits => None,
        })
        .collect();
    let to_logits = receivers.contains(&Receiver::Logits);
    if to_logits {
        recorded.push(final_point);
    }
    let (_, step1) =
        model.run_with_hooks_and_cache(corrupted, freeze, CacheFilter::Names(recorded), None)?;

    // Step 2: the receivers read what step 1 recorded; the rest runs freely.
    // One hook per input point, patching each of its receiving heads.
    let mut by_point: Vec<(HookPoint, Vec<i64>)> = Vec::new();
    for r in receivers {
        if let Receiver::Head { layer, head, input } = *r {
            let point = input.point(layer);
            match by_point.iter_mut().find(|(p, _)| *p == point) {
                Some((_, heads)) => heads.push(head as i64),
                None => by_point.push((point, vec![head as i64])),
            }
        }
    }
    let mut patch = Hooks::new();
    for (point, heads) in by_point {
        let source = step1.get(point)?.shallow_clone();
        patch = patch.edit(point, move |act: &Tensor, _point| {
            let out = act.f_contiguous()?.f_detach_copy()?;
            for &h in &heads {
                out.f_narrow(2, h, 1)?.f_copy_(&source.f_narrow(2, h, 1)?)?;
            }
            Ok(out)
        })?;
    }
    if to_logits {
        // The sender's change to the final residual stream when no other head passes it on.
        let shift = step1.get(final_point)?.f_sub(corrupt.get(final_point)?)?;
        patch = patch.edit(final_point, move |act: &Tensor, _point| {
            Ok(act.f_add(&shift)?)
        })?;
    }
    let logits = model.run_with_hooks(corrupted, patch)?;
    scalar_metric(&metric(&logits)?, "path patching metric")
}
