//! Reading model checkpoints: [`Checkpoint`] indexes the tensors of a Hugging Face model folder
//! (safetensors, single or sharded; `pytorch_model.bin` through libtorch's own loader) and
//! hands them out by name with the shape checked. [`CheckpointPath`] walks the key tree
//! (`vb.pp("h").pp(0).get("ln_1.weight", ...)`), as candle's `VarBuilder` does.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

/// Where a named tensor lives.
enum Entry {
    /// Bytes in a memory-mapped safetensors file.
    Mapped {
        file: usize,
        dtype: Dtype,
        shape: Vec<i64>,
        start: usize,
        end: usize,
    },
    /// Already a tensor (pytorch_model.bin, llama2.c).
    Loaded { file: usize, tensor: Tensor },
}

/// The tensors of one checkpoint, by name.
pub struct Checkpoint {
    files: Vec<PathBuf>,
    maps: Vec<Option<Mmap>>,
    entries: HashMap<String, Entry>,
    kind: Kind,
    device: Device,
}

impl Checkpoint {
    /// Indexes the weights of a Hugging Face folder: `model.safetensors`,
    /// `model.safetensors.index.json` (shards), else `pytorch_model.bin` (and its index).
    /// Tensors are converted to `kind` and moved to `device` when taken.
    ///
    /// # Errors
    /// [`Error::WeightFile`] when no weight file is there or one is corrupt.
    pub fn from_folder(dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::from_safetensors(&[single], kind, device);
        }
        let index = dir.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::from_safetensors(&shards(&index)?, kind, device);
        }
        let bin = dir.join("pytorch_model.bin");
        if bin.is_file() {
            return Self::from_pytorch_bin(&[bin], kind, device);
        }
        let index = dir.join("pytorch_model.bin.index.json");
        if index.is_file() {
            return Self::from_pytorch_bin(&shards(&index)?, kind, device);
        }
        Err(Error::WeightFile {
            path: dir.to_path_buf(),
            reason: "no model.safetensors, model.safetensors.index.json or pytorch_model.bin in this folder".into(),
        })
    }

    /// Indexes safetensors files (memory-mapped; nothing is copied until a tensor is taken).
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be opened, [`Error::WeightFile`] if one is truncated or
    /// not safetensors.
    pub fn from_safetensors(paths: &[PathBuf], kind: Kind, device: Device) -> Result<Self> {
        let mut store = Self::empty(kind, device);
        for path in paths {
            let file = File::open(path).map_err(|source| Error::Io {
                action: "opening",
                path: path.clone(),
                source,
            })?;
            // SAFETY: the map is read-only; a checkpoint changed under a running notebook is
            // the same hazard as with every mmap-based loader (safetensors, candle).
            let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
                action: "mapping",
                path: path.clone(),
                source,
            })?;
            let corrupt = |e: safetensors::SafeTensorError| Error::WeightFile {
                path: path.clone(),
                reason: format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            };
            // `deserialize` checks every offset against the file length.
            SafeTensors::deserialize(&map).map_err(corrupt)?;
            let (header, meta) = SafeTensors::read_metadata(&map).map_err(corrupt)?;
            let base = 8 + header;
            let index = store.files.len();
            for (name, info) in meta.tensors() {
                let shape = info.shape.iter().map(|&d| d as i64).collect();
                let (start, end) = info.data_offsets;
                store.entries.insert(
                    name,
                    Entry::Mapped {
                        file: index,
                        dtype: info.dtype,
                        shape,
                        start: base + start,
                        end: base + end,
                    },
                );
            }
            store.files.push(path.clone());
            store.maps.push(Some(map));
        }
        Ok(store)
    }

    /// Loads `pytorch_model.bin` files (`torch.save` zip archives of a state dict, plain or
    /// `OrderedDict`) with [`crate::torch_archive`]; no Python pickle code runs.
    ///
    /// # Errors
    /// [`Error::WeightFile`] if a file is not such an archive.
    pub fn from_pytorch_bin(paths: &[PathBuf], kind: Kind, device: Device) -> Result<Self> {
        let mut store = Self::empty(kind, device);
        for path in paths {
            let tensors = crate::torch_archive::read_torch_archive(path)?;
            store.add_tensors(path.clone(), tensors);
        }
        Ok(store)
    }

    /// A store over tensors already in memory (converted checkpoints such as llama2.c's),
    /// attributed to `origin` in error messages.
    pub fn from_tensors(
        origin: PathBuf,
        tensors: Vec<(String, Tensor)>,
        kind: Kind,
        device: Device,
    ) -> Self {
        let mut store = Self::empty(kind, device);
        store.add_tensors(origin, tensors);
        store
    }

    fn empty(kind: Kind, device: Device) -> Self {
        Self {
            files: Vec::new(),
            maps: Vec::new(),
            entries: HashMap::new(),
            kind,
            device,
        }
    }

    fn add_tensors(&mut self, origin: PathBuf, tensors: Vec<(String, Tensor)>) {
        let index = self.files.len();
        for (name, tensor) in tensors {
            self.entries.insert(
                name,
                Entry::Loaded {
                    file: index,
                    tensor,
                },
            );
        }
        self.files.push(origin);
        self.maps.push(None);
    }

    /// Whether the checkpoint has a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }

    /// The dtype tensors are converted to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The device tensors are moved to.
    pub fn device(&self) -> Device {
        self.device
    }

    fn origin(&self) -> String {
        match self.files.as_slice() {
            [one] => one.display().to_string(),
            many => format!("the checkpoint ({} files)", many.len()),
        }
    }

    /// The tensor `name`, checked to have `shape`, as the store's kind and device.
    ///
    /// # Errors
    /// [`Error::MissingWeight`] naming the tensor and file; [`Error::WeightShape`] with both
    /// shapes.
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingWeight {
            name: name.to_string(),
            file: self.origin(),
        })?;
        let (file, got, tensor) = match entry {
            Entry::Mapped {
                file,
                dtype,
                shape: got,
                start,
                end,
            } => {
                let kind = kind_of(*dtype).ok_or_else(|| Error::WeightFile {
                    path: self.files[*file].clone(),
                    reason: format!(
                        "tensor `{name}` has dtype {dtype:?}, which mechlens does not read"
                    ),
                })?;
                if got.as_slice() != shape {
                    (*file, got.clone(), None)
                } else {
                    let bytes = self.maps[*file]
                        .as_ref()
                        .map(|m| &m[*start..*end])
                        .unwrap_or(&[]);
                    (
                        *file,
                        got.clone(),
                        Some(Tensor::f_from_data_size(bytes, got, kind)?),
                    )
                }
            }
            Entry::Loaded { file, tensor } => (*file, tensor.size(), Some(tensor.shallow_clone())),
        };
        if got.as_slice() != shape {
            return Err(Error::WeightShape {
                name: name.to_string(),
                file: self.files[file].display().to_string(),
                expected: shape.to_vec(),
                got,
            });
        }
        let tensor = tensor.unwrap_or_else(Tensor::new);
        Ok(tensor.f_to_kind(self.kind)?.f_to_device(self.device)?)
    }

    /// Like [`Checkpoint::get`], but `Ok(None)` when the tensor is absent.
    ///
    /// # Errors
    /// [`Error::WeightShape`] when present with another shape.
    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A path at the root of the key tree.
    pub fn root(&self) -> CheckpointPath<'_> {
        CheckpointPath {
            store: self,
            prefix: String::new(),
        }
    }
}

