//! The entries of a mostly-zero matrix, for the sparse products over the latents that fired.

use std::sync::Mutex;

use tch::{Kind, Tensor};

use super::{f32_slice, fast, poisoned, team, threads};
use mechlens_core::{Error, Result};

/// The entries `> 0` of a matrix, row by row (its CSR form without the row pointers):
/// `(values, columns, row_counts)`, `values [nnz]` f32, `columns [nnz]` and
/// `row_counts [n]` i64. For a ReLU's output at a low density, where the products that
/// follow can skip the zeros.
///
/// # Shapes
/// - `x`: `[n, m]`
/// - returns `[nnz]`, `[nnz]`, `[n]`
pub fn positive_entries(x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let size = x.size();
    let [n, m] = size[..] else {
        return Err(Error::ShapeMismatch {
            what: "x".into(),
            expected: "[n, m]".into(),
            got: size,
        });
    };
    if !fast(&[x]) {
        let on = x.f_gt(0.0)?;
        let at = on.f_nonzero()?;
        let values = x.f_masked_select(&on)?;
        let counts = on.f_sum_dim_intlist(1, false, Kind::Int64)?;
        return Ok((values, at.f_select(1, 1)?.f_contiguous()?, counts));
    }
    let m = usize::try_from(m).unwrap_or(0).max(1);
    let values = f32_slice(x);
    let threads = threads();
    let block = (values.len() / m).div_ceil(threads).max(1) * m;
    let blocks: Vec<&[f32]> = values.chunks(block).collect();
    type Found = (Vec<f32>, Vec<i64>, Vec<i64>);
    let found: Vec<Mutex<Found>> = blocks
        .iter()
        .map(|_| Mutex::new(Found::default()))
        .collect();
    team::for_each_block(blocks.len(), threads, &|i| {
        let Ok(mut found) = found[i].lock() else {
            return;
        };
        let (values, columns, counts) = &mut *found;
        for row in blocks[i].chunks_exact(m) {
            let before = values.len();
            // Most runs of 16 hold nothing at a low density; the test for one vectorises.
            for (c, chunk) in row.chunks(16).enumerate() {
                if !chunk.iter().fold(false, |any, &v| any | (v > 0.0)) {
                    continue;
                }
                for (j, &v) in chunk.iter().enumerate() {
                    if v > 0.0 {
                        values.push(v);
                        columns.push((c * 16 + j) as i64);
                    }
                }
            }
            counts.push((values.len() - before) as i64);
        }
    })?;
    let mut all = Found::default();
    for f in found {
        let (v, c, r) = f.into_inner().map_err(|_| poisoned())?;
        all.0.extend(v);
        all.1.extend(c);
        all.2.extend(r);
    }
    if all.2.len() as i64 != n {
        return Err(poisoned());
    }
    let device = x.device();
    Ok((
        Tensor::f_from_slice(&all.0)?.f_to_device(device)?,
        Tensor::f_from_slice(&all.1)?.f_to_device(device)?,
        Tensor::f_from_slice(&all.2)?.f_to_device(device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, randn, strided};
    use super::*;

    /// Against libtorch's `nonzero` and `masked_select`, on a matrix with empty rows too.
    #[test]
    fn positive_entries_match_libtorch() {
        let x = (randn(&[23, 31], 33) - 1.2).relu();
        let _ = x.narrow(0, 4, 2).fill_(0.0);
        let on = x.gt(0.0);
        let at = on.nonzero();
        for input in [x.copy(), strided(&x)] {
            let (values, columns, counts) = positive_entries(&input).unwrap();
            assert_eq!(max_diff(&values, &x.masked_select(&on)), 0.0);
            assert_eq!(columns, at.select(1, 1));
            assert_eq!(counts, on.sum_dim_intlist(1, false, Kind::Int64));
            assert_eq!(counts.int64_value(&[4]), 0);
        }
        assert!(positive_entries(&randn(&[3], 1)).is_err());
    }

    /// A batch where nothing fired (a NaN batch too: NaN is not > 0).
    #[test]
    fn no_entries_in_a_nan_matrix() {
        let x = Tensor::full([3, 40], f64::NAN, (Kind::Float, tch::Device::Cpu));
        let (values, columns, counts) = positive_entries(&x).unwrap();
        assert_eq!((values.size(), columns.size()), (vec![0], vec![0]));
        assert_eq!(counts, Tensor::zeros([3], (Kind::Int64, tch::Device::Cpu)));
    }
}
