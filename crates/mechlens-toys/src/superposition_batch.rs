//! The toy model of superposition's data: each feature present with its instance's
//! probability, and then uniform in [0, 1).
//!
//! Batches are drawn in Rust from a SplitMix64 stream seeded by (seed, batch index), as the
//! other toys' are, and not from libtorch's generator:
//! - libtorch draws uniforms one at a time under its generator's lock (about 2.6 ns each on
//!   this project's 2-core machine), and the toy needs two per entry: at 10 instances × 5
//!   features × 1,024 samples that was more than half of a training step;
//! - here one 64-bit draw gives both of an entry's uniforms (its high 24 bits decide
//!   presence, its low 24 bits are the value: disjoint bits, so independent), ~5× faster;
//! - the batches are the same on every machine and thread count, and a test running beside
//!   others cannot shift them through libtorch's process-wide generator.

use mechlens_core::{Result, SplitMix64};
use tch::Tensor;

/// `2⁻²⁴`: a 24-bit integer times this is a float uniform in [0, 1), exactly (float has 24
/// bits of mantissa, so every such value is representable and none rounds up to 1).
const UNIT: f32 = 1.0 / (1u32 << 24) as f32;

/// Where batch `index` of the stream `seed` starts: (seed, index) hashed by SplitMix64's
/// output function, so neighbouring batches and seeds start far apart in its sequence.
fn batch_seed(seed: u64, index: u64) -> u64 {
    let key = seed ^ 0x5EED_70E5_0F5A_B0C5 ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    SplitMix64::new(key).next_u64()
}

/// Batch number `index` of the stream `seed`: `batch` samples of the entries of
/// `probability`, each present with its probability, then uniform in [0, 1).
///
/// # Shapes
/// - `probability`: `[n_instances × n_features]` flattened, `shape` = `[n_instances,
///   n_features]` → `[batch, n_instances, n_features]`
pub(crate) fn sparse_batch(
    probability: &[f32],
    shape: [i64; 2],
    batch: usize,
    seed: u64,
    index: u64,
) -> Result<Tensor> {
    let mut rng = SplitMix64::new(batch_seed(seed, index));
    let mut values = vec![0f32; batch * probability.len()];
    for row in values.chunks_exact_mut(probability.len()) {
        for (value, &p) in row.iter_mut().zip(probability) {
            let bits = rng.next_u64();
            let presence = (bits >> 40) as f32 * UNIT;
            let uniform = (bits & 0xFF_FFFF) as f32 * UNIT;
            *value = if presence < p { uniform } else { 0.0 };
        }
    }
    Ok(Tensor::from_slice(&values).f_view([batch as i64, shape[0], shape[1]])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn features_are_present_at_their_probability_and_uniform_when_present() {
        // 2 instances × 3 features with probabilities 0, 0.05, 0.3 / 0.5, 0.9, 1.
        let probability = [0.0, 0.05, 0.3, 0.5, 0.9, 1.0];
        let x = sparse_batch(&probability, [2, 3], 200_000, 7, 0).unwrap();
        assert_eq!(x.size(), [200_000, 2, 3]);
        let present = x.gt(0.0).to_kind(Kind::Double);
        let rate =
            Vec::<f64>::try_from(present.mean_dim(0, false, Kind::Double).flatten(0, 1)).unwrap();
        for (measured, &p) in rate.iter().zip(&probability) {
            // Binomial standard error at 200,000 samples is at most 0.0011: 5 of them.
            assert!(
                (measured - f64::from(p)).abs() < 0.006,
                "presence {measured} for p = {p}"
            );
        }
        // Given presence, the value is U[0, 1): mean 1/2, variance 1/12, all below 1.
        let values = x.masked_select(&x.gt(0.0)).to_kind(Kind::Double);
        let mean = values.mean(Kind::Double).double_value(&[]);
        let var = values.var(true).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.003, "mean {mean}");
        assert!((var - 1.0 / 12.0).abs() < 0.002, "variance {var}");
        assert!(values.max().double_value(&[]) < 1.0);
        // Presence and value are independent: the mean value is the same for values drawn
        // at a low and a high presence probability.
        let low = x.select(1, 0).select(1, 1);
        let low = low.masked_select(&low.gt(0.0)).mean(Kind::Double);
        assert!((low.double_value(&[]) - 0.5).abs() < 0.02);
    }

    #[test]
    fn a_batch_is_a_function_of_its_seed_and_index() {
        let p = [0.5f32; 10];
        let draw = |seed, index| sparse_batch(&p, [2, 5], 64, seed, index).unwrap();
        assert!(draw(3, 4).equal(&draw(3, 4)));
        assert!(!draw(3, 4).equal(&draw(3, 5)));
        assert!(!draw(3, 4).equal(&draw(4, 4)));
    }
}
