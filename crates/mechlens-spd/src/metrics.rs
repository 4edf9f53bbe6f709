//! How good a decomposition is, against ground truth where there is one (toys): MMCS and
//! ML2R (the SPD and APD papers' Table 1), alive subcomponents, and causal importances on
//! probe inputs.

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::decomposition::Spd;
use crate::target::Decomposable;

/// A decomposed matrix against its known true pieces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroundTruthScores {
    /// Mean over true pieces of the best cosine similarity with any subcomponent (flattened
    /// matrices): 1 when each piece has a subcomponent pointing its way.
    pub mmcs: f64,
    /// Mean over true pieces of ‖best subcomponent‖_F / ‖piece‖_F: 1 when the matched
    /// subcomponents have the right size, below 1 when they shrank.
    pub ml2r: f64,
}

/// Scores subcomponents `[C, d_in, d_out]` against true pieces `[K, d_in, d_out]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the matrices' shapes differ.
pub fn ground_truth_scores(subcomponents: &Tensor, truth: &Tensor) -> Result<GroundTruthScores> {
    let (s, t) = (subcomponents.size(), truth.size());
    if s.len() != 3 || t.len() != 3 || s[1..] != t[1..] {
        return Err(Error::ShapeMismatch {
            what: "subcomponents against the true pieces".into(),
            expected: format!("[C, d_in, d_out] and [K, d_in, d_out] alike; truth is {t:?}"),
            got: s,
        });
    }
    let flat = |x: &Tensor| -> Result<Tensor> { Ok(x.f_flatten(1, 2)?.f_to_kind(Kind::Double)?) };
    let (sub, tru) = (flat(subcomponents)?, flat(truth)?);
    let sub_norms = sub.f_norm_scalaropt_dim(2, [1], false)?;
    let tru_norms = tru.f_norm_scalaropt_dim(2, [1], false)?;
    // [K, C]
    let cos = tru
        .f_matmul(&sub.f_tr()?)?
        .f_div(&tru_norms.f_unsqueeze(1)?.f_clamp_min(1e-12)?)?
        .f_div(&sub_norms.f_unsqueeze(0)?.f_clamp_min(1e-12)?)?;
    let (best, index) = cos.f_max_dim(1, false)?;
    let ratio = sub_norms
        .f_index_select(0, &index)?
        .f_div(&tru_norms.f_clamp_min(1e-12)?)?;
    Ok(GroundTruthScores {
        mmcs: best.f_mean(Kind::Double)?.double_value(&[]),
        ml2r: ratio.f_mean(Kind::Double)?.double_value(&[]),
    })
}

impl Spd {
    /// Subcomponents per layer whose causal importance exceeds `config.ci_alive_threshold`
    /// on at least one sample of `x`.
    ///
    /// # Errors
    /// The target's shape errors.
    pub fn alive_components(&self, target: &dyn Decomposable, x: &Tensor) -> Result<Vec<i64>> {
        self.causal_importances(target, x)?
            .iter()
            .map(|g| -> Result<i64> {
                Ok(g.f_amax([0], false)?
                    .f_gt(self.config.ci_alive_threshold)?
                    .f_sum(Kind::Int64)?
                    .int64_value(&[]))
            })
            .collect()
    }

    /// MMCS and ML2R of decomposed layer `layer` against true pieces `[K, d_in, d_out]`.
    ///
    /// # Errors
    /// An unknown layer (listing the decomposed ones); as [`ground_truth_scores`].
    pub fn scores_against(&self, layer: &str, truth: &Tensor) -> Result<GroundTruthScores> {
        let l = self.layer(layer)?;
        let _guard = tch::no_grad_guard();
        ground_truth_scores(&self.components[l].subcomponents()?, truth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truth_scores_one_and_a_shrunk_copy_scores_its_size() {
        let truth = Tensor::eye(3, (Kind::Float, tch::Device::Cpu))
            .unsqueeze(2)
            .matmul(&Tensor::ones([3, 1, 2], (Kind::Float, tch::Device::Cpu)));
        let s = ground_truth_scores(&truth, &truth).unwrap();
        assert!((s.mmcs - 1.0).abs() < 1e-12 && (s.ml2r - 1.0).abs() < 1e-12);
        // Half-size copies plus unrelated noise subcomponents: direction right, size 0.5.
        let noise = Tensor::zeros([2, 3, 2], (Kind::Float, tch::Device::Cpu));
        let sub = Tensor::cat(&[&noise, &(&truth * 0.5)], 0);
        let s = ground_truth_scores(&sub, &truth).unwrap();
        assert!((s.mmcs - 1.0).abs() < 1e-12 && (s.ml2r - 0.5).abs() < 1e-12);
        let e = ground_truth_scores(&truth.narrow(2, 0, 1), &truth).unwrap_err();
        assert!(e.to_string().contains("d_in, d_out"), "{e}");
    }
}
