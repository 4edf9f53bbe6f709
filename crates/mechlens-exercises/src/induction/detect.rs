//! E2's head detection: repeated random tokens, the patterns a previous-token, duplicate-token
//! or induction head would attend in, the share of a head's attention on such a pattern, and
//! the induction stripe of repeated tokens; against mechlens-analysis' detectors.

use mechlens_analysis::{
    DetectOptions, HeadPattern, detection_pattern, induction_stripe, pattern_scores,
    repeat_tokens as library_repeat,
};
use mechlens_core::Result;
use tch::{Device, Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

const EXACT: Compare = Compare::Values {
    atol: 0.0,
    rtol: 0.0,
};

pub(crate) struct PrefixCase {
    pub prefix: Tensor,
    pub bos: i64,
}

impl Case for PrefixCase {
    fn label(&self) -> String {
        format!("prefix {:?}, bos {}", self.prefix.size(), self.bos)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("prefix", &self.prefix)]
    }
}

pub(crate) fn repeat_tokens_spec() -> Spec<PrefixCase> {
    let mut draw = Draw::new(201);
    let cases = (0..4)
        .map(|_| {
            let (batch, n) = (draw.int(1, 4), draw.int(1, 8));
            PrefixCase {
                prefix: draw.tokens(batch, n, 50),
                bos: draw.int(50, 60),
            }
        })
        .collect();
    let cat = |parts: &[&Tensor]| -> Result<Tensor> { Ok(Tensor::f_cat(parts, 1)?) };
    let bos_column =
        |c: &PrefixCase| -> Result<Tensor> { Ok(c.prefix.f_narrow(1, 0, 1)?.f_full_like(c.bos)?) };
    Spec {
        exercise: "repeat_tokens",
        cases,
        reference: Box::new(|c: &PrefixCase| library_repeat(&c.prefix, c.bos)),
        mutants: vec![
            Mutant::new(
                "no BOS at the start: the sequence is BOS, the prefix, then the prefix again",
                move |c: &PrefixCase| cat(&[&c.prefix, &c.prefix]),
            ),
            Mutant::new(
                "the BOS sits between the two copies; it goes first, before the first copy",
                move |c: &PrefixCase| cat(&[&c.prefix, &bos_column(c)?, &c.prefix]),
            ),
            Mutant::new(
                "the prefix appears once: repeat it (BOS, prefix, prefix)",
                move |c: &PrefixCase| cat(&[&bos_column(c)?, &c.prefix]),
            ),
        ],
        compare: EXACT,
    }
}

/// Checks `repeat_tokens(prefix, bos)`: each row as `bos`, the prefix, then the prefix again.
///
/// # Shapes
/// - `prefix`: `[batch, seq_len]` int64 → `[batch, 1 + 2·seq_len]` int64
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn repeat_tokens(f: impl Fn(&Tensor, i64) -> Result<Tensor>) -> Result<Report> {
    repeat_tokens_spec().check(&|c| f(&c.prefix, c.bos))
}

/// Token sequences with repeats (a small vocabulary), for the patterns that depend on them.
pub(crate) struct TokensCase {
    pub tokens: Tensor,
}

impl Case for TokensCase {
    fn label(&self) -> String {
        format!(
            "tokens {:?}",
            Vec::<i64>::try_from(&self.tokens).unwrap_or_default()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("tokens", &self.tokens)]
    }
}

fn token_cases(seed: u64) -> Vec<TokensCase> {
    let mut draw = Draw::new(seed);
    (0..5)
        .map(|_| {
            let n = draw.int(3, 10);
            let vocab = draw.int(2, 4);
            TokensCase {
                tokens: draw.tokens(1, n, vocab).view([n]),
            }
        })
        .collect()
}

/// `[n, n]`: 1 where the query's token equals the key's, 0 elsewhere.
fn same_token(tokens: &Tensor) -> Result<Tensor> {
    let n = tokens.size()[0];
    let row = tokens.f_unsqueeze(0)?.f_expand([n, n], false)?;
    Ok(row
        .f_eq_tensor(&row.f_transpose(0, 1)?)?
        .f_to_kind(Kind::Float)?)
}

fn without_diagonal(t: &Tensor) -> Result<Tensor> {
    let n = t.size()[0];
    Ok(t.f_mul(
        &Tensor::f_eye(n, (Kind::Float, Device::Cpu))?
            .f_neg()?
            .f_add_scalar(1.0)?,
    )?)
}

pub(crate) struct SizeCase {
    pub n: i64,
}

impl Case for SizeCase {
    fn label(&self) -> String {
        format!("n = {}", self.n)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        Vec::new()
    }
}

fn sequence(n: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu))
}

