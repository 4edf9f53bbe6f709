//! Fused CPU loops for the memory-bound passes of a training step.
//!
//! Between its dense matmuls an SAE training step walks `[batch, d_sae]` tensors (64 MB at
//! batch 4096 × d_sae 4096) for the encoder bias, the ReLU, column sums and the ReLU's
//! backward mask, and walks every parameter for gradient clipping and Adam. libtorch makes one
//! pass over memory per op (3–7 ms each for the large ones on a 2-core machine), and `addmm`
//! copies its bias into the output before the product. Each function here does in one pass
//! what takes libtorch two to nine.
//!
//! The loops run on contiguous `f32` CPU tensors, split by rows over libtorch's thread count
//! ([`tch::get_num_threads`]). Anything else (CUDA, other dtypes, strided views) runs the same
//! math as libtorch ops, and the tests compare the two. Column sums and squared norms
//! accumulate in `f64` per thread and combine in a fixed order, so results depend on the
//! thread count but never on timing.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

mod team;

/// `x ← max(x + bias, 0)` row by row, in place; returns `Σ_rows x` (the new values).
///
/// NaN stays NaN, as in libtorch's `relu`, so a NaN input still reaches the loss.
///
/// # Shapes
/// - `x`: `[n, m]`
/// - `bias`: `[m]`
/// - returns `[m]`
pub fn bias_relu_column_sums_(x: &mut Tensor, bias: &Tensor) -> Result<Tensor> {
    let (_, m) = matrix_and_row(x, bias, "x", "bias")?;
    if !fast(&[x, bias]) {
        let _ = x.f_add_(bias)?.f_relu_()?;
        return Ok(x.f_sum_dim_intlist(0, false, Kind::Float)?);
    }
    let bias = f32_slice(bias);
    let rows = f32_slice_mut(x);
    let (sums, _) = row_loop(rows, &mut [], &[], m, |row, _, _, acc| {
        let (bias, acc) = (&bias[..row.len()], &mut acc[..row.len()]);
        for j in 0..row.len() {
            let s = row[j] + bias[j];
            // NaN is kept, as libtorch's relu keeps it.
            row[j] = keep_if(s > 0.0 || s.is_nan(), s);
            acc[j] += row[j];
        }
        // Counting the positives here too stopped the loop from vectorising (3x slower).
        0.0
    })?;
    to_tensor(&sums)
}

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
            for (j, &v) in row.iter().enumerate() {
                if v > 0.0 {
                    values.push(v);
                    columns.push(j as i64);
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

/// `grad ← grad + bias` where `gate > 0`, else `0`, in place; returns `Σ_rows grad` (the new
/// values). This is a ReLU's backward (libtorch's `threshold_backward`) for an output
/// gradient that has a per-column term still to add.
///
/// # Shapes
/// - `grad`, `gate`: `[n, m]`
/// - `bias`: `[m]`
/// - returns `[m]`
pub fn gated_bias_column_sums_(grad: &mut Tensor, bias: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (_, m) = matrix_and_row(grad, bias, "grad", "bias")?;
    if gate.size() != grad.size() {
        return Err(Error::ShapeMismatch {
            what: "gate".into(),
            expected: format!("{:?} (the gradient's shape)", grad.size()),
            got: gate.size(),
        });
    }
    if !fast(&[grad, bias, gate]) || overlaps(grad, gate) {
        let summed = grad.f_add(bias)?;
        *grad = gate.f_threshold_backward(&summed, 0.0)?;
        return Ok(grad.f_sum_dim_intlist(0, false, Kind::Float)?);
    }
    let bias = f32_slice(bias);
    let gate = f32_slice(gate);
    let rows = f32_slice_mut(grad);
    let (sums, _) = row_loop(rows, &mut [], gate, m, |row, _, gate_row, acc| {
        let n = row.len();
        let (bias, gate_row, acc) = (&bias[..n], &gate_row[..n], &mut acc[..n]);
        for j in 0..n {
            row[j] = keep_if(gate_row[j] > 0.0, row[j] + bias[j]);
            acc[j] += row[j];
        }
        0.0
    })?;
    to_tensor(&sums)
}

/// A reconstruction's error and gradient in one pass: `out ← out + bias` row by row, in
/// place, then with `r = out − target` returns `(scale · r, Σ r², Σ_rows scale · r)`.
///
/// With `scale = 2 / n` that is the gradient of SAELens' MSE (`Σ_d r²` averaged over the
/// rows), whose value is `Σ r² / n`. A NaN or inf in `target` reaches `Σ r²`.
///
/// # Shapes
/// - `out`, `target`: `[n, m]`
/// - `bias`: `[m]`
/// - returns `[n, m]`, a number, `[m]`
pub fn bias_residual_grad_(
    out: &mut Tensor,
    bias: &Tensor,
    target: &Tensor,
    scale: f64,
) -> Result<(Tensor, f64, Tensor)> {
    let (_, m) = matrix_and_row(out, bias, "out", "bias")?;
    if target.size() != out.size() {
        return Err(Error::ShapeMismatch {
            what: "target".into(),
            expected: format!("{:?} (the reconstruction's shape)", out.size()),
            got: target.size(),
        });
    }
    if !fast(&[out, bias, target]) || overlaps(out, target) {
        let residual = out.f_add_(bias)?.f_sub(target)?;
        let squares = residual.f_square()?.f_sum(Kind::Double)?.double_value(&[]);
        let grad = residual.f_mul_scalar(scale)?;
        let sums = grad.f_sum_dim_intlist(0, false, Kind::Float)?;
        return Ok((grad, squares, sums));
    }
    // New memory: it shares nothing with `out` or `target`.
    let mut grad = out.f_empty_like()?;
    let (bias, target) = (f32_slice(bias), f32_slice(target));
    let scale = scale as f32;
    let (sums, squares) = row_loop(
        f32_slice_mut(out),
        f32_slice_mut(&mut grad),
        target,
        m,
        |row, grad_row, target_row, acc| {
            let n = row.len();
            let (bias, grad_row, target_row) = (&bias[..n], &mut grad_row[..n], &target_row[..n]);
            let acc = &mut acc[..n];
            let mut lanes = [0.0f32; 16];
            for j in 0..n {
                row[j] += bias[j];
                let r = row[j] - target_row[j];
                lanes[j % 16] += r * r;
                grad_row[j] = scale * r;
                acc[j] += grad_row[j];
            }
            lanes.iter().map(|&l| f64::from(l)).sum()
        },
    )?;
    Ok((grad, squares, to_tensor(&sums)?))
}

/// `Σ_t Σ t²` over all the tensors, in `f64`: the squared global norm gradient clipping needs.
pub fn squared_norm(tensors: &[&Tensor]) -> Result<f64> {
    let mut total = 0.0;
    for t in tensors {
        total += if fast(&[t]) {
            let values = f32_slice(t);
            sum_in_chunks(values, sum_of_squares)?
        } else {
            t.f_to_kind(Kind::Double)?
                .f_square()?
                .f_sum(Kind::Double)?
                .double_value(&[])
        };
    }
    Ok(total)
}

/// How many entries are `> 0` (NaN is not). libtorch's `(x > 0).sum()` builds a bool
/// tensor first and takes about 25 ms for `[4096, 4096]` on 2 cores.
pub fn count_positive(t: &Tensor) -> Result<u64> {
    if !fast(&[t]) {
        let count = t.f_gt(0.0)?.f_sum(Kind::Int64)?.int64_value(&[]);
        return Ok(u64::try_from(count).unwrap_or(0));
    }
    let total = sum_in_chunks(f32_slice(t), |chunk| {
        // Sixteen u32 lanes vectorise; each counts at most a sixteenth of a chunk (< 2³²
        // for any tensor libtorch can hold here), and the total stays exact in f64 below 2⁵³.
        let mut lanes = [0u32; 16];
        let mut blocks = chunk.chunks_exact(16);
        for block in &mut blocks {
            for (lane, &v) in lanes.iter_mut().zip(block) {
                *lane = lane.wrapping_add(u32::from(v > 0.0));
            }
        }
        let rest = blocks.remainder().iter().filter(|&&v| v > 0.0).count() as u64;
        (lanes.iter().map(|&l| u64::from(l)).sum::<u64>() + rest) as f64
    })?;
    Ok(total as u64)
}

/// `Σ v²` in f64, over eight lanes so that the adds do not wait on each other.
fn sum_of_squares(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v) * f64::from(v);
        }
    }
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum();
    lanes.iter().sum::<f64>() + rest
}

