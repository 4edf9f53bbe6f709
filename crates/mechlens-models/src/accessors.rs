//! Stacked weights in TransformerLens' layout (`W_Q` is `[n_layers, n_heads, d_model, d_head]`),
//! for weight-based analyses. Key/value weights of grouped-query attention are repeated to
//! one per query head, as TransformerLens' `W_K` / `W_V` are.

use mechlens_core::Result;
use tch::Tensor;

use crate::components::Attention;
use crate::hooked_transformer::HookedTransformer;

impl HookedTransformer {
    fn stack(&self, f: impl Fn(&crate::components::Block) -> Result<Tensor>) -> Result<Tensor> {
        let parts = self.m.blocks.iter().map(f).collect::<Result<Vec<_>>>()?;
        Ok(Tensor::f_stack(&parts, 0)?)
    }

    fn heads(&self, a: &Attention, w: &Tensor, n: i64) -> Result<Tensor> {
        let d_model = w.size()[0];
        let w = w.f_view([d_model, n, a.d_head])?.f_permute([1, 0, 2])?;
        Ok(if n < a.n_heads {
            w.f_repeat_interleave_self_int(a.n_heads / n, 0, None)?
        } else {
            w
        })
    }

    fn head_bias(&self, a: &Attention, b: Option<&Tensor>, n: i64) -> Result<Tensor> {
        let b = match b {
            Some(b) => b.f_view([n, a.d_head])?,
            None => Tensor::f_zeros([n, a.d_head], (a.w.w_q.kind(), a.w.w_q.device()))?,
        };
        Ok(if n < a.n_heads {
            b.f_repeat_interleave_self_int(a.n_heads / n, 0, None)?
        } else {
            b
        })
    }

    /// The number of learned parameters, each stored tensor counted once (a tied unembedding
    /// shares the embedding's storage). Folded or absent weights are not counted, so this can
    /// change with [`crate::Processing`].
    pub fn n_params(&self) -> i64 {
        let m = &self.m;
        let mut tensors: Vec<&Tensor> = vec![&m.embed.w_e, &m.w_u];
        tensors.extend(m.embed.w_pos.as_ref());
        tensors.extend(m.ln_final.w.as_ref());
        tensors.extend(m.ln_final.b.as_ref());
        tensors.extend(m.b_u.as_ref());
        for b in &m.blocks {
            let a = &b.attn.w;
            tensors.extend([&a.w_q, &a.w_k, &a.w_v, &a.w_o]);
            tensors.extend([&a.b_q, &a.b_k, &a.b_v, &a.b_o].into_iter().flatten());
            if let Some(mlp) = &b.mlp {
                tensors.extend([&mlp.w_in, &mlp.w_out]);
                tensors.extend([&mlp.b_in, &mlp.w_gate, &mlp.b_out].into_iter().flatten());
            }
            tensors.extend(
                [&b.ln1.w, &b.ln1.b, &b.ln2.w, &b.ln2.b]
                    .into_iter()
                    .flatten(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        tensors
            .into_iter()
            // A transposed view of the same storage (tied W_U) has the same data pointer.
            .filter(|t| seen.insert(t.data_ptr() as usize))
            .map(Tensor::numel)
            .sum::<usize>() as i64
    }

    /// Token embedding `W_E`, `[d_vocab, d_model]`.
    pub fn w_e(&self) -> Tensor {
        self.m.embed.w_e.shallow_clone()
    }

    /// Learned position embedding `W_pos`, `[n_ctx, d_model]` (`None` for rotary models).
    pub fn w_pos(&self) -> Option<Tensor> {
        self.m.embed.w_pos.as_ref().map(Tensor::shallow_clone)
    }

    /// Each layer's pre-attention norm weight `ln1.w`, `[n_layers, d_model]`; `None` once
    /// folded into the next weights (or for a norm without weights).
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn ln1_w(&self) -> Result<Option<Tensor>> {
        if self.m.blocks.iter().any(|b| b.ln1.w.is_none()) {
            return Ok(None);
        }
        self.stack(|b| {
            Ok(b.ln1
                .w
                .as_ref()
                .map(Tensor::shallow_clone)
                .unwrap_or_default())
        })
        .map(Some)
    }

    /// Each layer's pre-MLP norm weight `ln2.w`, `[n_layers, d_model]`; `None` once folded.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn ln2_w(&self) -> Result<Option<Tensor>> {
        if self.m.blocks.iter().any(|b| b.ln2.w.is_none()) {
            return Ok(None);
        }
        self.stack(|b| {
            Ok(b.ln2
                .w
                .as_ref()
                .map(Tensor::shallow_clone)
                .unwrap_or_default())
        })
        .map(Some)
    }

    /// The final norm applied to `x` with its own statistics and weights, no hooks: what the
    /// unembedding reads (TransformerLens' `model.ln_final(x)`).
    ///
    /// # Shapes
    /// - `x`: `[..., d_model]` → `[..., d_model]`
    ///
    /// # Errors
    /// `x`'s last dim is not `d_model`.
    pub fn apply_ln_final(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.m.cfg.d_model as i64;
        if x.size().last() != Some(&d) {
            return Err(mechlens_core::Error::ShapeMismatch {
                what: "input of ln_final".into(),
                expected: format!("[..., {d}]"),
                got: x.size(),
            });
        }
        let mut s = mechlens_core::HookSession::none();
        self.m.ln_final.forward(
            x,
            mechlens_core::HookPoint::LnFinalScale,
            mechlens_core::HookPoint::LnFinalNormalized,
            &mut s,
        )
    }

    /// Unembedding `W_U`, `[d_model, d_vocab]`.
    pub fn w_u(&self) -> Tensor {
        self.m.w_u.shallow_clone()
    }

    /// Unembedding bias `b_U`, `[d_vocab]` (zeros when the model has none).
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_u(&self) -> Result<Tensor> {
        match &self.m.b_u {
            Some(b) => Ok(b.shallow_clone()),
            None => Ok(Tensor::f_zeros(
                [self.m.cfg.d_vocab as i64],
                (self.m.w_u.kind(), self.m.w_u.device()),
            )?),
        }
    }

    /// `W_Q`, `[n_layers, n_heads, d_model, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_q(&self) -> Result<Tensor> {
        self.stack(|b| self.heads(&b.attn, &b.attn.w.w_q, b.attn.n_heads))
    }

    /// `W_K`, `[n_layers, n_heads, d_model, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_k(&self) -> Result<Tensor> {
        self.stack(|b| self.heads(&b.attn, &b.attn.w.w_k, b.attn.n_kv_heads))
    }

