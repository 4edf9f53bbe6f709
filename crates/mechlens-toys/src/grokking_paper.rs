//! The grokking paper's own model at initialisation (Nanda et al. 2023, its `transformers.py`),
//! in mechlens' [`HookedTransformer`].
//!
//! The paper does not use TransformerLens' initialisation: every weight is `randn / √d_model`
//! except the unembedding's `randn / √d_vocab`, drawn from torch's generator in the order its
//! modules are built, and its attention and unembedding have no biases. Drawing the same
//! numbers from libtorch's generator (the one PyTorch's CPU `randn` uses) in the same order
//! and shapes gives the paper's very starting point; with its split
//! ([`crate::ModularData::paper_split`]) the run can retrace the paper's own, key frequencies
//! included. TransformerLens' scale (0.8/√d_model everywhere) with trained attention biases
//! clustered 68% of neurons where the paper's set-up clusters ~90% (reproduction 03).

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use tch::{Device, Kind, Tensor};

use crate::modular::grokking_config;

/// The parameters the paper's model does not have: mechlens' layout carries them, so they
/// stay at zero and are not trained (frozen), which makes them absent in effect.
pub fn paper_absent_biases(model: &HookedTransformer) -> Vec<String> {
    model
        .named_parameters()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            name == "unembed.b_u" || (name.contains(".attn.b_") && name.starts_with("blocks."))
        })
        .collect()
}

/// The paper's model for modulus `p` initialised as its code does after
/// `torch.manual_seed(seed)`. Reseeds libtorch's global CPU generator (as that call does).
///
/// # Errors
/// [`Error::InvalidInput`] for a seed above `i64::MAX`; the model's own.
pub fn paper_grokking_model(p: usize, seed: u64) -> Result<HookedTransformer> {
    let mut cfg = grokking_config(p);
    let d_model = cfg.d_model as i64;
    let d_vocab = cfg.d_vocab as i64;
    cfg.initializer_range = 1.0 / (d_model as f64).sqrt();
    let model = HookedTransformer::from_config(&cfg, seed)?;
    let seed = i64::try_from(seed).map_err(|_| {
        Error::invalid(
            "model_seed",
            format!("{seed} is above i64::MAX, which torch.manual_seed takes"),
        )
    })?;
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed);
    let randn =
        |shape: &[i64], fan: i64| -> Result<Tensor> {
            Ok(Tensor::f_randn(shape, (Kind::Float, Device::Cpu))?
                .f_div_scalar((fan as f64).sqrt())?)
        };
    let (heads, d_head) = (cfg.n_heads as i64, cfg.d_head as i64);
    let d_mlp = cfg.d_mlp.unwrap_or(4 * cfg.d_model) as i64;
    let hd = heads * d_head;
    // The paper's construction order: Embed, PosEmbed, Attention (W_K, W_Q, W_V, W_O), MLP
    // (W_in, W_out), Unembed; its shapes, with mechlens' `[d_in, d_out]` layout beside.
    let w_e = randn(&[d_model, d_vocab], d_model)?.f_tr()?; // [d_vocab, d_model]
    let w_pos = randn(&[cfg.n_ctx as i64, d_model], d_model)?;
    // [heads, d_head, d_model] → [d_model, heads·d_head], head-major as the paper flattens z.
    let per_head = |t: Tensor| -> Result<Tensor> { Ok(t.f_reshape([hd, d_model])?.f_tr()?) };
    let w_k = per_head(randn(&[heads, d_head, d_model], d_model)?)?;
    let w_q = per_head(randn(&[heads, d_head, d_model], d_model)?)?;
    let w_v = per_head(randn(&[heads, d_head, d_model], d_model)?)?;
    let w_o = randn(&[d_model, hd], d_model)?.f_tr()?; // [heads·d_head, d_model]
    let w_in = randn(&[d_mlp, d_model], d_model)?.f_tr()?; // [d_model, d_mlp]
    let w_out = randn(&[d_model, d_mlp], d_model)?.f_tr()?; // [d_mlp, d_model]
    let w_u = randn(&[d_model, d_vocab], d_vocab)?;
    let drawn = [
        ("embed.w_e", w_e),
        ("embed.w_pos", w_pos),
        ("blocks.0.attn.w_q", w_q),
        ("blocks.0.attn.w_k", w_k),
        ("blocks.0.attn.w_v", w_v),
        ("blocks.0.attn.w_o", w_o),
        ("blocks.0.mlp.w_in", w_in),
        ("blocks.0.mlp.w_out", w_out),
        ("unembed.w_u", w_u),
    ];
    let params = model.named_parameters();
    for (name, value) in drawn {
        let mut param = params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.shallow_clone())
            .ok_or_else(|| {
                Error::invalid("paper model", format!("mechlens' model has no {name}"))
            })?;
        param.f_copy_(&value)?;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_torch_cannot_take_is_named() {
        let err = paper_grokking_model(113, u64::MAX)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("above i64::MAX"), "{err}");
        assert!(err.contains(&u64::MAX.to_string()), "{err}");
    }
}
