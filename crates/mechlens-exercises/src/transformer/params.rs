//! A GPT-2-style model's weights as plain tensors in TransformerLens' layouts, for
//! exercises that take weights as arguments: no traits, no lifetimes, fields named as
//! TransformerLens names them (`W_Q` is `w_q`).

use std::collections::HashMap;

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use tch::Tensor;

/// One attention layer.
///
/// # Shapes
/// - `w_q`, `w_k`, `w_v`: `[n_heads, d_model, d_head]`; `b_q`, `b_k`, `b_v`: `[n_heads, d_head]`
/// - `w_o`: `[n_heads, d_head, d_model]`; `b_o`: `[d_model]`
pub struct AttnParams {
    /// `W_Q`, `[n_heads, d_model, d_head]`.
    pub w_q: Tensor,
    /// `b_Q`, `[n_heads, d_head]`.
    pub b_q: Tensor,
    /// `W_K`, `[n_heads, d_model, d_head]`.
    pub w_k: Tensor,
    /// `b_K`, `[n_heads, d_head]`.
    pub b_k: Tensor,
    /// `W_V`, `[n_heads, d_model, d_head]`.
    pub w_v: Tensor,
    /// `b_V`, `[n_heads, d_head]`.
    pub b_v: Tensor,
    /// `W_O`, `[n_heads, d_head, d_model]`.
    pub w_o: Tensor,
    /// `b_O`, `[d_model]`.
    pub b_o: Tensor,
}

/// One MLP layer: `W_out · gelu(W_in · x + b_in) + b_out`.
///
/// # Shapes
/// - `w_in`: `[d_model, d_mlp]`; `b_in`: `[d_mlp]`; `w_out`: `[d_mlp, d_model]`; `b_out`: `[d_model]`
pub struct MlpParams {
    /// `W_in`, `[d_model, d_mlp]`.
    pub w_in: Tensor,
    /// `b_in`, `[d_mlp]`.
    pub b_in: Tensor,
    /// `W_out`, `[d_mlp, d_model]`.
    pub w_out: Tensor,
    /// `b_out`, `[d_model]`.
    pub b_out: Tensor,
}

/// One block: `x + attn(ln1(x))`, then `+ mlp(ln2(·))`.
///
/// # Shapes
/// - `ln1_w`, `ln1_b`, `ln2_w`, `ln2_b`: `[d_model]`
pub struct BlockParams {
    /// `ln1.w`, `[d_model]`.
    pub ln1_w: Tensor,
    /// `ln1.b`, `[d_model]`.
    pub ln1_b: Tensor,
    /// The attention layer.
    pub attn: AttnParams,
    /// `ln2.w`, `[d_model]`.
    pub ln2_w: Tensor,
    /// `ln2.b`, `[d_model]`.
    pub ln2_b: Tensor,
    /// The MLP.
    pub mlp: MlpParams,
}

/// A whole GPT-2-style model (learned positions, LayerNorm, GELU MLPs).
///
/// # Shapes
/// - `w_e`: `[d_vocab, d_model]`; `w_pos`: `[n_ctx, d_model]`
/// - `ln_final_w`, `ln_final_b`: `[d_model]`; `w_u`: `[d_model, d_vocab]`; `b_u`: `[d_vocab]`
pub struct GptParams {
    /// `W_E`, `[d_vocab, d_model]`.
    pub w_e: Tensor,
    /// `W_pos`, `[n_ctx, d_model]`.
    pub w_pos: Tensor,
    /// The blocks, first to last.
    pub blocks: Vec<BlockParams>,
    /// `ln_final.w`, `[d_model]`.
    pub ln_final_w: Tensor,
    /// `ln_final.b`, `[d_model]`.
    pub ln_final_b: Tensor,
    /// `W_U`, `[d_model, d_vocab]`.
    pub w_u: Tensor,
    /// `b_U`, `[d_vocab]`.
    pub b_u: Tensor,
    /// The LayerNorms' epsilon.
    pub eps: f64,
}

/// A model's parameters by name, copied out in TransformerLens' layouts.
struct Named {
    map: HashMap<String, Tensor>,
    n_heads: i64,
    d_head: i64,
}

impl Named {
    fn of(model: &HookedTransformer) -> Self {
        let cfg = model.cfg();
        Self {
            map: model.named_parameters().into_iter().collect(),
            n_heads: cfg.n_heads as i64,
            d_head: cfg.d_head as i64,
        }
    }

