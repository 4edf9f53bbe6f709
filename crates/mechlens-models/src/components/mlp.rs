//! The MLP: `W_out · act(W_in · x)`, or the gated form `W_out · (act(W_gate · x) ⊙ W_in · x)`
//! (SwiGLU, Llama). Hooks: `mlp.hook_pre` (before the nonlinearity; the gate in the gated
//! form), `mlp.hook_pre_linear` (the gated form's linear branch), `mlp.hook_post`.

use mechlens_core::{HookPoint, HookSession, Result};
use tch::Tensor;

use super::affine;
use crate::config::Activation;

/// An MLP layer, weights `[d_in, d_out]`.
pub struct Mlp {
    /// `[d_model, d_mlp]`.
    pub w_in: Tensor,
    /// `[d_mlp]`.
    pub b_in: Option<Tensor>,
    /// `[d_model, d_mlp]`, gated MLPs only.
    pub w_gate: Option<Tensor>,
    /// `[d_mlp, d_model]`.
    pub w_out: Tensor,
    /// `[d_model]`.
    pub b_out: Option<Tensor>,
    /// The nonlinearity.
    pub act: Activation,
}

impl Mlp {
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` → `[batch, pos, d_model]`
    pub fn forward(&self, layer: usize, x: &Tensor, s: &mut HookSession) -> Result<Tensor> {
        let post = match &self.w_gate {
            Some(w_gate) => {
                let pre = s.hook(HookPoint::MlpPre(layer), affine(x, w_gate, None)?)?;
                let linear = s.hook(
                    HookPoint::MlpPreLinear(layer),
                    affine(x, &self.w_in, self.b_in.as_ref())?,
                )?;
                activate(&pre, self.act)?.f_mul(&linear)?
            }
            None => {
                let pre = s.hook(
                    HookPoint::MlpPre(layer),
                    affine(x, &self.w_in, self.b_in.as_ref())?,
                )?;
                activate(&pre, self.act)?
            }
        };
        let post = s.hook(HookPoint::MlpPost(layer), post)?;
        affine(&post, &self.w_out, self.b_out.as_ref())
    }
}

/// Applies `act` elementwise.
pub(crate) fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.f_gelu("none")?,
        Activation::GeluTanh => x.f_gelu("tanh")?,
        Activation::Relu => x.f_relu()?,
        Activation::Silu => x.f_silu()?,
        Activation::QuickGelu => x.f_mul(&x.f_mul_scalar(1.702)?.f_sigmoid()?)?,
    })
}
