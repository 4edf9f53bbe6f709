//! Reading weight matrices through the unembedding (Millidge & Black 2022, "The Singular
//! Value Decompositions of Transformer Weight Matrices are Highly Interpretable"): take the
//! SVD of each head's OV circuit and each MLP's input and output weights, project the
//! singular directions that live in the residual stream through `W_U`, and list the tokens
//! each direction most promotes (top) and suppresses (bottom).

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::*;
use tch::{Kind, Tensor};

use crate::Circuits;
use crate::factored_matrix::thin_svd;

/// Which weight matrix a row of the table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvdComponent {
    /// A head's `W_V · W_O`: its output-side singular directions.
    Ov,
    /// An MLP's `W_in` (scaled by the `ln2` weight when not folded): its input-side
    /// (residual) singular directions.
    MlpIn,
    /// An MLP's `W_out`: its output-side (residual) singular directions.
    MlpOut,
}

impl SvdComponent {
    fn name(self) -> &'static str {
        match self {
            Self::Ov => "OV",
            Self::MlpIn => "MLP_in",
            Self::MlpOut => "MLP_out",
        }
    }
}

/// What [`svd_interpretation`] reads. The defaults are the post's: the first 30 singular
/// directions, 15 tokens at each end, every layer, OV and both MLP matrices.
#[derive(Clone, Debug)]
pub struct SvdOptions {
    /// Singular directions per matrix (capped at its rank).
    pub directions: usize,
    /// Tokens listed at each end of each direction.
    pub k: usize,
    /// Layers to read; `None` for all.
    pub layers: Option<Vec<usize>>,
    /// Matrices to read.
    pub components: Vec<SvdComponent>,
}

impl Default for SvdOptions {
    fn default() -> Self {
        Self {
            directions: 30,
            k: 15,
            layers: None,
            components: vec![SvdComponent::Ov, SvdComponent::MlpIn, SvdComponent::MlpOut],
        }
    }
}

#[derive(Default)]
struct Rows {
    layer: Vec<u32>,
    component: Vec<&'static str>,
    head: Vec<Option<u32>>,
    sv_index: Vec<u32>,
    singular_value: Vec<f64>,
    rank: Vec<i32>,
    token_id: Vec<i64>,
    token: Vec<String>,
    score: Vec<f64>,
}

/// The table: `layer, component, head (null for MLPs), sv_index, singular_value, rank,
/// token_id, token, score`. `rank` is 1..=k for the tokens a direction promotes most and
/// -1..=-k for those it suppresses most (-1 the most suppressed); `score` is the projection
/// onto the token's unembedding column. Use a model loaded without weight processing to
/// follow the post.
///
/// # Errors
/// A layer out of range, `directions` or `k` of 0, or `k` above the vocabulary size.
pub fn svd_interpretation(model: &HookedTransformer, opts: &SvdOptions) -> Result<DataFrame> {
    let cfg = model.cfg();
    let vocab = cfg.d_vocab;
    if opts.directions == 0 || opts.k == 0 || opts.k > vocab {
        return Err(Error::invalid(
            "SvdOptions",
            format!(
                "directions ({}) and k ({}) must be at least 1, and k at most the vocabulary size {vocab}",
                opts.directions, opts.k
            ),
        ));
    }
    let layers: Vec<usize> = match &opts.layers {
        Some(l) => l.clone(),
        None => (0..cfg.n_layers).collect(),
    };
    for &layer in &layers {
        mechlens_core::shape::check_index("layer", layer as i64, cfg.n_layers, "the model")?;
    }
    let w_u = model.w_u();
    let ov = if opts.components.contains(&SvdComponent::Ov) {
        Some(model.ov()?)
    } else {
        None
    };
    // As TransformerLens' SVDInterpreter: W_in as the MLP sees the stream, i.e. scaled by an
    // unfolded ln2 weight.
    let w_in = match model.ln2_w()? {
        Some(ln2) => model.w_in()?.f_mul(&ln2.f_unsqueeze(-1)?)?,
        None => model.w_in()?,
    };
    let w_out = model.w_out()?;
    let mut rows = Rows::default();
    for &layer in &layers {
        for &component in &opts.components {
            // Directions [n, d_model] and their singular values [n], per head (or one "head").
            let per_head: Vec<(Option<u32>, Tensor, Tensor)> = match component {
                SvdComponent::Ov => {
                    let (_, s, v) = ov
                        .as_ref()
                        .ok_or_else(|| {
                            Error::invalid("SvdOptions", "OV requested but not computed")
                        })?
                        .index(&[layer as i64])?
                        .svd()?; // v: [H, d_model, d_head]
                    (0..cfg.n_heads as i64)
                        .map(|h| Ok((Some(h as u32), v.f_get(h)?.f_transpose(0, 1)?, s.f_get(h)?)))
                        .collect::<Result<_>>()?
                }
                SvdComponent::MlpIn => {
                    let (u, s, _) = thin_svd(&w_in.f_get(layer as i64)?)?;
                    vec![(None, u.f_transpose(0, 1)?, s)]
                }
                SvdComponent::MlpOut => {
                    let (_, s, v) = thin_svd(&w_out.f_get(layer as i64)?)?;
                    vec![(None, v.f_transpose(0, 1)?, s)]
                }
            };
            for (head, directions, s) in per_head {
                let n = (opts.directions as i64).min(directions.size()[0]);
                let directions = directions.f_narrow(0, 0, n)?;
                let s = s.f_narrow(0, 0, n)?;
                let logits = directions.f_matmul(&w_u)?.f_to_kind(Kind::Float)?; // [n, vocab]
                let k = opts.k as i64;
                let (top, top_ids) = logits.f_topk(k, -1, true, true)?;
                let (bottom, bottom_ids) = logits.f_topk(k, -1, false, true)?;
                let sv: Vec<f64> =
                    Vec::try_from(s.f_to_kind(Kind::Double)?.f_to_device(tch::Device::Cpu)?)?;
                for (values, ids, sign) in [(top, top_ids, 1i32), (bottom, bottom_ids, -1)] {
                    let values: Vec<f64> = Vec::try_from(
                        values
                            .f_to_kind(Kind::Double)?
                            .f_to_device(tch::Device::Cpu)?
                            .f_flatten(0, -1)?,
                    )?;
                    let ids: Vec<i64> =
                        Vec::try_from(ids.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
                    for (i, (&value, &id)) in values.iter().zip(&ids).enumerate() {
                        let (direction, place) = (i / opts.k, i % opts.k);
                        rows.layer.push(layer as u32);
                        rows.component.push(component.name());
                        rows.head.push(head);
                        rows.sv_index.push(direction as u32);
                        rows.singular_value.push(sv[direction]);
                        rows.rank.push(sign * (place as i32 + 1));
                        rows.token_id.push(id);
                        rows.token.push(token_string(model, id));
                        rows.score.push(value);
                    }
                }
            }
        }
    }
    df!(
        "layer" => rows.layer,
        "component" => rows.component,
        "head" => rows.head,
        "sv_index" => rows.sv_index,
        "singular_value" => rows.singular_value,
        "rank" => rows.rank,
        "token_id" => rows.token_id,
        "token" => rows.token,
        "score" => rows.score,
    )
    .map_err(Error::from)
}

fn token_string(model: &HookedTransformer, id: i64) -> String {
    model
        .tokenizer()
        .and_then(|t| t.token_to_str(id).ok())
        .unwrap_or_else(|| format!("<{id}>"))
}
