//! Hierarchical toy features (Chanin et al. 2024, "A is for Absorption"): orthogonal unit
//! directions, some of which fire only when a parent fires.
//!
//! A root feature fires with its own probability; a child fires with its probability
//! *given that its parent fired*, and never without it. That is the structure ("starts
//! with S" ⊃ "short") under which an L1-trained SAE learns to leave the parent's latent
//! silent when the child is present and fold the parent's direction into the child's
//! latent: feature absorption. With every feature a root, the same data has no hierarchy
//! and a good SAE recovers each feature as one latent.
//!
//! Every draw comes from a SplitMix64 stream seeded by (seed, batch index): batches are the
//! same on every machine and can be re-drawn in any order.

use mechlens_core::{Error, Result, SplitMix64};
use tch::{Kind, Tensor};

/// One feature of the tree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TreeFeature {
    /// Firing probability; for a child, given that its parent fired.
    pub probability: f64,
    /// The feature it fires under (an earlier index), or `None` for a root.
    pub parent: Option<usize>,
}

impl TreeFeature {
    /// A feature that fires on its own with `probability`.
    pub fn root(probability: f64) -> Self {
        Self {
            probability,
            parent: None,
        }
    }

    /// A feature that fires with `probability` when `parent` fires, and never otherwise.
    pub fn child(parent: usize, probability: f64) -> Self {
        Self {
            probability,
            parent: Some(parent),
        }
    }
}

/// Features with a hierarchy, their orthogonal directions, and a sampler.
#[derive(Debug)]
pub struct FeatureTree {
    /// The features, parents before children.
    pub features: Vec<TreeFeature>,
    /// Orthonormal directions, one row per feature, `[n_features, d]`.
    pub directions: Tensor,
    /// The coefficient of a firing feature (1.0: present or absent, as in the paper's toy).
    pub magnitude: f64,
    seed: u64,
}

/// A batch: which features fired and the activations they make.
#[derive(Debug)]
pub struct TreeBatch {
    /// `[n, n_features]` booleans.
    pub present: Tensor,
    /// `[n, d]` float: `magnitude · present · directions`.
    pub activations: Tensor,
}

impl FeatureTree {
    /// Features in `d` dimensions with orthonormal directions drawn from `seed`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no features, more features than dimensions (they could
    /// not be orthogonal), a probability outside [0, 1], a parent that is not an earlier
    /// feature, or a magnitude that is not positive and finite.
    pub fn new(features: Vec<TreeFeature>, d: i64, magnitude: f64, seed: u64) -> Result<Self> {
        let n = features.len() as i64;
        if n == 0 || n > d {
            return Err(Error::invalid(
                "feature tree",
                format!(
                    "needs 1 to d = {d} features (orthogonal directions in d dimensions), got {n}"
                ),
            ));
        }
        for (i, f) in features.iter().enumerate() {
            if !(0.0..=1.0).contains(&f.probability) {
                return Err(Error::invalid(
                    format!("feature {i}'s probability"),
                    format!("must be in [0, 1], got {}", f.probability),
                ));
            }
            if let Some(p) = f.parent
                && p >= i
            {
                return Err(Error::invalid(
                    format!("feature {i}'s parent"),
                    format!("must be an earlier feature (0..{i}), got {p}"),
                ));
            }
        }
        if !(magnitude.is_finite() && magnitude > 0.0) {
            return Err(Error::invalid(
                "magnitude",
                format!("must be positive and finite, got {magnitude}"),
            ));
        }
        // Orthonormal rows: Q of a seeded Gaussian's QR.
        let mut rng = SplitMix64::new(seed ^ 0x007E_E50F_FEA7);
        let gaussian: Vec<f64> = (0..n * d).map(|_| normal(&mut rng)).collect();
        let (q, _) =
            Tensor::f_linalg_qr(&Tensor::from_slice(&gaussian).f_reshape([d, n])?, "reduced")?;
        let directions = q.f_t_copy()?.f_to_kind(Kind::Float)?.f_contiguous()?;
        Ok(Self {
            features,
            directions,
            magnitude,
            seed,
        })
    }

    /// The setting of Chanin et al.'s toy, as the issue calibrated it: 4 features in 50
    /// dimensions; feature 0 (the parent) fires with p = 0.25, feature 1 (the child) with
    /// its parent 40% of the time, features 2 and 3 independently with p = 0.05. With
    /// `hierarchical` false, feature 1 is a root with the same rate (0.25 · 0.4 = 0.1).
    ///
    /// # Errors
    /// Never for these settings.
    pub fn absorption_toy(hierarchical: bool, seed: u64) -> Result<Self> {
        let child = if hierarchical {
            TreeFeature::child(0, 0.4)
        } else {
            TreeFeature::root(0.25 * 0.4)
        };
        let features = vec![
            TreeFeature::root(0.25),
            child,
            TreeFeature::root(0.05),
            TreeFeature::root(0.05),
        ];
        Self::new(features, 50, 1.0, seed)
    }

