//! [`TransformerTarget`]: a [`HookedTransformer`] as a model SPD can decompose. Its linear
//! maps are the blocks' `W_Q`, `W_K`, `W_V`, `W_O`, `W_gate`, `W_in`, `W_out` under
//! TransformerLens' names; each is computed through the decomposition by two hooks: one
//! reads the map's input where the model has it (`hook_resid_pre` through `ln1`,
//! `hook_mlp_in` through `ln2`, `hook_z`, `mlp.hook_post`), the other replaces the map's
//! output (`hook_q` ... `hook_mlp_out`) with `linear(input) + b`.
//!
//! So the forward pass itself is the model's: every other hook point fires as usual, a
//! cache records the decomposed model's activations, and the model's persistent hooks apply.
//! Rows are tokens: a map's input `[batch, pos, d_in]` reaches SPD as `[batch · pos, d_in]`,
//! and causal importances are per token, as in the paper's language-model runs.

use std::cell::RefCell;

use mechlens_core::{ActivationCache, CacheFilter, Error, Hooks, Result};
use mechlens_models::{HookedTransformer, LinearMap};
use tch::Tensor;

use crate::target::{Decomposable, LinearFn};

/// A [`HookedTransformer`] SPD can decompose (tokens `[batch, pos]` in, logits out).
///
/// ```
/// use mechlens_models::{HookedTransformer, HookedTransformerConfig};
/// use mechlens_spd::{OutputLoss, Spd, SpdConfig, TransformerTarget};
/// let cfg = HookedTransformerConfig { n_layers: 1, d_model: 32, n_heads: 2, d_mlp: Some(64), d_vocab: 50, n_ctx: 16, ..Default::default() };
/// let model = HookedTransformer::from_config(&cfg, 0)?;
/// let target = TransformerTarget::new(&model)?;
/// let config = SpdConfig { c: 64, output_loss: OutputLoss::Kl, batch_size: 8, steps: 20, ..Default::default() };
/// let mut spd = Spd::new(&target, &["blocks.0.mlp.W_in", "blocks.0.mlp.W_out"], config)?;
/// spd.train(&target, &mut |_| Ok(tch::Tensor::randint(50, [8, 16], (tch::Kind::Int64, tch::Device::Cpu))))?;
/// # Ok::<(), mechlens_core::Error>(())
/// ```
pub struct TransformerTarget<'m> {
    model: &'m HookedTransformer,
    maps: Vec<LinearMap>,
}

impl<'m> TransformerTarget<'m> {
    /// Every linear map of `model`'s blocks, ready to decompose.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the model reads a per-head copy of the residual stream
    /// (`set_use_attn_in` or `set_use_split_qkv_input` on): its query, key and value maps
    /// then read one input per head, not the one tensor a decomposed map computes from.
    pub fn new(model: &'m HookedTransformer) -> Result<Self> {
        if model.splits_attention_input() {
            return Err(Error::invalid(
                "model to decompose",
                "it splits attention's input per head (set_use_attn_in or set_use_split_qkv_input); switch both off: a decomposed W_Q, W_K or W_V reads ln1(hook_resid_pre) as one tensor",
            ));
        }
        Ok(Self {
            model,
            maps: model.linear_maps(),
        })
    }

    /// The model.
    pub fn model(&self) -> &HookedTransformer {
        self.model
    }

    /// Runs the model on tokens `x` with every map computed through `linear`, recording
    /// what `filter` keeps: the decomposed model's activations at every hook point (pass
    /// [`crate::Spd::masked_linear`] as `linear` to look inside a decomposition).
    ///
    /// # Shapes
    /// - `x`: tokens `[batch, pos]` → logits `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// As [`HookedTransformer::run_with_hooks_and_cache`]; whatever `linear` returns.
    pub fn run_with_cache(
        &self,
        x: &Tensor,
        linear: &mut LinearFn<'_>,
        filter: CacheFilter,
    ) -> Result<(Tensor, ActivationCache)> {
        let linear = RefCell::new(linear);
        let inputs = RefCell::new((0..self.maps.len()).map(|_| None).collect());
        let hooks = self.splice_hooks(None, &linear, &inputs)?;
        self.model.run_with_hooks_and_cache(x, hooks, filter, None)
    }

    /// Two hooks per map (each map in `routed`, or every map): one keeps its input as rows,
    /// the other swaps its output for `linear(rows) + b` in the activation's shape.
    fn splice_hooks<'h>(
        &'h self,
        routed: Option<&[String]>,
        linear: &'h RefCell<&mut LinearFn<'_>>,
        inputs: &'h RefCell<Vec<Option<Tensor>>>,
    ) -> Result<Hooks<'h>> {
        let mut hooks = Hooks::new();
        for (i, map) in self.maps.iter().enumerate() {
            if routed.is_some_and(|r| !r.contains(&map.name)) {
                continue;
            }
            let d_in = map.weight.size()[0];
            hooks = hooks.read(map.input_hook, move |act| {
                let rows = self.model.map_input(map, act)?.f_reshape([-1, d_in])?;
                inputs.borrow_mut()[i] = Some(rows);
                Ok(())
            })?;
            hooks = hooks.edit(map.output_hook, move |act, _| {
                let rows = inputs.borrow_mut()[i].take().ok_or_else(|| {
                    Error::invalid(
                        "decomposed transformer",
                        format!("{}'s output came before its input", map.name),
                    )
                })?;
                let mut out = (linear.borrow_mut())(&map.name, &rows)?;
                if let Some(b) = &map.bias {
                    out = out.f_add(b)?;
                }
                Ok(out.f_reshape(act.size())?)
            })?;
        }
        Ok(hooks)
    }
}

impl TransformerTarget<'_> {
    fn spliced_run(
        &self,
        x: &Tensor,
        routed: Option<&[String]>,
        linear: &mut LinearFn<'_>,
    ) -> Result<Tensor> {
        let linear = RefCell::new(linear);
        let inputs = RefCell::new((0..self.maps.len()).map(|_| None).collect());
        let hooks = self.splice_hooks(routed, &linear, &inputs)?;
        // `forward_with_grad` keeps the graph when SPD trains; under SPD's no-grad passes it
        // records nothing.
        self.model.forward_with_grad(x, hooks)
    }
}

impl Decomposable for TransformerTarget<'_> {
    fn linears(&self) -> Vec<(String, Tensor)> {
        self.maps
            .iter()
            .map(|m| (m.name.clone(), m.weight.shallow_clone()))
            .collect()
    }

    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
        self.spliced_run(x, None, linear)
    }

    /// Splices only the maps SPD decomposes; the rest run as the model's own.
    fn run_routed(
        &self,
        x: &Tensor,
        routed: &[String],
        linear: &mut LinearFn<'_>,
    ) -> Result<Tensor> {
        self.spliced_run(x, Some(routed), linear)
    }
}
