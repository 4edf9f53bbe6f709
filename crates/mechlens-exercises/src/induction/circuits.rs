//! E2's weight circuits: a head's full OV circuit from token to logit, how often it maps a
//! token to itself (top-1 accuracy), and the composition score of two heads' matrices; against
//! mechlens-weights' `FactoredMatrix` and `composition_scores` (the accuracy against ARENA's
//! formula, written out).

use mechlens_core::Result;
use mechlens_weights::{FactoredMatrix, composition_scores};
use tch::{Device, Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct OvCase {
    pub w_e: Tensor,
    pub w_v: Tensor,
    pub w_o: Tensor,
    pub w_u: Tensor,
}

impl Case for OvCase {
    fn label(&self) -> String {
        format!(
            "w_e {:?}, w_v {:?}, w_o {:?}, w_u {:?}",
            self.w_e.size(),
            self.w_v.size(),
            self.w_o.size(),
            self.w_u.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("w_e", &self.w_e),
            ("w_v", &self.w_v),
            ("w_o", &self.w_o),
            ("w_u", &self.w_u),
        ]
    }
}

pub(crate) fn full_ov_spec() -> Spec<OvCase> {
    let mut draw = Draw::new(221);
    let cases = (0..4)
        .map(|_| {
            let (vocab, d, dh) = (draw.int(3, 12), draw.int(3, 10), draw.int(2, 5));
            OvCase {
                w_e: draw.normal(&[vocab, d], 0.0, 1.0),
                w_v: draw.normal(&[d, dh], 0.0, 1.0),
                w_o: draw.normal(&[dh, d], 0.0, 1.0),
                w_u: draw.normal(&[d, vocab], 0.0, 1.0),
            }
        })
        .collect();
    let reference = |c: &OvCase| -> Result<Tensor> {
        FactoredMatrix::new(c.w_e.f_matmul(&c.w_v)?, c.w_o.f_matmul(&c.w_u)?)?.ab()
    };
    Spec {
        exercise: "full_ov_circuit",
        cases,
        reference: Box::new(reference),
        mutants: vec![
            Mutant::new(
                "transposed: row i is the token attended to and column j the logit it moves, W_E · W_V · W_O · W_U",
                move |c: &OvCase| Ok(reference(c)?.f_transpose(0, 1)?),
            ),
            Mutant::new(
                "W_U is missing: the full circuit ends in the logits (· W_U), not in the residual stream",
                |c: &OvCase| Ok(c.w_e.f_matmul(&c.w_v)?.f_matmul(&c.w_o)?),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-3,
            rtol: 1e-4,
        },
    }
}

/// Checks `full_ov_circuit(w_e, w_v, w_o, w_u)`: one head's `W_E · W_V · W_O · W_U`, row `i`
/// the token attended to, column `j` how much that raises the logit of token `j`.
///
/// # Shapes
/// - `w_e`: `[d_vocab, d_model]`; `w_v`: `[d_model, d_head]`; `w_o`: `[d_head, d_model]`;
///   `w_u`: `[d_model, d_vocab]` → `[d_vocab, d_vocab]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn full_ov_circuit(
    f: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Report> {
    full_ov_spec().check(&|c| f(&c.w_e, &c.w_v, &c.w_o, &c.w_u))
}

pub(crate) struct MatrixCase {
    pub m: Tensor,
}

impl Case for MatrixCase {
    fn label(&self) -> String {
        format!("m {:?}", self.m.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("m", &self.m)]
    }
}

/// The share of rows (`dim` = -1) or columns (`dim` = 0) whose largest entry is on the
/// diagonal, as an f32 scalar.
fn diagonal_argmax_share(m: &Tensor, dim: i64) -> Result<Tensor> {
    let n = m.size()[0];
    let best = m.f_argmax(dim, false)?;
    let hits = best.f_eq_tensor(&Tensor::f_arange(n, (Kind::Int64, Device::Cpu))?)?;
    Ok(hits.f_to_kind(Kind::Float)?.f_mean(Kind::Float)?)
}

pub(crate) fn top_1_spec() -> Spec<MatrixCase> {
    let mut draw = Draw::new(222);
    let cases = (0..5)
        .map(|_| {
            let n = draw.int(4, 12);
            // A diagonal that wins in some rows and not in others, and not symmetrically.
            let boost = draw.normal(&[n], 1.0, 1.5).diag(0);
            MatrixCase {
                m: draw.normal(&[n, n], 0.0, 1.0) + boost,
            }
        })
        .collect();
    Spec {
        exercise: "top_1_accuracy",
        cases,
        reference: Box::new(|c: &MatrixCase| diagonal_argmax_share(&c.m, -1)),
        mutants: vec![
            Mutant::new(
                "the argmax runs down each column (dim 0); for each row (a source token), ask whether its largest entry is the diagonal one (dim -1)",
                |c: &MatrixCase| diagonal_argmax_share(&c.m, 0),
            ),
            Mutant::new(
                "this is the count of rows; divide by the number of rows to get a share",
                |c: &MatrixCase| {
                    let n = c.m.size()[0] as f64;
                    Ok(diagonal_argmax_share(&c.m, -1)?.f_mul_scalar(n)?)
                },
            ),
        ],
        compare: Compare::Values {
            atol: 1e-6,
            rtol: 0.0,
        },
    }
}

/// Checks `top_1_accuracy(m)`: the share of rows of a square matrix whose largest entry is on
/// the diagonal (for a full OV circuit: how often attending to a token raises that same
/// token's logit most), as an f32 scalar.
///
/// # Shapes
/// - `m`: `[n, n]` → `[]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn top_1_accuracy(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    top_1_spec().check(&|c| f(&c.m))
}

pub(crate) struct PairCase {
    pub w_a: Tensor,
    pub w_b: Tensor,
}

impl Case for PairCase {
    fn label(&self) -> String {
        format!("w_a {:?}, w_b {:?}", self.w_a.size(), self.w_b.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("w_a", &self.w_a), ("w_b", &self.w_b)]
    }
}

fn frobenius(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_square()?.f_sum(Kind::Float)?.f_sqrt()?)
}

