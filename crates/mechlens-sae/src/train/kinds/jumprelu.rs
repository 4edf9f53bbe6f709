//! JumpReLU SAEs: `pre · (pre > threshold)` with a learned per-latent threshold and an L0
//! penalty (SAELens `jumprelu`). The step function has no gradient, so both the activations
//! and the L0 reach the threshold through a straight-through estimator with a rectangle
//! kernel of width `bandwidth`, written as `value.detach() + (s − s.detach())` where `s`'s
//! gradient is the estimator's.

use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::{Encoded, StepInput, TrainArchitecture, TrainKind, param, zero};
use crate::config::Architecture;
use crate::sae::Sae;

/// Settings of a JumpReLU run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JumpRelu {
    /// L0 coefficient (SAELens `l0_coefficient`).
    pub l0_coefficient: f64,
    /// Width of the rectangle kernel of the estimator (SAELens `jumprelu_bandwidth`).
    pub bandwidth: f64,
    /// Initial thresholds (SAELens `jumprelu_init_threshold`).
    pub init_threshold: f64,
}

impl TrainArchitecture {
    /// JumpReLU with L0 coefficient `l0` and SAELens' bandwidth (0.05) and init (0.01).
    pub fn jumprelu(l0: f64) -> Self {
        Self::JumpRelu(JumpRelu {
            l0_coefficient: l0,
            bandwidth: 0.05,
            init_threshold: 0.01,
        })
    }
}

fn rectangle(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_gt(-0.5)?
        .f_logical_and(&x.f_lt(0.5)?)?
        .f_to_kind(Kind::Float)?)
}

impl TrainKind for JumpRelu {
    fn name(&self) -> &'static str {
        "jumprelu"
    }

    fn saved_as(&self) -> Architecture {
        Architecture::JumpRelu
    }

    fn sparsity_coefficient(&self) -> f64 {
        self.l0_coefficient
    }

    fn validate(&self, _d_sae: i64) -> Result<()> {
        let bandwidth = self.bandwidth;
        if bandwidth <= 0.0 {
            return Err(Error::invalid(
                "bandwidth",
                format!("must be positive, got {bandwidth}"),
            ));
        }
        Ok(())
    }

    fn init(&self, sae: &mut Sae) -> Result<()> {
        if let Some(threshold) = sae.threshold.as_mut() {
            *threshold = threshold.f_fill(self.init_threshold)?;
        }
        Ok(())
    }

    fn before_step(&self, sae: &mut Sae) -> Result<()> {
        if let Some(t) = sae.threshold.as_mut() {
            let _guard = tch::no_grad_guard();
            let _ = t.f_clamp_min_(0.0)?;
        }
        Ok(())
    }

    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded> {
        let sae = input.sae;
        let bandwidth = self.bandwidth;
        let pre = input
            .sae_in
            .f_matmul(&sae.w_enc)?
            .f_add(param(&sae.b_enc)?)?;
        let threshold = param(&sae.threshold)?;
        let open = pre.f_gt_tensor(threshold)?.f_to_kind(Kind::Float)?.detach();
        let kernel = rectangle(
            &pre.detach()
                .f_sub(&threshold.detach())?
                .f_div_scalar(bandwidth)?,
        )?;
        // d acts / d threshold = −(threshold / bandwidth) · rect((pre − threshold) / bandwidth)
        let s = kernel
            .f_mul(&threshold.detach())?
            .f_mul(threshold)?
            .f_div_scalar(-bandwidth)?;
        let acts = pre.f_mul(&open)?.f_add(&s.f_sub(&s.detach())?)?;
        let out = acts.f_matmul(&sae.w_dec)?.f_add(&sae.b_dec)?;
        // L0 = Σ step(pre − threshold); d/d threshold = −(1 / bandwidth) · rect(·)
        let s = kernel.f_mul(threshold)?.f_div_scalar(-bandwidth)?;
        let step = open.f_add(&s.f_sub(&s.detach())?)?;
        let l0 = step
            .f_sum_dim_intlist(-1, false, Kind::Float)?
            .f_mean(Kind::Float)?;
        Ok(Encoded {
            acts: acts.detach(),
            out,
            sparsity: l0.f_mul_scalar(input.st.sparsity_coefficient)?,
            aux: zero(input.x),
        })
    }
}
