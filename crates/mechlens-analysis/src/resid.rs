//! The residual stream taken apart, from a cache: accumulated (the stream after each layer),
//! decomposed (what each layer and head wrote), per-neuron outputs, the final norm applied to
//! a stack, and each component's direct effect on a logit. TransformerLens' `ActivationCache`
//! methods of the same names, with the same numbers.

use mechlens_core::shape::check_index;
use mechlens_core::{ActivationCache, Error, HookPoint, Result};
use mechlens_models::{HookedTransformer, Normalization};
use tch::Tensor;

use crate::{Pos, Stack};

/// Which outputs [`CacheAnalysis::decompose_resid`] lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decompose {
    /// Attention and MLP outputs.
    #[default]
    All,
    /// Attention outputs only.
    Attn,
    /// MLP outputs only.
    Mlp,
}

/// Options shared by the residual-stream stacks (TransformerLens' keyword arguments).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResidOptions {
    /// Stop before this layer's input; `None` for the stream the unembedding reads.
    pub layer: Option<usize>,
    /// Stop at the layer's MLP input instead (adds its attention output / `resid_mid`).
    pub mlp_input: bool,
    /// Include each `resid_mid` too (`accumulated_resid` only).
    pub incl_mid: bool,
    /// Scale each component as the norm at `layer` scaled the real stream (the final norm
    /// is recomputed per component for the full accumulated stream, as TL 3.x does).
    pub apply_ln: bool,
    /// Positions to keep.
    pub pos: Pos,
    /// Leave out `embed`/`pos_embed` (`decompose_resid` only).
    pub no_embeds: bool,
}

/// Residual-stream analyses on an [`ActivationCache`] of `model`'s run. Needs the hooks named
/// in each method's doc in the cache (`CacheFilter::All` has them all); a missing one is an
/// error naming it.
pub trait CacheAnalysis {
    /// The residual stream before each layer (`"{l}_pre"`, with `"{l}_mid"` if asked) and,
    /// for the full stream, after the last (`"final_post"`).
    ///
    /// # Shapes
    /// - returns `[components, batch, (pos,) d_model]`
    fn accumulated_resid(&self, model: &HookedTransformer, opts: ResidOptions) -> Result<Stack>;

    /// What wrote the stream: `embed`, `pos_embed`, then `"{l}_attn_out"` and
    /// `"{l}_mlp_out"` per layer. Their sum is the stream (minus biases TL also omits).
    fn decompose_resid(
        &self,
        model: &HookedTransformer,
        mode: Decompose,
        opts: ResidOptions,
    ) -> Result<Stack>;

    /// Each head's output (`"L{l}H{h}"`) up to `opts.layer`: `hook_result` if cached, else
    /// computed from `hook_z` and `W_O` (TL's `compute_head_results`).
    fn stack_head_results(&self, model: &HookedTransformer, opts: ResidOptions) -> Result<Stack>;

    /// Each head's output at `layer`, `[batch, pos, head, d_model]`, from `hook_z` and `W_O`.
    fn compute_head_results(&self, model: &HookedTransformer, layer: usize) -> Result<Tensor>;

    /// Each neuron's output at `layer`: `hook_post[..., n] · W_out[n]`,
    /// `[batch, (pos,) neurons, d_model]`, for `neurons` (all when `None`).
    fn get_neuron_results(
        &self,
        model: &HookedTransformer,
        layer: usize,
        neurons: Option<&[i64]>,
        pos: Pos,
    ) -> Result<Tensor>;

    /// Divides a stack by the cached scale of the norm at `layer` (final when `None`; `ln2`
    /// with `mlp_input`), centring it first for LayerNorm: each component as the norm saw it.
    ///
    /// # Shapes
    /// - `stack`: `[components, batch, (pos,) d_model]`, positions already selected by `pos`
    fn apply_ln_to_stack(
        &self,
        model: &HookedTransformer,
        stack: &Tensor,
        layer: Option<usize>,
        mlp_input: bool,
        pos: Pos,
    ) -> Result<Tensor>;

    /// Each component's direct contribution to the logit of `tokens` (minus that of
    /// `incorrect`): the final-norm-scaled stack dotted with `W_U`'s columns.
    ///
    /// # Shapes
    /// - `stack`: `[components, batch, (pos,) d_model]`; `tokens`, `incorrect`: a scalar,
    ///   `[batch]` or `[batch, pos]`, broadcasting against the stack's middle dims
    /// - returns `[components, batch, (pos)]`
    fn logit_attrs(
        &self,
        model: &HookedTransformer,
        stack: &Tensor,
        tokens: &Tensor,
        incorrect: Option<&Tensor>,
        pos: Pos,
    ) -> Result<Tensor>;
}

