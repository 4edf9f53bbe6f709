//! Fused CPU loops for the memory-bound passes of a training step, and its sparse products.
//!
//! Between its dense matmuls an SAE training step walks `[batch, d_sae]` tensors (64 MB at
//! batch 4096 × d_sae 4096) for the encoder bias, the ReLU, column sums and the ReLU's
//! backward mask, and walks every parameter for gradient clipping and Adam. libtorch makes one
//! pass over memory per op (3–7 ms each for the large ones on a 2-core machine), and `addmm`
//! copies its bias into the output before the product. Each function here does in one pass
//! what takes libtorch two to nine; [`positive_entries`] lists the few that fired for a
//! step that can skip the rest.
//!
//! The loops run on contiguous `f32` CPU tensors, split by rows over libtorch's thread count
//! ([`tch::get_num_threads`]). Anything else (CUDA, other dtypes, strided views) runs the same
//! math as libtorch ops, and the tests compare the two. Column sums and squared norms
//! accumulate in `f64` per thread and combine in a fixed order, so results depend on the
//! thread count but never on timing.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use mechlens_core::{Error, Result};

mod adam;
mod dense;
mod sparse;
mod team;

pub use adam::{AdamStep, adam_step_};
pub use dense::{
    bias_relu_column_sums_, bias_residual_grad_, count_positive, gated_bias_column_sums_,
    squared_norm,
};
pub use sparse::positive_entries;

/// `value` if `keep`, else `+0.0`, without a branch: half the latents fire, so a branch
/// would be mispredicted half the time (it made the backward pass five times slower), and
/// this form vectorises.
#[inline(always)]
fn keep_if(keep: bool, value: f32) -> f32 {
    f32::from_bits(value.to_bits() & u32::from(keep).wrapping_neg())
}

fn threads() -> usize {
    usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1)
}

/// Whether every tensor can take the loops: contiguous `f32` on the CPU.
fn fast(tensors: &[&Tensor]) -> bool {
    tensors.iter().all(|t| {
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous() && t.numel() > 0
    })
}

/// Whether two tensors' memory ranges share a byte (then the loops would alias).
fn overlaps(a: &Tensor, b: &Tensor) -> bool {
    let range = |t: &Tensor| {
        let start = t.data_ptr() as usize;
        start..start + t.numel() * std::mem::size_of::<f32>()
    };
    let (a, b) = (range(a), range(b));
    a.start < b.end && b.start < a.end
}

/// Checks `x [n, m]` and `row [m]`; returns `(n, m)`.
fn matrix_and_row(
    x: &Tensor,
    row: &Tensor,
    x_name: &str,
    row_name: &str,
) -> Result<(usize, usize)> {
    let size = x.size();
    let [n, m] = size[..] else {
        return Err(Error::ShapeMismatch {
            what: x_name.into(),
            expected: "[n, m]".into(),
            got: size,
        });
    };
    if row.size() != [m] {
        return Err(Error::ShapeMismatch {
            what: row_name.into(),
            expected: format!("[{m}] (one per column of {x_name})"),
            got: row.size(),
        });
    }
    let as_usize = |v: i64| usize::try_from(v).unwrap_or(0);
    Ok((as_usize(n), as_usize(m)))
}

/// Checks that `t` (called `name`) has `like`'s shape, described as `expected` in the error.
fn same_shape(t: &Tensor, name: &str, like: &Tensor, expected: &str) -> Result<()> {
    if t.size() == like.size() {
        return Ok(());
    }
    Err(Error::ShapeMismatch {
        what: name.into(),
        expected: format!("{:?} ({expected})", like.size()),
        got: t.size(),
    })
}

/// The values of a contiguous f32 CPU tensor: one [`fast`] accepted, or one made here.
fn f32_slice(t: &Tensor) -> &[f32] {
    if t.numel() == 0 {
        // An empty tensor's data pointer may be null, which no slice may hold.
        return &[];
    }
    debug_assert!(t.kind() == Kind::Float && t.is_contiguous() && t.device() == Device::Cpu);
    // SAFETY: `t` is a contiguous, non-empty f32 CPU tensor (checked by `fast`, or made so by
    // the caller), so `data_ptr` (which includes the storage offset) points at `numel`
    // initialised f32s that live as long as the handle `t` borrows.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// As [`f32_slice`], mutable. Callers check with [`overlaps`] that no other slice they hold
/// shares this memory.
fn f32_slice_mut(t: &mut Tensor) -> &mut [f32] {
    if t.numel() == 0 {
        return &mut [];
    }
    debug_assert!(t.kind() == Kind::Float && t.is_contiguous() && t.device() == Device::Cpu);
    // SAFETY: as in `f32_slice`; the `&mut` borrow of the handle, and the callers' overlap
    // checks, keep this the only live view of the memory for its lifetime.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) }
}

fn to_tensor(sums: &[f64]) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(sums)?.f_to_kind(Kind::Float)?)
}

