//! E3's metrics: the logit difference between the right answer and a wrong one, the residual
//! direction that reads it, each component's share of it (the residual stream decomposed),
//! and the normalised patching metric (0 for the corrupted run, 1 for the clean one). The
//! library has no tensor-level function for these, so each is checked against ARENA's
//! formula written out.

use mechlens_core::Result;
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

const CLOSE: Compare = Compare::Values {
    atol: 1e-4,
    rtol: 1e-4,
};

pub(crate) struct LogitsCase {
    pub logits: Tensor,
    pub answers: Tensor,
    pub wrongs: Tensor,
}

impl Case for LogitsCase {
    fn label(&self) -> String {
        format!(
            "logits {:?}, answers {:?}, wrongs {:?}",
            self.logits.size(),
            self.answers.size(),
            self.wrongs.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("logits", &self.logits),
            ("answers", &self.answers),
            ("wrongs", &self.wrongs),
        ]
    }
}

/// `[batch]` answer and wrong ids, never equal to each other, in `0..vocab`.
fn answer_pairs(draw: &mut Draw, batch: i64, vocab: i64) -> (Tensor, Tensor) {
    let answers = draw.tokens(1, batch, vocab).view([batch]);
    let shift: Vec<i64> = (0..batch).map(|_| draw.int(1, vocab - 1)).collect();
    let wrongs = (&answers + Tensor::from_slice(&shift)).remainder(vocab);
    (answers, wrongs)
}

/// Each row's logit of `ids` at `pos`: `[batch]`.
fn logit_at(logits: &Tensor, ids: &Tensor, pos: i64) -> Result<Tensor> {
    Ok(logits
        .f_select(1, pos)?
        .f_gather(1, &ids.f_unsqueeze(1)?, false)?
        .f_squeeze_dim(1)?)
}

