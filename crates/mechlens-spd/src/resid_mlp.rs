//! The toy model of compressed computation ([`ResidualMlp`]) as an SPD target, and
//! reproduction 07's run.
//!
//! The residual stream only ever holds `x · W_E`, a point in the embedding's 100-dim row
//! span, and the output reads it back through `W_Eᵀ`. So the MLP's maps act on the data only
//! through `W_E W_in` (`[n_features, d_mlp]`) and `W_out W_Eᵀ` (`[d_mlp, n_features]`), and
//! the residual path is the Gram matrix `W_E W_Eᵀ`: the target computes
//!
//! `y = x (W_E W_Eᵀ) + ReLU(x · mlp_in) · mlp_out`
//!
//! with the two 100-dim maps, exactly the model's output. SPD decomposes these (a
//! subcomponent `v ⊗ u` of `mlp_in` is the full model's `W_E⁺ᵀ v ⊗ u` on that span; what the
//! full `W_in` does off the span never touches the data). This makes the paper's 1,000-wide
//! problem a 100-wide one, which fits 2 cores: the decomposition's losses are the same
//! functions of the output; only the optimiser sees other coordinates.

use mechlens_core::Result;
use mechlens_toys::ResidualMlp;
use mechlens_train::Decay;
use tch::Tensor;

use crate::target::{Decomposable, LinearFn};
use crate::{Spd, SpdConfig};

/// The maps SPD decomposes, in the paper's names.
pub const RESID_MLP_LAYERS: [&str; 2] = ["mlp_in", "mlp_out"];

/// A trained [`ResidualMlp`] on its embedding's span.
#[derive(Debug)]
pub struct ResidMlpTarget {
    /// `W_E W_in` `[n_features, d_mlp]`.
    pub mlp_in: Tensor,
    /// `W_out W_Eᵀ` `[d_mlp, n_features]`.
    pub mlp_out: Tensor,
    /// `W_E W_Eᵀ` `[n_features, n_features]`: the residual path, identity plus the
    /// embedding's interference.
    pub gram: Tensor,
}

impl ResidMlpTarget {
    /// The target of `model`.
    ///
    /// # Errors
    /// Only libtorch's.
    pub fn from_model(model: &ResidualMlp) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let w_e = model.w_e.f_detach()?;
        Ok(Self {
            mlp_in: w_e.f_matmul(&model.w_in.f_detach()?)?,
            mlp_out: model.w_out.f_detach()?.f_matmul(&w_e.f_tr()?)?,
            gram: w_e.f_matmul(&w_e.f_tr()?)?,
        })
    }

    /// Each input feature's contribution through each neuron, the papers' "neuron
    /// contributions": `(W_E[i] W_in)_n · (W_out W_E[i]ᵀ)_n`, here `mlp_in[i, n] ·
    /// mlp_out[n, i]`.
    ///
    /// # Shapes
    /// → `[n_features, d_mlp]`
    pub fn neuron_contributions(&self) -> Result<Tensor> {
        Ok(self.mlp_in.f_mul(&self.mlp_out.f_tr()?)?)
    }
}

impl Decomposable for ResidMlpTarget {
    fn linears(&self) -> Vec<(String, Tensor)> {
        vec![
            ("mlp_in".into(), self.mlp_in.shallow_clone()),
            ("mlp_out".into(), self.mlp_out.shallow_clone()),
        ]
    }

    /// # Shapes
    /// `x`: `[batch, n_features]` → `[batch, n_features]`
    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
        let hidden = linear("mlp_in", x)?.f_relu()?;
        Ok(x.f_matmul(&self.gram)?
            .f_add(&linear("mlp_out", &hidden)?)?)
    }
}

/// The SPD paper's settings for the 1-layer residual MLP (its repository's
/// `resid_mlp1_config`): C = 100 per map, importance MLPs of width 16, importance minimality
/// 1e-5 with p = 2, batch 2,048, constant learning rate 2e-3, the delta component, a 200-step
/// faithfulness warm-up; `steps` steps.
pub fn resid_mlp_spd_config(steps: usize) -> SpdConfig {
    SpdConfig {
        c: 100,
        importance_minimality_coeff: 1e-5,
        p: 2.0,
        batch_size: 2048,
        steps,
        lr: 2e-3,
        lr_decay: Decay::Constant,
        ..SpdConfig::default()
    }
}

/// SPD of both maps of `target` with [`resid_mlp_spd_config`], on fresh batches of `model`'s
/// data drawn from libtorch's generator (seeded per step by [`Spd::train`]).
///
/// # Errors
/// The decomposition's ([`mechlens_core::Error::Training`] for a loss that stops being
/// finite).
pub fn spd_resid_mlp(model: &ResidualMlp, target: &ResidMlpTarget, steps: usize) -> Result<Spd> {
    let config = resid_mlp_spd_config(steps);
    let batch = config.batch_size;
    let mut spd = Spd::new(target, &RESID_MLP_LAYERS, config)?;
    spd.train(target, &mut |_| model.batch(batch))?;
    Ok(spd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mechlens_toys::ResidualMlpOptions;

    #[test]
    fn the_target_on_the_span_computes_the_full_model() {
        let model = ResidualMlp::new(&ResidualMlpOptions {
            n_features: 10,
            d_embed: 60,
            d_mlp: 4,
            probability: 0.3,
            seed: 1,
        })
        .unwrap();
        let target = ResidMlpTarget::from_model(&model).unwrap();
        let x = model.batch(64).unwrap();
        let full = model.forward(&x).unwrap();
        let reduced = target.forward(&x).unwrap();
        assert!(
            reduced.allclose(&full, 1e-4, 1e-5, false),
            "{}",
            (&reduced - &full).abs().max()
        );
        assert_eq!(target.neuron_contributions().unwrap().size(), [10, 4]);
    }
}
