//! Seeded random inputs for the checks: the same cases on every machine and in every order
//! (libtorch's global generator is shared by all threads, so SplitMix64 draws them).

use mechlens_core::{Result, SplitMix64};
use tch::{Kind, Tensor};

/// A seeded stream of random shapes and tensors.
pub(crate) struct Draw(SplitMix64);

impl Draw {
    pub(crate) fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// An integer in `lo..=hi`.
    pub(crate) fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.0.below((hi - lo + 1) as u64) as i64
    }

    /// A uniform number in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.uniform()
    }

    /// `mean + std · N(0, 1)` of `shape`, f32 (Box–Muller).
    pub(crate) fn normal(&mut self, shape: &[i64], mean: f64, std: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let u = self.0.uniform().max(f64::MIN_POSITIVE);
                let v = self.0.uniform();
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (mean + std * z) as f32
            })
            .collect();
        Tensor::from_slice(&values).view(shape)
    }

    /// Token ids in `0..vocab`, `[batch, pos]` int64.
    pub(crate) fn tokens(&mut self, batch: i64, pos: i64, vocab: i64) -> Tensor {
        let ids: Vec<i64> = (0..batch * pos).map(|_| self.int(0, vocab - 1)).collect();
        Tensor::from_slice(&ids).view([batch, pos])
    }

    /// Overwrites every parameter of `params` with `N(0, std²)` draws (norm weights around
    /// one), so that biases and norm weights are not the zeros and ones of a fresh model and
    /// a forgotten bias shows.
    pub(crate) fn fill(&mut self, params: &[(String, Tensor)], std: f64) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for (name, t) in params {
                let is_norm_weight = name.contains("ln") && name.ends_with(".w");
                let mean = if is_norm_weight { 1.0 } else { 0.0 };
                let mut t = t.shallow_clone();
                t.f_copy_(&self.normal(&t.size(), mean, std).f_to_kind(Kind::Float)?)?;
            }
            Ok(())
        })
    }
}