    /// `W_V`, `[n_layers, n_heads, d_model, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_v(&self) -> Result<Tensor> {
        self.stack(|b| self.heads(&b.attn, &b.attn.w.w_v, b.attn.n_kv_heads))
    }

    /// `W_O`, `[n_layers, n_heads, d_head, d_model]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_o(&self) -> Result<Tensor> {
        self.stack(|b| Ok(b.attn.w.w_o.f_view([b.attn.n_heads, b.attn.d_head, -1])?))
    }

    /// `b_Q`, `[n_layers, n_heads, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_q(&self) -> Result<Tensor> {
        self.stack(|b| self.head_bias(&b.attn, b.attn.w.b_q.as_ref(), b.attn.n_heads))
    }

    /// `b_K`, `[n_layers, n_heads, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_k(&self) -> Result<Tensor> {
        self.stack(|b| self.head_bias(&b.attn, b.attn.w.b_k.as_ref(), b.attn.n_kv_heads))
    }

    /// `b_V`, `[n_layers, n_heads, d_head]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_v(&self) -> Result<Tensor> {
        self.stack(|b| self.head_bias(&b.attn, b.attn.w.b_v.as_ref(), b.attn.n_kv_heads))
    }

    /// `b_O`, `[n_layers, d_model]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_o(&self) -> Result<Tensor> {
        let d = self.m.cfg.d_model as i64;
        self.stack(|b| match &b.attn.w.b_o {
            Some(x) => Ok(x.shallow_clone()),
            None => Ok(Tensor::f_zeros(
                [d],
                (b.attn.w.w_o.kind(), b.attn.w.w_o.device()),
            )?),
        })
    }

    /// `W_in`, `[n_layers, d_model, d_mlp]` (the linear branch of a gated MLP).
    ///
    /// # Errors
    /// [`mechlens_core::Error::InvalidInput`] for an attention-only model; this holds for
    /// every MLP weight below.
    pub fn w_in(&self) -> Result<Tensor> {
        self.stack(|b| Ok(mlp(b)?.w_in.shallow_clone()))
    }

    /// `W_gate`, `[n_layers, d_model, d_mlp]`, for gated MLPs.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_gate(&self) -> Result<Option<Tensor>> {
        if self
            .m
            .blocks
            .iter()
            .any(|b| mlp(b).map_or(true, |m| m.w_gate.is_none()))
        {
            return Ok(None);
        }
        self.stack(|b| {
            Ok(mlp(b)?
                .w_gate
                .as_ref()
                .map(Tensor::shallow_clone)
                .unwrap_or_else(Tensor::new))
        })
        .map(Some)
    }

    /// `W_out`, `[n_layers, d_mlp, d_model]`.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn w_out(&self) -> Result<Tensor> {
        self.stack(|b| Ok(mlp(b)?.w_out.shallow_clone()))
    }

    /// `b_in`, `[n_layers, d_mlp]` (zeros when absent).
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_in(&self) -> Result<Tensor> {
        let n = self.m.cfg.d_mlp as i64;
        self.stack(|b| {
            let mlp = mlp(b)?;
            match &mlp.b_in {
                Some(x) => Ok(x.shallow_clone()),
                None => Ok(Tensor::f_zeros([n], (mlp.w_in.kind(), mlp.w_in.device()))?),
            }
        })
    }

    /// `b_out`, `[n_layers, d_model]` (zeros when absent).
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn b_out(&self) -> Result<Tensor> {
        let d = self.m.cfg.d_model as i64;
        self.stack(|b| {
            let mlp = mlp(b)?;
            match &mlp.b_out {
                Some(x) => Ok(x.shallow_clone()),
                None => Ok(Tensor::f_zeros(
                    [d],
                    (mlp.w_out.kind(), mlp.w_out.device()),
                )?),
            }
        })
    }
}

/// A block's MLP, or an error saying the model is attention-only.
fn mlp(b: &crate::components::Block) -> Result<&crate::components::Mlp> {
    b.mlp.as_ref().ok_or_else(|| {
        mechlens_core::Error::invalid(
            "MLP weights",
            "this model is attention-only (attn_only): its blocks have no MLP",
        )
    })
}