fn check_layer(model: &HookedTransformer, layer: usize, what: &str) -> Result<()> {
    let n = model.cfg().n_layers;
    if layer > n {
        return Err(Error::invalid(
            "layer",
            format!(
                "{layer} is out of range for {what}: the model has {n} layers (0..={n}, {n} meaning all)"
            ),
        ));
    }
    Ok(())
}

/// `[batch, pos, d_model]` or `[tokens]`-shaped directions of the tokens' unembedding columns.
fn residual_directions(model: &HookedTransformer, tokens: &Tensor) -> Result<Tensor> {
    let vocab = model.cfg().d_vocab as i64;
    let ids = tokens.f_to_kind(tch::Kind::Int64)?;
    if ids.numel() == 0 {
        return Err(Error::invalid("tokens", "no token given"));
    }
    let (lo, hi) = (ids.f_min()?.int64_value(&[]), ids.f_max()?.int64_value(&[]));
    if lo < 0 || hi >= vocab {
        return Err(Error::invalid(
            "tokens",
            format!(
                "token id {} is outside the vocabulary 0..{vocab}",
                if lo < 0 { lo } else { hi }
            ),
        ));
    }
    let w_u = model.w_u(); // [d_model, vocab]
    let flat = w_u
        .f_index_select(1, &ids.f_flatten(0, -1)?.f_to_device(w_u.device())?)?
        .f_transpose(0, 1)?; // [n, d_model]
    let mut shape = ids.size();
    shape.push(model.cfg().d_model as i64);
    Ok(flat.f_reshape(shape.as_slice())?)
}

impl CacheAnalysis for ActivationCache {
    fn accumulated_resid(&self, model: &HookedTransformer, opts: ResidOptions) -> Result<Stack> {
        let n = model.cfg().n_layers;
        let layer = opts.layer.unwrap_or(n);
        check_layer(model, layer, "accumulated_resid")?;
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for l in 0..=layer {
            if l == n {
                parts.push(opts.pos.apply(self.get(HookPoint::ResidPost(n - 1))?, -2)?);
                labels.push("final_post".to_string());
                continue;
            }
            parts.push(opts.pos.apply(self.get(HookPoint::ResidPre(l))?, -2)?);
            labels.push(format!("{l}_pre"));
            if (opts.incl_mid && l < layer) || (opts.mlp_input && l == layer) {
                parts.push(opts.pos.apply(self.get(HookPoint::ResidMid(l))?, -2)?);
                labels.push(format!("{l}_mid"));
            }
        }
        let mut tensor = Tensor::f_stack(&parts, 0)?;
        if opts.apply_ln {
            tensor = if layer == n {
                // TL 3.x recomputes the final norm for each component (the logit lens).
                model.apply_ln_final(&tensor)?
            } else {
                self.apply_ln_to_stack(model, &tensor, Some(layer), opts.mlp_input, opts.pos)?
            };
        }
        Ok(Stack { tensor, labels })
    }

    fn decompose_resid(
        &self,
        model: &HookedTransformer,
        mode: Decompose,
        opts: ResidOptions,
    ) -> Result<Stack> {
        let n = model.cfg().n_layers;
        let layer = opts.layer.unwrap_or(n);
        check_layer(model, layer, "decompose_resid")?;
        let (attn, mlp) = (mode != Decompose::Mlp, mode != Decompose::Attn);
        let mut named: Vec<(HookPoint, String)> = Vec::new();
        if !opts.no_embeds {
            for (point, label) in [
                (HookPoint::Embed, "embed"),
                (HookPoint::PosEmbed, "pos_embed"),
            ] {
                if self.contains(point) {
                    named.push((point, label.to_string()));
                }
            }
            if named.is_empty() {
                // Ask for the embedding rather than silently leaving it out.
                self.get(HookPoint::Embed)?;
            }
        }
        for l in 0..layer {
            if attn {
                named.push((HookPoint::AttnOut(l), format!("{l}_attn_out")));
            }
            if mlp {
                named.push((HookPoint::MlpOut(l), format!("{l}_mlp_out")));
            }
        }
        if opts.mlp_input && attn {
            if layer >= n {
                return Err(Error::invalid(
                    "ResidOptions",
                    "mlp_input needs a layer below n_layers (the MLP input of that layer)",
                ));
            }
            named.push((HookPoint::AttnOut(layer), format!("{layer}_attn_out")));
        }
        if named.is_empty() {
            return Err(Error::invalid(
                "decompose_resid",
                "nothing to stack: layer 0 without embeddings has no components",
            ));
        }
        let parts = named
            .iter()
            .map(|(p, _)| opts.pos.apply(self.get(*p)?, -2))
            .collect::<Result<Vec<_>>>()?;
        let mut tensor = Tensor::f_stack(&parts, 0)?;
        if opts.apply_ln {
            tensor =
                self.apply_ln_to_stack(model, &tensor, Some(layer), opts.mlp_input, opts.pos)?;
        }
        Ok(Stack {
            tensor,
            labels: named.into_iter().map(|(_, l)| l).collect(),
        })
    }

