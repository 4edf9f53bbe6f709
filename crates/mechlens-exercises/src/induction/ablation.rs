//! E2's direct logit attribution (each head's output read off through the unembedding, at
//! every position, for the next token) and zero-ablation of each head (how much the loss
//! rises without it); the first against ARENA's formula written out, the second against
//! mechlens-analysis' `ablate_each_head` on random attention-only models.

use mechlens_analysis::{Ablation, Component, ablate, ablate_each_head};
use mechlens_core::{HookPoint, Result};
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;
use crate::transformer::model_case::{ModelCase, model_case};

pub(crate) struct AttributionCase {
    pub direct: Tensor,
    pub results: Tensor,
    pub w_u: Tensor,
    pub tokens: Tensor,
}

impl Case for AttributionCase {
    fn label(&self) -> String {
        format!(
            "direct {:?}, results {:?}, w_u {:?}",
            self.direct.size(),
            self.results.size(),
            self.w_u.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("direct", &self.direct),
            ("results", &self.results),
            ("w_u", &self.w_u),
            ("tokens", &self.tokens),
        ]
    }
}

/// The attribution of `direct` and each of `results` to the logit of `targets[i]` at
/// position `i` (`rows` positions from the start).
fn attribution(c: &AttributionCase, targets: &Tensor, with_direct: bool) -> Result<Tensor> {
    let rows = targets.size()[0];
    let columns = c.w_u.f_index_select(1, targets)?; // [d_model, rows]
    let heads = Tensor::f_einsum(
        "scd,ds->sc",
        &[&c.results.f_narrow(0, 0, rows)?, &columns],
        None::<&[i64]>,
    )?;
    if !with_direct {
        return Ok(heads);
    }
    let direct = Tensor::f_einsum(
        "sd,ds->s",
        &[&c.direct.f_narrow(0, 0, rows)?, &columns],
        None::<&[i64]>,
    )?;
    Ok(Tensor::f_cat(&[&direct.f_unsqueeze(1)?, &heads], 1)?)
}

pub(crate) fn logit_attribution_spec() -> Spec<AttributionCase> {
    let mut draw = Draw::new(211);
    let cases = (0..4)
        .map(|_| {
            let (seq, components, d, vocab) = (
                draw.int(2, 8),
                draw.int(1, 6),
                draw.int(3, 10),
                draw.int(4, 20),
            );
            AttributionCase {
                direct: draw.normal(&[seq, d], 0.0, 1.0),
                results: draw.normal(&[seq, components, d], 0.0, 1.0),
                w_u: draw.normal(&[d, vocab], 0.0, 1.0),
                tokens: draw.tokens(1, seq, vocab).view([seq]),
            }
        })
        .collect();
    let next = |c: &AttributionCase| -> Result<Tensor> {
        let seq = c.tokens.size()[0];
        Ok(c.tokens.f_narrow(0, 1, seq - 1)?)
    };
    let current = |c: &AttributionCase| -> Result<Tensor> {
        let seq = c.tokens.size()[0];
        Ok(c.tokens.f_narrow(0, 0, seq - 1)?)
    };
    Spec {
        exercise: "logit_attribution",
        cases,
        reference: Box::new(move |c: &AttributionCase| attribution(c, &next(c)?, true)),
        mutants: vec![
            Mutant::new(
                "each position's attribution is to the logit of its own token; position i predicts the *next* token, tokens[i + 1]",
                move |c: &AttributionCase| attribution(c, &current(c)?, true),
            ),
            Mutant::new(
                "the direct path (embeddings straight to the unembedding) is missing: it is column 0, before the heads",
                move |c: &AttributionCase| attribution(c, &next(c)?, false),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-4,
            rtol: 1e-4,
        },
    }
}

/// Checks `logit_attribution(direct, results, w_u, tokens)`: at each position `i` but the
/// last, how much the direct path and each component's output add to the logit of the next
/// token, `x · W_U[:, tokens[i + 1]]`.
///
/// # Shapes
/// - `direct`: `[seq, d_model]`; `results`: `[seq, n_components, d_model]`;
///   `w_u`: `[d_model, d_vocab]`; `tokens`: `[seq]` → `[seq − 1, 1 + n_components]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn logit_attribution(
    f: impl Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Report> {
    logit_attribution_spec().check(&|c| f(&c.direct, &c.results, &c.w_u, &c.tokens))
}

impl Case for ModelCase {
    fn label(&self) -> String {
        self.describe()
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("tokens", &self.tokens)]
    }
}

