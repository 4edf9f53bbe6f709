//! Toy data as training data for an SAE: [`SparseFeatures`] is an [`ActivationSource`], so a
//! trainer reads it as it reads a model's activations.

use mechlens_core::Result;
use mechlens_sae::ActivationSource;
use tch::Tensor;

use crate::SparseFeatures;

/// The toy data of Sharkey et al.: batch `step` is the generator's batch number `step`.
impl ActivationSource for SparseFeatures {
    fn d_in(&self) -> i64 {
        self.options.d
    }

    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        Ok(self.sample(batch_size, step as u64)?.1)
    }
}
