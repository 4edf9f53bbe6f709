//! A post-norm (BERT) block, with TransformerLens' `HookedEncoder` hook sites:
//! `resid_mid = resid_pre + attn`, `ln1`, `resid_post = ln1(resid_mid) + mlp`, `ln2`
//! (`hook_normalized_resid_post`).

use mechlens_core::{HookPoint, HookSession, Result};
use tch::Tensor;

use super::{Attention, AttnContext, Mlp, Norm};

/// One encoder block.
pub struct EncoderBlock {
    /// Its index.
    pub layer: usize,
    /// Attention (bidirectional; the context says which keys are real).
    pub attn: Attention,
    /// Norm after attention (BERT's `attention.output.LayerNorm`).
    pub ln1: Norm,
    /// MLP.
    pub mlp: Mlp,
    /// Norm after the MLP (BERT's `output.LayerNorm`).
    pub ln2: Norm,
}

impl EncoderBlock {
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` → `[batch, pos, d_model]`
    pub fn forward(&self, x: Tensor, ctx: &AttnContext, s: &mut HookSession) -> Result<Tensor> {
        let l = self.layer;
        let resid_pre = s.hook(HookPoint::ResidPre(l), x)?;
        let attn_out = self
            .attn
            .forward(l, &resid_pre, &resid_pre, &resid_pre, ctx, None, s)?;
        let attn_out = s.hook(HookPoint::AttnOut(l), attn_out)?;
        let resid_mid = s.hook(HookPoint::ResidMid(l), resid_pre.f_add(&attn_out)?)?;
        let normalized_mid = self.ln1.forward(
            &resid_mid,
            HookPoint::Ln1Scale(l),
            HookPoint::Ln1Normalized(l),
            s,
        )?;
        let mlp_out = self.mlp.forward(l, &normalized_mid, s)?;
        let mlp_out = s.hook(HookPoint::MlpOut(l), mlp_out)?;
        let resid_post = s.hook(HookPoint::ResidPost(l), normalized_mid.f_add(&mlp_out)?)?;
        let normalized = self.ln2.forward(
            &resid_post,
            HookPoint::Ln2Scale(l),
            HookPoint::Ln2Normalized(l),
            s,
        )?;
        s.hook(HookPoint::NormalizedResidPost(l), normalized)
    }
}