/// Runs `body(row, written_row, other_row, column_accumulators)` in row blocks (one per thread) for every
/// row of `rows` (`[n, m]`), with the matching rows of `written` and `other` (each `[n, m]`,
/// or empty: then the body gets empty rows). Returns the column sums the body accumulated
/// and the sum of the values it returned, both added up block by block in block order.
fn row_loop(
    rows: &mut [f32],
    written: &mut [f32],
    other: &[f32],
    m: usize,
    body: impl Fn(&mut [f32], &mut [f32], &[f32], &mut [f32]) -> f64 + Sync,
) -> Result<(Vec<f64>, f64)> {
    let m = m.max(1);
    let n = rows.len() / m;
    let threads = threads();
    let block = n.div_ceil(threads).max(1) * m;
    let blocks: Vec<Mutex<&mut [f32]>> = rows.chunks_mut(block).map(Mutex::new).collect();
    let mut written_blocks: Vec<Mutex<&mut [f32]>> =
        written.chunks_mut(block).map(Mutex::new).collect();
    written_blocks.resize_with(blocks.len(), || Mutex::new(&mut []));
    let sums: Vec<Mutex<(Vec<f64>, f64)>> = blocks
        .iter()
        .map(|_| Mutex::new((Vec::new(), 0.0)))
        .collect();
    team::for_each_block(blocks.len(), threads, &|i| {
        let (Ok(mut block_rows), Ok(mut block_written), Ok(mut sum)) =
            (blocks[i].lock(), written_blocks[i].lock(), sums[i].lock())
        else {
            return;
        };
        let block_other = other.get(i * block..i * block + block_rows.len());
        // f32 sums over a few rows at a time (they vectorise, and stay in L1), added into
        // f64 totals.
        let (mut acc, mut total, mut returned) = (vec![0.0f32; m], vec![0.0f64; m], 0.0);
        for (r, row) in block_rows.chunks_exact_mut(m).enumerate() {
            let other_row = block_other.map_or(&[][..], |o| &o[r * m..(r + 1) * m]);
            let written_row = block_written.get_mut(r * m..(r + 1) * m).unwrap_or(&mut []);
            returned += body(row, written_row, other_row, &mut acc);
            if (r + 1) % ROWS_PER_F32_SUM == 0 {
                flush(&mut acc, &mut total);
            }
        }
        flush(&mut acc, &mut total);
        *sum = (total, returned);
    })?;
    let (mut total, mut returned) = (vec![0.0; m], 0.0);
    for sum in sums {
        let (sum, r) = sum.into_inner().map_err(|_| poisoned())?;
        if sum.len() != m {
            return Err(poisoned());
        }
        for (t, p) in total.iter_mut().zip(sum) {
            *t += p;
        }
        returned += r;
    }
    Ok((total, returned))
}

fn poisoned() -> Error {
    Error::invalid("fused loop", "a block of the loop did not finish")
}

/// Rows summed in f32 before their sum joins the f64 total: the f32 error stays within a
/// few ulp of a 32-term sum.
const ROWS_PER_F32_SUM: usize = 32;

fn flush(acc: &mut [f32], total: &mut [f64]) {
    for (t, a) in total.iter_mut().zip(acc.iter_mut()) {
        *t += f64::from(*a);
        *a = 0.0;
    }
}

/// `Σ f(chunk)` over the values split in one chunk per thread, added in chunk order.
fn sum_in_chunks(values: &[f32], f: impl Fn(&[f32]) -> f64 + Sync) -> Result<f64> {
    let threads = threads();
    let chunks: Vec<&[f32]> = values
        .chunks(values.len().div_ceil(threads).max(1))
        .collect();
    let sums: Vec<Mutex<f64>> = chunks.iter().map(|_| Mutex::new(f64::NAN)).collect();
    team::for_each_block(chunks.len(), threads, &|i| {
        if let Ok(mut sum) = sums[i].lock() {
            *sum = f(chunks[i]);
        }
    })?;
    sums.into_iter()
        .map(|s| s.into_inner().map_err(|_| poisoned()))
        .sum()
}

#[cfg(test)]
mod test_util {
    use tch::{Device, Kind, Tensor};

    pub fn randn(size: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(size, (Kind::Float, Device::Cpu))
    }

    /// A copy libtorch's loops must take: a transposed (non-contiguous) view of the same values.
    pub fn strided(t: &Tensor) -> Tensor {
        t.tr().contiguous().tr()
    }

    pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }
}
