//! E1's sampling filters: temperature, top-k and top-p (nucleus), checked against the
//! library's own filters (those `HookedTransformer::generate` samples through).

use mechlens_core::Result;
use mechlens_models::{top_k_logits, top_p_logits};
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct LogitsCase {
    pub logits: Tensor,
    /// The temperature, `k` or `p`.
    pub knob: f64,
    pub knob_name: &'static str,
}

impl Case for LogitsCase {
    fn label(&self) -> String {
        format!(
            "logits {:?}, {} {}",
            self.logits.size(),
            self.knob_name,
            self.knob
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("logits", &self.logits)]
    }
}

fn cases(seed: u64, knob_name: &'static str, knobs: &[f64]) -> Vec<LogitsCase> {
    let mut draw = Draw::new(seed);
    knobs
        .iter()
        .map(|&knob| {
            let (batch, vocab) = (draw.int(1, 3), draw.int(8, 30));
            LogitsCase {
                logits: draw.normal(&[batch, vocab], 0.0, 2.0),
                knob,
                knob_name,
            }
        })
        .collect()
}

pub(crate) fn temperature_spec() -> Spec<LogitsCase> {
    Spec {
        exercise: "apply_temperature",
        cases: cases(71, "temperature", &[0.5, 2.0, 0.1, 1.5, 3.0]),
        reference: Box::new(|c: &LogitsCase| Ok(c.logits.f_div_scalar(c.knob)?)),
        mutants: vec![Mutant::new(
            "multiplied by the temperature; dividing by it is what makes a high temperature flatter",
            |c: &LogitsCase| Ok(c.logits.f_mul_scalar(c.knob)?),
        )],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-5,
        },
    }
}

/// Keeps the `k` logits of each row that `largest` picks.
fn keep_k(logits: &Tensor, k: i64, largest: bool) -> Result<Tensor> {
    let k = k.clamp(1, logits.size()[1]);
    let (_, idx) = logits.f_topk(k, -1, largest, true)?;
    let keep = logits
        .f_zeros_like()?
        .f_to_kind(Kind::Bool)?
        .f_scatter_value(-1, &idx, 1)?;
    Ok(logits.f_masked_fill(&keep.f_logical_not()?, f64::NEG_INFINITY)?)
}

pub(crate) fn top_k_spec() -> Spec<LogitsCase> {
    Spec {
        exercise: "top_k_filter",
        cases: cases(72, "k", &[3.0, 1.0, 5.0, 2.0, 7.0]),
        reference: Box::new(|c: &LogitsCase| top_k_logits(&c.logits, c.knob as usize)),
        mutants: vec![
            Mutant::new("k + 1 tokens kept (off by one)", |c: &LogitsCase| {
                keep_k(&c.logits, c.knob as i64 + 1, true)
            }),
            Mutant::new("k - 1 tokens kept (off by one)", |c: &LogitsCase| {
                keep_k(&c.logits, c.knob as i64 - 1, true)
            }),
            Mutant::new(
                "the k smallest logits kept; top-k keeps the largest",
                |c: &LogitsCase| keep_k(&c.logits, c.knob as i64, false),
            ),
        ],
        compare: Compare::SoftmaxLastDim { atol: 1e-6 },
    }
}

/// Top-p where a token stays while the probability before it is below `p` (`inclusive`, the
/// right rule) or while the probability up to and including it is (`!inclusive`).
fn nucleus(logits: &Tensor, p: f64, inclusive: bool, descending: bool) -> Result<Tensor> {
    let (sorted, order) = logits.f_sort(-1, descending)?;
    let probs = sorted.f_softmax(-1, Kind::Float)?;
    let cumulative = probs.f_cumsum(-1, Kind::Float)?;
    let reference = if inclusive {
        cumulative.f_sub(&probs)?
    } else {
        cumulative
    };
    let drop_sorted = reference.f_ge(p)?;
    let drop = drop_sorted.f_scatter(-1, &order, &drop_sorted)?;
    Ok(logits.f_masked_fill(&drop, f64::NEG_INFINITY)?)
}

pub(crate) fn top_p_spec() -> Spec<LogitsCase> {
    Spec {
        exercise: "top_p_filter",
        cases: cases(73, "p", &[0.5, 0.9, 0.3, 0.75, 0.95]),
        reference: Box::new(|c: &LogitsCase| top_p_logits(&c.logits, c.knob)),
        mutants: vec![
            Mutant::new(
                "the token that makes the total reach p is dropped; it is kept (keep tokens while the probability before them is below p)",
                |c: &LogitsCase| nucleus(&c.logits, c.knob, false, true),
            ),
            Mutant::new(
                "the probabilities are accumulated from the least likely token; sort in descending order",
                |c: &LogitsCase| nucleus(&c.logits, c.knob, true, false),
            ),
        ],
        compare: Compare::SoftmaxLastDim { atol: 1e-6 },
    }
}

/// Checks `apply_temperature(logits, temperature)`: the logits divided by the temperature.
///
/// # Shapes
/// - `logits`: `[batch, d_vocab]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn apply_temperature(f: impl Fn(&Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    temperature_spec().check(&|c: &LogitsCase| f(&c.logits, c.knob))
}

/// Checks `top_k_filter(logits, k)`: every logit outside its row's `k` largest set to -inf
/// (or a large negative number; compared after a softmax).
///
/// # Shapes
/// - `logits`: `[batch, d_vocab]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn top_k_filter(f: impl Fn(&Tensor, usize) -> Result<Tensor>) -> Result<Report> {
    top_k_spec().check(&|c: &LogitsCase| f(&c.logits, c.knob as usize))
}

/// Checks `top_p_filter(logits, p)`: per row, the most likely tokens are kept until their
/// total probability reaches `p` (the one that reaches it kept); the others set to -inf.
///
/// # Shapes
/// - `logits`: `[batch, d_vocab]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn top_p_filter(f: impl Fn(&Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    top_p_spec().check(&|c: &LogitsCase| f(&c.logits, c.knob))
}