pub(crate) fn composition_spec() -> Spec<PairCase> {
    let mut draw = Draw::new(223);
    let cases = (0..4)
        .map(|_| {
            let (d, rank) = (draw.int(3, 10), draw.int(1, 3));
            // Low-rank, as a head's OV and QK matrices are (rank d_head).
            let low_rank = |draw: &mut Draw| {
                draw.normal(&[d, rank], 0.0, 1.0)
                    .matmul(&draw.normal(&[rank, d], 0.0, 1.0))
            };
            PairCase {
                w_a: low_rank(&mut draw),
                w_b: low_rank(&mut draw),
            }
        })
        .collect();
    Spec {
        exercise: "composition_score",
        cases,
        reference: Box::new(|c: &PairCase| {
            let eye = Tensor::f_eye(c.w_a.size()[1], (Kind::Float, Device::Cpu))?;
            composition_scores(
                &FactoredMatrix::new(c.w_a.shallow_clone(), eye.shallow_clone())?,
                &FactoredMatrix::new(c.w_b.shallow_clone(), eye)?,
            )
        }),
        mutants: vec![
            Mutant::new(
                "W_B · W_A: the earlier head's output (W_A) is what the later head reads, so the product is W_A · W_B",
                |c: &PairCase| {
                    Ok(frobenius(&c.w_b.f_matmul(&c.w_a)?)?
                        .f_div(&frobenius(&c.w_a)?)?
                        .f_div(&frobenius(&c.w_b)?)?)
                },
            ),
            Mutant::new(
                "‖W_A · W_B‖ is not divided by ‖W_A‖ · ‖W_B‖: without it the score grows with the weights' scale instead of lying in [0, 1]",
                |c: &PairCase| frobenius(&c.w_a.f_matmul(&c.w_b)?),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    }
}

/// Checks `composition_score(w_a, w_b)`: how much of `w_b`'s input the output of `w_a`
/// reaches, `‖W_A · W_B‖_F / (‖W_A‖_F · ‖W_B‖_F)` (TransformerLens' composition score), an f32
/// scalar.
///
/// # Shapes
/// - `w_a`, `w_b`: `[d_model, d_model]` → `[]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn composition_score(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    composition_spec().check(&|c| f(&c.w_a, &c.w_b))
}
