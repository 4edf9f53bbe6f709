//! Weight processing, TransformerLens' definitions: fold LayerNorm weights into the next
//! linear layer, centre what writes to the residual stream, centre the unembedding, fold
//! value biases into the output bias. Off by default so that logits equal Hugging Face's;
//! [`Processing::transformer_lens`] is TransformerLens' `from_pretrained` default. None of
//! them changes the log-probabilities (centring only removes what LayerNorm removes anyway).

use mechlens_core::Result;
use tch::Tensor;

use crate::config::Normalization;
use crate::hooked_transformer::HookedTransformer;

/// Which processing steps to apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Processing {
    /// Fold each norm's weight (and bias) into the layer that reads it; norms become
    /// weightless (`LNPre` / `RMSPre`). For LayerNorm, also centre the reading weights.
    pub fold_ln: bool,
    /// Remove the mean over `d_model` from `W_E`, `W_pos`, `W_O`, `b_O`, `W_out`, `b_out`
    /// (LayerNorm models only, as in TransformerLens).
    pub center_writing_weights: bool,
    /// Remove the mean over the vocabulary from `W_U` and `b_U`.
    pub center_unembed: bool,
    /// Fold `b_V` into `b_O` (exact, since attention patterns sum to one).
    pub fold_value_biases: bool,
}

impl Processing {
    /// Nothing: raw weights.
    pub fn none() -> Self {
        Self::default()
    }

    /// TransformerLens' `from_pretrained` defaults: everything on.
    pub fn transformer_lens() -> Self {
        Self {
            fold_ln: true,
            center_writing_weights: true,
            center_unembed: true,
            fold_value_biases: true,
        }
    }

    fn any(&self) -> bool {
        self.fold_ln || self.center_writing_weights || self.center_unembed || self.fold_value_biases
    }
}

fn center_last(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_sub(&t.f_mean_dim(-1, true, None)?)?)
}

/// Folds a norm (`w`, `b`) into a reader `x @ weight + bias`; returns the new weight and bias.
fn fold(
    weight: &Tensor,
    bias: Option<&Tensor>,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    center: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let bias = match b {
        Some(b) => {
            let shift = b.f_matmul(weight)?;
            Some(match bias {
                Some(old) => old.f_add(&shift)?,
                None => shift,
            })
        }
        None => bias.map(Tensor::shallow_clone),
    };
    let mut weight = match w {
        Some(w) => weight.f_mul(&w.f_unsqueeze(1)?)?,
        None => weight.shallow_clone(),
    };
    if center {
        weight = weight.f_sub(&weight.f_mean_dim(0, true, None)?)?;
    }
    Ok((weight, bias))
}

impl HookedTransformer {
    /// Applies `p` to the weights in place. Processing twice folds nothing twice: folded
    /// norms have no weights left.
    ///
    /// # Errors
    /// libtorch's errors only.
    pub fn process_weights(&mut self, p: &Processing) -> Result<()> {
        if !p.any() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let m = &mut self.m;
        let layer_norm = matches!(
            m.cfg.normalization,
            Normalization::LayerNorm | Normalization::LayerNormPre
        );
        // The unembedding may be a view of W_E; processing changes them separately.
        m.w_u = m.w_u.copy();
        if p.fold_ln && m.cfg.has_norm_weights() {
            for block in &mut m.blocks {
                let (w1, b1) = (block.ln1.w.take(), block.ln1.b.take());
                let a = &mut block.attn.w;
                (a.w_q, a.b_q) =
                    fold(&a.w_q, a.b_q.as_ref(), w1.as_ref(), b1.as_ref(), layer_norm)?;
                (a.w_k, a.b_k) =
                    fold(&a.w_k, a.b_k.as_ref(), w1.as_ref(), b1.as_ref(), layer_norm)?;
                (a.w_v, a.b_v) =
                    fold(&a.w_v, a.b_v.as_ref(), w1.as_ref(), b1.as_ref(), layer_norm)?;
                let (w2, b2) = (block.ln2.w.take(), block.ln2.b.take());
                let Some(mlp) = &mut block.mlp else { continue };
                (mlp.w_in, mlp.b_in) = fold(
                    &mlp.w_in,
                    mlp.b_in.as_ref(),
                    w2.as_ref(),
                    b2.as_ref(),
                    layer_norm,
                )?;
                if let Some(gate) = &mlp.w_gate {
                    mlp.w_gate = Some(fold(gate, None, w2.as_ref(), None, layer_norm)?.0);
                }
            }
            let (wf, bf) = (m.ln_final.w.take(), m.ln_final.b.take());
            (m.w_u, m.b_u) = fold(&m.w_u, m.b_u.as_ref(), wf.as_ref(), bf.as_ref(), layer_norm)?;
            let pre = if layer_norm {
                Normalization::LayerNormPre
            } else {
                Normalization::RmsPre
            };
            m.cfg.normalization = pre;
            for block in &mut m.blocks {
                block.ln1.kind = pre;
                block.ln2.kind = pre;
            }
            m.ln_final.kind = pre;
        }
        if p.center_writing_weights && layer_norm {
            m.embed.w_e = center_last(&m.embed.w_e)?;
            if let Some(w_pos) = &m.embed.w_pos {
                m.embed.w_pos = Some(center_last(w_pos)?);
            }
            for block in &mut m.blocks {
                block.attn.w.w_o = center_last(&block.attn.w.w_o)?;
                block.attn.w.b_o = block.attn.w.b_o.as_ref().map(center_last).transpose()?;
                if let Some(mlp) = &mut block.mlp {
                    mlp.w_out = center_last(&mlp.w_out)?;
                    mlp.b_out = mlp.b_out.as_ref().map(center_last).transpose()?;
                }
            }
        }
        if p.center_unembed {
            m.w_u = center_last(&m.w_u)?;
            m.b_u = m.b_u.as_ref().map(center_last).transpose()?;
        }
        if p.fold_value_biases {
            let group = (m.cfg.n_heads / m.cfg.n_kv_heads) as i64;
            let d_head = m.cfg.d_head as i64;
            for block in &mut m.blocks {
                let a = &mut block.attn.w;
                let Some(b_v) = a.b_v.take() else { continue };
                // One value bias per key/value head, shared by its group of query heads.
                let per_query_head = b_v
                    .f_view([-1, d_head])?
                    .f_repeat_interleave_self_int(group, 0, None)?
                    .f_reshape([-1])?;
                let shift = per_query_head.f_matmul(&a.w_o)?;
                a.b_o = Some(match &a.b_o {
                    Some(b_o) => b_o.f_add(&shift)?,
                    None => shift,
                });
                a.b_v = Some(b_v.f_zeros_like()?);
            }
        }
        Ok(())
    }
}
