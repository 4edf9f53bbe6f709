//! Head detectors: how closely each head's attention matches a pattern — attending to the
//! previous token, to earlier copies of the current token, or to the token after an earlier
//! copy (induction). TransformerLens' `detect_head` definitions and scores, and ARENA's
//! induction score on repeated random tokens.

use mechlens_core::{CacheFilter, Error, HookPoint, Result, SplitMix64};
use mechlens_models::HookedTransformer;
use tch::{Device, Kind, Tensor};

use crate::Scores;

/// The attention pattern a head is compared with.
pub enum HeadPattern {
    /// Each position attends to the one before it.
    PreviousToken,
    /// Each position attends to earlier positions holding the same token.
    DuplicateToken,
    /// Each position attends to the positions just after earlier copies of its token.
    Induction,
    /// A lower-triangular `[pos, pos]` pattern of your own.
    Custom(Tensor),
}

/// How a head's pattern `A` is compared with the detection pattern `D`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorMeasure {
    /// `Σ A⊙D / Σ A`: the share of attention on the pattern (TL's default).
    #[default]
    Mul,
    /// `1 − pos · mean|A − D|`, rounded to 3 decimals as TL does.
    Abs,
}

/// [`detect_head`]'s options (TL's keyword arguments).
#[derive(Clone, Copy, Debug, Default)]
pub struct DetectOptions {
    /// Ignore attention to the first position.
    pub exclude_bos: bool,
    /// Ignore attention to the query's own position.
    pub exclude_current_token: bool,
    /// How to score.
    pub error_measure: ErrorMeasure,
}

fn check_tokens(model: &HookedTransformer, tokens: &Tensor) -> Result<Tensor> {
    let tokens = match tokens.dim() {
        1 => tokens.shallow_clone(),
        2 if tokens.size()[0] == 1 => tokens.f_get(0)?,
        _ => {
            return Err(Error::ShapeMismatch {
                what: "tokens for head detection".into(),
                expected: "one sequence, [pos] or [1, pos]".into(),
                got: tokens.size(),
            });
        }
    };
    let (n, n_ctx) = (tokens.size()[0], model.cfg().n_ctx as i64);
    if n < 2 || n >= n_ctx {
        return Err(Error::invalid(
            "tokens for head detection",
            format!("{n} positions; expected 2..{n_ctx} (at least two, and within the context)"),
        ));
    }
    Ok(tokens.f_to_kind(Kind::Int64)?.f_to_device(Device::Cpu)?)
}

/// The detection pattern of `kind` for one sequence, `[pos, pos]` (TL's
/// `get_*_detection_pattern`).
///
/// # Errors
/// A custom pattern that is not `[pos, pos]` lower-triangular.
pub fn detection_pattern(kind: &HeadPattern, tokens: &Tensor) -> Result<Tensor> {
    let n = tokens.size()[0];
    let opts = (Kind::Float, Device::Cpu);
    let duplicate = || -> Result<Tensor> {
        let row = tokens.f_unsqueeze(0)?.f_expand([n, n], false)?;
        let same = row
            .f_eq_tensor(&row.f_transpose(0, 1)?)?
            .f_to_kind(Kind::Float)?;
        // A token is trivially a duplicate of itself: not counted.
        let off_diagonal = Tensor::f_eye(n, opts)?.f_neg()?.f_add_scalar(1.0)?;
        Ok(same.f_mul(&off_diagonal)?.f_tril(0)?)
    };
    match kind {
        HeadPattern::PreviousToken => Ok(Tensor::f_eye(n, opts)?.f_roll([-1], [1])?.f_tril(-1)?),
        HeadPattern::DuplicateToken => duplicate(),
        HeadPattern::Induction => {
            // Attend to the position after each earlier copy: the duplicate pattern shifted
            // one key to the right (nothing wraps into key 0).
            let shifted = duplicate()?.f_roll([1], [1])?;
            let _ = shifted.f_narrow(1, 0, 1)?.f_zero_()?;
            Ok(shifted.f_tril(0)?)
        }
        HeadPattern::Custom(pattern) => {
            let pattern = pattern.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?;
            if pattern.size() != [n, n] {
                return Err(Error::ShapeMismatch {
                    what: "detection pattern".into(),
                    expected: format!("[{n}, {n}] (pos × pos of the tokens)"),
                    got: pattern.size(),
                });
            }
            let above = pattern
                .f_triu(1)?
                .f_abs()?
                .f_sum(Kind::Double)?
                .double_value(&[]);
            if above != 0.0 {
                return Err(Error::invalid(
                    "detection pattern",
                    "must be lower triangular: a query cannot attend to later keys",
                ));
            }
            Ok(pattern)
        }
    }
}