pub(crate) fn previous_token_spec() -> Spec<SizeCase> {
    let cases = [2, 3, 5, 8].map(|n| SizeCase { n }).into_iter().collect();
    let eye = |n: i64| Tensor::f_eye(n, (Kind::Float, Device::Cpu));
    Spec {
        exercise: "previous_token_pattern",
        cases,
        reference: Box::new(|c: &SizeCase| {
            detection_pattern(&HeadPattern::PreviousToken, &sequence(c.n))
        }),
        mutants: vec![
            Mutant::new(
                "the ones are above the diagonal (each query on the next key); a query can only attend to earlier keys: the previous token is at column q − 1",
                move |c: &SizeCase| Ok(eye(c.n)?.f_roll([1], [1])?.f_triu(1)?),
            ),
            Mutant::new(
                "the diagonal (each token on itself) is the current-token pattern; the previous token is one column to the left",
                move |c: &SizeCase| Ok(eye(c.n)?),
            ),
        ],
        compare: EXACT,
    }
}

/// Checks `previous_token_pattern(n)`: the `[n, n]` pattern a previous-token head would
/// have, 1 at `(q, q − 1)` for every query `q ≥ 1`, 0 elsewhere.
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn previous_token_pattern(f: impl Fn(i64) -> Result<Tensor>) -> Result<Report> {
    previous_token_spec().check(&|c| f(c.n))
}

pub(crate) fn duplicate_token_spec() -> Spec<TokensCase> {
    Spec {
        exercise: "duplicate_token_pattern",
        cases: token_cases(202),
        reference: Box::new(|c: &TokensCase| {
            detection_pattern(&HeadPattern::DuplicateToken, &c.tokens)
        }),
        mutants: vec![
            Mutant::new(
                "every token is counted as a duplicate of itself: leave the diagonal out (a duplicate is an earlier copy)",
                |c: &TokensCase| Ok(same_token(&c.tokens)?.f_tril(0)?),
            ),
            Mutant::new(
                "later copies are counted too: a query can only attend to earlier keys, keep the lower triangle",
                |c: &TokensCase| without_diagonal(&same_token(&c.tokens)?),
            ),
        ],
        compare: EXACT,
    }
}

/// Checks `duplicate_token_pattern(tokens)`: 1 at `(q, k)` where `k < q` holds the same token
/// as `q`, 0 elsewhere.
///
/// # Shapes
/// - `tokens`: `[n]` int64 → `[n, n]` f32
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn duplicate_token_pattern(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    duplicate_token_spec().check(&|c| f(&c.tokens))
}

pub(crate) fn induction_pattern_spec() -> Spec<TokensCase> {
    let duplicate =
        |t: &Tensor| -> Result<Tensor> { Ok(without_diagonal(&same_token(t)?)?.f_tril(0)?) };
    Spec {
        exercise: "induction_pattern",
        cases: token_cases(203),
        reference: Box::new(|c: &TokensCase| detection_pattern(&HeadPattern::Induction, &c.tokens)),
        mutants: vec![
            Mutant::new(
                "this is the duplicate-token pattern; an induction head attends to the token just after each earlier copy (one column to the right)",
                move |c: &TokensCase| duplicate(&c.tokens),
            ),
            Mutant::new(
                "shifted the wrong way: the token *before* each earlier copy; an induction head attends to the one after it",
                move |c: &TokensCase| {
                    let d = duplicate(&c.tokens)?.f_roll([-1], [1])?;
                    let n = d.size()[0];
                    let _ = d.f_narrow(1, n - 1, 1)?.f_zero_()?;
                    Ok(d.f_tril(-1)?)
                },
            ),
        ],
        compare: EXACT,
    }
}

/// Checks `induction_pattern(tokens)`: 1 at `(q, k)` where `k − 1` is an earlier copy of
/// `q`'s token (`k ≤ q`), 0 elsewhere.
///
/// # Shapes
/// - `tokens`: `[n]` int64 → `[n, n]` f32
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn induction_pattern(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    induction_pattern_spec().check(&|c| f(&c.tokens))
}

/// Random causal attention patterns.
///
/// # Shapes
/// `pattern`: `[*lead, n_heads, n, n]`, each row a distribution over keys `≤ q`.
fn causal_pattern(draw: &mut Draw, lead: &[i64], n: i64) -> Result<Tensor> {
    let shape: Vec<i64> = lead.iter().copied().chain([n, n]).collect();
    let scores = draw.normal(&shape, 0.0, 2.0);
    let future = Tensor::f_ones([n, n], (Kind::Bool, Device::Cpu))?.f_triu(1)?;
    Ok(scores
        .f_masked_fill(&future, f64::NEG_INFINITY)?
        .f_softmax(-1, Kind::Float)?)
}

pub(crate) struct ScoreCase {
    pub pattern: Tensor,
    pub detection: Tensor,
}

impl Case for ScoreCase {
    fn label(&self) -> String {
        format!(
            "pattern {:?}, detection {:?}",
            self.pattern.size(),
            self.detection.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("pattern", &self.pattern), ("detection", &self.detection)]
    }
}

