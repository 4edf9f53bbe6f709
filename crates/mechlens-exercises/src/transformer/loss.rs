//! E1's losses: next-token cross-entropy per position (against
//! `HookedTransformer::per_token_loss`) and the unigram baseline a trained model must beat
//! (a closed form: the entropy of the tokens' frequencies).

use mechlens_core::Result;
use tch::{Kind, Tensor};

use super::model_case::{ModelCase, model_case};
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct LossCase {
    pub m: ModelCase,
}

impl Case for LossCase {
    fn label(&self) -> String {
        format!("logits {:?}", self.m.logits.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("logits", &self.m.logits), ("tokens", &self.m.tokens)]
    }
}

/// `-log p(target)` with targets `shift` positions after each logit.
fn variant(c: &LossCase, shift: i64, sign: f64, dim: i64) -> Result<Tensor> {
    let (logits, tokens) = (&c.m.logits, &c.m.tokens);
    let p = tokens.size()[1];
    let logp = logits
        .f_log_softmax(dim, Kind::Float)?
        .f_narrow(1, 0, p - 1)?;
    let targets = tokens.f_narrow(1, shift, p - 1)?.f_unsqueeze(-1)?;
    Ok(logp
        .f_gather(-1, &targets, false)?
        .f_squeeze_dim(-1)?
        .f_mul_scalar(-sign)?)
}

pub(crate) fn cross_entropy_spec() -> Result<Spec<LossCase>> {
    let mut draw = Draw::new(61);
    let cases = (0..4)
        .map(|i| {
            let mut m = model_case(&mut draw, 6100 + i, 1, false, vec![])?;
            // At least two tokens: a loss needs a next token.
            if m.tokens.size()[1] < 2 {
                m = model_case(&mut draw, 6150 + i, 1, false, vec![])?;
            }
            m.logits = m.logits.detach();
            Ok(LossCase { m })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Spec {
        exercise: "cross_entropy",
        cases,
        reference: Box::new(|c: &LossCase| c.m.model.per_token_loss(&c.m.tokens)),
        mutants: vec![
            Mutant::new(
                "the targets are not shifted: position i predicts token i + 1, so compare logits[:, :-1] with tokens[:, 1:]",
                |c: &LossCase| variant(c, 0, 1.0, -1),
            ),
            Mutant::new(
                "the sign: the loss is minus the log-probability of the target",
                |c: &LossCase| variant(c, 1, -1.0, -1),
            ),
            Mutant::new(
                "log_softmax over positions; it is over the vocabulary (the last dim)",
                |c: &LossCase| variant(c, 1, 1.0, 1),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-4,
            rtol: 1e-4,
        },
    })
}

/// Checks `cross_entropy(logits, tokens)`: the loss at each position of predicting the next
/// token, `-log softmax(logits[b, i])[tokens[b, i + 1]]`, not averaged.
///
/// # Shapes
/// - `logits`: `[batch, pos, d_vocab]`; `tokens`: `[batch, pos]` int64 → `[batch, pos - 1]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn cross_entropy(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    cross_entropy_spec()?.check(&|c: &LossCase| f(&c.m.logits, &c.m.tokens))
}

pub(crate) struct UnigramCase {
    pub tokens: Tensor,
    pub d_vocab: i64,
}

impl Case for UnigramCase {
    fn label(&self) -> String {
        format!("tokens {:?}, d_vocab {}", self.tokens.size(), self.d_vocab)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("tokens", &self.tokens)]
    }
}

/// The tokens' frequencies, `[d_vocab]`.
fn frequencies(c: &UnigramCase) -> Result<Tensor> {
    let counts = c
        .tokens
        .f_reshape([-1])?
        .f_bincount(None::<&Tensor>, c.d_vocab)?
        .f_to_kind(Kind::Double)?;
    Ok(counts.f_div_scalar(c.tokens.numel() as f64)?)
}

/// `-Σ f log f` over the tokens that occur, divided by `ln(base)`.
fn entropy(c: &UnigramCase, base: f64) -> Result<Tensor> {
    let f = frequencies(c)?;
    // 0 · log 0 = 0: ids that never occur add nothing.
    let terms = f.f_mul(&f.f_clamp_min(f64::MIN_POSITIVE)?.f_log()?)?;
    Ok(terms
        .f_sum(Kind::Double)?
        .f_neg()?
        .f_div_scalar(base.ln())?)
}

pub(crate) fn unigram_spec() -> Spec<UnigramCase> {
    let mut draw = Draw::new(62);
    let cases = (0..5)
        .map(|_| {
            let d_vocab = draw.int(3, 40);
            // Skewed: squared uniforms favour low ids, and some ids never occur.
            let n = draw.int(20, 300);
            let ids: Vec<i64> = (0..n)
                .map(|_| ((draw.uniform(0.0, 1.0).powi(2)) * (d_vocab - 1) as f64) as i64)
                .collect();
            UnigramCase {
                tokens: Tensor::from_slice(&ids).view([1, n]),
                d_vocab,
            }
        })
        .collect();
    Spec {
        exercise: "unigram_loss",
        cases,
        reference: Box::new(|c: &UnigramCase| entropy(c, std::f64::consts::E)),
        mutants: vec![
            Mutant::new(
                "the entropy is in bits (log base 2); losses are in nats (natural log)",
                |c: &UnigramCase| entropy(c, 2.0),
            ),
            Mutant::new(
                "every token is given probability 1 / d_vocab: that is the uniform baseline, log(d_vocab); the unigram model uses each token's frequency",
                |c: &UnigramCase| Ok(Tensor::from((c.d_vocab as f64).ln())),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-6,
            rtol: 1e-6,
        },
    }
}

/// Checks `unigram_loss(tokens, d_vocab)`: the mean loss, in nats, of a model that predicts
/// every token by its frequency in `tokens` (the entropy of those frequencies). A trained
/// model that does not beat it has learned nothing about context.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` int64 → a number
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn unigram_loss(f: impl Fn(&Tensor, i64) -> Result<f64>) -> Result<Report> {
    unigram_spec().check(&|c: &UnigramCase| Ok(Tensor::from(f(&c.tokens, c.d_vocab)?)))
}
