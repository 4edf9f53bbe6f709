//! NumPy `.npz` archives (Gemma Scope's `params.npz`), read without Python. tch's own
//! `read_npz` unwraps on a corrupt member; this one returns an error naming it.

use std::path::Path;

#[cfg(doc)]
use mechlens_core::Error;
use mechlens_core::Result;
use tch::{Kind, Tensor};

use crate::zip_file::ZipFile;

/// The arrays of a NumPy `.npz` archive (stored or deflated), each a little-endian `.npy`
/// array in C or Fortran order, as tensors named by member (without `.npy`).
///
/// # Errors
/// [`Error::WeightFile`] naming the file and the array: not a zip, an unreadable member, a
/// malformed header, a dtype outside float32/float64/float16, int32/int64, uint8 and bool, or
/// data shorter or longer than the shape needs.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut zip = ZipFile::open(path, "a NumPy .npz (zip) archive")?;
    let mut out = Vec::new();
    for member in zip.names() {
        let bytes = zip.read(&member).map_err(|e| zip.error(e))?;
        let name = member.trim_end_matches(".npy").to_string();
        let tensor =
            parse_npy(&bytes).map_err(|why| zip.error(format!("array `{name}`: {why}")))?;
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
            s.parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("bad dimension `{s}` in 'shape'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let data = &bytes[start + header_len..];
    let expected = shape
        .iter()
        .try_fold(kind.elt_size_in_bytes(), |acc, &d| {
            acc.checked_mul(d as usize)
        })
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
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
        let e = parse_npy(&npy("<f4", false, "(-2, 3)", &data)).unwrap_err();
        assert!(e.contains("bad dimension `-2`"), "{e}");
        let e = parse_npy(&npy("<f4", false, "(4294967296, 4294967296)", &data)).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let e = parse_npy(b"PK\x03\x04 not npy").unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
