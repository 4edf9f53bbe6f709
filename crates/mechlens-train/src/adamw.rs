//! AdamW (Loshchilov & Hutter 2019) on plain tensors, in `torch.optim.AdamW`'s order of
//! operations, so that its state is data a checkpoint holds and a resumed run continues to
//! the same bits.

use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// AdamW's settings (PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β₁, β₂ (0.9, 0.999).
    pub betas: (f64, f64),
    /// ε (1e-8).
    pub eps: f64,
    /// Decoupled weight decay (0.01).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW's moments for a list of parameters.
pub struct AdamW {
    /// The settings.
    pub cfg: AdamWConfig,
    /// First moments, one per parameter.
    pub(crate) m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub(crate) v: Vec<Tensor>,
    /// Updates done.
    pub(crate) steps: usize,
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(cfg: AdamWConfig, params: &[Tensor]) -> Result<Self> {
        let zeros = |p: &Tensor| -> Result<Tensor> { Ok(p.f_zeros_like()?.f_detach()?) };
        Ok(Self {
            cfg,
            m: params.iter().map(zeros).collect::<Result<_>>()?,
            v: params.iter().map(zeros).collect::<Result<_>>()?,
            steps: 0,
        })
    }

    /// The moments (first, second) and the updates done: what a checkpoint must keep for a
    /// resumed run to continue to the same bits.
    pub fn state(&self) -> (&[Tensor], &[Tensor], usize) {
        (&self.m, &self.v, self.steps)
    }

    /// Restores [`AdamW::state`] saved from an optimiser of the same parameters.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the first moment whose count or shape differs; nothing
    /// is changed then.
    pub fn restore(&mut self, m: &[Tensor], v: &[Tensor], steps: usize) -> Result<()> {
        for (what, saved) in [("first", m), ("second", v)] {
            if saved.len() != self.m.len() {
                return Err(Error::ShapeMismatch {
                    what: format!("AdamW {what} moments"),
                    expected: format!("{} (one per parameter)", self.m.len()),
                    got: vec![saved.len() as i64],
                });
            }
            for (i, (s, own)) in saved.iter().zip(&self.m).enumerate() {
                if s.size() != own.size() {
                    return Err(Error::ShapeMismatch {
                        what: format!("AdamW {what} moment of parameter {i}"),
                        expected: format!("{:?}", own.size()),
                        got: s.size(),
                    });
                }
            }
        }
        let _guard = tch::no_grad_guard();
        for (own, s) in self.m.iter_mut().zip(m).chain(self.v.iter_mut().zip(v)) {
            own.f_copy_(s)?;
        }
        self.steps = steps;
        Ok(())
    }

    /// Backpropagates `loss` to `params` (autograd's `grad`, so nothing accumulates in
    /// `.grad`) and takes one [`AdamW::step`] at `lr`: a whole optimisation step for a
    /// hand-written training loop (SPD, APD, end-to-end SAEs).
    ///
    /// # Errors
    /// libtorch's, when `loss` does not depend on `params`; as [`AdamW::step`].
    pub fn minimize(&mut self, loss: &Tensor, params: &[Tensor], lr: f64) -> Result<()> {
        let grads = Tensor::f_run_backward(&[loss], params, false, false)?;
        self.step(params, &grads, lr)
    }

    /// One update of `params` (in place) with `grads` at learning rate `lr`.
    ///
    /// `torch.optim.AdamW`: `p ← p·(1 − lr·wd)`; `m ← β₁m + (1−β₁)g`; `v ← β₂v + (1−β₂)g²`;
    /// `p ← p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the lists disagree with the moments.
    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor], lr: f64) -> Result<()> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(Error::ShapeMismatch {
                what: "AdamW parameters and gradients".into(),
                expected: format!("{} of each (the parameters it was made for)", self.m.len()),
                got: vec![params.len() as i64, grads.len() as i64],
            });
        }
        let _guard = tch::no_grad_guard();
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = self.cfg.betas;
        let bias1 = 1.0 - b1.powi(t);
        let bias2_sqrt = (1.0 - b2.powi(t)).sqrt();
        for (((p, g), m), v) in params.iter().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            let mut p = p.shallow_clone();
            if self.cfg.weight_decay != 0.0 {
                let _ = p.f_mul_scalar_(1.0 - lr * self.cfg.weight_decay)?;
            }
            // In place and fused where torch.optim.AdamW is (addcmul_, addcdiv_): on small
            // models each libtorch call costs more than its arithmetic.
            // (tch's addcmul_ and addcdiv_ take no scale: it goes into one factor.)
            let _ = m.f_lerp_(g, 1.0 - b1)?;
            let _ = v
                .f_mul_scalar_(b2)?
                .f_addcmul_(&g.f_mul_scalar(1.0 - b2)?, g)?;
            if lr == 0.0 {
                continue; // a warm-up's first step: the moments move, the weights do not
            }
            let mut denom = v.f_sqrt()?;
            let _ = denom
                .f_div_scalar_(bias2_sqrt)?
                .f_add_scalar_(self.cfg.eps)?
                .f_mul_scalar_(-bias1 / lr)?;
            let _ = p.f_addcdiv_(m, &denom)?;
        }
        Ok(())
    }
}
