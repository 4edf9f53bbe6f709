//! Induction data (Olsson et al. 2022): random tokens in which a segment of random length is
//! repeated at a random later offset. A model can predict the second copy only by finding
//! the token's earlier occurrence and copying what followed it (an induction head); with
//! both the length and the distance random, positions alone do not tell it where to look.

use mechlens_core::{Error, Result, SplitMix64};
use mechlens_train::{Batch, IGNORE, TrainData};
use tch::{Kind, Tensor};

/// What [`InductionData`] generates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InductionOptions {
    /// Token ids are drawn from `0..vocab`.
    pub vocab: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Shortest repeated segment.
    pub min_repeat: usize,
    /// Longest repeated segment.
    pub max_repeat: usize,
    /// Seed of the stream (each step's batch has its own stream derived from it).
    pub seed: u64,
    /// Which positions the training loss scores (as [`TrainData`]; [`InductionData::sample`]
    /// does not look at it).
    pub objective: InductionObjective,
}

/// The positions a model trained on [`InductionData`] is scored on.
///
/// The two give different circuits (reproduction 02): on random tokens most positions cannot
/// be predicted at all, and scoring them adds only noise to the gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InductionObjective {
    /// Language modelling: every position predicts its next token.
    #[default]
    EveryToken,
    /// Only the positions whose next token repeats the first copy
    /// ([`InductionBatch::induction`]): the loss the reproduction measures.
    RepeatedTokens,
}

impl Default for InductionOptions {
    fn default() -> Self {
        Self {
            vocab: 64,
            seq_len: 64,
            batch: 32,
            min_repeat: 6,
            max_repeat: 24,
            seed: 0,
            objective: InductionObjective::EveryToken,
        }
    }
}

/// A batch of induction data.
///
/// # Shapes
/// - `tokens`: `[batch, seq_len]` int64
/// - `induction`: `[batch, seq_len]` bool: positions whose next token repeats the first copy
///   (inside the second copy, from its first token on): what only induction can predict.
pub struct InductionBatch {
    /// The tokens.
    pub tokens: Tensor,
    /// Where the next token is predictable by induction.
    pub induction: Tensor,
}

/// The generator: [`InductionData::sample`] gives the batch of a step; as [`TrainData`] it
/// trains on next-token prediction over every position.
pub struct InductionData {
    opts: InductionOptions,
}

impl InductionData {
    /// # Errors
    /// [`Error::InvalidInput`] when the sizes cannot hold two copies (`2·max_repeat >
    /// seq_len`), a length range is empty or zero, or `vocab`, `batch` are 0.
    pub fn new(opts: InductionOptions) -> Result<Self> {
        let o = &opts;
        if o.vocab == 0 || o.batch == 0 {
            return Err(Error::invalid(
                "induction data",
                "vocab and batch must be at least 1",
            ));
        }
        if o.min_repeat == 0 || o.min_repeat > o.max_repeat {
            return Err(Error::invalid(
                "induction data",
                format!(
                    "the repeat lengths must satisfy 1 ≤ min_repeat ≤ max_repeat, got {}..={}",
                    o.min_repeat, o.max_repeat
                ),
            ));
        }
        if 2 * o.max_repeat + 1 > o.seq_len {
            return Err(Error::invalid(
                "induction data",
                format!(
                    "seq_len {} cannot hold two copies of a {}-token segment after a first token",
                    o.seq_len, o.max_repeat
                ),
            ));
        }
        Ok(Self { opts })
    }

    /// The settings.
    pub fn options(&self) -> &InductionOptions {
        &self.opts
    }

