//! What a training step reads: [`Batch`] (tokens and the token each position should
//! predict) and [`TrainData`], which hands out the batch of a given step, so that a resumed run
//! sees exactly the batches the uninterrupted one would have.

use mechlens_core::SplitMix64;
use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

/// A position whose target is this is not scored (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// One step's tokens and targets.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` int64
/// - `targets`: `[batch, pos]` int64, [`IGNORE`] where a position is not scored
#[derive(Debug)]
pub struct Batch {
    /// Model input.
    pub tokens: Tensor,
    /// The token each position should predict.
    pub targets: Tensor,
}

impl Batch {
    /// Language modelling: every position predicts the next token; the last one is not scored.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `tokens` is `[batch, pos]` with `pos ≥ 2`.
    pub fn next_token(tokens: &Tensor) -> Result<Self> {
        let size = tokens.size();
        if size.len() != 2 || size[1] < 2 {
            return Err(Error::ShapeMismatch {
                what: "tokens to train on".into(),
                expected: "[batch, pos] with at least 2 positions".into(),
                got: size,
            });
        }
        let tokens = tokens.f_to_kind(Kind::Int64)?;
        let shifted = tokens.f_narrow(1, 1, size[1] - 1)?;
        let last = Tensor::f_full([size[0], 1], IGNORE, (Kind::Int64, tokens.device()))?;
        Ok(Self {
            targets: Tensor::f_cat(&[shifted, last], 1)?,
            tokens,
        })
    }

    /// Classification at the last position (modular addition's `a b =` → `c`): only the last
    /// position is scored, with `labels` `[batch]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `tokens` is `[batch, pos]` and `labels` `[batch]`.
    pub fn last_position(tokens: &Tensor, labels: &Tensor) -> Result<Self> {
        let size = tokens.size();
        if size.len() != 2 || size[1] < 1 || labels.size() != [size[0]] {
            return Err(Error::ShapeMismatch {
                what: "tokens and labels to train on".into(),
                expected: "tokens [batch, pos] and labels [batch]".into(),
                got: [size, labels.size()].concat(),
            });
        }
        let tokens = tokens.f_to_kind(Kind::Int64)?;
        let targets = tokens.f_full_like(IGNORE)?;
        let last = labels.f_to_kind(Kind::Int64)?.f_unsqueeze(1)?;
        let targets = targets.f_narrow(1, 0, size[1] - 1)?;
        Ok(Self {
            targets: Tensor::f_cat(&[targets, last], 1)?,
            tokens,
        })
    }

    /// The rows `index` of both.
    pub fn rows(&self, index: &Tensor) -> Result<Self> {
        Ok(Self {
            tokens: self.tokens.f_index_select(0, index)?,
            targets: self.targets.f_index_select(0, index)?,
        })
    }

    /// Rows in the batch.
    pub fn len(&self) -> i64 {
        self.tokens.size().first().copied().unwrap_or(0)
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy (shallow: the tensors are shared).
    pub fn share(&self) -> Self {
        Self {
            tokens: self.tokens.shallow_clone(),
            targets: self.targets.shallow_clone(),
        }
    }
}

/// The batch of each step.
pub trait TrainData {
    /// The batch of `step` (0-based). Must depend only on `step` (and the data's own seed),
    /// so that resuming gives the same batches.
    ///
    /// # Errors
    /// Whatever producing the batch can fail with.
    fn batch(&mut self, step: usize) -> Result<Batch>;
}

/// Any `FnMut(step) -> Result<Batch>` is training data (e.g. a generator seeded by step).
impl<F: FnMut(usize) -> Result<Batch>> TrainData for F {
    fn batch(&mut self, step: usize) -> Result<Batch> {
        self(step)
    }
}

/// The same batch every step: full-batch training (grokking).
pub struct FullBatch(pub Batch);

impl TrainData for FullBatch {
    fn batch(&mut self, _step: usize) -> Result<Batch> {
        Ok(self.0.share())
    }
}

/// Mini-batches of `size` rows drawn from a fixed set, a fresh permutation every epoch,
/// seeded by `seed` and the epoch (so any step's batch can be produced alone).
pub struct MiniBatches {
    all: Batch,
    size: i64,
    seed: u64,
}

impl MiniBatches {
    /// Batches of `size` rows of `all`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `size` is 0 or more than the rows of `all`.
    pub fn new(all: Batch, size: usize, seed: u64) -> Result<Self> {
        let size = size as i64;
        if size == 0 || size > all.len() {
            return Err(Error::invalid(
                "mini-batch size",
                format!(
                    "must be in 1..={} (the rows of the data), got {size}",
                    all.len()
                ),
            ));
        }
        Ok(Self { all, size, seed })
    }
}

impl TrainData for MiniBatches {
    fn batch(&mut self, step: usize) -> Result<Batch> {
        let per_epoch = (self.all.len() / self.size).max(1) as usize;
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        // Fisher–Yates with the epoch's own stream.
        let mut rng = SplitMix64::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let n = self.all.len() as usize;
        let mut order: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let start = within * self.size as usize;
        let rows = Tensor::from_slice(&order[start..start + self.size as usize])
            .f_to_device(self.all.tokens.device())?;
        self.all.rows(&rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_token_targets_are_the_tokens_shifted() {
        let t = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([2, 3]);
        let b = Batch::next_token(&t).unwrap();
        let targets: Vec<i64> = Vec::try_from(b.targets.flatten(0, -1)).unwrap();
        assert_eq!(targets, [2, 3, IGNORE, 5, 6, IGNORE]);
        let err = Batch::next_token(&Tensor::from_slice(&[1i64, 2])).unwrap_err();
        assert!(err.to_string().contains("[batch, pos]"), "{err}");
    }

    #[test]
    fn mini_batches_cover_every_row_once_per_epoch_and_repeat_by_step() {
        let t = Tensor::arange(12, (Kind::Int64, tch::Device::Cpu)).view([6, 2]);
        let mut data = MiniBatches::new(Batch::next_token(&t).unwrap(), 2, 7).unwrap();
        let mut seen: Vec<i64> = (0..3)
            .flat_map(|s| Vec::<i64>::try_from(data.batch(s).unwrap().tokens.select(1, 0)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 2, 4, 6, 8, 10]);
        let again = data.batch(1).unwrap().tokens;
        assert_eq!(again, data.batch(1).unwrap().tokens);
        assert!(MiniBatches::new(Batch::next_token(&t).unwrap(), 7, 0).is_err());
    }
}