pub(crate) fn head_scores_spec() -> Result<Spec<ScoreCase>> {
    let mut draw = Draw::new(204);
    let cases = (0..4)
        .map(|_| {
            let (heads, n) = (draw.int(1, 4), draw.int(3, 9));
            let pattern = causal_pattern(&mut draw, &[heads], n)?;
            let detection = draw
                .normal(&[n, n], 0.0, 1.0)
                .gt(0.0)
                .to_kind(Kind::Float)
                .tril(0);
            Ok(ScoreCase { pattern, detection })
        })
        .collect::<Result<Vec<_>>>()?;
    let on = |c: &ScoreCase| -> Result<Tensor> {
        Ok(c.pattern.f_mul(&c.detection)?.f_sum_dim_intlist(
            [-2i64, -1].as_slice(),
            false,
            Kind::Float,
        )?)
    };
    Ok(Spec {
        exercise: "head_scores",
        cases,
        reference: Box::new(|c: &ScoreCase| {
            pattern_scores(&c.pattern, &c.detection, DetectOptions::default())
        }),
        mutants: vec![
            Mutant::new(
                "the total attention on the pattern is not divided by the head's whole attention (Σ A, one per query): the score is a share, in [0, 1]",
                move |c: &ScoreCase| on(c),
            ),
            Mutant::new(
                "the mean of A⊙D over every (q, k) entry; the score is the share of attention on the pattern, Σ A⊙D / Σ A",
                move |c: &ScoreCase| {
                    let n = c.detection.size()[0] as f64;
                    Ok(on(c)?.f_div_scalar(n * n)?)
                },
            ),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    })
}

/// Checks `head_scores(pattern, detection)`: for each head, the share of its attention that
/// falls on the detection pattern, `Σ A⊙D / Σ A` over queries and keys (TransformerLens'
/// `detect_head`).
///
/// # Shapes
/// - `pattern`: `[n_heads, n, n]`; `detection`: `[n, n]` → `[n_heads]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn head_scores(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    head_scores_spec()?.check(&|c| f(&c.pattern, &c.detection))
}

pub(crate) struct StripeCase {
    pub pattern: Tensor,
    pub seq_len: i64,
}

impl Case for StripeCase {
    fn label(&self) -> String {
        format!(
            "pattern {:?}, seq_len {}",
            self.pattern.size(),
            self.seq_len
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("pattern", &self.pattern)]
    }
}

pub(crate) fn induction_stripe_spec() -> Result<Spec<StripeCase>> {
    let mut draw = Draw::new(205);
    let cases = (0..4)
        .map(|_| {
            let (batch, heads, seq_len) = (draw.int(1, 3), draw.int(1, 4), draw.int(2, 6));
            let pattern = causal_pattern(&mut draw, &[batch, heads], 1 + 2 * seq_len)?;
            Ok(StripeCase { pattern, seq_len })
        })
        .collect::<Result<Vec<_>>>()?;
    let diagonal = |c: &StripeCase, offset: i64| -> Result<Tensor> {
        Ok(c.pattern.f_diagonal(offset, -2, -1)?)
    };
    Ok(Spec {
        exercise: "induction_stripe_score",
        cases,
        reference: Box::new(|c: &StripeCase| induction_stripe(&c.pattern, c.seq_len as usize)),
        mutants: vec![
            Mutant::new(
                "the diagonal at offset −seq_len is attention to the earlier copy of the token itself (a duplicate-token head); an induction head attends one after it, offset 1 − seq_len",
                move |c: &StripeCase| {
                    Ok(diagonal(c, -c.seq_len)?.f_mean_dim(
                        [0i64, 2].as_slice(),
                        false,
                        Kind::Float,
                    )?)
                },
            ),
            Mutant::new(
                "the stripe is summed over positions; the score is its mean (over the batch and the seq_len positions)",
                move |c: &StripeCase| {
                    Ok(diagonal(c, 1 - c.seq_len)?
                        .f_sum_dim_intlist(2, false, Kind::Float)?
                        .f_mean_dim(0, false, Kind::Float)?)
                },
            ),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    })
}

/// Checks `induction_stripe_score(pattern, seq_len)`: on repeated tokens (BOS, `seq_len`
/// tokens, the same again), each head's mean attention from a second-half token to the token
/// just after its first occurrence: the pattern's diagonal at offset `1 − seq_len`, averaged
/// over the batch and its positions.
///
/// # Shapes
/// - `pattern`: `[batch, n_heads, 1 + 2·seq_len, 1 + 2·seq_len]` → `[n_heads]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn induction_stripe_score(f: impl Fn(&Tensor, i64) -> Result<Tensor>) -> Result<Report> {
    induction_stripe_spec()?.check(&|c| f(&c.pattern, c.seq_len))
}