/// Mean next-token cross-entropy of `logits` on `tokens`.
fn loss(logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
    let n = tokens.size()[1];
    let log_probs = logits
        .f_narrow(1, 0, n - 1)?
        .f_log_softmax(-1, Kind::Float)?;
    let targets = tokens.f_narrow(1, 1, n - 1)?.f_unsqueeze(-1)?;
    Ok(log_probs
        .f_gather(-1, &targets, false)?
        .f_mean(Kind::Float)?
        .f_neg()?)
}

pub(crate) fn head_ablation_spec() -> Result<Spec<ModelCase>> {
    let mut draw = Draw::new(212);
    let cases = (0..3)
        .map(|i| {
            let layers = draw.int(1, 2) as usize;
            model_case(&mut draw, 212 + i, layers, true, vec![HookPoint::Embed])
        })
        .collect::<Result<Vec<_>>>()?;
    let each_head = |c: &ModelCase, ablation: Ablation, minus_clean: bool| -> Result<Tensor> {
        let clean = if minus_clean {
            loss(&c.logits, &c.tokens)?.f_double_value(&[])?
        } else {
            0.0
        };
        Ok(ablate_each_head(&c.model, &c.tokens, ablation, |logits| {
            Ok(loss(logits, &c.tokens)?.f_sub_scalar(clean)?)
        })?
        .scores
        .f_to_kind(Kind::Float)?)
    };
    Ok(Spec {
        exercise: "head_ablation_increase",
        cases,
        reference: Box::new(move |c: &ModelCase| each_head(c, Ablation::Zero, true)),
        mutants: vec![
            Mutant::new(
                "this is the loss with the head ablated; subtract the loss of the model as it is, to get how much ablating the head raises it",
                move |c: &ModelCase| each_head(c, Ablation::Zero, false),
            ),
            Mutant::new(
                "every head of the layer is ablated at once; ablate one head (its slice of hook_z), the others untouched",
                |c: &ModelCase| {
                    let (layers, heads) = (c.model.cfg().n_layers, c.model.cfg().n_heads);
                    let clean = loss(&c.logits, &c.tokens)?;
                    let mut rows = Vec::new();
                    for layer in 0..layers {
                        let logits = ablate(
                            &c.model,
                            &c.tokens,
                            &[Component::Attn { layer }],
                            Ablation::Zero,
                            None,
                        )?;
                        let rise = loss(&logits, &c.tokens)?.f_sub(&clean)?;
                        rows.push(rise.f_expand([heads as i64], false)?);
                    }
                    Ok(Tensor::f_stack(&rows, 0)?)
                },
            ),
        ],
        compare: Compare::Values {
            atol: 1e-4,
            rtol: 1e-3,
        },
    })
}

/// Checks `head_ablation_increase(model, tokens)`: for each head, how much the model's mean
/// next-token loss on `tokens` rises when that head's output (`hook_z`, every position) is
/// set to zero.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` → `[n_layers, n_heads]`
///
/// # Errors
/// In strict mode, a check that does not pass; an error of the library's own (a bug).
pub fn head_ablation_increase(
    f: impl Fn(&mechlens_models::HookedTransformer, &Tensor) -> Result<Tensor>,
) -> Result<Report> {
    head_ablation_spec()?.check(&|c| f(&c.model, &c.tokens))
}
