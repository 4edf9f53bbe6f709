//! E5's neuron clusters (the share of a neuron's variance over the `(a, b)` grid that one
//! frequency explains) and the logits restricted to the key frequencies.

use mechlens_core::Result;
use mechlens_toys::{key_frequency_logits, neuron_frequency_share as library_share};
use tch::{Kind, Tensor};

use super::PRIMES;
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct ActsCase {
    pub acts: Tensor,
    pub basis: Tensor,
}

impl Case for ActsCase {
    fn label(&self) -> String {
        format!("acts {:?}", self.acts.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("acts", &self.acts), ("basis", &self.basis)]
    }
}

/// Each neuron's best share; `keep_constant` leaves the constant in the total, `only_a`
/// counts only the components along `a` (pure `a` terms).
fn share(c: &ActsCase, keep_constant: bool, only_a: bool) -> Result<Tensor> {
    let p = c.basis.size()[0];
    let coef = Tensor::f_einsum(
        "ia,jb,abn->ijn",
        &[&c.basis, &c.basis, &c.acts],
        None::<&[i64]>,
    )?;
    let sq = coef.f_square()?;
    let constant = sq.f_get(0)?.f_get(0)?;
    let mut total = sq.f_sum_dim_intlist(&[0i64, 1][..], false, Kind::Float)?;
    if !keep_constant {
        total = total.f_sub(&constant)?;
    }
    let mut shares = Vec::new();
    for k in 1..=(p - 1) / 2 {
        let idx = Tensor::from_slice(&[0i64, 2 * k - 1, 2 * k]);
        let held = if only_a {
            sq.f_index_select(0, &idx.f_narrow(0, 1, 2)?)?
                .f_select(1, 0)?
                .f_sum_dim_intlist(0, false, Kind::Float)?
        } else {
            sq.f_index_select(0, &idx)?
                .f_index_select(1, &idx)?
                .f_sum_dim_intlist(&[0i64, 1][..], false, Kind::Float)?
                .f_sub(&constant)?
        };
        shares.push(held.f_div(&total)?);
    }
    Ok(Tensor::f_stack(&shares, 0)?.f_max_dim(0, false)?.0)
}

