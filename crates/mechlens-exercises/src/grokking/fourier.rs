//! E5's Fourier basis, the embedding's power per frequency and the key frequencies.

use mechlens_core::Result;
use mechlens_toys::{embedding_frequency_power, key_frequencies as library_key_frequencies};
use tch::{Kind, Tensor};

use super::PRIMES;
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct PrimeCase {
    pub p: usize,
}

impl Case for PrimeCase {
    fn label(&self) -> String {
        format!("p = {}", self.p)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![]
    }
}

/// The basis with the parts a mistake changes: whether rows are normalised, whether sin
/// comes before cos, and an offset added to each frequency.
fn basis(p: usize, normalise: bool, sin_first: bool, offset: usize) -> Result<Tensor> {
    let mut rows = vec![vec![1.0f64; p]];
    for k in 1..=(p - 1) / 2 {
        let angle = |x: usize| 2.0 * std::f64::consts::PI * ((k + offset) * x) as f64 / p as f64;
        let cos: Vec<f64> = (0..p).map(|x| angle(x).cos()).collect();
        let sin: Vec<f64> = (0..p).map(|x| angle(x).sin()).collect();
        if sin_first {
            rows.extend([sin, cos]);
        } else {
            rows.extend([cos, sin]);
        }
    }
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            let norm = if normalise {
                r.iter().map(|v| v * v).sum::<f64>().sqrt()
            } else {
                1.0
            };
            r.iter().map(move |v| v / norm)
        })
        .collect();
    Ok(Tensor::from_slice(&flat)
        .f_view([p as i64, p as i64])?
        .f_to_kind(Kind::Float)?)
}

const CLOSE: Compare = Compare::Values {
    atol: 1e-5,
    rtol: 1e-4,
};

