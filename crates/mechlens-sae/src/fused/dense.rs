//! One-pass forms of a dense training step's memory-bound work: bias + ReLU + column sums,
//! the ReLU's backward, a reconstruction's error and gradient, the gradient norm, counts.

use tch::{Kind, Tensor};

use super::{
    f32_slice, f32_slice_mut, fast, keep_if, matrix_and_row, overlaps, row_loop, same_shape,
    sum_in_chunks, to_tensor,
};
use mechlens_core::Result;

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
    same_shape(gate, "gate", grad, "the gradient's shape")?;
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
    same_shape(target, "target", out, "the reconstruction's shape")?;
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

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, randn, strided};
    use super::*;

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
    }
}