pub(crate) fn neuron_share_spec() -> Result<Spec<ActsCase>> {
    let mut draw = Draw::new(91);
    let cases = PRIMES
        .iter()
        .skip(1)
        .take(4)
        .map(|&p| {
            let n = draw.int(2, 10);
            let basis = mechlens_toys::fourier_basis(p)?;
            // Neurons built from a few Fourier components plus noise, then a ReLU, as an
            // MLP's would be: each has a best frequency, and the other components matter.
            let coef = draw.normal(&[p as i64, p as i64, n], 0.0, 0.3);
            let strong = draw.normal(&[3, 3, n], 0.0, 3.0);
            let k = draw.int(1, (p as i64 - 1) / 2);
            let idx = Tensor::from_slice(&[0i64, 2 * k - 1, 2 * k]);
            let coef = coef.index_put(
                &[Some(idx.view([3, 1])), Some(idx.view([1, 3]))],
                &strong,
                true,
            );
            let acts =
                Tensor::einsum("ia,jb,ijn->abn", &[&basis, &basis, &coef], None::<&[i64]>).relu();
            Ok(ActsCase { acts, basis })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Spec {
        exercise: "neuron_frequency_share",
        cases,
        reference: Box::new(|c: &ActsCase| {
            Ok(library_share(&c.acts, c.basis.size()[0] as usize)?.1)
        }),
        mutants: vec![
            Mutant::new(
                "the constant component is left in: it is the neuron's mean, not its variance; take it out of the total and of each frequency's part",
                |c: &ActsCase| share(c, true, false),
            ),
            Mutant::new(
                "only the components along a are counted; frequency k's part also has those along b and the products (the 3×3 block of cos/sin k and the constant)",
                |c: &ActsCase| share(c, false, true),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    })
}

/// Checks `neuron_frequency_share(acts, basis)`: for each neuron, the largest share of its
/// variance over the grid that one frequency explains. With `c = B · acts · Bᵀ` per neuron
/// (2-D Fourier coefficients), frequency `k`'s part is `Σ c²` over the rows and columns
/// `{0, 2k − 1, 2k}` minus the constant `c[0, 0]²`, over the total `Σ c² − c[0, 0]²`.
///
/// # Shapes
/// - `acts`: `[p, p, n_neurons]` (`a`, `b`, neuron); `basis`: `[p, p]` → `[n_neurons]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn neuron_frequency_share(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    neuron_share_spec()?.check(&|c| f(&c.acts, &c.basis))
}

pub(crate) struct LogitsCase {
    pub logits: Tensor,
    pub frequencies: Vec<usize>,
}

impl Case for LogitsCase {
    fn label(&self) -> String {
        format!(
            "logits {:?}, frequencies {:?}",
            self.logits.size(),
            self.frequencies
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("logits", &self.logits)]
    }
}

/// The projection on `cos/sin(w_k (a + b + sign·c))`, directions normalised or not.
fn restricted(c: &LogitsCase, sign: f64, normalise: bool) -> Result<Tensor> {
    let p = c.logits.size()[0];
    let logits = c.logits.f_to_kind(Kind::Double)?;
    let idx = Tensor::f_arange(p, (Kind::Double, tch::Device::Cpu))?;
    let phase = idx
        .f_view([-1, 1, 1])?
        .f_add(&idx.f_view([1, -1, 1])?)?
        .f_add(&idx.f_view([1, 1, -1])?.f_mul_scalar(sign)?)?;
    let mut part = logits.f_zeros_like()?;
    for &k in &c.frequencies {
        let angle = phase.f_mul_scalar(2.0 * std::f64::consts::PI * k as f64 / p as f64)?;
        for dir in [angle.f_cos()?, angle.f_sin()?] {
            let unit = if normalise {
                dir.f_div_scalar(dir.f_norm()?.f_double_value(&[])?)?
            } else {
                dir
            };
            let coef = logits.f_mul(&unit)?.f_sum(Kind::Double)?;
            part = part.f_add(&unit.f_mul(&coef)?)?;
        }
    }
    Ok(part.f_to_kind(Kind::Float)?)
}

pub(crate) fn restricted_logits_spec() -> Spec<LogitsCase> {
    let mut draw = Draw::new(92);
    let cases = PRIMES
        .iter()
        .skip(1)
        .take(4)
        .map(|&p| {
            let n_freq = (p as i64 - 1) / 2;
            let mut frequencies: Vec<usize> = (0..draw.int(1, 3))
                .map(|_| draw.int(1, n_freq) as usize)
                .collect();
            frequencies.sort_unstable();
            frequencies.dedup();
            LogitsCase {
                logits: draw.normal(&[p as i64, p as i64, p as i64], 0.0, 2.0),
                frequencies,
            }
        })
        .collect();
    Spec {
        exercise: "restricted_logits",
        cases,
        reference: Box::new(|c: &LogitsCase| {
            key_frequency_logits(&c.logits, c.logits.size()[0] as usize, &c.frequencies, true)
        }),
        mutants: vec![
            Mutant::new(
                "the phase is a + b + c; the algorithm's logit for answer c depends on a + b − c",
                |c: &LogitsCase| restricted(c, 1.0, true),
            ),
            Mutant::new(
                "the directions are not normalised: project on cos/sin divided by their norm (otherwise the part is scaled by the squared norm)",
                |c: &LogitsCase| restricted(c, -1.0, false),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-4,
            rtol: 1e-4,
        },
    }
}

/// Checks `restricted_logits(logits, frequencies)`: the logits' projection on the directions
/// `cos(w_k(a + b − c))` and `sin(w_k(a + b − c))` (each normalised over the `[p, p, p]` grid)
/// of the key frequencies, `w_k = 2πk/p`: what the paper's algorithm uses. The logits minus it
/// are the excluded logits.
///
/// # Shapes
/// - `logits`: `[p, p, p]` (`a`, `b`, answer `c`) → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn restricted_logits(f: impl Fn(&Tensor, &[usize]) -> Result<Tensor>) -> Result<Report> {
    restricted_logits_spec().check(&|c| f(&c.logits, &c.frequencies))
}
