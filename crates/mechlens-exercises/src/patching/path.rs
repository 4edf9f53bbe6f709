//! E3's path patching, in ARENA's two steps: what a receiving layer's heads read when only
//! the sender is clean (every other head frozen at its corrupted output), against the closed
//! form of attention-only models; and the metric when only the receivers read it, against
//! mechlens-analysis' `path_patch`.

use mechlens_analysis::{HeadInput, Receiver, path_patch};
use mechlens_core::{ActivationCache, CacheFilter, HookPoint, Hooks, Result};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use crate::harness::{Compare, Mutant, Spec};
use crate::patching::PatchCase;
use crate::report::Report;

const CLOSE: Compare = Compare::Values {
    atol: 1e-4,
    rtol: 1e-3,
};

/// The closed form of step 1 in an attention-only model: the corrupted stream entering the
/// receiver layer plus the sender's `(z_clean − z_corrupted) · W_O`, the same for every head.
/// With `heads` = every head of the sender's layer for the whole-layer mistake.
fn step_one(c: &PatchCase, heads: &[usize]) -> Result<Tensor> {
    let model = &c.case.model;
    let layer = c.sender.0;
    let (_, corrupt) = model.run_with_cache(
        &c.corrupted,
        CacheFilter::Names(vec![
            HookPoint::ResidPre(c.receiver_layer),
            HookPoint::Z(layer),
        ]),
    )?;
    let clean_z = c.case.cache.get(HookPoint::Z(layer))?;
    let corrupt_z = corrupt.get(HookPoint::Z(layer))?;
    let w_o = model.w_o()?.f_get(layer as i64)?;
    let mut stream = corrupt.get(HookPoint::ResidPre(c.receiver_layer))?.copy();
    for &h in heads {
        let h = h as i64;
        let dz = clean_z.f_select(2, h)?.f_sub(&corrupt_z.f_select(2, h)?)?;
        stream = stream.f_add(&dz.f_matmul(&w_o.f_get(h)?)?)?;
    }
    let n = model.cfg().n_heads as i64;
    Ok(stream
        .f_unsqueeze(2)?
        .f_expand([-1, -1, n, -1], false)?
        .f_contiguous()?)
}

/// Step 1 without freezing: only the sender is set, so later heads pass its change on.
fn unfrozen(c: &PatchCase) -> Result<Tensor> {
    let (layer, head) = (c.sender.0, c.sender.1 as i64);
    let clean_z = c.case.cache.get(HookPoint::Z(layer))?.shallow_clone();
    let hooks = Hooks::new().edit(HookPoint::Z(layer), move |z: &Tensor, _| {
        let out = z.f_contiguous()?.f_detach_copy()?;
        out.f_narrow(2, head, 1)?
            .f_copy_(&clean_z.f_narrow(2, head, 1)?)?;
        Ok(out)
    })?;
    let point = c.input.point(c.receiver_layer);
    let (_, cache) = c.case.model.run_with_hooks_and_cache(
        &c.corrupted,
        hooks,
        CacheFilter::Names(vec![point]),
        None,
    )?;
    Ok(cache.get(point)?.shallow_clone())
}

pub(crate) fn receiver_input_spec() -> Result<Spec<PatchCase>> {
    Ok(Spec {
        exercise: "receiver_input",
        cases: PatchCase::draw(321, true)?,
        reference: Box::new(|c: &PatchCase| step_one(c, &[c.sender.1])),
        mutants: vec![
            Mutant::new(
                "only the sender was set; the heads between the sender and the receiver must be frozen at their corrupted outputs, or the sender also reaches the receiver through them",
                unfrozen,
            ),
            Mutant::new(
                "every head of the sender's layer was taken from the clean run; only the sender (one head) is clean",
                |c: &PatchCase| {
                    let all: Vec<usize> = (0..c.case.model.cfg().n_heads).collect();
                    step_one(c, &all)
                },
            ),
            Mutant::new(
                "this is the clean run's input; the run is the corrupted one, with only the sender's output clean",
                |c: &PatchCase| {
                    Ok(c.case
                        .cache
                        .get(c.input.point(c.receiver_layer))?
                        .shallow_clone())
                },
            ),
        ],
        compare: CLOSE,
    })
}

