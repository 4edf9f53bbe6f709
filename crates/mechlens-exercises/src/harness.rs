//! The machinery every check shares: run the learner's function on each case, catch what it
//! does wrong, compare with the library's answer, and name the mistake it matches.

use mechlens_core::Result;
use tch::{Kind, Tensor};

use crate::catch::{Caught, call};
use crate::report::{Outcome, Report, finish};

/// One random case of a check.
pub(crate) trait Case {
    /// The case in a few words, shapes first (`x [2, 5, 12], eps 1e-05`).
    fn label(&self) -> String;
    /// The tensors handed to the learner, which their function must leave unchanged.
    fn inputs(&self) -> Vec<(&'static str, &Tensor)>;
}

/// A function of a case to its answer: the library's, the learner's or a mutant's.
pub(crate) type Answer<'a, C> = Box<dyn Fn(&C) -> Result<Tensor> + 'a>;

/// A known-wrong version of an exercise, and the mistake it stands for.
pub(crate) struct Mutant<C> {
    /// The mistake, as the report names it.
    pub mistake: &'static str,
    /// The wrong answer.
    pub run: Answer<'static, C>,
}

impl<C> Mutant<C> {
    pub(crate) fn new(mistake: &'static str, run: impl Fn(&C) -> Result<Tensor> + 'static) -> Self {
        Self {
            mistake,
            run: Box::new(run),
        }
    }
}

/// How two answers are compared.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Compare {
    /// Elementwise, within `atol + rtol * |expected|`.
    Values { atol: f64, rtol: f64 },
    /// After a softmax over the last dim (masked scores: -inf, -1e5 or f32::MIN all mean
    /// "never attended"), within `atol`.
    SoftmaxLastDim { atol: f64 },
}

/// A check: its cases, the library's answer, and its mutants.
pub(crate) struct Spec<C> {
    pub exercise: &'static str,
    pub cases: Vec<C>,
    pub reference: Answer<'static, C>,
    pub mutants: Vec<Mutant<C>>,
    pub compare: Compare,
}

impl<C: Case> Spec<C> {
    /// Runs `learner` on every case; in strict mode, anything but a pass is an error.
    ///
    /// # Errors
    /// In strict mode, [`mechlens_core::Error::Exercise`]; an error of the library's own
    /// answer (a bug of ours, not the learner's) in any mode.
    pub(crate) fn check(&self, learner: &dyn Fn(&C) -> Result<Tensor>) -> Result<Report> {
        finish(self.report(learner)?)
    }

    /// The report, whatever the mode.
    pub(crate) fn report(&self, learner: &dyn Fn(&C) -> Result<Tensor>) -> Result<Report> {
        let n = self.cases.len();
        let mut lines = Vec::new();
        for (i, case) in self.cases.iter().enumerate() {
            let expected = (self.reference)(case)?;
            let before: Vec<(&str, Tensor)> = case
                .inputs()
                .into_iter()
                .map(|(name, t)| (name, t.copy()))
                .collect();
            let prefix = format!("case {}/{n}  {}:", i + 1, case.label());
            let fail = |lines: Vec<String>, problem: String, likely: Option<String>| Report {
                exercise: self.exercise.into(),
                lines,
                outcome: Outcome::Failed {
                    case: i + 1,
                    problem,
                    likely_mistake: likely,
                },
            };
            let got = match call(|| learner(case)) {
                Caught::NotDone => {
                    return Ok(Report {
                        exercise: self.exercise.into(),
                        lines,
                        outcome: Outcome::NotDone,
                    });
                }
                Caught::Panicked(message) => {
                    lines.push(format!("{prefix} panicked"));
                    return Ok(fail(
                        lines,
                        format!("your function panicked: {message}"),
                        None,
                    ));
                }
                Caught::Returned(Err(e)) => {
                    lines.push(format!("{prefix} returned an error"));
                    return Ok(fail(
                        lines,
                        format!("your function returned an error: {e}"),
                        None,
                    ));
                }
                Caught::Returned(Ok(t)) => t,
            };
            for ((name, now), (_, then)) in case.inputs().into_iter().zip(&before) {
                if !same(now, then) {
                    lines.push(format!("{prefix} changed its input"));
                    return Ok(fail(
                        lines,
                        format!(
                            "your function changed its input `{name}` in place (an `_` method such as `add_`, or `copy_`); work on a new tensor instead"
                        ),
                        None,
                    ));
                }
            }
            match difference(&got, &expected, self.compare)? {
                Difference::None { max } => lines.push(format!("{prefix} ok (max diff {max:.1e})")),
                Difference::Some(problem) => {
                    lines.push(format!("{prefix} wrong"));
                    let likely = self.matching_mutant(learner)?;
                    return Ok(fail(lines, problem, likely));
                }
            }
        }
        Ok(Report {
            exercise: self.exercise.into(),
            lines,
            outcome: Outcome::Passed,
        })
    }

    /// The first mutant whose answers the learner's match on every case where the learner
    /// returns one. Two mistakes can agree on one case (a bias added after a ReLU that
    /// never clipped, and no ReLU at all): all the cases tell them apart.
    fn matching_mutant(&self, learner: &dyn Fn(&C) -> Result<Tensor>) -> Result<Option<String>> {
        let answers: Vec<Option<Tensor>> = self
            .cases
            .iter()
            .map(|case| match call(|| learner(case)) {
                Caught::Returned(Ok(t)) => Some(t),
                _ => None,
            })
            .collect();
        'mutants: for mutant in &self.mutants {
            for (case, got) in self.cases.iter().zip(&answers) {
                let Some(got) = got else { continue };
                let Ok(wrong) = (mutant.run)(case) else {
                    continue 'mutants;
                };
                if let Difference::Some(_) = difference(got, &wrong, self.compare)? {
                    continue 'mutants;
                }
            }
            return Ok(Some(mutant.mistake.to_string()));
        }
        Ok(None)
    }
}

