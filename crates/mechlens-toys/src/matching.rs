//! Scores that match a learned dictionary to the true features one to one, as SAELens'
//! `sae_lens.synthetic.evals` does: the Mean Correlation Coefficient (optimal assignment of
//! |cosine similarity|, Hungarian algorithm) and feature uniqueness.

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

/// |cos| between every row of `a` `[n, d]` and of `b` `[m, d]`, as a row-major `Vec` `[n][m]`.
fn abs_cosines(a: &Tensor, b: &Tensor) -> Result<(usize, usize, Vec<f64>)> {
    let cos = crate::sparse_features::cosines(a, b, Kind::Double)?
        .f_abs()?
        .f_contiguous()?;
    let values = Vec::<f64>::try_from(cos.f_flatten(0, -1)?)?;
    Ok((a.size()[0] as usize, b.size()[0] as usize, values))
}

/// Minimum-cost assignment of each of `n` rows to a distinct one of `m >= n` columns
/// (Hungarian algorithm with potentials, O(n²·m)); returns the column of each row.
fn assign(n: usize, m: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    let inf = f64::INFINITY;
    // 1-based, column 0 is the virtual start.
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; m + 1]);
    let (mut row_of, mut way) = (vec![0usize; m + 1], vec![0usize; m + 1]);
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min_to = vec![inf; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (inf, 0);
            for j in 1..=m {
                if !used[j] {
                    let c = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if c < min_to[j] {
                        min_to[j] = c;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col_of = vec![0; n];
    for j in 1..=m {
        if row_of[j] > 0 {
            col_of[row_of[j] - 1] = j - 1;
        }
    }
    col_of
}

/// Mean Correlation Coefficient: match rows of `learned` and `truth` one to one so that the
/// summed |cosine similarity| is largest, and average the matched similarities
/// (`min(n, m)` pairs). SAELens' `mean_correlation_coefficient`.
///
/// # Shapes
/// `learned`: `[n, d]`, `truth`: `[m, d]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the widths differ.
pub fn mean_correlation_coefficient(learned: &Tensor, truth: &Tensor) -> Result<f64> {
    let (n, m, cos) = abs_cosines(learned, truth)?;
    if n == 0 || m == 0 {
        return Ok(0.0);
    }
    // The algorithm wants rows <= columns: put the smaller set on the rows.
    type Lookup<'c> = Box<dyn Fn(usize, usize) -> f64 + 'c>;
    let (rows, cols, at): (usize, usize, Lookup<'_>) = if n <= m {
        (n, m, Box::new(|i, j| cos[i * m + j]))
    } else {
        (m, n, Box::new(|i, j| cos[j * m + i]))
    };
    let col_of = assign(rows, cols, |i, j| 1.0 - at(i, j));
    Ok(col_of
        .iter()
        .enumerate()
        .map(|(i, &j)| at(i, j))
        .sum::<f64>()
        / rows as f64)
}

/// For each row of `truth`, the row of `learned` matched to it one to one (the assignment
/// with the largest summed |cosine similarity|, as in [`mean_correlation_coefficient`]).
///
/// # Shapes
/// `learned`: `[n, d]`, `truth`: `[m, d]` with `m <= n` → `m` indices into `learned`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the widths differ or `learned` has fewer rows than `truth`.
pub fn matched_rows(learned: &Tensor, truth: &Tensor) -> Result<Vec<usize>> {
    let (m, n, cos) = abs_cosines(truth, learned)?;
    if n < m {
        return Err(Error::ShapeMismatch {
            what: "learned rows to match to the true features".into(),
            expected: format!("at least {m} rows, one per true feature"),
            got: learned.size(),
        });
    }
    Ok(assign(m, n, |i, j| 1.0 - cos[i * n + j]))
}

/// The fraction of learned latents whose best-matching true feature no other latent also
/// matches best: distinct best matches / latents. SAELens' `feature_uniqueness`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the widths differ.
pub fn feature_uniqueness(learned: &Tensor, truth: &Tensor) -> Result<f64> {
    let (n, m, cos) = abs_cosines(learned, truth)?;
    if n == 0 {
        return Ok(0.0);
    }
    let mut seen = vec![false; m];
    for i in 0..n {
        let row = &cos[i * m..(i + 1) * m];
        let best = (0..m).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        seen[best] = true;
    }
    Ok(seen.iter().filter(|s| **s).count() as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_beats_greedy() {
        // Greedy takes (0,0)=0.9 and is left with (1,1)=0.1; the optimum is 0.8 + 0.8.
        let learned = Tensor::from_slice(&[1.0f64, 0.0, 0.6, 0.8]).reshape([2, 2]);
        let cos = |a: f64| [a, (1.0 - a * a).sqrt()];
        let t: Vec<f64> = [cos(0.9), cos(0.8)].concat();
        let truth = Tensor::from_slice(&t).reshape([2, 2]);
        let (_, _, c) = abs_cosines(&learned, &truth).unwrap();
        let best = (c[0] + c[3]).max(c[1] + c[2]) / 2.0;
        let mcc = mean_correlation_coefficient(&learned, &truth).unwrap();
        assert!((mcc - best).abs() < 1e-12, "{mcc} vs {best}");
    }

    #[test]
    fn matched_rows_undo_a_permutation_and_need_enough_rows() {
        let eye = Tensor::eye(3, (Kind::Float, tch::Device::Cpu));
        let learned = eye
            .index_select(0, &Tensor::from_slice(&[2i64, 0, 1]))
            .neg();
        assert_eq!(matched_rows(&learned, &eye).unwrap(), [1, 2, 0]);
        let e = matched_rows(&eye.narrow(0, 0, 2), &eye).unwrap_err();
        assert!(e.to_string().contains("at least 3"), "{e}");
    }

    #[test]
    fn rectangular_and_uniqueness() {
        let eye = Tensor::eye(4, (Kind::Float, tch::Device::Cpu));
        let twice = Tensor::cat(&[&eye, &eye], 0);
        assert!((mean_correlation_coefficient(&twice, &eye).unwrap() - 1.0).abs() < 1e-9);
        assert!((mean_correlation_coefficient(&eye, &twice).unwrap() - 1.0).abs() < 1e-9);
        assert!((feature_uniqueness(&twice, &eye).unwrap() - 0.5).abs() < 1e-12);
    }
}
