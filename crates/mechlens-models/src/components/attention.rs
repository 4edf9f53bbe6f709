//! Multi-head attention with grouped-query heads, optional rotary embeddings and local
//! windows, and every TransformerLens hook site (`hook_q` ... `hook_result`).
//!
//! Two paths give the same numbers: an explicit one (scores and pattern materialised, so they
//! can be hooked) and libtorch's fused `scaled_dot_product_attention` when nothing needs them.

use mechlens_core::{HookPoint, HookSession, Result};
use tch::{Device, Kind, Tensor};

use super::{Rotary, affine};

/// Key/value cache of one layer for generation.
///
/// # Shapes
/// - `k`, `v`: `[batch, past_pos, n_kv_heads, d_head]` (keys already rotated)
#[derive(Default)]
pub struct LayerKv {
    /// Cached keys.
    pub k: Option<Tensor>,
    /// Cached values.
    pub v: Option<Tensor>,
}

/// What attention needs to know about the sequence.
pub struct AttnContext<'c> {
    /// Absolute position of each token, `[batch, pos]` int64 (rotary embeddings read it).
    pub positions: &'c Tensor,
    /// Which keys are real tokens, `[batch, past_pos + pos]` bool; `None` when all are.
    pub key_mask: Option<&'c Tensor>,
    /// Positions already in the key/value cache.
    pub past_len: i64,
    /// Decoder (causal) or encoder attention.
    pub causal: bool,
}

/// An attention layer's projections, stored `[d_in, d_out]`. Architectures read these from a
/// checkpoint; [`Attention`] adds the head shape and what each layer runs with.
pub struct AttnWeights {
    /// `[d_model, n_heads * d_head]`.
    pub w_q: Tensor,
    /// `[n_heads * d_head]`.
    pub b_q: Option<Tensor>,
    /// `[d_model, n_kv_heads * d_head]`.
    pub w_k: Tensor,
    /// `[n_kv_heads * d_head]`.
    pub b_k: Option<Tensor>,
    /// `[d_model, n_kv_heads * d_head]`.
    pub w_v: Tensor,
    /// `[n_kv_heads * d_head]`.
    pub b_v: Option<Tensor>,
    /// `[n_heads * d_head, d_model]`.
    pub w_o: Tensor,
    /// `[d_model]`.
    pub b_o: Option<Tensor>,
}

/// One attention layer.
pub struct Attention {
    /// The projections.
    pub w: AttnWeights,
    /// Query heads.
    pub n_heads: i64,
    /// Key/value heads.
    pub n_kv_heads: i64,
    /// Width of a head.
    pub d_head: i64,
    /// Scores are divided by this.
    pub attn_scale: f64,
    /// `Some(w)`: a query sees only the last `w` positions (itself included).
    pub window: Option<i64>,
    /// Rotary embeddings, if the model uses them.
    pub rotary: Option<std::rc::Rc<Rotary>>,
    /// Compute per-head results (`hook_result`) even when no hook names them.
    pub use_result: bool,
}

/// Projects `x` to heads. `x` is `[b, p, d_model]`, or `[b, p, n, d_model]` when the input was
/// split per head; the result is `[b, p, n, d_head]`.
fn project(x: &Tensor, w: &Tensor, b: Option<&Tensor>, n: i64, d_head: i64) -> Result<Tensor> {
    let size = x.size();
    if size.len() == 3 {
        return Ok(affine(x, w, b)?.f_view([size[0], size[1], n, d_head])?);
    }
    let d_model = size[3];
    let per_head = w.f_view([d_model, n, d_head])?.f_permute([1, 0, 2])?;
    let out = Tensor::f_einsum("bpnm,nmd->bpnd", &[x, &per_head], None::<&[i64]>)?;
    match b {
        Some(b) => Ok(out.f_add(&b.f_view([n, d_head])?)?),
        None => Ok(out),
    }
}

impl Attention {
    /// Runs attention for `layer`. The three inputs are the (normalised) residual, the same
    /// tensor three times unless the model splits inputs per head.
    ///
    /// # Shapes
    /// - `q_in`, `k_in`, `v_in`: `[batch, pos, d_model]` or `[batch, pos, heads, d_model]`
    /// - returns `[batch, pos, d_model]`
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        layer: usize,
        q_in: &Tensor,
        k_in: &Tensor,
        v_in: &Tensor,
        ctx: &AttnContext,
        kv: Option<&mut LayerKv>,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let (h, kvh, dh) = (self.n_heads, self.n_kv_heads, self.d_head);
        let q = s.hook(
            HookPoint::Q(layer),
            project(q_in, &self.w.w_q, self.w.b_q.as_ref(), h, dh)?,
        )?;
        let k = s.hook(
            HookPoint::K(layer),
            project(k_in, &self.w.w_k, self.w.b_k.as_ref(), kvh, dh)?,
        )?;
        let v = s.hook(
            HookPoint::V(layer),
            project(v_in, &self.w.w_v, self.w.b_v.as_ref(), kvh, dh)?,
        )?;
        let (q, mut k) = match &self.rotary {
            Some(rotary) => {
                let k_positions = ctx.positions;
                let q = s.hook(HookPoint::RotQ(layer), rotary.apply(&q, ctx.positions)?)?;
                let k = s.hook(HookPoint::RotK(layer), rotary.apply(&k, k_positions)?)?;
                (q, k)
            }
            None => (q, k),
        };
        let mut v = v;
        if let Some(cache) = kv {
            if let (Some(pk), Some(pv)) = (&cache.k, &cache.v) {
                k = Tensor::f_cat(&[pk, &k], 1)?;
                v = Tensor::f_cat(&[pv, &v], 1)?;
            }
            cache.k = Some(k.shallow_clone());
            cache.v = Some(v.shallow_clone());
        }

