//! The linear maps inside a [`HookedTransformer`]'s blocks, each as `input · W + b` with
//! the hook point where its input is read and the one where its output appears: what a
//! method that rewrites a map's computation needs (parameter decomposition swaps `W` for a
//! sum of masked rank-one pieces) without changing the forward pass itself.
//!
//! Names are TransformerLens' parameter names (`blocks.0.attn.W_Q`, `blocks.0.mlp.W_in`);
//! weights are stored `[d_in, d_out]` with the heads side by side (`W_Q` is
//! `[d_model, n_heads · d_head]`), the layout the forward pass multiplies by.

use mechlens_core::{Error, HookPoint, HookSession, Result};
use tch::Tensor;

use crate::components::Block;
use crate::hooked_transformer::HookedTransformer;

/// Which map of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Queries: reads `ln1(hook_resid_pre)`, writes `attn.hook_q` (`[.., n_heads, d_head]`).
    Q,
    /// Keys: as queries, to `attn.hook_k` (`n_kv_heads` heads).
    K,
    /// Values: as keys, to `attn.hook_v`.
    V,
    /// Attention output: reads `attn.hook_z` (heads side by side), writes `hook_attn_out`.
    O,
    /// MLP input (the linear branch of a gated MLP): reads `ln2(hook_mlp_in)`, writes
    /// `mlp.hook_pre` (`mlp.hook_pre_linear` when gated).
    In,
    /// Gate of a gated MLP: reads `ln2(hook_mlp_in)`, writes `mlp.hook_pre`.
    Gate,
    /// MLP output: reads `mlp.hook_post`, writes `hook_mlp_out`.
    Out,
}

/// One linear map of a block.
pub struct LinearMap {
    /// TransformerLens' name of its weight, e.g. `blocks.1.mlp.W_out`.
    pub name: String,
    /// Its block.
    pub layer: usize,
    /// Which map.
    pub kind: MapKind,
    /// `[d_in, d_out]` (the model's own tensor, not a copy).
    pub weight: Tensor,
    /// `[d_out]`, if it has one.
    pub bias: Option<Tensor>,
    /// The hook point whose activation the map's input is computed from (see [`MapKind`]:
    /// the attention and MLP inputs pass through the block's norm first,
    /// [`HookedTransformer::map_input`]).
    pub input_hook: HookPoint,
    /// The hook point whose activation is `input · W + b`.
    pub output_hook: HookPoint,
}

/// Where `kind`'s input is read and its output written in block `l` (`gated`: the block's
/// MLP has a gate, so `W_in` writes `mlp.hook_pre_linear`).
fn hook_points(kind: MapKind, l: usize, gated: bool) -> (HookPoint, HookPoint) {
    match kind {
        MapKind::Q => (HookPoint::ResidPre(l), HookPoint::Q(l)),
        MapKind::K => (HookPoint::ResidPre(l), HookPoint::K(l)),
        MapKind::V => (HookPoint::ResidPre(l), HookPoint::V(l)),
        MapKind::O => (HookPoint::Z(l), HookPoint::AttnOut(l)),
        MapKind::In if gated => (HookPoint::MlpIn(l), HookPoint::MlpPreLinear(l)),
        MapKind::In | MapKind::Gate => (HookPoint::MlpIn(l), HookPoint::MlpPre(l)),
        MapKind::Out => (HookPoint::MlpPost(l), HookPoint::MlpOut(l)),
    }
}

impl HookedTransformer {
    /// Every linear map of every block, block by block in the order the forward pass uses
    /// them (`W_Q`, `W_K`, `W_V`, `W_O`, then `W_gate`, `W_in`, `W_out`).
    pub fn linear_maps(&self) -> Vec<LinearMap> {
        let mut out = Vec::new();
        for b in &self.m.blocks {
            let l = b.layer;
            let gated = b.mlp.as_ref().is_some_and(|m| m.w_gate.is_some());
            let mut push = |kind, part: &str, w: &Tensor, bias: Option<&Tensor>| {
                let (input_hook, output_hook) = hook_points(kind, l, gated);
                out.push(LinearMap {
                    name: format!("blocks.{l}.{part}"),
                    layer: l,
                    kind,
                    weight: w.shallow_clone(),
                    bias: bias.map(Tensor::shallow_clone),
                    input_hook,
                    output_hook,
                });
            };
            let a = &b.attn.w;
            push(MapKind::Q, "attn.W_Q", &a.w_q, a.b_q.as_ref());
            push(MapKind::K, "attn.W_K", &a.w_k, a.b_k.as_ref());
            push(MapKind::V, "attn.W_V", &a.w_v, a.b_v.as_ref());
            push(MapKind::O, "attn.W_O", &a.w_o, a.b_o.as_ref());
            if let Some(m) = &b.mlp {
                if let Some(g) = &m.w_gate {
                    push(MapKind::Gate, "mlp.W_gate", g, None);
                }
                push(MapKind::In, "mlp.W_in", &m.w_in, m.b_in.as_ref());
                push(MapKind::Out, "mlp.W_out", &m.w_out, m.b_out.as_ref());
            }
        }
        out
    }

    /// Whether attention reads a per-head copy of the residual stream (`hook_attn_in` or
    /// `hook_q_input`... switched on), so that `W_Q`, `W_K`, `W_V` no longer read
    /// `ln1(hook_resid_pre)` as one tensor.
    pub fn splits_attention_input(&self) -> bool {
        self.m.blocks.iter().any(|b| b.attn_in || b.split_qkv_input)
    }

    /// The input of `map` computed from `act`, the activation at its
    /// `input_hook`: the block's norm applied for attention and MLP inputs
    /// (its own statistics and weights, no hooks), the heads side by side for `W_O`.
    ///
    /// # Shapes
    /// - `act`: `[batch, pos, d]` (`hook_z`: `[batch, pos, n_heads, d_head]`)
    ///   → `[batch, pos, d_in]`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a map of a layer the model does not have.
    pub fn map_input(&self, map: &LinearMap, act: &Tensor) -> Result<Tensor> {
        let block: &Block = self.m.blocks.get(map.layer).ok_or_else(|| {
            Error::invalid(
                "linear map",
                format!(
                    "{} is in block {}, but the model has {}",
                    map.name,
                    map.layer,
                    self.m.blocks.len()
                ),
            )
        })?;
        let mut none = HookSession::none();
        let l = map.layer;
        match map.kind {
            MapKind::Q | MapKind::K | MapKind::V => block.ln1.forward(
                act,
                HookPoint::Ln1Scale(l),
                HookPoint::Ln1Normalized(l),
                &mut none,
            ),
            MapKind::In | MapKind::Gate => block.ln2.forward(
                act,
                HookPoint::Ln2Scale(l),
                HookPoint::Ln2Normalized(l),
                &mut none,
            ),
            MapKind::O => {
                let s = act.size();
                Ok(act.f_reshape([s[0], s[1], -1])?)
            }
            MapKind::Out => Ok(act.shallow_clone()),
        }
    }
}