    /// Number of features.
    pub fn n_features(&self) -> i64 {
        self.features.len() as i64
    }

    /// Width of the activations.
    pub fn d(&self) -> i64 {
        self.directions.size()[1]
    }

    /// Batch number `index` of `n` samples.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `n` < 1.
    pub fn sample(&self, n: i64, index: u64) -> Result<TreeBatch> {
        if n < 1 {
            return Err(Error::invalid(
                "batch size",
                format!("must be at least 1, got {n}"),
            ));
        }
        let f = self.features.len();
        let mut rng =
            SplitMix64::new(self.seed ^ 0x3C3C_C3C3 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut present = vec![0f32; n as usize * f];
        for row in present.chunks_mut(f) {
            for (i, feature) in self.features.iter().enumerate() {
                let may_fire = feature.parent.is_none_or(|p| row[p] > 0.0);
                // Draw for every feature, so a child's draw does not shift the stream.
                let fires = rng.uniform() < feature.probability;
                row[i] = f32::from(u8::from(may_fire && fires));
            }
        }
        let present = Tensor::from_slice(&present).f_reshape([n, f as i64])?;
        let activations = present
            .f_matmul(&self.directions)?
            .f_mul_scalar(self.magnitude)?;
        Ok(TreeBatch {
            present: present.f_gt(0.5)?,
            activations,
        })
    }
}

/// One standard normal (Box–Muller, one of the pair).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.uniform().max(f64::MIN_POSITIVE);
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(present: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(
            present
                .to_kind(Kind::Double)
                .mean_dim(0, false, Kind::Double),
        )
        .unwrap()
    }

    #[test]
    fn directions_are_orthonormal() {
        let tree = FeatureTree::absorption_toy(true, 3).unwrap();
        let gram = tree.directions.matmul(&tree.directions.tr());
        let eye = Tensor::eye(4, (Kind::Float, tch::Device::Cpu));
        assert!(gram.allclose(&eye, 1e-5, 1e-5, false));
        assert_eq!(tree.directions.size(), [4, 50]);
    }

    #[test]
    fn children_fire_only_with_their_parent_at_the_conditional_rate() {
        let tree = FeatureTree::absorption_toy(true, 1).unwrap();
        let batch = tree.sample(200_000, 0).unwrap();
        let (parent, child) = (batch.present.select(1, 0), batch.present.select(1, 1));
        let orphans = child.logical_and(&parent.logical_not()).sum(Kind::Int64);
        assert_eq!(orphans.int64_value(&[]), 0);
        let r = rate(&batch.present);
        // Binomial standard error at n = 200k is ≤ 0.001: 0.005 is five of them.
        for (got, want) in r.iter().zip([0.25, 0.1, 0.05, 0.05]) {
            assert!((got - want).abs() < 0.005, "rates {r:?}");
        }
        // Activations are the sum of the firing directions.
        let want = batch.present.to_kind(Kind::Float).matmul(&tree.directions);
        assert!(batch.activations.allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn independent_setting_has_the_same_rates_without_the_hierarchy() {
        let tree = FeatureTree::absorption_toy(false, 1).unwrap();
        let batch = tree.sample(200_000, 0).unwrap();
        let r = rate(&batch.present);
        assert!((r[1] - 0.1).abs() < 0.005, "rates {r:?}");
        let orphans = batch
            .present
            .select(1, 1)
            .logical_and(&batch.present.select(1, 0).logical_not())
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        // Independent: P(child and not parent) = 0.1 · 0.75.
        assert!((orphans - 0.075).abs() < 0.005, "{orphans}");
    }

    #[test]
    fn batches_are_addressed_by_index() {
        let tree = FeatureTree::absorption_toy(true, 5).unwrap();
        let a = tree.sample(100, 7).unwrap().present;
        assert!(a.equal(&tree.sample(100, 7).unwrap().present));
        assert!(!a.equal(&tree.sample(100, 8).unwrap().present));
    }

    #[test]
    fn bad_trees_are_refused_with_the_reason() {
        let err = |r: Result<FeatureTree>| r.unwrap_err().to_string();
        let e = err(FeatureTree::new(vec![TreeFeature::root(0.1); 3], 2, 1.0, 0));
        assert!(e.contains("1 to d = 2"), "{e}");
        let e = err(FeatureTree::new(vec![TreeFeature::root(1.5)], 2, 1.0, 0));
        assert!(e.contains("[0, 1]"), "{e}");
        let e = err(FeatureTree::new(
            vec![TreeFeature::child(1, 0.5), TreeFeature::root(0.5)],
            4,
            1.0,
            0,
        ));
        assert!(e.contains("earlier feature"), "{e}");
        let e = err(FeatureTree::new(vec![TreeFeature::root(0.5)], 4, 0.0, 0));
        assert!(e.contains("magnitude"), "{e}");
        let tree = FeatureTree::absorption_toy(true, 0).unwrap();
        assert!(
            tree.sample(0, 0)
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
    }
}