/// Whether two tensors are the same (shape, dtype and values).
fn same(a: &Tensor, b: &Tensor) -> bool {
    a.defined() == b.defined()
        && (!a.defined()
            || (a.size() == b.size() && a.kind() == b.kind() && a.device() == b.device() && {
                // NaN is equal to itself here: an unchanged input that holds NaN is unchanged.
                let a = a.to_kind(Kind::Double).nan_to_num(7.0, None, None);
                let b = b.to_kind(Kind::Double).nan_to_num(7.0, None, None);
                a.equal(&b)
            }))
}

/// How an answer differs from the expected one.
pub(crate) enum Difference {
    /// Within tolerance; the largest difference.
    None { max: f64 },
    /// What is wrong, in a sentence.
    Some(String),
}

/// Compares `got` with `expected` as `compare` says.
pub(crate) fn difference(got: &Tensor, expected: &Tensor, compare: Compare) -> Result<Difference> {
    if !got.defined() {
        return Ok(Difference::Some(
            "your function returned an undefined tensor (`Tensor::new()`); return the result instead".into(),
        ));
    }
    if got.device() != expected.device() {
        return Ok(Difference::Some(format!(
            "the result is on {:?}, expected {:?} (where the inputs are)",
            got.device(),
            expected.device()
        )));
    }
    if got.kind() != expected.kind() {
        return Ok(Difference::Some(format!(
            "the result has dtype {:?}, expected {:?} (the inputs' dtype)",
            got.kind(),
            expected.kind()
        )));
    }
    if got.size() != expected.size() {
        return Ok(Difference::Some(format!(
            "the result has shape {:?}, expected {:?}",
            got.size(),
            expected.size()
        )));
    }
    let (g, e, atol, rtol) = match compare {
        Compare::Values { atol, rtol } => (
            got.f_to_kind(Kind::Double)?,
            expected.f_to_kind(Kind::Double)?,
            atol,
            rtol,
        ),
        Compare::SoftmaxLastDim { atol } => (
            got.f_to_kind(Kind::Double)?.f_softmax(-1, Kind::Double)?,
            expected
                .f_to_kind(Kind::Double)?
                .f_softmax(-1, Kind::Double)?,
            atol,
            0.0,
        ),
    };
    if g.numel() == 0 {
        return Ok(Difference::None { max: 0.0 });
    }
    // NaN where the library has a number is its own message; equal infinities match.
    let nan = g.f_isnan()?.f_logical_and(&e.f_isnan()?.f_logical_not()?)?;
    if nan.f_any()?.f_int64_value(&[])? != 0 {
        let at = first_true(&nan)?;
        return Ok(Difference::Some(format!(
            "the result has NaN at {at:?}{}",
            if matches!(compare, Compare::SoftmaxLastDim { .. }) {
                " after a softmax over the last dim (a row with every entry masked?)"
            } else {
                " (a division by zero, a log of a negative, or an inf - inf?)"
            }
        )));
    }
    let same_inf = g.f_isinf()?.f_logical_and(&g.f_eq_tensor(&e)?)?;
    let both_nan = g.f_isnan()?.f_logical_and(&e.f_isnan()?)?;
    let agree = same_inf.f_logical_or(&both_nan)?;
    let diff = g.f_sub(&e)?.f_abs()?.f_masked_fill(&agree, 0.0)?;
    let allowed = e
        .f_abs()?
        .f_mul_scalar(rtol)?
        .f_add_scalar(atol)?
        .f_masked_fill(&agree, 1.0)?;
    let excess = diff
        .f_sub(&allowed)?
        .f_nan_to_num(f64::INFINITY, None, None)?;
    let max = diff
        .f_nan_to_num(f64::INFINITY, None, None)?
        .f_max()?
        .f_double_value(&[])?;
    if excess.f_max()?.f_double_value(&[])? <= 0.0 {
        return Ok(Difference::None { max });
    }
    let flat = excess.f_argmax(None, false)?.f_int64_value(&[])?;
    let at = unravel(flat, &g.size());
    let value = |t: &Tensor| -> Result<f64> { Ok(t.f_reshape([-1])?.f_double_value(&[flat])?) };
    let what = if matches!(compare, Compare::SoftmaxLastDim { .. }) {
        "after a softmax over the last dim, the result"
    } else {
        "the result"
    };
    Ok(Difference::Some(format!(
        "{what} differs from the library's by up to {max:.3e}; at {at:?} yours is {:.6}, expected {:.6} (tolerance {atol:.0e}{})",
        value(&g)?,
        value(&e)?,
        if rtol > 0.0 {
            format!(" + {rtol:.0e}·|expected|")
        } else {
            String::new()
        }
    )))
}

/// The index of the first true element of a bool tensor.
fn first_true(mask: &Tensor) -> Result<Vec<i64>> {
    let flat = mask
        .f_reshape([-1])?
        .f_to_kind(Kind::Int64)?
        .f_argmax(None, false)?;
    Ok(unravel(flat.f_int64_value(&[])?, &mask.size()))
}

/// A flat index as per-dim indices of `shape`.
fn unravel(mut flat: i64, shape: &[i64]) -> Vec<i64> {
    let mut at = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            at[i] = flat % d;
            flat /= d;
        }
    }
    at
}
