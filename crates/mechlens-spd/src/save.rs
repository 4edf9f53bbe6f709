//! Saving a trained decomposition and loading it back into one built for the same target:
//! every subcomponent and importance function as `{layer}.V`, `{layer}.U`,
//! `{layer}.ci.w_in` ... in one safetensors file, with the steps done.

use std::path::Path;

use mechlens_core::{Error, Result};
use tch::Tensor;

use crate::decomposition::Spd;

impl Spd {
    /// Every trained tensor with its file name, layer by layer.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((layer, c), g) in self
            .names
            .iter()
            .zip(&self.components)
            .zip(&self.importance_fns)
        {
            for (part, t) in [
                ("V", &c.v),
                ("U", &c.u),
                ("ci.w_in", &g.w_in),
                ("ci.b_in", &g.b_in),
                ("ci.w_out", &g.w_out),
                ("ci.b_out", &g.b_out),
            ] {
                out.push((format!("{layer}.{part}"), t.shallow_clone()));
            }
        }
        out
    }

    /// Writes the decomposition (not the optimiser's state) to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .collect();
        tensors.push(("step".into(), Tensor::from_slice(&[self.step() as i64])));
        let refs: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.shallow_clone()))
            .collect();
        mechlens_checkpoint::safetensors::write(&refs, path)
    }

    /// Loads a decomposition written by [`Spd::save`] into this one, which must decompose the
    /// same layers with the same `C` and importance width (build it with [`Spd::new`] and the
    /// saved run's config). Counts as warmed up and `step` steps done.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming the first tensor the
    /// file lacks or whose shape differs (both shapes given); nothing is changed then.
    pub fn load_parameters(&mut self, path: &Path) -> Result<()> {
        let saved = mechlens_checkpoint::safetensors::read(path)?;
        let find = |name: &str| saved.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        let ours = self.named_parameters();
        // Check everything before changing anything.
        for (name, t) in &ours {
            let Some(s) = find(name) else {
                return Err(Error::invalid(
                    "SPD file",
                    format!(
                        "{} has no tensor `{name}`; it decomposes other layers than {:?}",
                        path.display(),
                        self.names
                    ),
                ));
            };
            if s.size() != t.size() {
                return Err(Error::invalid(
                    "SPD file",
                    format!(
                        "`{name}` is {:?} in {} but {:?} here: the file was saved with another C, importance width or target",
                        s.size(),
                        path.display(),
                        t.size()
                    ),
                ));
            }
        }
        let step = find("step").ok_or_else(|| {
            Error::invalid(
                "SPD file",
                format!(
                    "{} has no `step`; it was not written by Spd::save",
                    path.display()
                ),
            )
        })?;
        let step = usize::try_from(step.f_int64_value(&[0])?).unwrap_or(0);
        tch::no_grad(|| -> Result<()> {
            for (name, t) in &ours {
                if let Some(s) = find(name) {
                    t.shallow_clone().f_copy_(s)?;
                }
            }
            Ok(())
        })?;
        self.mark_loaded(step);
        Ok(())
    }
}