/// One Adam step's settings, as `torch.optim.Adam` (no weight decay, no amsgrad) reads them.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// β₁, β₂.
    pub betas: (f64, f64),
    /// ε, added to `√v̂`.
    pub eps: f64,
    /// The step number, from 1 (for the bias corrections).
    pub step: i32,
    /// Multiplies the gradient first: gradient clipping's factor, 1 for none.
    pub grad_scale: f64,
}

/// One Adam update of `param` in place, with its moments `m` and `v`, in the order of
/// `torch.optim.Adam`'s single-tensor step: `g ← s·grad`, `m ← m + (1−β₁)(g − m)`,
/// `v ← β₂v + (1−β₂)g²`, `param ← param − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`.
///
/// # Shapes
/// `param`, `grad`, `m` and `v` all have one shape.
pub fn adam_step_(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    adam: &AdamStep,
) -> Result<()> {
    for (name, t) in [("grad", grad), ("m", &*m), ("v", &*v)] {
        if t.size() != param.size() {
            return Err(Error::ShapeMismatch {
                what: format!("Adam {name}"),
                expected: format!("{:?} (the parameter's shape)", param.size()),
                got: t.size(),
            });
        }
    }
    let (b1, b2) = adam.betas;
    let step_size = adam.lr / (1.0 - b1.powi(adam.step));
    let c2_sqrt = (1.0 - b2.powi(adam.step)).sqrt();
    let shared =
        overlaps(param, grad) || overlaps(param, m) || overlaps(param, v) || overlaps(m, v);
    if !fast(&[param, grad, m, v]) || shared {
        let g = grad.f_mul_scalar(adam.grad_scale)?;
        let _ = m.f_lerp_(&g, 1.0 - b1)?;
        let _ = v
            .f_mul_scalar_(b2)?
            .f_add_(&g.f_square()?.f_mul_scalar(1.0 - b2)?)?;
        let denom = v.f_sqrt()?.f_div_scalar(c2_sqrt)?.f_add_scalar(adam.eps)?;
        let _ = param.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
        return Ok(());
    }
    let (scale, b1, b2) = (adam.grad_scale as f32, b1 as f32, b2 as f32);
    let (step_size, c2_sqrt, eps) = (step_size as f32, c2_sqrt as f32, adam.eps as f32);
    let grad = f32_slice(grad);
    let (p, m, v) = (f32_slice_mut(param), f32_slice_mut(m), f32_slice_mut(v));
    let threads = threads();
    let chunk = p.len().div_ceil(threads).max(1);
    type Parts<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a [f32]);
    let parts: Vec<Mutex<Parts<'_>>> = p
        .chunks_mut(chunk)
        .zip(m.chunks_mut(chunk))
        .zip(v.chunks_mut(chunk))
        .zip(grad.chunks(chunk))
        .map(|(((p, m), v), g)| Mutex::new((p, m, v, g)))
        .collect();
    team::for_each_block(parts.len(), threads, &|i| {
        let Ok(mut part) = parts[i].lock() else {
            return;
        };
        let (p, m, v, g) = &mut *part;
        for (((p, m), v), &g) in p
            .iter_mut()
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .zip(g.iter())
        {
            let g = g * scale;
            *m += (1.0 - b1) * (g - *m);
            *v = *v * b2 + (1.0 - b2) * g * g;
            *p -= step_size * (*m / (v.sqrt() / c2_sqrt + eps));
        }
    })?;
    Ok(())
}

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

