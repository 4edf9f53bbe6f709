//! Saving a decomposition and loading it back into one built for the same target: every
//! subcomponent and importance function as `{layer}.V`, `{layer}.U`, `{layer}.ci.w_in` ...
//! in one safetensors file, with the steps done, AdamW's moments and the log, so that
//! training resumes where it stopped and reaches the same bits.

use std::path::Path;

use mechlens_core::Result;
use tch::Tensor;

use crate::decomposition::Spd;
use crate::shared::{load_run, save_run};

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

    /// Writes the decomposition, the optimiser's state and the log to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_run(
            &self.named_parameters(),
            &self.adam,
            &self.log,
            self.step(),
            path,
        )
    }

    /// Loads a decomposition written by [`Spd::save`] into this one, which must decompose the
    /// same layers with the same `C` and importance width (build it with [`Spd::new`] and the
    /// saved run's config). Counts as warmed up and `step` steps done; with the optimiser's
    /// state and the log restored, [`Spd::train`] continues as the uninterrupted run would
    /// have (files saved before the state was kept: fresh moments, empty log).
    ///
    /// # Errors
    /// [`Error::Io`](mechlens_core::Error::Io) for a missing file;
    /// [`Error::InvalidInput`](mechlens_core::Error::InvalidInput) naming the first tensor the
    /// file lacks or whose shape differs (both shapes given); nothing is changed then.
    pub fn load_parameters(&mut self, path: &Path) -> Result<()> {
        let named = self.named_parameters();
        let step = load_run(
            &named,
            &mut self.adam,
            &mut self.log,
            path,
            "SPD",
            &self.names,
        )?;
        self.mark_loaded(step);
        Ok(())
    }
}
