//! E3's activation patching: the hook bodies that copy one position (or one head) of a clean
//! activation into the corrupted run, and the sweeps over every layer × position of
//! `resid_pre` and every layer × head of the heads' outputs; the sweeps against
//! mechlens-analysis' `activation_patch` (itself equal to TransformerLens') on random models.

use mechlens_analysis::{PatchSpec, PatchTarget, generic_activation_patch};
use mechlens_core::{ActivationCache, HookPoint, Result};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::patching::PatchCase;
use crate::random::Draw;
use crate::report::Report;

const EXACT: Compare = Compare::Values {
    atol: 0.0,
    rtol: 0.0,
};

const CLOSE: Compare = Compare::Values {
    atol: 1e-4,
    rtol: 1e-3,
};

/// A corrupted and a clean activation, and the index along `dim` to patch.
pub(crate) struct SliceCase {
    pub corrupted: Tensor,
    pub clean: Tensor,
    pub index: i64,
}

impl Case for SliceCase {
    fn label(&self) -> String {
        format!(
            "corrupted {:?}, clean {:?}, index {}",
            self.corrupted.size(),
            self.clean.size(),
            self.index
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("corrupted", &self.corrupted), ("clean", &self.clean)]
    }
}

/// `corrupted` with `len` entries along `dim` from `index` on taken from `clean`.
fn patched(c: &SliceCase, dim: i64, len: i64) -> Result<Tensor> {
    let out = c.corrupted.f_contiguous()?.f_detach_copy()?;
    out.f_narrow(dim, c.index, len)?
        .f_copy_(&c.clean.f_narrow(dim, c.index, len)?)?;
    Ok(out)
}

/// A check of copying index `index` along `dim` from the clean activation: random cases of
/// `shape(draw)` whose index is also valid along `wrong_dim` (so that a patch along the wrong
/// dim is a wrong answer, not an error), and the two mistakes every such hook can make: the
/// wrong dim, and every index from `index` on.
fn slice_spec(
    exercise: &'static str,
    seed: u64,
    shape: fn(&mut Draw) -> Vec<i64>,
    (dim, wrong_dim): (i64, i64),
    (wrong_dim_mistake, from_here_mistake): (&'static str, &'static str),
) -> Spec<SliceCase> {
    let mut draw = Draw::new(seed);
    let cases = (0..4)
        .map(|_| {
            let size = shape(&mut draw);
            let index = draw.int(0, size[dim as usize].min(size[wrong_dim as usize]) - 1);
            SliceCase {
                corrupted: draw.normal(&size, 0.0, 1.0),
                clean: draw.normal(&size, 0.0, 1.0),
                index,
            }
        })
        .collect();
    Spec {
        exercise,
        cases,
        reference: Box::new(move |c: &SliceCase| patched(c, dim, 1)),
        mutants: vec![
            Mutant::new(wrong_dim_mistake, move |c: &SliceCase| {
                patched(c, wrong_dim, 1)
            }),
            Mutant::new(from_here_mistake, move |c: &SliceCase| {
                let n = c.corrupted.size()[dim as usize];
                patched(c, dim, n - c.index)
            }),
        ],
        compare: EXACT,
    }
}

pub(crate) fn patch_position_spec() -> Spec<SliceCase> {
    // Batch at least 3 and positions at least 3, so the wrong-dim and from-here-on mistakes
    // differ from the answer.
    let shape = |d: &mut Draw| vec![d.int(3, 5), d.int(3, 7), d.int(2, 6)];
    let mut spec = slice_spec(
        "patch_position",
        311,
        shape,
        (1, 0),
        (
            "the batch row `pos` was patched (dim 0); positions are dim 1 of [batch, pos, d_model]",
            "every position from `pos` on was patched; patch that one position only",
        ),
    );
    spec.mutants.push(Mutant::new(
        "the clean activation was returned whole; only position `pos` comes from it",
        |c: &SliceCase| Ok(c.clean.copy()),
    ));
    spec
}

/// Checks `patch_position(corrupted, clean, pos)` (a hook's body): the corrupted activation
/// with position `pos` of every prompt taken from the clean one, as a new tensor.
///
/// # Shapes
/// - `corrupted`, `clean`: `[batch, pos, d_model]` → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn patch_position(f: impl Fn(&Tensor, &Tensor, i64) -> Result<Tensor>) -> Result<Report> {
    patch_position_spec().check(&|c| f(&c.corrupted, &c.clean, c.index))
}

pub(crate) fn patch_head_spec() -> Spec<SliceCase> {
    let shape = |d: &mut Draw| vec![d.int(1, 3), d.int(3, 6), d.int(3, 5), d.int(2, 5)];
    slice_spec(
        "patch_head_vector",
        312,
        shape,
        (2, 1),
        (
            "position `head` was patched (dim 1); heads are dim 2 of hook_z's [batch, pos, head, d_head]",
            "every head from `head` on was patched; patch that one head only",
        ),
    )
}

