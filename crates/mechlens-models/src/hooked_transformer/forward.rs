//! The decoder's forward pass: embeddings, blocks, final norm, unembedding, calling the hook
//! session at every site. Optionally from a residual stream, up to a layer, or with a
//! key/value cache (generation).

use mechlens_core::{HookPoint, HookSession, Result};
use tch::{Kind, Tensor};

use super::Modules;
use crate::components::{AttnContext, LayerKv, affine};

/// Per-layer key/value cache for generation.
#[derive(Default)]
pub(crate) struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    /// Attention mask over every position seen so far, `[batch, len]`.
    pub(crate) mask: Option<Tensor>,
    pub(crate) len: i64,
}

/// Where a forward pass starts.
pub(crate) enum Start<'t> {
    /// From token ids.
    Tokens(&'t Tensor),
    /// From a residual stream entering a block.
    Residual(&'t Tensor, usize),
}

impl Modules {
    /// The forward pass. Returns logits, or the residual entering `stop` when given. With
    /// `keep`, the last block carries only those positions past its attention, and the logits
    /// are `[batch, keep, d_vocab]`.
    pub(crate) fn run(
        &self,
        start: Start,
        mask: Option<&Tensor>,
        stop: Option<usize>,
        mut kv: Option<&mut KvCache>,
        keep: Option<&Tensor>,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let past_len = kv.as_ref().map_or(0, |c| c.len);
        let (mut x, first, b, p, device) = match start {
            Start::Tokens(tokens) => {
                let size = tokens.size();
                (None, 0, size[0], size[1], tokens.device())
            }
            Start::Residual(r, layer) => {
                let size = r.size();
                (Some(r.shallow_clone()), layer, size[0], size[1], r.device())
            }
        };
        // Positions: counted over real tokens when there is padding, so a left-padded
        // sequence sees the positions it would see alone.
        let full_mask = match (&mut kv, mask) {
            (Some(cache), Some(m)) => {
                let all = match &cache.mask {
                    Some(prev) => Tensor::f_cat(&[prev, m], 1)?,
                    None => m.shallow_clone(),
                };
                cache.mask = Some(all.shallow_clone());
                Some(all)
            }
            (Some(cache), None) => cache
                .mask
                .as_ref()
                .map(|prev| -> Result<Tensor> {
                    let ones = Tensor::f_ones([b, p], (Kind::Int64, device))?;
                    Ok(Tensor::f_cat(&[prev, &ones], 1)?)
                })
                .transpose()?
                .inspect(|all| cache.mask = Some(all.shallow_clone())),
            (None, m) => m.map(Tensor::shallow_clone),
        };
        let positions = match &full_mask {
            Some(m) => m
                .f_cumsum(1, Kind::Int64)?
                .f_sub_scalar(1)?
                .f_clamp_min(0)?
                .f_narrow(1, past_len, p)?,
            None => Tensor::f_arange_start(past_len, past_len + p, (Kind::Int64, device))?
                .f_unsqueeze(0)?
                .f_expand([b, p], false)?,
        };
        if let Start::Tokens(tokens) = start {
            x = Some(self.embed.forward(tokens, &positions, s)?);
        }
        let mut x = x.unwrap_or_else(Tensor::new);
        let key_mask = full_mask.as_ref().map(|m| m.f_ne(0)).transpose()?;
        let ctx = AttnContext {
            positions: &positions,
            key_mask: key_mask.as_ref(),
            past_len,
            causal: true,
        };
        let last = stop.unwrap_or(self.blocks.len());
        for block in &self.blocks[first.min(last)..last] {
            let layer_kv = kv.as_mut().map(|c| {
                if c.layers.len() < self.blocks.len() {
                    c.layers.resize_with(self.blocks.len(), LayerKv::default);
                }
                &mut c.layers[block.layer]
            });
            let keep = if block.layer + 1 == last { keep } else { None };
            x = block.forward(x, &ctx, layer_kv, keep, s)?;
        }
        if let Some(cache) = kv {
            cache.len += p;
        }
        if stop.is_some() {
            return Ok(x);
        }
        let x =
            self.ln_final
                .forward(&x, HookPoint::LnFinalScale, HookPoint::LnFinalNormalized, s)?;
        let x = s.hook(HookPoint::UnembedIn, x)?;
        let logits = affine(&x, &self.w_u, self.b_u.as_ref())?;
        s.hook(HookPoint::UnembedOut, logits)
    }
}
