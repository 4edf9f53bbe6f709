//! A pre-norm transformer block, sequential (GPT-2, Llama) or with a parallel residual
//! (GPT-NeoX, GPT-J), with the residual-stream hooks `hook_resid_pre/mid/post`,
//! `hook_attn_out`, `hook_mlp_out`, and the opt-in input hooks (`hook_attn_in`,
//! `hook_q/k/v_input`, `hook_mlp_in`).

use mechlens_core::{HookPoint, HookSession, Result};
use tch::Tensor;

use super::{Attention, AttnContext, LayerKv, Mlp, Norm};

/// One block.
pub struct Block {
    /// Its index.
    pub layer: usize,
    /// Norm before attention.
    pub ln1: Norm,
    /// Attention.
    pub attn: Attention,
    /// Norm before the MLP.
    pub ln2: Norm,
    /// MLP (`None` in attention-only blocks: no MLP, `ln2` or their hooks).
    pub mlp: Option<Mlp>,
    /// Attention and MLP both read `resid_pre`.
    pub parallel: bool,
    /// Always compute the per-head inputs (`hook_q_input` ...).
    pub split_qkv_input: bool,
    /// Always compute `hook_attn_in`.
    pub attn_in: bool,
    /// Always compute `hook_mlp_in`.
    pub mlp_in: bool,
}

impl Block {
    /// `keep`: positions to carry past attention (the rest of the block, and so its hooks
    /// after `hook_attn_out`, sees only those); `None` keeps all. Training without hooks uses
    /// it on the last block when the loss reads only some positions, so the MLP runs only
    /// where it counts.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, d_model]` → `[batch, pos, d_model]` (`[batch, keep, d_model]`)
    pub fn forward(
        &self,
        x: Tensor,
        ctx: &AttnContext,
        kv: Option<&mut LayerKv>,
        keep: Option<&Tensor>,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let l = self.layer;
        let resid_pre = s.hook(HookPoint::ResidPre(l), x)?;
        let ln1 = |x: &Tensor, s: &mut HookSession| {
            self.ln1
                .forward(x, HookPoint::Ln1Scale(l), HookPoint::Ln1Normalized(l), s)
        };
        let per_head = |x: &Tensor, n: i64| -> Result<Tensor> {
            Ok(x.f_unsqueeze(2)?
                .f_expand([-1, -1, n, -1], false)?
                .f_contiguous()?)
        };
        let (h, kvh) = (self.attn.n_heads, self.attn.n_kv_heads);
        let attn_out = if self.attn_in || s.names(HookPoint::AttnIn(l)) {
            let attn_in = s.hook(HookPoint::AttnIn(l), per_head(&resid_pre, h)?)?;
            let n = ln1(&attn_in, s)?;
            // Keys and values of grouped-query attention read one copy per key/value head.
            let kv_in = if kvh < h {
                n.f_narrow(2, 0, kvh)?
            } else {
                n.shallow_clone()
            };
            self.attn.forward(l, &n, &kv_in, &kv_in, ctx, kv, s)?
        } else if self.split_qkv_input
            || [
                HookPoint::QInput(l),
                HookPoint::KInput(l),
                HookPoint::VInput(l),
            ]
            .iter()
            .any(|p| s.names(*p))
        {
            let q_in = s.hook(HookPoint::QInput(l), per_head(&resid_pre, h)?)?;
            let k_in = s.hook(HookPoint::KInput(l), per_head(&resid_pre, kvh)?)?;
            let v_in = s.hook(HookPoint::VInput(l), per_head(&resid_pre, kvh)?)?;
            let (q, k, v) = (ln1(&q_in, s)?, ln1(&k_in, s)?, ln1(&v_in, s)?);
            self.attn.forward(l, &q, &k, &v, ctx, kv, s)?
        } else {
            let n = ln1(&resid_pre, s)?;
            self.attn.forward(l, &n, &n, &n, ctx, kv, s)?
        };
        let attn_out = s.hook(HookPoint::AttnOut(l), attn_out)?;
        let (resid_pre, attn_out) = match keep {
            Some(keep) => (
                resid_pre.f_index_select(1, keep)?,
                attn_out.f_index_select(1, keep)?,
            ),
            None => (resid_pre, attn_out),
        };
        let Some(mlp) = &self.mlp else {
            // TransformerLens' attention-only block: resid_post = resid_pre + attn_out.
            return s.hook(HookPoint::ResidPost(l), resid_pre.f_add(&attn_out)?);
        };

        let mlp_stream = if self.parallel {
            resid_pre.shallow_clone()
        } else {
            s.hook(HookPoint::ResidMid(l), resid_pre.f_add(&attn_out)?)?
        };
        let mlp_in = if self.mlp_in || s.names(HookPoint::MlpIn(l)) {
            s.hook(HookPoint::MlpIn(l), mlp_stream.copy())?
        } else {
            mlp_stream.shallow_clone()
        };
        let n2 = self.ln2.forward(
            &mlp_in,
            HookPoint::Ln2Scale(l),
            HookPoint::Ln2Normalized(l),
            s,
        )?;
        let mlp_out = mlp.forward(l, &n2, s)?;
        let mlp_out = s.hook(HookPoint::MlpOut(l), mlp_out)?;
        let resid_post = if self.parallel {
            resid_pre.f_add(&attn_out)?.f_add(&mlp_out)?
        } else {
            mlp_stream.f_add(&mlp_out)?
        };
        s.hook(HookPoint::ResidPost(l), resid_post)
    }
}
