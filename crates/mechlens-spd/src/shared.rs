//! What SPD and APD share: choosing the target's maps to decompose, refusing a loss that is
//! not finite, each step's seed, and saving a run (trained tensors, steps done, optimiser
//! state, log) so that loading it back resumes exactly.

use std::path::Path;

use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, Schedule, log_due};
use tch::Tensor;

use crate::target::Decomposable;

/// The maps `layers` of `target`, in the model's order (so that logs and plots follow the
/// forward pass): their names and detached copies of their weights.
///
/// # Errors
/// [`Error::InvalidInput`] for no layers, a layer named twice, or a name the model does not
/// have (the error lists those it has).
pub(crate) fn pick_layers(
    target: &dyn Decomposable,
    layers: &[&str],
) -> Result<(Vec<String>, Vec<Tensor>)> {
    if layers.is_empty() {
        return Err(Error::invalid(
            "layers",
            "name at least one matrix to decompose",
        ));
    }
    let linears = target.linears();
    for layer in layers {
        if !linears.iter().any(|(n, _)| n == layer) {
            let valid: Vec<&str> = linears.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::invalid(
                "layer to decompose",
                format!("the model has no matrix {layer:?}; it has {valid:?}"),
            ));
        }
        if layers.iter().filter(|l| *l == layer).count() > 1 {
            return Err(Error::invalid(
                "layers",
                format!("{layer:?} is named more than once"),
            ));
        }
    }
    let mut names = Vec::new();
    let mut weights = Vec::new();
    for (name, weight) in &linears {
        if layers.contains(&name.as_str()) {
            names.push(name.clone());
            weights.push(weight.f_detach()?.copy());
        }
    }
    Ok((names, weights))
}

/// `Ok` when `loss` is finite; otherwise [`Error::Training`] naming the step and saying that
/// the decomposition was not changed (the caller checks before the optimiser's step).
pub(crate) fn check_finite(loss: &Tensor, step: usize, what: &str) -> Result<()> {
    let v = loss.double_value(&[]);
    if v.is_finite() {
        return Ok(());
    }
    Err(Error::Training {
        step,
        reason: format!(
            "the {what} is {v}; the decomposition was left as it was after the previous step"
        ),
    })
}

/// One row of a decomposition's log: step, learning rate, the losses.
pub(crate) type LogRow<const N: usize> = (usize, f64, [f64; N]);

/// libtorch's seed for step `step` of a run seeded `seed`: the step's batch and noise are
/// drawn right after it, so they depend on the step alone and a resumed run draws what the
/// uninterrupted one did. (Step 0's is `seed + 1`, the seed the runs used before.)
pub(crate) fn step_seed(seed: u64, step: usize) -> i64 {
    (seed as i64).wrapping_add(1).wrapping_add(step as i64)
}

/// A decomposition method's side of a training step: SPD and APD differ in their losses,
/// and share everything else ([`train_steps`]).
pub(crate) trait Method<const N: usize> {
    /// Names the loss in a non-finite-loss error ("SPD loss").
    const LOSS: &'static str;
    /// The step's loss and its logged parts.
    fn step_losses(&self, target: &dyn Decomposable, x: &Tensor) -> Result<(Tensor, [f64; N])>;
    /// The optimiser, the steps done and the log.
    fn state(&mut self) -> (&mut AdamW, &mut usize, &mut Vec<LogRow<N>>);
}

/// A run's settings that the step loop reads.
pub(crate) struct StepPlan {
    pub seed: u64,
    pub steps: usize,
    pub log_every: usize,
    pub schedule: Schedule,
}

/// At most `n` more steps of `method` (fewer when `plan.steps` comes first), on the whole
/// run's schedule: each step seeds libtorch's generator ([`step_seed`]), draws `data(step)`,
/// refuses a non-finite loss before changing anything, updates `params` and logs when due.
pub(crate) fn train_steps<const N: usize, M: Method<N>>(
    method: &mut M,
    target: &dyn Decomposable,
    data: &mut dyn FnMut(usize) -> Result<Tensor>,
    params: &[Tensor],
    plan: &StepPlan,
    n: usize,
) -> Result<()> {
    let mut at = *method.state().1;
    let stop = plan.steps.min(at.saturating_add(n));
    while at < stop {
        tch::manual_seed(step_seed(plan.seed, at));
        let x = data(at)?;
        let (loss, parts) = method.step_losses(target, &x)?;
        check_finite(&loss, at, M::LOSS)?;
        let lr = plan.schedule.at(at, plan.steps);
        let (adam, step, log) = method.state();
        adam.minimize(&loss, params, lr)?;
        if log_due(at, plan.log_every, plan.steps) {
            log.push((at, lr, parts));
        }
        at += 1;
        *step = at;
    }
    Ok(())
}