    /// A copy of the parameter (changing it does not change the model).
    fn get(&self, name: &str) -> Result<Tensor> {
        self.map
            .get(name)
            .map(|t| t.detach().copy())
            .ok_or_else(|| Error::Unsupported {
                what: "model for the exercises' weights, one without",
                name: name.into(),
                supported: vec![
                    "GPT-2-shaped models: LayerNorm, biases everywhere, learned positions, ungated MLPs"
                        .into(),
                ],
            })
    }

    /// Ours are `[d_model, n_heads * d_head]`; TransformerLens' `[n_heads, d_model, d_head]`.
    fn heads_in(&self, name: &str) -> Result<Tensor> {
        let t = self.get(name)?;
        let d_model = t.size()[0];
        Ok(t.f_view([d_model, self.n_heads, self.d_head])?
            .f_permute([1, 0, 2])?
            .f_contiguous()?)
    }

    fn bias_heads(&self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.f_view([self.n_heads, self.d_head])?)
    }

    fn attn(&self, layer: usize) -> Result<AttnParams> {
        let p = |n: &str| format!("blocks.{layer}.attn.{n}");
        let w_o = self.get(&p("w_o"))?;
        let d_model = w_o.size()[1];
        Ok(AttnParams {
            w_q: self.heads_in(&p("w_q"))?,
            b_q: self.bias_heads(&p("b_q"))?,
            w_k: self.heads_in(&p("w_k"))?,
            b_k: self.bias_heads(&p("b_k"))?,
            w_v: self.heads_in(&p("w_v"))?,
            b_v: self.bias_heads(&p("b_v"))?,
            w_o: w_o.f_view([self.n_heads, self.d_head, d_model])?,
            b_o: self.get(&p("b_o"))?,
        })
    }

    fn mlp(&self, layer: usize) -> Result<MlpParams> {
        let p = |n: &str| format!("blocks.{layer}.mlp.{n}");
        if self.map.contains_key(&p("w_gate")) {
            return Err(Error::Unsupported {
                what: "MLP for the exercises' weights",
                name: "gated".into(),
                supported: vec!["ungated GELU MLPs (GPT-2)".into()],
            });
        }
        Ok(MlpParams {
            w_in: self.get(&p("w_in"))?,
            b_in: self.get(&p("b_in"))?,
            w_out: self.get(&p("w_out"))?,
            b_out: self.get(&p("b_out"))?,
        })
    }
}

impl AttnParams {
    /// A copy of layer `layer`'s attention weights of `model`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a model without attention biases; [`Error::InvalidInput`]
    /// for a layer it does not have.
    pub fn from_model(model: &HookedTransformer, layer: usize) -> Result<Self> {
        check_layer(model, layer)?;
        Named::of(model).attn(layer)
    }
}

impl MlpParams {
    /// A copy of layer `layer`'s MLP weights of `model`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a model without MLPs, or with gated ones or without biases;
    /// [`Error::InvalidInput`] for a layer it does not have.
    pub fn from_model(model: &HookedTransformer, layer: usize) -> Result<Self> {
        check_layer(model, layer)?;
        Named::of(model).mlp(layer)
    }
}

fn check_layer(model: &HookedTransformer, layer: usize) -> Result<()> {
    let n = model.cfg().n_layers;
    if layer >= n {
        return Err(Error::invalid(
            "layer",
            format!("the model has layers 0..{n}, not {layer}"),
        ));
    }
    Ok(())
}

impl GptParams {
    /// A copy of `model`'s weights (changing them does not change the model).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a model that is not GPT-2-shaped: every block with
    /// LayerNorm (weight and bias), attention and MLP biases, an ungated MLP, learned
    /// positions.
    pub fn from_model(model: &HookedTransformer) -> Result<Self> {
        let named = Named::of(model);
        let blocks = (0..model.cfg().n_layers)
            .map(|l| {
                let p = |n: &str| format!("blocks.{l}.{n}");
                Ok(BlockParams {
                    ln1_w: named.get(&p("ln1.w"))?,
                    ln1_b: named.get(&p("ln1.b"))?,
                    attn: named.attn(l)?,
                    ln2_w: named.get(&p("ln2.w"))?,
                    ln2_b: named.get(&p("ln2.b"))?,
                    mlp: named.mlp(l)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            w_e: named.get("embed.w_e")?,
            w_pos: named.get("embed.w_pos")?,
            blocks,
            ln_final_w: named.get("ln_final.w")?,
            ln_final_b: named.get("ln_final.b")?,
            w_u: named.get("unembed.w_u")?,
            b_u: named.get("unembed.b_u")?,
            eps: model.cfg().eps,
        })
    }
}
