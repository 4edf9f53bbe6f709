//! Sparse, correlated ground-truth features (Sharkey, Braun & Millidge 2022).
//!
//! Generation, as in the report's code: `n_features` directions drawn uniformly on the unit
//! sphere of `d`; a random correlation matrix `C`; for each sample a Gaussian `z ~ N(0, C)`,
//! turned into correlated uniforms `u = Φ(z)`; feature `i` fires when `u_i < p_i`, where
//! `p_i ∝ decay^i` is scaled so that `Σ p_i` = the mean number of active features; a firing
//! feature gets a coefficient from U[0, 1). The activation is `coefficients · directions`.
//!
//! Every draw comes from a SplitMix64 stream seeded by (seed, batch index), so batches are
//! the same on every machine and can be re-drawn in any order.

use mechlens_core::{Error, Result, SplitMix64};
use tch::{Device, Kind, Tensor};

/// Settings of the toy data.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseFeaturesOptions {
    /// Ground-truth features (512 in the report).
    pub n_features: i64,
    /// Dimension they live in (256).
    pub d: i64,
    /// Mean number of active features per sample (5).
    pub mean_active: f64,
    /// Firing probability decays as `decay^i` with the feature index (0.99).
    pub decay: f64,
    /// Correlated firing through a random correlation matrix (true).
    pub correlated: bool,
    /// Seed of the directions, the correlations and every batch.
    pub seed: u64,
}

impl Default for SparseFeaturesOptions {
    fn default() -> Self {
        Self {
            n_features: 512,
            d: 256,
            mean_active: 5.0,
            decay: 0.99,
            correlated: true,
            seed: 0,
        }
    }
}

/// The toy data: its true directions and a sampler.
#[derive(Debug)]
pub struct SparseFeatures {
    /// Settings.
    pub options: SparseFeaturesOptions,
    /// Ground-truth directions, unit rows, `[n_features, d]`.
    pub directions: Tensor,
    /// Firing probability of each feature, `[n_features]`.
    pub probabilities: Tensor,
    /// Cholesky factor of the correlation matrix (`None` when uncorrelated).
    cholesky: Option<Tensor>,
}

