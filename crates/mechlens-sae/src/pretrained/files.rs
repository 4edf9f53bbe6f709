//! The weight files converted releases come in, read into named tensors: NumPy `.npz`
//! (Gemma Scope), PyTorch `torch.save` archives (`.pt` / `.pth`: dictionary_learning, Qwen
//! Scope, Goodfire ...) and safetensors (Gemma Scope 2, Llama Scope), with the readers in
//! `mechlens_models` (`npz`, `torch_archive`); no Python code runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

/// The tensors of one file, taken out by name.
pub(crate) struct Tensors {
    pub(crate) path: PathBuf,
    map: BTreeMap<String, Tensor>,
    /// Every name the file has, for error messages.
    names: Vec<String>,
}

impl Tensors {
    /// Reads `path` by its extension: `.npz`, `.safetensors`, else a PyTorch archive.
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let list = if name.ends_with(".npz") {
            mechlens_checkpoint::npz::read_npz(path)?
        } else if name.ends_with(".safetensors") {
            mechlens_checkpoint::safetensors::read(path)?
        } else {
            mechlens_checkpoint::torch_archive::read_torch_archive(path)?
        };
        let map: BTreeMap<String, Tensor> = list.into_iter().collect();
        Ok(Self {
            path: path.to_path_buf(),
            names: map.keys().cloned().collect(),
            map,
        })
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Removes and returns `name` as float32.
    pub(crate) fn take(&mut self, name: &str) -> Result<Tensor> {
        match self.map.remove(name) {
            Some(t) => Ok(t.f_to_kind(Kind::Float)?),
            None => Err(Error::MissingWeight {
                name: name.to_string(),
                file: format!(
                    "{} (it has: {})",
                    self.path.display(),
                    self.names.join(", ")
                ),
            }),
        }
    }

    /// `name` (a `[out, in]` linear weight) transposed to `[in, out]`.
    pub(crate) fn take_t(&mut self, name: &str) -> Result<Tensor> {
        let t = self.take(name)?;
        if t.dim() != 2 {
            return Err(Error::WeightFile {
                path: self.path.clone(),
                reason: format!("`{name}` should be a matrix, it has shape {:?}", t.size()),
            });
        }
        Ok(t.f_t_copy()?.f_contiguous()?)
    }

    /// The first of `names` the file has.
    pub(crate) fn take_first(&mut self, names: &[&str]) -> Result<Tensor> {
        match names.iter().find(|n| self.has(n)) {
            Some(name) => self.take(name),
            None => self.take(&names.join(" or ")),
        }
    }
}