/// Checks `receiver_input(model, corrupted, clean, sender, layer, input)`, path patching's
/// first step: run `corrupted` with the sender head's output (`hook_z`) taken from the clean
/// cache and every other head's output frozen at its corrupted value, and return what the
/// heads of `layer` read as their `input` (`hook_q_input`, `hook_k_input` or `hook_v_input`).
///
/// # Shapes
/// - `corrupted`: `[batch, pos]` tokens; `sender`: `(layer, head)`, before `layer`
///   → `[batch, pos, n_heads, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn receiver_input(
    f: impl Fn(
        &HookedTransformer,
        &Tensor,
        &ActivationCache,
        (usize, usize),
        usize,
        HeadInput,
    ) -> Result<Tensor>,
) -> Result<Report> {
    receiver_input_spec()?.check(&|c| {
        f(
            &c.case.model,
            &c.corrupted,
            &c.case.cache,
            c.sender,
            c.receiver_layer,
            c.input,
        )
    })
}

/// The library's path patch into `heads` of the receiving layer, input `input`.
fn library(c: &PatchCase, heads: &[usize], input: HeadInput) -> Result<Tensor> {
    let receivers: Vec<Receiver> = heads
        .iter()
        .map(|&head| Receiver::Head {
            layer: c.receiver_layer,
            head,
            input,
        })
        .collect();
    let value = path_patch(
        &c.case.model,
        &c.corrupted,
        &c.case.cache,
        c.sender,
        &receivers,
        |l| c.metric(l),
    )?;
    Ok(Tensor::from(value as f32))
}

pub(crate) fn path_patch_spec() -> Result<Spec<PatchCase>> {
    Ok(Spec {
        exercise: "path_patch_heads",
        cases: PatchCase::draw(322, true)?,
        reference: Box::new(|c: &PatchCase| library(c, &c.receivers, c.input)),
        mutants: vec![
            Mutant::new(
                "every head of the receiving layer read the patched input; only the receivers do, the others read the corrupted one",
                |c: &PatchCase| {
                    let all: Vec<usize> = (0..c.case.model.cfg().n_heads).collect();
                    library(c, &all, c.input)
                },
            ),
            Mutant::new(
                "the query input was patched whatever `input` said; patch hook_k_input for K and hook_v_input for V",
                |c: &PatchCase| library(c, &c.receivers, HeadInput::Q),
            ),
            Mutant::new(
                "the receivers read the clean run's input; they read step 1's, where only the sender is clean (activation patching of their input is a different question)",
                |c: &PatchCase| {
                    let point = c.input.point(c.receiver_layer);
                    let clean = c.case.cache.get(point)?.shallow_clone();
                    let heads: Vec<i64> = c.receivers.iter().map(|&h| h as i64).collect();
                    let hooks = Hooks::new().edit(point, move |act: &Tensor, _| {
                        let out = act.f_contiguous()?.f_detach_copy()?;
                        for &h in &heads {
                            out.f_narrow(2, h, 1)?.f_copy_(&clean.f_narrow(2, h, 1)?)?;
                        }
                        Ok(out)
                    })?;
                    let logits = c.case.model.run_with_hooks(&c.corrupted, hooks)?;
                    Ok(c.metric(&logits)?.f_to_kind(Kind::Float)?)
                },
            ),
        ],
        compare: CLOSE,
    })
}

/// Checks `path_patch_heads(model, corrupted, clean, sender, receivers, input, metric)`:
/// step 1 ([`receiver_input`]) for the receivers' layer, then a run of `corrupted` in which
/// only the heads `receivers` of that layer read step 1's `input`, everything else computing
/// freely; returns `metric` of its logits.
///
/// # Shapes
/// - `receivers`: `(layer, head)` pairs, all in one layer after the sender's → a scalar
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
#[allow(clippy::type_complexity)]
pub fn path_patch_heads(
    f: impl Fn(
        &HookedTransformer,
        &Tensor,
        &ActivationCache,
        (usize, usize),
        &[(usize, usize)],
        HeadInput,
        &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor>,
) -> Result<Report> {
    path_patch_spec()?.check(&|c| {
        let receivers: Vec<(usize, usize)> =
            c.receivers.iter().map(|&h| (c.receiver_layer, h)).collect();
        f(
            &c.case.model,
            &c.corrupted,
            &c.case.cache,
            c.sender,
            &receivers,
            c.input,
            &|l| c.metric(l),
        )
    })
}
