//! Where training activations come from. A source hands out the batch for a given step, so a
//! resumed run sees exactly the batches the uninterrupted run would have.

use mechlens_core::{Error, Result, SplitMix64};
use tch::{Kind, Tensor};

/// Training batches, addressed by step.
pub trait ActivationSource {
    /// Width of the activations.
    fn d_in(&self) -> i64;

    /// The batch of step `step`, `[batch_size, d_in]` float.
    ///
    /// # Errors
    /// Whatever producing activations can fail with (a model run, a file read).
    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor>;
}

/// Activations held in memory, `[n, d_in]`, visited in a fresh seeded order each epoch.
#[derive(Debug)]
pub struct TensorSource {
    acts: Tensor,
    seed: u64,
    epoch: Option<(u64, Tensor)>,
}

impl TensorSource {
    /// A source over the rows of `acts` (any leading dims are flattened).
    ///
    /// # Shapes
    /// `acts`: `[..., d_in]`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty tensor or one with fewer than one dim.
    pub fn new(acts: &Tensor, seed: u64) -> Result<Self> {
        let shape = acts.size();
        let Some(&d_in) = shape.last() else {
            return Err(Error::invalid(
                "activations",
                "a scalar has no rows; expected [n, d_in]",
            ));
        };
        let acts = acts.f_reshape([-1, d_in])?.f_to_kind(Kind::Float)?;
        if acts.size()[0] == 0 {
            return Err(Error::invalid(
                "activations",
                "the dataset is empty (0 rows)",
            ));
        }
        Ok(Self {
            acts,
            seed,
            epoch: None,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> i64 {
        self.acts.size()[0]
    }

    /// Whether there are no rows (never true: [`TensorSource::new`] refuses).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn order(&mut self, epoch: u64) -> Result<Tensor> {
        if let Some((e, order)) = &self.epoch
            && *e == epoch
        {
            return Ok(order.shallow_clone());
        }
        let n = self.len() as usize;
        let mut rng = SplitMix64::new(self.seed ^ epoch.wrapping_mul(0x9E37_79B9));
        let mut order: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let order = Tensor::from_slice(&order);
        self.epoch = Some((epoch, order.shallow_clone()));
        Ok(order)
    }
}

impl ActivationSource for TensorSource {
    fn d_in(&self) -> i64 {
        self.acts.size()[1]
    }

    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        let n = self.len();
        let start = step as i64 * batch_size;
        let rows: Vec<i64> = (start..start + batch_size).collect();
        let mut picked = Vec::with_capacity(rows.len());
        for chunk in rows.chunk_by(|a, b| a / n == b / n) {
            let order = self.order((chunk[0] / n) as u64)?;
            let lo = chunk[0] % n;
            picked.push(order.f_narrow(0, lo, chunk.len() as i64)?);
        }
        let index = Tensor::f_cat(&picked, 0)?;
        Ok(self.acts.f_index_select(0, &index)?)
    }
}