    /// The batch of `step`.
    ///
    /// # Errors
    /// Only libtorch's.
    pub fn sample(&self, step: usize) -> Result<InductionBatch> {
        let o = &self.opts;
        let mut rng = SplitMix64::new(o.seed ^ (step as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let (n, len) = (o.batch, o.seq_len);
        let mut tokens = Vec::with_capacity(n * len);
        let mut induction = vec![false; n * len];
        for row in 0..n {
            let mut t: Vec<i64> = (0..len).map(|_| rng.below(o.vocab as u64) as i64).collect();
            let span = o.min_repeat + rng.below((o.max_repeat - o.min_repeat + 1) as u64) as usize;
            // First copy anywhere after position 0, second copy anywhere after the first.
            let first = 1 + rng.below((len - 2 * span) as u64) as usize;
            let earliest = first + span;
            let second = earliest + rng.below((len - span - earliest + 1) as u64) as usize;
            for i in 0..span {
                t[second + i] = t[first + i];
            }
            // Position p predicts p+1: inside the second copy, from its first token to the
            // one before its last, the next token is known from the first copy.
            for p in second..second + span - 1 {
                induction[row * len + p] = true;
            }
            tokens.extend(t);
        }
        let shape = [n as i64, len as i64];
        Ok(InductionBatch {
            tokens: Tensor::from_slice(&tokens).f_view(shape)?,
            induction: Tensor::from_slice(&induction).f_view(shape)?,
        })
    }
}

impl TrainData for InductionData {
    fn batch(&mut self, step: usize) -> Result<Batch> {
        let sample = self.sample(step)?;
        let mut batch = Batch::next_token(&sample.tokens)?;
        if self.opts.objective == InductionObjective::RepeatedTokens {
            let unscored = sample.induction.f_logical_not()?;
            batch.targets = batch.targets.f_masked_fill(&unscored, IGNORE)?;
        }
        Ok(batch)
    }
}

/// Mean next-token loss over the positions `mask` marks.
///
/// # Shapes
/// - `logits`: `[batch, pos, d_vocab]`, `tokens`, `mask`: `[batch, pos]` → scalar
///
/// # Errors
/// [`Error::InvalidInput`] when `mask` marks no position before the last.
pub fn masked_next_token_loss(logits: &Tensor, tokens: &Tensor, mask: &Tensor) -> Result<f64> {
    let p = tokens.size()[1];
    let logp = logits
        .f_narrow(1, 0, p - 1)?
        .f_log_softmax(-1, Kind::Float)?;
    let next = tokens.f_narrow(1, 1, p - 1)?.f_unsqueeze(-1)?;
    let nll = logp
        .f_gather(-1, &next, false)?
        .f_squeeze_dim(-1)?
        .f_neg()?;
    let m = mask.f_narrow(1, 0, p - 1)?;
    let picked = nll.f_masked_select(&m)?;
    if picked.numel() == 0 {
        return Err(Error::invalid("loss mask", "it marks no position"));
    }
    Ok(picked.f_mean(Kind::Double)?.f_double_value(&[])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marked_positions_predict_the_first_copy_and_layouts_vary() {
        let data = InductionData::new(InductionOptions {
            batch: 50,
            ..Default::default()
        })
        .unwrap();
        let b = data.sample(3).unwrap();
        let tokens: Vec<Vec<i64>> = Vec::try_from(&b.tokens).unwrap();
        let marks: Vec<Vec<bool>> = Vec::try_from(&b.induction).unwrap();
        let mut lengths = std::collections::HashSet::new();
        let mut starts = std::collections::HashSet::new();
        for (t, m) in tokens.iter().zip(&marks) {
            let marked: Vec<usize> = (0..t.len()).filter(|&p| m[p]).collect();
            let (start, span) = (marked[0], marked.len() + 1);
            // The segment at `start` occurred earlier at some offset `d` ≥ span.
            let found = (span..=start).any(|d| (0..span).all(|i| t[start + i] == t[start - d + i]));
            assert!(found, "row {t:?} marks {marked:?}");
            lengths.insert(span);
            starts.insert(start);
        }
        assert!(
            lengths.len() > 5 && starts.len() > 10,
            "{lengths:?} {starts:?}"
        );
        assert!(
            b.tokens.equal(&data.sample(3).unwrap().tokens),
            "a step's batch repeats"
        );
        assert!(
            InductionData::new(InductionOptions {
                seq_len: 40,
                max_repeat: 24,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn the_repeated_tokens_objective_scores_only_what_induction_predicts() {
        let opts = InductionOptions {
            batch: 8,
            ..Default::default()
        };
        let sample = InductionData::new(opts).unwrap().sample(5).unwrap();
        let every = InductionData::new(opts).unwrap().batch(5).unwrap();
        let mut repeated = InductionData::new(InductionOptions {
            objective: InductionObjective::RepeatedTokens,
            ..opts
        })
        .unwrap();
        let repeated = repeated.batch(5).unwrap();
        assert!(repeated.tokens.equal(&every.tokens));
        // Scored exactly where the mask marks, and there with the next token.
        let scored = repeated.targets.ne(IGNORE);
        assert!(scored.equal(&sample.induction));
        let next = every.targets.masked_select(&sample.induction);
        assert!(repeated.targets.masked_select(&scored).equal(&next));
        // Every-token scores all but the last position.
        assert_eq!(
            every.targets.ne(IGNORE).sum(Kind::Int64).int64_value(&[]),
            8 * 63
        );
    }

    #[test]
    fn a_larger_batch_extends_a_smaller_one_row_for_row() {
        // A row does not depend on the batch size, so a 64-row sample of a probe is its first
        // 64 rows (reproduction 02 reads the control on both).
        let rows = |batch| {
            InductionData::new(InductionOptions {
                batch,
                seed: 999,
                ..Default::default()
            })
            .unwrap()
            .sample(0)
            .unwrap()
        };
        let (small, large) = (rows(64), rows(256));
        assert!(small.tokens.equal(&large.tokens.narrow(0, 0, 64)));
        assert!(small.induction.equal(&large.induction.narrow(0, 0, 64)));
        assert!(!large.tokens.narrow(0, 64, 64).equal(&small.tokens));
    }
}