/// Checks `patch_head_vector(corrupted, clean, head)` (a hook's body): the corrupted
/// `hook_z` with head `head`, at every position, taken from the clean one, as a new tensor.
///
/// # Shapes
/// - `corrupted`, `clean`: `[batch, pos, n_heads, d_head]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn patch_head_vector(f: impl Fn(&Tensor, &Tensor, i64) -> Result<Tensor>) -> Result<Report> {
    patch_head_spec().check(&|c| f(&c.corrupted, &c.clean, c.index))
}

/// `spec` patched with the case's metric, as f32 scores.
fn sweep(c: &PatchCase, spec: &PatchSpec) -> Result<Tensor> {
    let scores = generic_activation_patch(&c.case.model, &c.corrupted, &c.case.cache, spec, |l| {
        c.metric(l)
    })?;
    Ok(scores.scores.f_to_kind(Kind::Float)?)
}

fn target(c: &PatchCase, target: PatchTarget) -> Result<Tensor> {
    sweep(c, &target.spec())
}

/// `point` patched whole at each layer (no index), the score repeated along `width`.
fn whole(c: &PatchCase, point: fn(usize) -> HookPoint, width: i64) -> Result<Tensor> {
    let per_layer = sweep(
        c,
        &PatchSpec {
            point,
            axes: vec![],
        },
    )?;
    Ok(per_layer
        .f_unsqueeze(1)?
        .f_expand([-1, width], false)?
        .f_contiguous()?)
}

pub(crate) fn resid_pre_spec() -> Result<Spec<PatchCase>> {
    Ok(Spec {
        exercise: "resid_pre_patching",
        cases: PatchCase::draw(313, false)?,
        reference: Box::new(|c: &PatchCase| target(c, PatchTarget::ResidPre)),
        mutants: vec![
            Mutant::new(
                "resid_post was patched (the stream leaving the layer); resid_pre is the stream entering it: HookPoint::ResidPre(layer)",
                |c: &PatchCase| {
                    sweep(
                        c,
                        &PatchSpec {
                            point: HookPoint::ResidPost,
                            axes: PatchTarget::ResidPre.spec().axes,
                        },
                    )
                },
            ),
            Mutant::new(
                "every position was patched at once, so every position has the same score; patch one position per run",
                |c: &PatchCase| whole(c, HookPoint::ResidPre, c.corrupted.size()[1]),
            ),
        ],
        compare: CLOSE,
    })
}

/// Checks `resid_pre_patching(model, corrupted, clean, metric)`: for every layer and
/// position, run the corrupted tokens with that position of `resid_pre` taken from the clean
/// run (its cache), and record `metric` of the logits.
///
/// # Shapes
/// - `corrupted`: `[batch, pos]` tokens; `metric`: logits `[batch, pos, d_vocab]` → a scalar;
///   → `[n_layers, pos]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn resid_pre_patching(
    f: impl Fn(
        &HookedTransformer,
        &Tensor,
        &ActivationCache,
        &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor>,
) -> Result<Report> {
    resid_pre_spec()?.check(&|c| f(&c.case.model, &c.corrupted, &c.case.cache, &|l| c.metric(l)))
}

pub(crate) fn head_out_spec() -> Result<Spec<PatchCase>> {
    Ok(Spec {
        exercise: "head_out_patching",
        cases: PatchCase::draw(314, false)?,
        reference: Box::new(|c: &PatchCase| target(c, PatchTarget::HeadOutAllPos)),
        mutants: vec![
            Mutant::new(
                "the head's query (hook_q) was patched; its output is hook_z, the values weighted by its attention",
                |c: &PatchCase| target(c, PatchTarget::HeadQAllPos),
            ),
            Mutant::new(
                "every head of the layer was patched at once, so the heads of a layer have the same score; patch one head per run",
                |c: &PatchCase| whole(c, HookPoint::Z, c.case.model.cfg().n_heads as i64),
            ),
        ],
        compare: CLOSE,
    })
}

/// Checks `head_out_patching(model, corrupted, clean, metric)`: for every layer and head, run
/// the corrupted tokens with that head's output (`hook_z`, every position) taken from the
/// clean run, and record `metric` of the logits.
///
/// # Shapes
/// - `corrupted`: `[batch, pos]` tokens → `[n_layers, n_heads]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn head_out_patching(
    f: impl Fn(
        &HookedTransformer,
        &Tensor,
        &ActivationCache,
        &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor>,
) -> Result<Report> {
    head_out_spec()?.check(&|c| f(&c.case.model, &c.corrupted, &c.case.cache, &|l| c.metric(l)))
}