        let (b, p) = (q.size()[0], q.size()[1]);
        let kp = k.size()[1];
        let qt = q.f_transpose(1, 2)?;
        let mut kt = k.f_transpose(1, 2)?;
        let mut vt = v.f_transpose(1, 2)?;
        let explicit = s.is_active()
            && (s.wants(HookPoint::AttnScores(layer)) || s.wants(HookPoint::Pattern(layer)));
        let allowed = self.allowed(p, kp, ctx, q.device())?;
        let z = if explicit {
            if kvh < h {
                kt = kt.f_repeat_interleave_self_int(h / kvh, 1, None)?;
                vt = vt.f_repeat_interleave_self_int(h / kvh, 1, None)?;
            }
            let scores = qt
                .f_matmul(&kt.f_transpose(-1, -2)?)?
                .f_div_scalar(self.attn_scale)?;
            let scores = match &allowed {
                Some(mask) => scores.f_masked_fill(&mask.f_logical_not()?, f64::NEG_INFINITY)?,
                None => scores,
            };
            let scores = s.hook(HookPoint::AttnScores(layer), scores)?;
            let mut pattern = scores.f_softmax(-1, scores.kind())?;
            if ctx.key_mask.is_some() {
                // A padding query that sees no real key would be NaN; it attends to nothing.
                pattern = pattern.f_nan_to_num(0.0, None, None)?;
            }
            let pattern = s.hook(HookPoint::Pattern(layer), pattern)?;
            pattern.f_matmul(&vt)?
        } else {
            let simple_causal =
                ctx.causal && ctx.key_mask.is_none() && self.window.is_none() && p == kp;
            let mask = if simple_causal { None } else { allowed };
            Tensor::f_scaled_dot_product_attention(
                &qt,
                &kt,
                &vt,
                mask.as_ref(),
                0.0,
                simple_causal,
                1.0 / self.attn_scale,
                kvh < h,
            )?
        };
        let z = s.hook(HookPoint::Z(layer), z.f_transpose(1, 2)?)?;
        let d_model = self.w.w_o.size()[1];
        if self.use_result || s.names(HookPoint::AttnResult(layer)) {
            let w_o = self.w.w_o.f_view([h, dh, d_model])?;
            let result = Tensor::f_einsum("bphd,hdm->bphm", &[&z, &w_o], None::<&[i64]>)?;
            let result = s.hook(HookPoint::AttnResult(layer), result)?;
            let out = result.f_sum_dim_intlist(2, false, None)?;
            return match &self.w.b_o {
                Some(b_o) => Ok(out.f_add(b_o)?),
                None => Ok(out),
            };
        }
        affine(
            &z.f_reshape([b, p, h * dh])?,
            &self.w.w_o,
            self.w.b_o.as_ref(),
        )
    }

    /// Which (query, key) pairs may attend, `[batch | 1, 1, pos, key_pos]`; `None` when all.
    fn allowed(
        &self,
        p: i64,
        kp: i64,
        ctx: &AttnContext,
        device: Device,
    ) -> Result<Option<Tensor>> {
        let mut mask: Option<Tensor> = None;
        if ctx.causal {
            let q_pos =
                Tensor::f_arange_start(ctx.past_len, ctx.past_len + p, (Kind::Int64, device))?
                    .f_unsqueeze(1)?;
            let k_pos = Tensor::f_arange(kp, (Kind::Int64, device))?.f_unsqueeze(0)?;
            let mut causal = k_pos.f_le_tensor(&q_pos)?;
            if let Some(w) = self.window {
                causal = causal.f_logical_and(&q_pos.f_sub(&k_pos)?.f_lt(w)?)?;
            }
            mask = Some(causal.f_view([1, 1, p, kp])?);
        }
        if let Some(keys) = ctx.key_mask {
            let b = keys.size()[0];
            let keys = keys.f_to_kind(Kind::Bool)?.f_view([b, 1, 1, kp])?;
            mask = Some(match mask {
                Some(m) => m.f_logical_and(&keys)?,
                None => keys.f_expand([b, 1, p, kp], false)?,
            });
        }
        Ok(mask)
    }
}