/// The shard files named by a `*.index.json` (its `weight_map` values), in first-seen order.
fn shards(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|source| Error::Io {
        action: "reading",
        path: index.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| Error::WeightFile {
        path: index.to_path_buf(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for file in map.values() {
        let file = dir.join(
            file.as_str()
                .ok_or_else(|| bad("a `weight_map` value is not a file name".into()))?,
        );
        if !files.contains(&file) {
            files.push(file);
        }
    }
    Ok(files)
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

/// A position in a checkpoint's key tree.
#[derive(Clone)]
pub struct CheckpointPath<'a> {
    store: &'a Checkpoint,
    prefix: String,
}

impl<'a> CheckpointPath<'a> {
    /// The path one level down (`pp("h").pp(3)` is `h.3.`).
    pub fn pp(&self, part: impl ToString) -> Self {
        Self {
            store: self.store,
            prefix: format!("{}{}.", self.prefix, part.to_string()),
        }
    }

    /// The full key of `name` under this path.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether `name` exists under this path.
    pub fn contains(&self, name: &str) -> bool {
        self.store.contains(&self.key(name))
    }

    /// The tensor `name` under this path, with its shape checked.
    ///
    /// # Errors
    /// See [`Checkpoint::get`].
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Tensor> {
        self.store.get(&self.key(name), shape)
    }

    /// The tensor if present.
    ///
    /// # Errors
    /// See [`Checkpoint::get_opt`].
    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Tensor>> {
        self.store.get_opt(&self.key(name), shape)
    }

    /// A Hugging Face `nn.Linear` weight (`[out, in]` in the file) as `[in, out]`, the layout
    /// TransformerLens' accessors use and our matmuls take.
    ///
    /// # Errors
    /// See [`Checkpoint::get`].
    pub fn linear_t(&self, name: &str, d_in: i64, d_out: i64) -> Result<Tensor> {
        Ok(self.get(name, &[d_out, d_in])?.tr().contiguous())
    }
}
