//! What SPD and APD share: choosing the target's maps to decompose, refusing a loss that is
//! not finite, saving trained tensors with the steps done and loading them back, and the
//! training log as a table.

use std::path::Path;

use mechlens_core::{Error, Result};
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

/// Writes `named` tensors and the steps done to `path`, atomically.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub(crate) fn save_named(named: &[(String, Tensor)], step: usize, path: &Path) -> Result<()> {
    let mut tensors: Vec<(&str, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.as_str(), t.detach()))
        .collect();
    tensors.push(("step", Tensor::from_slice(&[step as i64])));
    mechlens_checkpoint::safetensors::write(&tensors, path)
}

/// Copies the tensors of a file written by [`save_named`] into `named` and returns its steps
/// done. `method` ("SPD", "APD") and `layers` only word the errors.
///
/// # Errors
/// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming the first tensor the file
/// lacks or whose shape differs (both shapes given); nothing is changed then.
pub(crate) fn load_named(
    named: &[(String, Tensor)],
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
    tch::no_grad(|| -> Result<()> {
        for (name, t) in named {
            if let Some(s) = find(name) {
                t.shallow_clone().f_copy_(s)?;
            }
        }
        Ok(())
    })?;
    Ok(step)
}
