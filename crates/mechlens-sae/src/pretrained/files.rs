//! The weight files converted releases come in, read into named tensors: NumPy `.npz`
//! (Gemma Scope), PyTorch `torch.save` archives (`.pt` / `.pth`: dictionary_learning, Qwen
//! Scope, Goodfire ...) and safetensors (Gemma Scope 2, Llama Scope). No Python code runs:
//! `.npz` is read here, `.pt` by `mechlens_models::torch_archive`.

use std::collections::BTreeMap;
use std::io::Read;
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
            read_npz(path)?
        } else if name.ends_with(".safetensors") {
            Tensor::read_safetensors(path).map_err(|e| Error::WeightFile {
                path: path.to_path_buf(),
                reason: format!("not a valid safetensors file: {e}"),
            })?
        } else {
            mechlens_models::torch_archive::read_torch_archive(path)?
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

/// A NumPy `.npz` archive (stored or deflated), each member a little-endian `.npy` array.
fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bad = |reason: String| Error::WeightFile {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a NumPy .npz (zip) archive: {e}")))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| bad(format!("member {i} cannot be read: {e}")))?;
        let name = member.name().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        member
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("member `{name}` cannot be read: {e}")))?;
        let tensor = parse_npy(&bytes).map_err(|why| bad(format!("array `{name}`: {why}")))?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// One `.npy` array: magic, version, header length, a Python-dict header, then the data.
fn parse_npy(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unknown .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated or non-text header")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}':"))
            .ok_or(format!("header has no '{key}'"))?;
        Ok(header[at + key.len() + 3..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("unreadable 'descr'")?;
    let kind = match descr {
        "<f4" => Kind::Float,
        "<f8" => Kind::Double,
        "<f2" => Kind::Half,
        "<i8" => Kind::Int64,
        "<i4" => Kind::Int,
        "|u1" => Kind::Uint8,
        "|b1" => Kind::Bool,
        other => {
            return Err(format!(
                "dtype `{other}` is not read (little-endian float32/float64/float16, int32/int64, uint8 or bool)"
            ));
        }
    };
    let fortran = field("fortran_order")?.starts_with("True");
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("unreadable 'shape'")?;
    let shape: Vec<i64> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad dimension `{s}` in 'shape'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let numel: i64 = shape.iter().product();
    let data = &bytes[start + header_len..];
    let expected = numel as usize * kind.elt_size_in_bytes();
    if data.len() != expected {
        return Err(format!(
            "shape {shape:?} needs {expected} bytes of data, the file has {}",
            data.len()
        ));
    }
    // Fortran order is the transpose's C order.
    let stored: Vec<i64> = if fortran {
        shape.iter().rev().copied().collect()
    } else {
        shape.clone()
    };
    let t = Tensor::f_from_data_size(data, &stored, kind).map_err(|e| e.to_string())?;
    if fortran {
        let dims: Vec<i64> = (0..shape.len() as i64).rev().collect();
        return t
            .f_permute(&dims)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| e.to_string());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn npy_arrays_read_in_c_and_fortran_order() {
        let data = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let c = parse_npy(&npy("<f4", false, "(2, 3)", &data)).unwrap();
        assert_eq!(c.size(), [2, 3]);
        assert_eq!(c.double_value(&[1, 0]), 4.0);
        // Fortran order: the same bytes are column-major.
        let f = parse_npy(&npy("<f4", true, "(2, 3)", &data)).unwrap();
        assert_eq!(f.size(), [2, 3]);
        assert_eq!(f.double_value(&[1, 0]), 2.0);
        let scalar = parse_npy(&npy("<f4", false, "()", &f32_bytes(&[0.5]))).unwrap();
        assert_eq!(scalar.size(), Vec::<i64>::new());
    }

    #[test]
    fn bad_npy_arrays_are_named_errors() {
        let data = f32_bytes(&[1.0, 2.0]);
        let e = parse_npy(&npy("<f4", false, "(2, 3)", &data)).unwrap_err();
        assert!(e.contains("needs 24 bytes") && e.contains("has 8"), "{e}");
        let e = parse_npy(&npy(">f4", false, "(2,)", &data)).unwrap_err();
        assert!(e.contains(">f4"), "{e}");
        let e = parse_npy(b"PK\x03\x04 not npy").unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