/// The values of a tensor that [`fast`] accepted.
fn f32_slice(t: &Tensor) -> &[f32] {
    // SAFETY: `fast` checked that `t` is a contiguous, non-empty f32 CPU tensor, so
    // `data_ptr` (which includes the storage offset) points at `numel` initialised f32s that
    // live as long as the handle `t` borrows.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// As [`f32_slice`], mutable. Callers check with [`overlaps`] that no other slice they hold
/// shares this memory.
fn f32_slice_mut(t: &mut Tensor) -> &mut [f32] {
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
mod tests {
    use super::*;

    fn randn(size: &[i64], seed: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randn(size, (Kind::Float, Device::Cpu))
    }

    /// A copy libtorch's loops must take: a transposed (non-contiguous) view of the same values.
    fn strided(t: &Tensor) -> Tensor {
        t.tr().contiguous().tr()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn bias_relu_matches_libtorch() {
        let x = randn(&[37, 11], 1);
        let bias = randn(&[11], 2);
        let expected = (&x + &bias).relu();
        let expected_sums = expected.sum_dim_intlist(0, false, Kind::Double);
        let mut fast_x = x.copy();
        let sums = bias_relu_column_sums_(&mut fast_x, &bias).unwrap();
        assert_eq!(max_diff(&fast_x, &expected), 0.0);
        assert!(max_diff(&sums.to_kind(Kind::Double), &expected_sums) < 1e-5);
        let mut slow_x = strided(&x);
        let slow_sums = bias_relu_column_sums_(&mut slow_x, &bias).unwrap();
        assert_eq!(max_diff(&slow_x, &expected), 0.0);
        assert!(max_diff(&slow_sums, &sums) < 1e-5);
    }

    #[test]
    fn bias_relu_keeps_nan() {
        let mut x = Tensor::from_slice(&[f32::NAN, -1.0, 2.0, 0.5]).view([2, 2]);
        let sums = bias_relu_column_sums_(&mut x, &Tensor::from_slice(&[0.0f32, 0.0])).unwrap();
        assert!(x.double_value(&[0, 0]).is_nan());
        assert!(sums.double_value(&[0]).is_nan());
        assert_eq!(x.double_value(&[0, 1]), 0.0);
    }

    #[test]
    fn gated_bias_matches_threshold_backward() {
        let grad = randn(&[29, 13], 3);
        let bias = randn(&[13], 4);
        let gate = randn(&[29, 13], 5).relu();
        let expected = gate.threshold_backward(&(&grad + &bias), 0.0);
        let mut fast_grad = grad.copy();
        let sums = gated_bias_column_sums_(&mut fast_grad, &bias, &gate).unwrap();
        assert_eq!(max_diff(&fast_grad, &expected), 0.0);
        let expected_sums = expected.sum_dim_intlist(0, false, Kind::Float);
        assert!(max_diff(&sums, &expected_sums) < 1e-5);
        let mut slow_grad = strided(&grad);
        let _ = gated_bias_column_sums_(&mut slow_grad, &bias, &gate).unwrap();
        assert_eq!(max_diff(&slow_grad, &expected), 0.0);
    }

    #[test]
    fn bias_residual_grad_matches_libtorch() {
        let out = randn(&[41, 19], 30);
        let bias = randn(&[19], 31);
        let target = randn(&[41, 19], 32);
        let residual = &out + &bias - &target;
        let expected_grad = &residual * 0.25;
        let expected_squares = residual
            .to_kind(Kind::Double)
            .square()
            .sum(Kind::Double)
            .double_value(&[]);
        let expected_sums = expected_grad.sum_dim_intlist(0, false, Kind::Float);
        for mut o in [out.copy(), strided(&out)] {
            let (grad, squares, sums) = bias_residual_grad_(&mut o, &bias, &target, 0.25).unwrap();
            assert_eq!(max_diff(&o, &(&out + &bias)), 0.0);
            assert!(max_diff(&grad, &expected_grad) < 1e-6);
            assert!((squares - expected_squares).abs() < 1e-5 * expected_squares);
            assert!(max_diff(&sums, &expected_sums) < 1e-5);
        }
        let mut bad_target = target.copy();
        let _ = bad_target
            .f_index_fill_(0, &Tensor::from_slice(&[7i64]), f64::NAN)
            .unwrap();
        let (_, squares, _) =
            bias_residual_grad_(&mut out.copy(), &bias, &bad_target, 0.25).unwrap();
        assert!(squares.is_nan());
        let err =
            bias_residual_grad_(&mut out.copy(), &bias, &randn(&[41, 18], 1), 1.0).unwrap_err();
        assert!(err.to_string().contains("target"), "{err}");
    }

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

    #[test]
    fn count_positive_matches_libtorch() {
        let mut x = randn(&[33, 17], 15);
        let _ = x
            .f_index_fill_(0, &Tensor::from_slice(&[3i64]), f64::NAN)
            .unwrap();
        let expected = x.gt(0.0).sum(Kind::Int64).int64_value(&[]) as u64;
        assert_eq!(count_positive(&x).unwrap(), expected);
        assert_eq!(count_positive(&strided(&x)).unwrap(), expected);
    }

    #[test]
    fn squared_norm_matches_libtorch() {
        let (a, b) = (randn(&[100, 7], 6), randn(&[5], 7));
        let exact = |t: &Tensor| t.to_kind(Kind::Double).square().sum(Kind::Double);
        let expected = exact(&a).double_value(&[]) + exact(&b).double_value(&[]);
        let got = squared_norm(&[&a, &strided(&b.view([5, 1])).view([5])]).unwrap();
        assert!(
            (got - expected).abs() < 1e-12 * expected,
            "{got} vs {expected}"
        );
    }

    /// Against libtorch's own Adam (the C++ `torch::optim::Adam` behind `tch::nn::Adam`),
    /// a few steps with a changing gradient, on both paths.
    #[test]
    fn adam_matches_libtorch_adam() {
        use tch::nn::{self, OptimizerConfig};
        let vs = nn::VarStore::new(Device::Cpu);
        let start = randn(&[64, 9], 8);
        let weight = vs.root().var_copy("w", &start);
        let mut reference = nn::Adam::default().build(&vs, 1e-2).unwrap();
        let mut fast_p = start.copy();
        let mut slow_p = strided(&start);
        let (mut m, mut v) = (start.zeros_like(), start.zeros_like());
        let (mut sm, mut sv) = (strided(&m), strided(&v));
        for step in 1..=4 {
            let target = randn(&[64, 9], 20 + i64::from(step));
            reference.zero_grad();
            let loss = (&weight - &target).square().sum(Kind::Float) * 0.5;
            loss.backward();
            reference.step();
            let adam = AdamStep {
                lr: 1e-2,
                betas: (0.9, 0.999),
                eps: 1e-8,
                step,
                grad_scale: 1.0,
            };
            let grad = &fast_p - &target;
            adam_step_(&mut fast_p, &grad, &mut m, &mut v, &adam).unwrap();
            let slow_grad = strided(&(&slow_p - &target));
            adam_step_(&mut slow_p, &slow_grad, &mut sm, &mut sv, &adam).unwrap();
        }
        let expected = tch::no_grad(|| weight.copy());
        assert!(
            max_diff(&fast_p, &expected) < 1e-6,
            "{}",
            max_diff(&fast_p, &expected)
        );
        assert!(max_diff(&slow_p, &expected) < 1e-6);
    }

    #[test]
    fn adam_scales_the_gradient_first() {
        let p = randn(&[10], 9);
        let g = randn(&[10], 10);
        let adam = AdamStep {
            lr: 0.1,
            betas: (0.9, 0.999),
            eps: 1e-8,
            step: 1,
            grad_scale: 0.25,
        };
        let (mut a, mut b) = (p.copy(), p.copy());
        let (mut m1, mut v1, mut m2, mut v2) = (
            p.zeros_like(),
            p.zeros_like(),
            p.zeros_like(),
            p.zeros_like(),
        );
        adam_step_(&mut a, &g, &mut m1, &mut v1, &adam).unwrap();
        let unscaled = AdamStep {
            grad_scale: 1.0,
            ..adam
        };
        adam_step_(&mut b, &(&g * 0.25), &mut m2, &mut v2, &unscaled).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
        assert!(max_diff(&m1, &(&g * 0.025)) < 1e-7);
    }

    #[test]
    fn shapes_that_disagree_are_errors() {
        let mut x = randn(&[4, 3], 11);
        let err = bias_relu_column_sums_(&mut x, &randn(&[4], 12)).unwrap_err();
        assert!(
            err.to_string().contains("bias") && err.to_string().contains("[3]"),
            "{err}"
        );
        let err =
            gated_bias_column_sums_(&mut x, &randn(&[3], 12), &randn(&[3, 4], 13)).unwrap_err();
        assert!(err.to_string().contains("gate"), "{err}");
        let err = bias_relu_column_sums_(&mut randn(&[4], 14), &randn(&[4], 12)).unwrap_err();
        assert!(err.to_string().contains("[n, m]"), "{err}");
        let adam = AdamStep {
            lr: 0.1,
            betas: (0.9, 0.999),
            eps: 1e-8,
            step: 1,
            grad_scale: 1.0,
        };
        let (mut m, mut v) = (randn(&[4, 3], 1), randn(&[4, 3], 2));
        let err = adam_step_(&mut x, &randn(&[3], 1), &mut m, &mut v, &adam).unwrap_err();
        assert!(err.to_string().contains("Adam grad"), "{err}");
    }
}