    fn compute_head_results(&self, model: &HookedTransformer, layer: usize) -> Result<Tensor> {
        check_index("layer", layer as i64, model.cfg().n_layers, "the model")?;
        let z = self.get(HookPoint::Z(layer))?; // [b, p, h, dh]
        let w_o = model.w_o()?.f_get(layer as i64)?; // [h, dh, d]
        Ok(Tensor::f_einsum(
            "bphd,hdm->bphm",
            &[z, &w_o],
            None::<&[i64]>,
        )?)
    }

    fn stack_head_results(&self, model: &HookedTransformer, opts: ResidOptions) -> Result<Stack> {
        let n = model.cfg().n_layers;
        let layer = opts.layer.unwrap_or(n);
        check_layer(model, layer, "stack_head_results")?;
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for l in 0..layer {
            let result = match self.get(HookPoint::AttnResult(l)) {
                Ok(r) => r.shallow_clone(),
                Err(_) => self.compute_head_results(model, l)?,
            };
            parts.push(opts.pos.apply(&result, -3)?); // [b, (p,) h, d]
            labels.extend((0..model.cfg().n_heads).map(|h| format!("L{l}H{h}")));
        }
        if parts.is_empty() {
            return Err(Error::invalid(
                "stack_head_results",
                "layer 0 has no heads before it; pass a layer of at least 1",
            ));
        }
        let all = Tensor::f_cat(&parts, -2)?; // [b, (p,) heads, d]
        let dims = all.dim() as i64;
        let mut tensor = all.f_movedim([dims - 2], [0])?;
        if opts.apply_ln {
            tensor = self.apply_ln_to_stack(model, &tensor, Some(layer), false, opts.pos)?;
        }
        Ok(Stack { tensor, labels })
    }

    fn get_neuron_results(
        &self,
        model: &HookedTransformer,
        layer: usize,
        neurons: Option<&[i64]>,
        pos: Pos,
    ) -> Result<Tensor> {
        check_index("layer", layer as i64, model.cfg().n_layers, "the model")?;
        let acts = pos.apply(self.get(HookPoint::MlpPost(layer))?, -2)?;
        let mut w_out = model.w_out()?.f_get(layer as i64)?; // [d_mlp, d_model]
        let mut acts = acts;
        if let Some(ids) = neurons {
            for &i in ids {
                check_index("neuron", i, model.cfg().d_mlp, &format!("layer {layer}"))?;
            }
            let index = Tensor::from_slice(ids).f_to_device(acts.device())?;
            acts = acts.f_index_select(-1, &index)?;
            w_out = w_out.f_index_select(0, &index)?;
        }
        Ok(acts.f_unsqueeze(-1)?.f_mul(&w_out)?)
    }

    fn apply_ln_to_stack(
        &self,
        model: &HookedTransformer,
        stack: &Tensor,
        layer: Option<usize>,
        mlp_input: bool,
        pos: Pos,
    ) -> Result<Tensor> {
        let n = model.cfg().n_layers;
        let layer = layer.unwrap_or(n);
        check_layer(model, layer, "apply_ln_to_stack")?;
        let point = if layer == n {
            HookPoint::LnFinalScale
        } else if mlp_input {
            HookPoint::Ln2Scale(layer)
        } else {
            HookPoint::Ln1Scale(layer)
        };
        let centred = match model.cfg().normalization {
            Normalization::LayerNorm | Normalization::LayerNormPre => {
                stack.f_sub(&stack.f_mean_dim(-1, true, None)?)?
            }
            Normalization::Rms | Normalization::RmsPre => stack.shallow_clone(),
            // Nothing to apply (and no scale was cached).
            Normalization::Identity => return Ok(stack.shallow_clone()),
        };
        let scale = pos.apply(self.get(point)?, -2)?;
        Ok(centred.f_div(&scale)?)
    }

    fn logit_attrs(
        &self,
        model: &HookedTransformer,
        stack: &Tensor,
        tokens: &Tensor,
        incorrect: Option<&Tensor>,
        pos: Pos,
    ) -> Result<Tensor> {
        let mut directions = residual_directions(model, tokens)?;
        if let Some(incorrect) = incorrect {
            if incorrect.size() != tokens.size() {
                return Err(Error::invalid(
                    "incorrect tokens",
                    format!(
                        "tokens and incorrect tokens must have the same shape: {:?} vs {:?}",
                        tokens.size(),
                        incorrect.size()
                    ),
                ));
            }
            directions = directions.f_sub(&residual_directions(model, incorrect)?)?;
        }
        let scaled = self.apply_ln_to_stack(model, stack, None, false, pos)?;
        Ok(scaled
            .f_mul(&directions.f_to_kind(scaled.kind())?)?
            .f_sum_dim_intlist(-1, false, None)?)
    }
}