/// How closely each head's attention matches `detection`, `[n_heads]`: [`detect_head`]'s
/// score for one layer's pattern (TransformerLens' `detect_head` with `Mul`: the share of the
/// head's attention that falls on the detection pattern, `Σ A⊙D / Σ A`; or with `Abs`).
///
/// # Shapes
/// - `pattern`: `[n_heads, q, k]` (one sequence); `detection`: `[q, k]` → `[n_heads]`
///
/// # Errors
/// A pattern that is not `[n_heads, pos, pos]` with `detection`'s `pos`.
pub fn pattern_scores(pattern: &Tensor, detection: &Tensor, opts: DetectOptions) -> Result<Tensor> {
    let n = detection.size()[0];
    let size = pattern.size();
    if size.len() != 3 || size[1] != n || size[2] != n || detection.size() != [n, n] {
        return Err(Error::ShapeMismatch {
            what: "attention pattern".into(),
            expected: format!(
                "[n_heads, {n}, {n}] (one sequence; the detection pattern is {:?})",
                detection.size()
            ),
            got: size,
        });
    }
    let detection = detection.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?;
    let a = pattern.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?; // [head, q, k]
    // The (q, k) entries that count: all but the first key and/or the diagonal, as asked.
    let mut keep = Tensor::f_ones([n, n], (Kind::Float, Device::Cpu))?;
    if opts.exclude_bos {
        let _ = keep.f_narrow(1, 0, 1)?.f_zero_()?;
    }
    if opts.exclude_current_token {
        keep = keep.f_mul(
            &Tensor::f_eye(n, (Kind::Float, Device::Cpu))?
                .f_neg()?
                .f_add_scalar(1.0)?,
        )?;
    }
    Ok(match opts.error_measure {
        ErrorMeasure::Mul => {
            let a = a.f_mul(&keep)?;
            let on = a.f_mul(&detection)?.f_sum_dim_intlist(
                [-2i64, -1].as_slice(),
                false,
                Kind::Float,
            )?;
            on.f_div(&a.f_sum_dim_intlist([-2i64, -1].as_slice(), false, Kind::Float)?)?
        }
        ErrorMeasure::Abs => {
            let diff = a.f_sub(&detection)?.f_abs()?.f_mul(&keep)?;
            let err = diff
                .f_mean_dim([-2i64, -1].as_slice(), false, Kind::Double)?
                .f_mul_scalar(n as f64)?;
            // TL rounds the error to 3 decimals.
            err.f_mul_scalar(1000.0)?
                .f_round()?
                .f_div_scalar(1000.0)?
                .f_neg()?
                .f_add_scalar(1.0)?
                .f_to_kind(Kind::Float)?
        }
    })
}

/// Scores every head, `[n_layers, n_heads]`, on how closely its attention on `tokens` matches
/// `pattern` (TL's `detect_head` with all heads).
///
/// # Errors
/// Tokens that are not one sequence of 2..n_ctx positions, a bad custom pattern.
pub fn detect_head(
    model: &HookedTransformer,
    tokens: &Tensor,
    pattern: HeadPattern,
    opts: DetectOptions,
) -> Result<Scores> {
    let tokens = check_tokens(model, tokens)?;
    let detection = detection_pattern(&pattern, &tokens)?;
    let layers = model.cfg().n_layers;
    let names: Vec<HookPoint> = (0..layers).map(HookPoint::Pattern).collect();
    let device = model.w_e().device();
    let (_, cache) = model.run_with_cache(
        &tokens.f_unsqueeze(0)?.f_to_device(device)?,
        CacheFilter::Names(names),
    )?;
    let mut rows = Vec::with_capacity(layers);
    for layer in 0..layers {
        let a = cache.get(HookPoint::Pattern(layer))?.f_get(0)?;
        rows.push(pattern_scores(&a, &detection, opts)?);
    }
    Scores::new(Tensor::f_stack(&rows, 0)?, &["layer", "head"], "score")
}