pub(crate) fn fourier_basis_spec() -> Spec<PrimeCase> {
    Spec {
        exercise: "fourier_basis",
        cases: PRIMES.iter().map(|&p| PrimeCase { p }).collect(),
        reference: Box::new(|c: &PrimeCase| mechlens_toys::fourier_basis(c.p)),
        mutants: vec![
            Mutant::new(
                "the rows are not normalised: divide each by its norm (the constant row by √p)",
                |c: &PrimeCase| basis(c.p, false, false, 0),
            ),
            Mutant::new(
                "sin comes before cos: for each k the cos row is first (rows 2k − 1 and 2k)",
                |c: &PrimeCase| basis(c.p, true, true, 0),
            ),
            Mutant::new(
                "the frequencies are off by one: row 1 is cos(2π·1·x/p), k runs from 1",
                |c: &PrimeCase| basis(c.p, true, false, 1),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `fourier_basis(p)`: `[p, p]`, one unit-norm row per function of `x ∈ 0..p`: the
/// constant, then `cos(2πkx/p)` and `sin(2πkx/p)` for `k = 1..=(p − 1)/2`.
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn fourier_basis(f: impl Fn(usize) -> Result<Tensor>) -> Result<Report> {
    fourier_basis_spec().check(&|c| f(c.p))
}

pub(crate) struct EmbedCase {
    pub w_e: Tensor,
    pub basis: Tensor,
    pub p: usize,
}

impl Case for EmbedCase {
    fn label(&self) -> String {
        format!("p = {}, w_e {:?}", self.p, self.w_e.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("w_e", &self.w_e), ("basis", &self.basis)]
    }
}

/// `basis · W_E[:p]`'s rows, squared and summed over `d_model`, paired from `first`, each
/// pair summed; `square = false` sums norms instead; `cos_only` keeps the first of a pair.
fn power(c: &EmbedCase, square: bool, first: i64, cos_only: bool) -> Result<Tensor> {
    let p = c.p as i64;
    let rows = c.basis.f_matmul(&c.w_e.f_narrow(0, 0, p)?)?;
    let mut per_row = rows.f_square()?.f_sum_dim_intlist(-1, false, Kind::Float)?;
    if !square {
        per_row = per_row.f_sqrt()?;
    }
    let pairs = per_row.f_narrow(0, first, p - 1)?.f_view([-1, 2])?;
    Ok(if cos_only {
        pairs.f_select(1, 0)?
    } else {
        pairs.f_sum_dim_intlist(-1, false, Kind::Float)?
    })
}

pub(crate) fn frequency_power_spec() -> Result<Spec<EmbedCase>> {
    let mut draw = Draw::new(81);
    let cases = PRIMES
        .iter()
        .take(5)
        .map(|&p| {
            let d_model = draw.int(3, 16);
            Ok(EmbedCase {
                // One row more than p, as the model's vocabulary has (`=`).
                w_e: draw.normal(&[p as i64 + 1, d_model], 0.0, 1.0),
                basis: mechlens_toys::fourier_basis(p)?,
                p,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Spec {
        exercise: "frequency_power",
        cases,
        reference: Box::new(|c: &EmbedCase| embedding_frequency_power(&c.w_e, c.p)),
        mutants: vec![
            Mutant::new(
                "the norms are not squared: power is the squared norm",
                |c: &EmbedCase| power(c, false, 1, false),
            ),
            Mutant::new(
                "only the cos row of each frequency is counted; add its sin row",
                |c: &EmbedCase| power(c, true, 1, true),
            ),
            Mutant::new(
                "the rows are paired from the constant (0 with 1, 2 with 3, ...); frequency k is rows 2k − 1 and 2k",
                |c: &EmbedCase| power(c, true, 0, false),
            ),
        ],
        compare: CLOSE,
    })
}

/// Checks `frequency_power(w_e, basis)`: for each frequency `k = 1..=(p − 1)/2`, the squared
/// norm of the `cos k` and `sin k` rows of `basis · W_E[:p]` (the embedding's last row, the
/// `=` token, is not a number and is left out).
///
/// # Shapes
/// - `w_e`: `[p + 1, d_model]`; `basis`: `[p, p]` → `[(p − 1)/2]` (index `k − 1`)
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn frequency_power(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    frequency_power_spec()?.check(&|c| f(&c.w_e, &c.basis))
}

pub(crate) struct PowerCase {
    pub power: Tensor,
    pub share: f64,
}

impl Case for PowerCase {
    fn label(&self) -> String {
        format!("power {:?}, share {}", self.power.size(), self.share)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("power", &self.power)]
    }
}

fn as_tensor(keys: Vec<usize>) -> Tensor {
    Tensor::from_slice(&keys.into_iter().map(|k| k as i64).collect::<Vec<_>>())
}

/// Frequencies in `order` until `share` is held (`before`: stop when adding one would pass it).
fn pick(c: &PowerCase, strongest_first: bool, stop_early: bool) -> Result<Tensor> {
    let power: Vec<f64> = Vec::try_from(c.power.f_to_kind(Kind::Double)?)?;
    let total: f64 = power.iter().sum();
    let mut order: Vec<usize> = (0..power.len()).collect();
    order.sort_by(|&a, &b| power[b].total_cmp(&power[a]));
    if !strongest_first {
        order.reverse();
    }
    let (mut kept, mut held) = (Vec::new(), 0.0);
    for i in order {
        if held / total >= c.share || (stop_early && (held + power[i]) / total >= c.share) {
            break;
        }
        held += power[i];
        kept.push(i + 1);
    }
    Ok(as_tensor(kept))
}

pub(crate) fn key_frequencies_spec() -> Spec<PowerCase> {
    let mut draw = Draw::new(82);
    let cases = [0.5, 0.9, 0.8, 0.95, 0.7]
        .into_iter()
        .map(|share| {
            let n = draw.int(5, 20);
            // A few strong frequencies over a weak floor, as in a grokked embedding.
            let power = draw.normal(&[n], 0.0, 1.0).square();
            PowerCase { power, share }
        })
        .collect();
    Spec {
        exercise: "key_frequencies",
        cases,
        reference: Box::new(|c: &PowerCase| {
            Ok(as_tensor(library_key_frequencies(&c.power, c.share)?.0))
        }),
        mutants: vec![
            Mutant::new(
                "the weakest frequencies are taken first; sort by power, strongest first",
                |c: &PowerCase| pick(c, false, false),
            ),
            Mutant::new(
                "one frequency too few: keep adding until the share is reached (the last one takes it past)",
                |c: &PowerCase| pick(c, true, true),
            ),
        ],
        compare: Compare::Values {
            atol: 0.0,
            rtol: 0.0,
        },
    }
}

/// Checks `key_frequencies(power, share)`: the fewest frequencies (1-based, strongest first)
/// whose power adds up to at least `share` of the total.
///
/// # Shapes
/// - `power`: `[(p − 1)/2]` (index `k − 1`) → a `Vec` of frequencies
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn key_frequencies(f: impl Fn(&Tensor, f64) -> Result<Vec<usize>>) -> Result<Report> {
    key_frequencies_spec().check(&|c| Ok(as_tensor(f(&c.power, c.share)?)))
}