/// Writes `named` tensors, the steps done, the optimiser's state and the log to `path`,
/// atomically: everything [`load_run`] needs to continue to the same bits.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub(crate) fn save_run<const N: usize>(
    named: &[(String, Tensor)],
    adam: &AdamW,
    log: &[LogRow<N>],
    step: usize,
    path: &Path,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> =
        named.iter().map(|(n, t)| (n.clone(), t.detach())).collect();
    tensors.push(("step".into(), Tensor::from_slice(&[step as i64])));
    let (m, v, adam_steps) = adam.state();
    tensors.push((
        "adam.steps".into(),
        Tensor::from_slice(&[adam_steps as i64]),
    ));
    for (i, (m, v)) in m.iter().zip(v).enumerate() {
        tensors.push((format!("adam.m.{i}"), m.shallow_clone()));
        tensors.push((format!("adam.v.{i}"), v.shallow_clone()));
    }
    let flat: Vec<f64> = log
        .iter()
        .flat_map(|(step, lr, parts)| [*step as f64, *lr].into_iter().chain(*parts))
        .collect();
    tensors.push((
        "log".into(),
        Tensor::from_slice(&flat).f_view([log.len() as i64, 2 + N as i64])?,
    ));
    let refs: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    mechlens_checkpoint::safetensors::write(&refs, path)
}

/// Copies the tensors of a file written by [`save_run`] into `named`, restores the
/// optimiser's state and the log, and returns the steps done. A file saved before the
/// optimiser's state was kept loads its tensors only (fresh moments, empty log). `method`
/// ("SPD", "APD") and `layers` only word the errors.
///
/// # Errors
/// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming the first tensor the file
/// lacks or whose shape differs (both shapes given), or an optimiser state for other
/// parameters; nothing is changed then.
pub(crate) fn load_run<const N: usize>(
    named: &[(String, Tensor)],
    adam: &mut AdamW,
    log: &mut Vec<LogRow<N>>,
    path: &Path,
    method: &str,
    layers: &[String],
) -> Result<usize> {
    let saved = mechlens_checkpoint::safetensors::read(path)?;
    let find = |name: &str| saved.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    let what = format!("{method} file");
    // Check everything before changing anything.
    for (name, t) in named {
        let Some(s) = find(name) else {
            return Err(Error::invalid(
                &what,
                format!(
                    "{} has no tensor `{name}`; it decomposes other layers than {layers:?}",
                    path.display(),
                ),
            ));
        };
        if s.size() != t.size() {
            return Err(Error::invalid(
                &what,
                format!(
                    "`{name}` is {:?} in {} but {:?} here: the file was saved with other settings (C, rank, widths) or another target",
                    s.size(),
                    path.display(),
                    t.size()
                ),
            ));
        }
    }
    let step = find("step").ok_or_else(|| {
        Error::invalid(
            &what,
            format!(
                "{} has no `step`; it was not written by {method}'s save",
                path.display()
            ),
        )
    })?;
    let step = usize::try_from(step.f_int64_value(&[0])?).unwrap_or(0);
    if let Some(adam_steps) = find("adam.steps") {
        let n = adam.state().0.len();
        let moments = |kind: &str| -> Result<Vec<Tensor>> {
            (0..n)
                .map(|i| {
                    find(&format!("adam.{kind}.{i}"))
                        .map(Tensor::shallow_clone)
                        .ok_or_else(|| {
                            Error::invalid(
                                &what,
                                format!(
                                    "{} has an optimiser state for fewer than the {n} trained tensors here",
                                    path.display()
                                ),
                            )
                        })
                })
                .collect()
        };
        let adam_steps = usize::try_from(adam_steps.f_int64_value(&[0])?).unwrap_or(0);
        adam.restore(&moments("m")?, &moments("v")?, adam_steps)
            .map_err(|e| Error::invalid(&what, format!("{}: {e}", path.display())))?;
    }
    tch::no_grad(|| -> Result<()> {
        for (name, t) in named {
            if let Some(s) = find(name) {
                t.shallow_clone().f_copy_(s)?;
            }
        }
        Ok(())
    })?;
    log.clear();
    if let Some(rows) = find("log")
        && rows.dim() == 2
        && rows.size()[1] == 2 + N as i64
    {
        let flat = Vec::<f64>::try_from(rows.f_flatten(0, -1)?)?;
        for row in flat.chunks(2 + N) {
            let mut parts = [0.0; N];
            parts.copy_from_slice(&row[2..]);
            log.push((row[0] as usize, row[1], parts));
        }
    }
    Ok(step)
}
