//! Random small GPT-2-style models for the checks that need the library's whole path: a
//! model built from a random config, every parameter redrawn (biases and norm weights too),
//! random tokens, and its activations.

use mechlens_core::{ActivationCache, CacheFilter, HookPoint, Result};
use mechlens_models::{Activation, HookedTransformer, HookedTransformerConfig, NormType};
use tch::Tensor;

use crate::random::Draw;

/// A random model, tokens, and what the model computed.
pub(crate) struct ModelCase {
    pub model: HookedTransformer,
    pub tokens: Tensor,
    pub logits: Tensor,
    pub cache: ActivationCache,
}

impl ModelCase {
    /// The case in a few words.
    pub(crate) fn describe(&self) -> String {
        let c = self.model.cfg();
        format!(
            "tokens {:?}, {} layer(s), d_model {}, {} heads of {}",
            self.tokens.size(),
            c.n_layers,
            c.d_model,
            c.n_heads,
            c.d_head
        )
    }
}

/// A model of random size (`n_layers` layers; attention-only without norms when
/// `attn_only`, so that attention reads the residual stream itself), with the activations
/// `points` cached.
pub(crate) fn model_case(
    draw: &mut Draw,
    seed: u64,
    n_layers: usize,
    attn_only: bool,
    points: Vec<HookPoint>,
) -> Result<ModelCase> {
    let n_heads = draw.int(1, 4) as usize;
    model_case_with_heads(draw, seed, n_layers, attn_only, points, n_heads)
}

/// [`model_case`] with `n_heads` heads per layer (checks whose mistakes only show with
/// several heads).
pub(crate) fn model_case_with_heads(
    draw: &mut Draw,
    seed: u64,
    n_layers: usize,
    attn_only: bool,
    points: Vec<HookPoint>,
    n_heads: usize,
) -> Result<ModelCase> {
    let d_head = draw.int(2, 6) as usize;
    let d_model = draw.int(4, 16) as usize;
    let cfg = HookedTransformerConfig {
        n_layers,
        d_model,
        n_heads,
        d_head,
        d_mlp: (!attn_only).then_some(4 * d_model),
        d_vocab: draw.int(5, 30) as usize,
        n_ctx: 16,
        act_fn: Activation::GeluTanh,
        normalization_type: (!attn_only).then_some(NormType::LayerNorm),
        attn_only,
        ..Default::default()
    };
    let model = HookedTransformer::from_config(&cfg, seed)?;
    draw.fill(&model.named_parameters(), 0.5)?;
    let (batch, pos) = (draw.int(1, 3), draw.int(2, 8));
    let tokens = draw.tokens(batch, pos, cfg.d_vocab as i64);
    let (logits, cache) = model.run_with_cache(&tokens, CacheFilter::Names(points))?;
    Ok(ModelCase {
        model,
        tokens,
        logits,
        cache,
    })
}