/// `[batch, 1 + 2·seq_len]`: BOS (when the model has one in its vocabulary, else token 0), then `seq_len` random
/// tokens, then the same tokens again; deterministic for a `seed`.
///
/// # Errors
/// A `seq_len` or `batch` of 0.
pub fn repeated_random_tokens(
    model: &HookedTransformer,
    seq_len: usize,
    batch: usize,
    seed: u64,
) -> Result<Tensor> {
    if seq_len == 0 || batch == 0 {
        return Err(Error::invalid(
            "repeated tokens",
            "seq_len and batch must be at least 1",
        ));
    }
    let vocab = model.cfg().d_vocab as u64;
    let bos = model
        .cfg()
        .bos_token_id
        .filter(|&b| b >= 0 && (b as u64) < vocab)
        .unwrap_or(0);
    let mut rng = SplitMix64::new(seed);
    let ids: Vec<i64> = (0..batch * seq_len)
        .map(|_| rng.below(vocab) as i64)
        .collect();
    repeat_tokens(
        &Tensor::from_slice(&ids).view([batch as i64, seq_len as i64]),
        bos,
    )
}

/// `bos`, then `prefix`, then `prefix` again, for each row: the repeated sequences on which
/// an induction head predicts the second half.
///
/// # Shapes
/// - `prefix`: `[batch, seq_len]` token ids → `[batch, 1 + 2·seq_len]`
///
/// # Errors
/// A `prefix` that is not two-dimensional.
pub fn repeat_tokens(prefix: &Tensor, bos: i64) -> Result<Tensor> {
    if prefix.dim() != 2 {
        return Err(Error::ShapeMismatch {
            what: "prefix tokens".into(),
            expected: "[batch, seq_len]".into(),
            got: prefix.size(),
        });
    }
    let prefix = prefix.f_to_kind(Kind::Int64)?;
    let first = prefix.f_narrow(1, 0, 1)?.f_full_like(bos)?;
    Ok(Tensor::f_cat(&[&first, &prefix, &prefix], 1)?)
}

/// ARENA's induction score: on `tokens` = BOS + a random sequence of `seq_len` + the same
/// again, the mean attention from each second-half token to the token after its first
/// occurrence (the pattern's diagonal at offset `1 − seq_len`), per head, `[n_layers,
/// n_heads]`; with the same numbers as a table (`layer, head, induction_score`).
///
/// # Errors
/// Tokens not of length `1 + 2·seq_len`, or longer than the context.
pub fn induction_scores(
    model: &HookedTransformer,
    tokens: &Tensor,
    seq_len: usize,
) -> Result<Scores> {
    let size = tokens.size();
    let expected = 1 + 2 * seq_len as i64;
    if size.len() != 2 || size[1] != expected {
        return Err(Error::ShapeMismatch {
            what: "repeated tokens".into(),
            expected: format!("[batch, {expected}] (BOS + 2 × seq_len {seq_len})"),
            got: size,
        });
    }
    let layers = model.cfg().n_layers;
    let names: Vec<HookPoint> = (0..layers).map(HookPoint::Pattern).collect();
    let (_, cache) = model.run_with_cache(tokens, CacheFilter::Names(names))?;
    let mut rows = Vec::with_capacity(layers);
    for layer in 0..layers {
        rows.push(induction_stripe(
            cache.get(HookPoint::Pattern(layer))?,
            seq_len,
        )?);
    }
    let scores = Tensor::f_stack(&rows, 0)?;
    Scores::new(scores, &["layer", "head"], "induction_score")
}

/// One layer's induction score per head, `[n_heads]`: on repeated tokens (BOS + `seq_len`
/// tokens + the same again), the mean attention from each second-half token to the token
/// after its first occurrence, which is the pattern's diagonal at offset `1 − seq_len`
/// (ARENA's induction score; [`induction_scores`] for every layer).
///
/// # Shapes
/// - `pattern`: `[batch, n_heads, 1 + 2·seq_len, 1 + 2·seq_len]` → `[n_heads]`
///
/// # Errors
/// A pattern of another shape.
pub fn induction_stripe(pattern: &Tensor, seq_len: usize) -> Result<Tensor> {
    let n = 1 + 2 * seq_len as i64;
    let size = pattern.size();
    if size.len() != 4 || size[2] != n || size[3] != n {
        return Err(Error::ShapeMismatch {
            what: "attention pattern".into(),
            expected: format!("[batch, n_heads, {n}, {n}] (BOS + 2 × seq_len {seq_len})"),
            got: size,
        });
    }
    let stripe = pattern.f_diagonal(1 - seq_len as i64, -2, -1)?; // [b, h, seq_len]
    Ok(stripe.f_mean_dim([0i64, 2].as_slice(), false, Kind::Float)?)
}