pub(crate) fn logit_diff_spec() -> Spec<LogitsCase> {
    let mut draw = Draw::new(301);
    let cases = (0..4)
        .map(|_| {
            let (batch, pos, vocab) = (draw.int(2, 5), draw.int(2, 6), draw.int(4, 20));
            let (answers, wrongs) = answer_pairs(&mut draw, batch, vocab);
            LogitsCase {
                logits: draw.normal(&[batch, pos, vocab], 0.0, 2.0),
                answers,
                wrongs,
            }
        })
        .collect();
    let diff = |c: &LogitsCase, pos: i64| -> Result<Tensor> {
        Ok(logit_at(&c.logits, &c.answers, pos)?.f_sub(&logit_at(&c.logits, &c.wrongs, pos)?)?)
    };
    Spec {
        exercise: "logit_diff",
        cases,
        reference: Box::new(move |c: &LogitsCase| Ok(diff(c, -1)?.f_mean(Kind::Float)?)),
        mutants: vec![
            Mutant::new(
                "the logits at the first position; the answer is predicted at the last (-1)",
                move |c: &LogitsCase| Ok(diff(c, 0)?.f_mean(Kind::Float)?),
            ),
            Mutant::new(
                "summed over the batch; the mean keeps the scale of one prompt",
                move |c: &LogitsCase| Ok(diff(c, -1)?.f_sum(Kind::Float)?),
            ),
            Mutant::new(
                "wrong minus answer; the difference is the answer's logit minus the wrong one's",
                move |c: &LogitsCase| Ok(diff(c, -1)?.f_mean(Kind::Float)?.f_neg()?),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `logit_diff(logits, answers, wrongs)`: at the last position, the answer's logit
/// minus the wrong token's, averaged over the batch.
///
/// # Shapes
/// - `logits`: `[batch, pos, d_vocab]`; `answers`, `wrongs`: `[batch]` int64 → a scalar
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn logit_diff(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    logit_diff_spec().check(&|c| f(&c.logits, &c.answers, &c.wrongs))
}

pub(crate) struct DirectionsCase {
    pub w_u: Tensor,
    pub answers: Tensor,
    pub wrongs: Tensor,
}

impl Case for DirectionsCase {
    fn label(&self) -> String {
        format!(
            "w_u {:?}, answers {:?}",
            self.w_u.size(),
            self.answers.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("w_u", &self.w_u),
            ("answers", &self.answers),
            ("wrongs", &self.wrongs),
        ]
    }
}

pub(crate) fn directions_spec() -> Spec<DirectionsCase> {
    let mut draw = Draw::new(302);
    let cases = (0..4)
        .map(|_| {
            let (batch, d, vocab) = (draw.int(1, 5), draw.int(3, 10), draw.int(4, 20));
            let (answers, wrongs) = answer_pairs(&mut draw, batch, vocab);
            DirectionsCase {
                w_u: draw.normal(&[d, vocab], 0.0, 1.0),
                answers,
                wrongs,
            }
        })
        .collect();
    // Column `id` of W_U for each id, as rows: [batch, d_model].
    let columns = |c: &DirectionsCase, ids: &Tensor| -> Result<Tensor> {
        Ok(c.w_u
            .f_index_select(1, ids)?
            .f_transpose(0, 1)?
            .f_contiguous()?)
    };
    Spec {
        exercise: "logit_diff_directions",
        cases,
        reference: Box::new(move |c: &DirectionsCase| {
            Ok(columns(c, &c.answers)?.f_sub(&columns(c, &c.wrongs)?)?)
        }),
        mutants: vec![
            Mutant::new(
                "the answer's unembedding alone; subtract the wrong token's, so that the direction reads the difference",
                move |c: &DirectionsCase| columns(c, &c.answers),
            ),
            Mutant::new(
                "wrong minus answer; the direction points from the wrong token to the answer",
                move |c: &DirectionsCase| {
                    Ok(columns(c, &c.wrongs)?.f_sub(&columns(c, &c.answers)?)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `logit_diff_directions(w_u, answers, wrongs)`: the residual-stream direction whose
/// dot product with the final residual stream is the logit difference, `W_U[:, answer] −
/// W_U[:, wrong]`, one per prompt.
///
/// # Shapes
/// - `w_u`: `[d_model, d_vocab]`; `answers`, `wrongs`: `[batch]` int64 → `[batch, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn logit_diff_directions(
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Report> {
    directions_spec().check(&|c| f(&c.w_u, &c.answers, &c.wrongs))
}

pub(crate) struct StackCase {
    pub stack: Tensor,
    pub directions: Tensor,
}

impl Case for StackCase {
    fn label(&self) -> String {
        format!(
            "stack {:?}, directions {:?}",
            self.stack.size(),
            self.directions.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("stack", &self.stack), ("directions", &self.directions)]
    }
}

pub(crate) fn stack_spec() -> Spec<StackCase> {
    let mut draw = Draw::new(303);
    let cases = (0..4)
        .map(|_| {
            let (components, batch, d) = (draw.int(1, 6), draw.int(2, 5), draw.int(3, 10));
            StackCase {
                stack: draw.normal(&[components, batch, d], 0.0, 1.0),
                directions: draw.normal(&[batch, d], 0.0, 1.0),
            }
        })
        .collect();
    let per_prompt = |c: &StackCase| -> Result<Tensor> {
        Ok(Tensor::f_einsum(
            "cbd,bd->cb",
            &[&c.stack, &c.directions],
            None::<&[i64]>,
        )?)
    };
    Spec {
        exercise: "stack_logit_diff",
        cases,
        reference: Box::new(move |c: &StackCase| {
            Ok(per_prompt(c)?.f_mean_dim(1, false, Kind::Float)?)
        }),
        mutants: vec![
            Mutant::new(
                "summed over the batch; average over it, as logit_diff does, so that the components add up to it",
                move |c: &StackCase| Ok(per_prompt(c)?.f_sum_dim_intlist(1, false, Kind::Float)?),
            ),
            Mutant::new(
                "summed over the components: that is the whole logit difference; keep one value per component",
                move |c: &StackCase| {
                    Ok(per_prompt(c)?
                        .f_mean_dim(1, false, Kind::Float)?
                        .f_sum(Kind::Float)?
                        .f_expand([c.stack.size()[0]], false)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `stack_logit_diff(stack, directions)`: how much each component of the residual
/// stream (at the last position, final layer norm already applied) adds to the logit
/// difference, averaged over the batch: `mean_b stack[c, b] · directions[b]`.
///
/// # Shapes
/// - `stack`: `[components, batch, d_model]`; `directions`: `[batch, d_model]` → `[components]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn stack_logit_diff(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    stack_spec().check(&|c| f(&c.stack, &c.directions))
}

pub(crate) struct MetricCase {
    pub logit_diff: Tensor,
    pub clean: f64,
    pub corrupted: f64,
}

impl Case for MetricCase {
    fn label(&self) -> String {
        format!(
            "logit_diff {:?}, clean {:.2}, corrupted {:.2}",
            self.logit_diff.size(),
            self.clean,
            self.corrupted
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("logit_diff", &self.logit_diff)]
    }
}

pub(crate) fn patching_metric_spec() -> Spec<MetricCase> {
    let mut draw = Draw::new(304);
    let mut cases: Vec<MetricCase> = (0..3)
        .map(|_| {
            let n = draw.int(1, 5);
            MetricCase {
                logit_diff: draw.normal(&[n], 0.0, 3.0),
                clean: draw.uniform(2.0, 5.0),
                corrupted: draw.uniform(-2.0, 1.0),
            }
        })
        .collect();
    // The endpoints themselves: the clean and the corrupted value, as a scalar each.
    let (clean, corrupted) = (3.5, -0.5);
    cases.push(MetricCase {
        logit_diff: Tensor::from_slice(&[clean as f32, corrupted as f32]),
        clean,
        corrupted,
    });
    Spec {
        exercise: "patching_metric",
        cases,
        reference: Box::new(|c: &MetricCase| {
            Ok(c.logit_diff
                .f_sub_scalar(c.corrupted)?
                .f_div_scalar(c.clean - c.corrupted)?)
        }),
        mutants: vec![
            Mutant::new(
                "1 at the corrupted value and 0 at the clean one: it measures what patching *breaks*; here a patch of clean activations into the corrupted run should score 1 when it restores everything",
                |c: &MetricCase| {
                    Ok(c.logit_diff
                        .f_sub_scalar(c.clean)?
                        .f_div_scalar(c.corrupted - c.clean)?)
                },
            ),
            Mutant::new(
                "divided by the clean value only; subtract the corrupted value first, from both, so that the corrupted run scores 0",
                |c: &MetricCase| Ok(c.logit_diff.f_div_scalar(c.clean)?),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `patching_metric(logit_diff, clean, corrupted)`: the logit difference rescaled so
/// that the corrupted run's is 0 and the clean run's is 1, elementwise.
///
/// # Shapes
/// - `logit_diff`: any shape → the same shape
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn patching_metric(f: impl Fn(&Tensor, f64, f64) -> Result<Tensor>) -> Result<Report> {
    patching_metric_spec().check(&|c| f(&c.logit_diff, c.clean, c.corrupted))
}
