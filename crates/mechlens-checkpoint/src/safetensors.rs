//! The one reader and the one writer of safetensors files in mechlens (model folders are
//! indexed lazily by [`crate::Checkpoint`], which reads the same format).

use std::path::Path;

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::atomic;

/// Every tensor of a safetensors file, by name, in the file's order.
///
/// # Errors
/// [`Error::WeightFile`] naming the file when it is missing or not valid safetensors.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        return Err(Error::WeightFile {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    Tensor::read_safetensors(path).map_err(|e| Error::WeightFile {
        path: path.to_path_buf(),
        reason: format!("not a valid safetensors file: {e}"),
    })
}

/// The tensor called `name` in a safetensors file.
///
/// # Errors
/// As [`read`]; [`Error::MissingWeight`] listing the names the file has.
pub fn read_one(path: &Path, name: &str) -> Result<Tensor> {
    let tensors = read(path)?;
    let names: Vec<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    tensors
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| Error::MissingWeight {
            name: name.into(),
            file: format!("{} (it has: {})", path.display(), names.join(", ")),
        })
}

/// Writes `tensors` to `path` through a temporary file and a rename.
///
/// # Errors
/// [`Error::Io`] naming `path`.
pub fn write(tensors: &[(&str, Tensor)], path: &Path) -> Result<()> {
    let tmp = atomic::temp_name(path);
    if let Err(e) = Tensor::write_safetensors(tensors, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        // libtorch's writer reports I/O failures as a TchError; keep the path in the message.
        return Err(Error::Io {
            action: "writing",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        });
    }
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    })
}

/// One `f32` tensor `[rows, cols]` called `name` as safetensors bytes (for files whose bytes
/// are hashed before they are written, as activation shards are).
///
/// # Errors
/// [`Error::InvalidInput`] when the tensor is not 2-D.
pub fn encode_f32(name: &str, t: &Tensor) -> Result<Vec<u8>> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?)?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, shape, &bytes)
        .map_err(|e| Error::invalid(format!("tensor `{name}`"), e.to_string()))?;
    ::safetensors::serialize([(name, view)], None)
        .map_err(|e| Error::invalid(format!("tensor `{name}`"), e.to_string()))
}

/// The `f32` tensor `name` of shape `shape` from safetensors bytes (read with
/// [`encode_f32`]'s layout); `Err(reason)` says what did not match.
///
/// # Errors
/// A sentence naming what is wrong: not safetensors, no such tensor, another dtype or shape.
pub fn decode_f32(bytes: &[u8], name: &str, shape: &[i64]) -> std::result::Result<Tensor, String> {
    let st = ::safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let view = st
        .tensor(name)
        .map_err(|e| format!("no `{name}` tensor: {e}"))?;
    let expected: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    if view.dtype() != ::safetensors::Dtype::F32 || view.shape() != expected {
        return Err(format!(
            "`{name}` is {:?} {:?}, expected F32 {expected:?}",
            view.dtype(),
            view.shape()
        ));
    }
    Tensor::f_from_data_size(view.data(), shape, Kind::Float).map_err(|e| e.to_string())
}
