//! LayerNorm and RMSNorm with TransformerLens' two hook sites: `hook_scale` (the divisor,
//! `[batch, pos, 1]`) and `hook_normalized` (`x / scale`, before the weight and bias).

use mechlens_core::{HookPoint, HookSession, Result};
use tch::{Kind, Tensor};

use crate::config::Normalization;

/// A normalisation layer. Weight and bias are `None` once folded into the next layer.
pub struct Norm {
    /// LayerNorm or RMSNorm (folded or not).
    pub kind: Normalization,
    /// Scale, `[d_model]`.
    pub w: Option<Tensor>,
    /// Shift, `[d_model]` (LayerNorm only).
    pub b: Option<Tensor>,
    /// Added to the variance.
    pub eps: f64,
}

impl Norm {
    fn centers(&self) -> bool {
        matches!(
            self.kind,
            Normalization::LayerNorm | Normalization::LayerNormPre
        )
    }

    /// Normalises the last dim. When neither hook is wanted it takes libtorch's fused kernel.
    ///
    /// # Shapes
    /// - `x`: `[..., d_model]` → `[..., d_model]`
    pub fn forward(
        &self,
        x: &Tensor,
        scale_hook: HookPoint,
        normalized_hook: HookPoint,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        if self.kind == Normalization::Identity {
            return Ok(x.shallow_clone());
        }
        let d = x.size().last().copied().unwrap_or(0);
        if !s.is_active() || !(s.wants(scale_hook) || s.wants(normalized_hook)) {
            return Ok(if self.centers() {
                x.f_layer_norm([d], self.w.as_ref(), self.b.as_ref(), self.eps, true)?
            } else {
                x.f_rms_norm([d], self.w.as_ref(), self.eps)?
            });
        }
        // TransformerLens' explicit form, so that a hook on the scale changes the output;
        // computed in f32 and returned in the input's dtype.
        let kind = x.kind();
        let x = x.f_to_kind(Kind::Float)?;
        let x = if self.centers() {
            x.f_sub(&x.f_mean_dim(-1, true, None)?)?
        } else {
            x
        };
        let var = x.f_pow_tensor_scalar(2)?.f_mean_dim(-1, true, None)?;
        let scale = var.f_add_scalar(self.eps)?.f_sqrt()?.f_to_kind(kind)?;
        let scale = s.hook(scale_hook, scale)?.f_to_kind(Kind::Float)?;
        // As in TransformerLens, `hook_normalized` is before the weight and bias.
        let normalized = x.f_div(&scale)?.f_to_kind(kind)?;
        let mut out = s.hook(normalized_hook, normalized)?;
        if let Some(w) = &self.w {
            out = out.f_mul(w)?;
        }
        if let Some(b) = &self.b {
            out = out.f_add(b)?;
        }
        Ok(out.f_to_kind(kind)?)
    }
}