/// `n` standard normals from `rng` (Box–Muller).
fn normals(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = rng.uniform().max(f64::MIN_POSITIVE);
        let u2 = rng.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

fn normal_tensor(rng: &mut SplitMix64, shape: &[i64]) -> Result<Tensor> {
    let n = shape.iter().product::<i64>() as usize;
    Ok(Tensor::from_slice(&normals(rng, n)).f_reshape(shape)?)
}

impl SparseFeatures {
    /// The report's setting: 512 features in 256 dimensions, ~5 active, decay 0.99, correlated.
    ///
    /// # Errors
    /// Never for these settings; see [`SparseFeatures::new`].
    pub fn sharkey(seed: u64) -> Result<Self> {
        Self::new(SparseFeaturesOptions {
            seed,
            ..SparseFeaturesOptions::default()
        })
    }

    /// Draws directions, probabilities and correlations.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for non-positive sizes, a decay outside (0, 1], or a mean
    /// number of active features outside (0, n_features].
    pub fn new(options: SparseFeaturesOptions) -> Result<Self> {
        let o = &options;
        if o.n_features <= 0 || o.d <= 0 {
            return Err(Error::invalid(
                "toy data",
                format!(
                    "n_features and d must be positive, got {} and {}",
                    o.n_features, o.d
                ),
            ));
        }
        if !(o.decay > 0.0 && o.decay <= 1.0) {
            return Err(Error::invalid(
                "decay",
                format!("must be in (0, 1], got {}", o.decay),
            ));
        }
        if !(o.mean_active > 0.0 && o.mean_active <= o.n_features as f64) {
            return Err(Error::invalid(
                "mean_active",
                format!("must be in (0, {}], got {}", o.n_features, o.mean_active),
            ));
        }
        let mut rng = SplitMix64::new(o.seed);
        let raw = normal_tensor(&mut rng, &[o.n_features, o.d])?;
        let directions = raw.f_div(&raw.f_norm_scalaropt_dim(2, [1], true)?)?;
        let weights: Vec<f64> = (0..o.n_features).map(|i| o.decay.powi(i as i32)).collect();
        let total: f64 = weights.iter().sum();
        let probs: Vec<f32> = weights
            .iter()
            .map(|w| (w * o.mean_active / total).min(1.0) as f32)
            .collect();
        let cholesky = if o.correlated {
            // A random correlation matrix: A·Aᵀ of a Gaussian A, normalised to unit diagonal,
            // mixed with the identity so that it stays well conditioned.
            let a =
                normal_tensor(&mut rng, &[o.n_features, o.n_features])?.f_to_kind(Kind::Double)?;
            let cov = a.f_matmul(&a.f_t_copy()?)?;
            let inv_sd = cov.f_diagonal(0, 0, 1)?.f_rsqrt()?;
            let corr = cov
                .f_mul(&inv_sd.f_unsqueeze(0)?)?
                .f_mul(&inv_sd.f_unsqueeze(1)?)?;
            let eye = Tensor::f_eye(o.n_features, (Kind::Double, Device::Cpu))?;
            let corr = corr.f_mul_scalar(0.9)?.f_add(&eye.f_mul_scalar(0.1)?)?;
            Some(corr.f_linalg_cholesky(false)?.f_to_kind(Kind::Float)?)
        } else {
            None
        };
        Ok(Self {
            directions,
            probabilities: Tensor::from_slice(&probs),
            cholesky,
            options,
        })
    }

    /// Batch number `index` of `n` samples: the coefficients `[n, n_features]` and the
    /// activations `[n, d]`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `n` < 1.
    pub fn sample(&self, n: i64, index: u64) -> Result<(Tensor, Tensor)> {
        if n < 1 {
            return Err(Error::invalid(
                "batch size",
                format!("must be at least 1, got {n}"),
            ));
        }
        let f = self.options.n_features;
        let mut rng = SplitMix64::new(
            self.options.seed ^ 0xA5A5_5A5A_0F0F_F0F0 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut z = normal_tensor(&mut rng, &[n, f])?;
        if let Some(l) = &self.cholesky {
            z = z.f_matmul(&l.f_t_copy()?)?;
        }
        // Φ(z) = erfc(−z/√2) / 2: uniforms with the Gaussian's correlations.
        let u = z
            .f_div_scalar(-std::f64::consts::SQRT_2)?
            .f_erfc()?
            .f_mul_scalar(0.5)?;
        let active = u.f_lt_tensor(&self.probabilities)?;
        let magnitudes: Vec<f32> = (0..n * f).map(|_| rng.uniform() as f32).collect();
        let magnitudes = Tensor::from_slice(&magnitudes).f_reshape([n, f])?;
        let coefficients = magnitudes.f_mul(&active.f_to_kind(Kind::Float)?)?;
        let acts = coefficients.f_matmul(&self.directions)?;
        Ok((coefficients, acts))
    }
}

/// For each row of `truth`, the largest cosine similarity with any row of `learned`.
///
/// # Shapes
/// `learned`: `[m, d]`, `truth`: `[n, d]` → `[n]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the widths differ.
pub fn max_cosine(learned: &Tensor, truth: &Tensor) -> Result<Tensor> {
    Ok(cosines(truth, learned, Kind::Float)?.f_amax([1], false)?)
}

/// Cosine similarity of every row of `a` `[n, d]` with every row of `b` `[m, d]` → `[n, m]`
/// (norms clamped at 1e-8, as SAELens' `cosine_similarities`).
pub(crate) fn cosines(a: &Tensor, b: &Tensor, kind: Kind) -> Result<Tensor> {
    let (sa, sb) = (a.size(), b.size());
    if sa.len() != 2 || sb.len() != 2 || sa[1] != sb[1] {
        return Err(Error::ShapeMismatch {
            what: "dictionaries to compare".into(),
            expected: format!("[n, d] and [m, d] with the same d (the other is {sb:?})"),
            got: sa,
        });
    }
    let unit = |t: &Tensor| -> Result<Tensor> {
        let t = t.f_to_kind(kind)?;
        Ok(t.f_div(&t.f_norm_scalaropt_dim(2, [1], true)?.f_clamp_min(1e-8)?)?)
    };
    Ok(unit(a)?.f_matmul(&unit(b)?.f_t_copy()?)?)
}

/// Mean Max Cosine Similarity: the mean over true features of their best match among the
/// learned ones (1: every true feature was found).
///
/// # Errors
/// As [`max_cosine`].
pub fn mmcs(learned: &Tensor, truth: &Tensor) -> Result<f64> {
    Ok(max_cosine(learned, truth)?
        .f_mean(Kind::Double)?
        .double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharkey_data_is_sparse_with_decaying_rates() {
        let toy = SparseFeatures::sharkey(1).unwrap();
        let (coeffs, acts) = toy.sample(4000, 0).unwrap();
        assert_eq!(acts.size(), [4000, 256]);
        let l0 = coeffs
            .gt(0.0)
            .to_kind(Kind::Float)
            .sum_dim_intlist(1, false, Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!((l0 - 5.0).abs() < 0.3, "mean active {l0}");
        let rate = coeffs
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean_dim(0, false, Kind::Float);
        let early = rate.narrow(0, 0, 50).mean(Kind::Float).double_value(&[]);
        let late = rate.narrow(0, 462, 50).mean(Kind::Float).double_value(&[]);
        assert!(early > 10.0 * late, "rates should decay: {early} vs {late}");
        // Same index, same batch; another index, another batch.
        let (again, _) = toy.sample(4000, 0).unwrap();
        assert!(again.equal(&coeffs));
        let (other, _) = toy.sample(4000, 1).unwrap();
        assert!(!other.equal(&coeffs));
    }

    #[test]
    fn mmcs_is_one_for_the_truth_and_low_for_noise() {
        let toy = SparseFeatures::sharkey(2).unwrap();
        assert!((mmcs(&toy.directions, &toy.directions).unwrap() - 1.0).abs() < 1e-5);
        let noise = SparseFeatures::sharkey(3).unwrap().directions;
        assert!(mmcs(&noise, &toy.directions).unwrap() < 0.4);
        assert!(
            mmcs(
                &Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)),
                &toy.directions
            )
            .is_err()
        );
    }
}
