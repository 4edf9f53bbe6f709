//! The logit lens (nostalgebraist 2020): the residual stream after each layer read through
//! the final norm and the unembedding, as if the model stopped there; and direct logit
//! attribution, each head's or layer's own push on an answer's logit.

use mechlens_core::{ActivationCache, Error, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::*;
use tch::{Kind, Tensor};

use crate::{CacheAnalysis, Decompose, Pos, ResidOptions, Stack};

/// What [`logit_lens`] returns.
pub struct LogitLens {
    /// Log-probabilities, `[components, pos, d_vocab]` (components: `"0_pre"` ... `"final_post"`).
    pub log_probs: Tensor,
    /// Component names.
    pub labels: Vec<String>,
    /// One row per (component, pos, top-k rank): `component, layer, pos, rank, token_id,
    /// token, prob`, and when an answer was given `answer_rank` (1 = top) and `answer_prob`.
    pub table: DataFrame,
}

/// What [`logit_lens`] reads and reports.
#[derive(Clone, Copy, Debug)]
pub struct LensOptions {
    /// Which row of the cached batch (default 0).
    pub batch: usize,
    /// How many of the most likely tokens per position (default 5).
    pub top_k: usize,
    /// A token whose rank and probability to report at every layer (default none).
    pub answer: Option<i64>,
}

impl Default for LensOptions {
    fn default() -> Self {
        Self {
            batch: 0,
            top_k: 5,
            answer: None,
        }
    }
}

/// The logit lens on one row of a cached run: every layer's residual stream, normalised by
/// the final norm (recomputed per layer, as TransformerLens does), unembedded; the
/// `top_k` most likely tokens at each position, and where `answer` ranks.
///
/// ```no_run
/// # use mechlens_analysis::{LensOptions, logit_lens};
/// # fn f(model: &mechlens_models::HookedTransformer, cache: &mechlens_core::ActivationCache) -> mechlens_core::Result<()> {
/// let lens = logit_lens(model, cache, LensOptions { answer: Some(42), ..LensOptions::default() })?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// A cache without the residual stream, `batch` out of range, `top_k` of 0 or above the
/// vocabulary, an answer outside it.
pub fn logit_lens(
    model: &HookedTransformer,
    cache: &ActivationCache,
    opts: LensOptions,
) -> Result<LogitLens> {
    let LensOptions {
        batch,
        top_k: k,
        answer,
    } = opts;
    let vocab = model.cfg().d_vocab;
    if k == 0 || k > vocab {
        return Err(Error::invalid(
            "top_k",
            format!("{k}: expected 1..={vocab}"),
        ));
    }
    if let Some(a) = answer.filter(|&a| a < 0 || a >= vocab as i64) {
        return Err(Error::invalid(
            "answer",
            format!("token id {a} is outside the vocabulary 0..{vocab}"),
        ));
    }
    let opts = ResidOptions {
        apply_ln: true,
        ..ResidOptions::default()
    };
    let Stack { tensor, labels } = cache.accumulated_resid(model, opts)?; // [c, b, p, d]
    let rows = tensor.size()[1];
    if batch as i64 >= rows {
        return Err(Error::invalid(
            "batch",
            format!("{batch} is out of range for a batch of {rows}"),
        ));
    }
    let resid = tensor.f_select(1, batch as i64)?; // [c, p, d]
    let logits = resid.f_matmul(&model.w_u())?.f_add(&model.b_u()?)?;
    let log_probs = logits
        .f_to_kind(Kind::Float)?
        .f_log_softmax(-1, Kind::Float)?;
    let (top, ids) = log_probs.f_topk(k as i64, -1, true, true)?; // [c, p, k]
    let p = log_probs.size()[1];
    let top: Vec<f64> = Vec::try_from(top.f_exp()?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)?;
    let ids: Vec<i64> = Vec::try_from(ids.f_flatten(0, -1)?)?;
    let answer_stats = match answer {
        Some(a) => {
            let lp = log_probs.f_select(-1, a)?; // [c, p]
            let rank = log_probs
                .f_gt_tensor(&lp.f_unsqueeze(-1)?)?
                .f_sum_dim_intlist(-1, false, Kind::Int64)?;
            let prob: Vec<f64> =
                Vec::try_from(lp.f_exp()?.f_to_kind(Kind::Double)?.f_flatten(0, -1)?)?;
            let rank: Vec<i64> = Vec::try_from(rank.f_flatten(0, -1)?)?;
            Some((rank, prob))
        }
        None => None,
    };
    let n = ids.len();
    let (mut comp, mut layer, mut pos, mut place) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut tokens, mut answer_rank, mut answer_prob) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let tokenizer = model.tokenizer();
    for (i, &id) in ids.iter().enumerate() {
        let (cp, r) = (i / k, i % k);
        let (ci, pi) = (cp / p as usize, cp % p as usize);
        comp.push(labels[ci].clone());
        layer.push(ci as u32);
        pos.push(pi as u32);
        place.push(r as u32 + 1);
        tokens.push(
            tokenizer
                .and_then(|t| t.token_to_str(id).ok())
                .unwrap_or_else(|| format!("<{id}>")),
        );
        if let Some((rank, prob)) = &answer_stats {
            answer_rank.push(rank[cp] as u32 + 1);
            answer_prob.push(prob[cp]);
        }
    }
    let mut table = df!(
        "component" => comp, "layer" => layer, "pos" => pos, "rank" => place,
        "token_id" => ids, "token" => tokens, "prob" => top,
    )?;
    if answer.is_some() {
        table = table.hstack(&[
            Column::new("answer_rank".into(), answer_rank),
            Column::new("answer_prob".into(), answer_prob),
        ])?;
    }
    Ok(LogitLens {
        log_probs,
        labels,
        table,
    })
}

/// Which components [`direct_logit_attribution`] splits the final stream into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DlaBy {
    /// Every head's output (`L{l}H{h}`).
    Head,
    /// Embeddings and each layer's attention and MLP outputs.
    Layer,
}

/// Direct logit attribution at the last position: each component's contribution to the
/// logit of `answers` (minus `incorrect`'s), through the final norm's cached scale
/// (TransformerLens' `decompose_resid` / `stack_head_results` then `logit_attrs`).
/// Returns the stack, the attributions `[components, batch]` and a table
/// `component, batch, logit_attr`.
///
/// # Shapes
/// - `answers`, `incorrect`: `[batch]` (or a scalar)
///
/// # Errors
/// As [`CacheAnalysis::logit_attrs`].
pub fn direct_logit_attribution(
    model: &HookedTransformer,
    cache: &ActivationCache,
    by: DlaBy,
    answers: &Tensor,
    incorrect: Option<&Tensor>,
) -> Result<(Stack, Tensor, DataFrame)> {
    let opts = ResidOptions {
        pos: Pos::At(-1),
        ..ResidOptions::default()
    };
    let stack = match by {
        DlaBy::Head => cache.stack_head_results(model, opts)?,
        DlaBy::Layer => cache.decompose_resid(model, Decompose::All, opts)?,
    };
    let attrs = cache.logit_attrs(model, &stack.tensor, answers, incorrect, Pos::At(-1))?;
    let table = stack.frame(&attrs, "logit_attr")?;
    Ok((stack, attrs, table))
}
