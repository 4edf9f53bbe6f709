//! E1's attention: the causal mask, the attention pattern and the whole layer, checked
//! against the library's attention (a one-layer attention-only model's `hook_pattern` and
//! `hook_attn_out`).

use mechlens_core::{HookPoint, Result};
use tch::{Kind, Tensor};

use super::model_case::{ModelCase, model_case};
use super::params::AttnParams;
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

/// Random attention scores.
pub(crate) struct ScoresCase {
    pub scores: Tensor,
}

impl Case for ScoresCase {
    fn label(&self) -> String {
        format!("scores {:?}", self.scores.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("scores", &self.scores)]
    }
}

/// Which keys each query may see.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mask {
    /// Itself and earlier keys: the causal mask.
    Causal,
    /// Earlier keys only: off by one.
    Strict,
    /// Itself and later keys: the triangle the wrong way round.
    Future,
    /// Everything.
    None,
}

/// `scores` with the keys `mask` hides set to `fill`.
///
/// # Shapes
/// - `scores`: `[..., q_pos, k_pos]`
fn masked(scores: &Tensor, mask: Mask, fill: f64) -> Result<Tensor> {
    let size = scores.size();
    let (q, k) = (size[size.len() - 2], size[size.len() - 1]);
    let ones = Tensor::f_ones([q, k], (Kind::Bool, scores.device()))?;
    let hidden = match mask {
        Mask::Causal => ones.f_triu(1)?,
        Mask::Strict => ones.f_triu(0)?,
        Mask::Future => ones.f_tril(-1)?,
        Mask::None => return Ok(scores.shallow_clone()),
    };
    Ok(scores.f_masked_fill(&hidden, fill)?)
}

pub(crate) fn causal_mask_spec() -> Spec<ScoresCase> {
    let mut draw = Draw::new(31);
    let cases = (0..5)
        .map(|_| {
            let (batch, heads, pos) = (draw.int(1, 2), draw.int(1, 3), draw.int(2, 7));
            ScoresCase {
                scores: draw.normal(&[batch, heads, pos, pos], 0.0, 2.0),
            }
        })
        .collect();
    Spec {
        exercise: "apply_causal_mask",
        cases,
        reference: Box::new(|c: &ScoresCase| masked(&c.scores, Mask::Causal, f64::NEG_INFINITY)),
        mutants: vec![
            Mutant::new(
                "the diagonal is masked too (off by one): a query must see its own position; mask above the diagonal only (`triu(1)`)",
                |c: &ScoresCase| masked(&c.scores, Mask::Strict, f64::NEG_INFINITY),
            ),
            Mutant::new(
                "the past is masked instead of the future (the triangle is the wrong way round): query i sees keys 0..=i",
                |c: &ScoresCase| masked(&c.scores, Mask::Future, f64::NEG_INFINITY),
            ),
            Mutant::new(
                "masked scores are set to 0, which still gets attention after the softmax; use -inf (or a large negative number)",
                |c: &ScoresCase| masked(&c.scores, Mask::Causal, 0.0),
            ),
        ],
        compare: Compare::SoftmaxLastDim { atol: 1e-6 },
    }
}

/// Checks `apply_causal_mask(scores)`: the scores with every key after its query hidden
/// (-inf, or a large negative number such as TransformerLens' -1e5). It is compared after a
/// softmax over keys, so any such fill passes.
///
/// # Shapes
/// - `scores`: `[batch, n_heads, q_pos, k_pos]` → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn apply_causal_mask(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    causal_mask_spec().check(&|c: &ScoresCase| f(&c.scores))
}

/// A one-layer attention-only model's layer 0: its input and weights, pattern and output.
pub(crate) struct AttnCase {
    pub m: ModelCase,
    pub x: Tensor,
    pub p: AttnParams,
}

impl AttnCase {
    fn p(&self) -> &AttnParams {
        &self.p
    }
}

impl Case for AttnCase {
    fn label(&self) -> String {
        format!("x {:?}, {} heads", self.x.size(), self.p().w_q.size()[0])
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        let p = self.p();
        vec![
            ("x", &self.x),
            ("w_q", &p.w_q),
            ("b_q", &p.b_q),
            ("w_k", &p.w_k),
            ("b_k", &p.b_k),
            ("w_v", &p.w_v),
            ("b_v", &p.b_v),
            ("w_o", &p.w_o),
            ("b_o", &p.b_o),
        ]
    }
}

fn attn_cases(seed: u64) -> Result<Vec<AttnCase>> {
    let mut draw = Draw::new(seed);
    (0..4)
        .map(|i| {
            let points = vec![
                HookPoint::ResidPre(0),
                HookPoint::Pattern(0),
                HookPoint::AttnOut(0),
            ];
            let m = model_case(&mut draw, seed * 100 + i, 1, true, points)?;
            let x = m.cache.get(HookPoint::ResidPre(0))?.detach().copy();
            let p = AttnParams::from_model(&m.model, 0)?;
            Ok(AttnCase { m, x, p })
        })
        .collect()
}

/// How an attention is computed, with the parts a mistake changes.
#[derive(Clone, Copy)]
pub(crate) struct Variant {
    /// Scores are divided by `d_head^scale_power` (0.5 right; 0 forgets it; 1 is d_head).
    scale_power: f64,
    mask: Mask,
    /// The softmax's dim of `[batch, head, q, k]` (-1 right; -2 over queries).
    softmax_dim: i64,
    b_o: bool,
}

pub(crate) const RIGHT: Variant = Variant {
    scale_power: 0.5,
    mask: Mask::Causal,
    softmax_dim: -1,
    b_o: true,
};

/// Heads of `x`: `[batch, pos, n_heads, d_head]`.
fn heads(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_einsum("bpd,hde->bphe", &[x, w], None::<&[i64]>)?.f_add(b)?)
}

fn pattern(x: &Tensor, p: &AttnParams, v: Variant) -> Result<Tensor> {
    let q = heads(x, &p.w_q, &p.b_q)?;
    let k = heads(x, &p.w_k, &p.b_k)?;
    let d_head = p.w_q.size()[2] as f64;
    let scores = Tensor::f_einsum("bqhe,bkhe->bhqk", &[&q, &k], None::<&[i64]>)?
        .f_div_scalar(d_head.powf(v.scale_power))?;
    Ok(masked(&scores, v.mask, f64::NEG_INFINITY)?.f_softmax(v.softmax_dim, Kind::Float)?)
}

pub(crate) fn attention_out(x: &Tensor, p: &AttnParams, v: Variant) -> Result<Tensor> {
    let pattern = pattern(x, p, v)?;
    let values = heads(x, &p.w_v, &p.b_v)?;
    let z = Tensor::f_einsum("bhqk,bkhe->bqhe", &[&pattern, &values], None::<&[i64]>)?;
    let out = Tensor::f_einsum("bqhe,hem->bqm", &[&z, &p.w_o], None::<&[i64]>)?;
    Ok(if v.b_o { out.f_add(&p.b_o)? } else { out })
}

const NO_SCALE: &str = "the scores are not divided by sqrt(d_head)";
const D_HEAD_SCALE: &str = "the scores are divided by d_head; the scale is sqrt(d_head)";
const QUERY_SOFTMAX: &str = "the softmax is over queries (dim -2); each query's weights over keys (the last dim) must sum to 1";
const NO_MASK: &str = "no causal mask: a query attends to later positions";
const STRICT_MASK: &str =
    "the mask hides the diagonal too (off by one): a query may attend to itself";

fn attention_mutants(
    out: fn(&Tensor, &AttnParams, Variant) -> Result<Tensor>,
) -> Vec<Mutant<AttnCase>> {
    let m = move |mistake: &'static str, v: Variant| {
        Mutant::new(mistake, move |c: &AttnCase| out(&c.x, c.p(), v))
    };
    vec![
        m(
            NO_SCALE,
            Variant {
                scale_power: 0.0,
                ..RIGHT
            },
        ),
        m(
            D_HEAD_SCALE,
            Variant {
                scale_power: 1.0,
                ..RIGHT
            },
        ),
        m(
            QUERY_SOFTMAX,
            Variant {
                softmax_dim: -2,
                ..RIGHT
            },
        ),
        m(
            NO_MASK,
            Variant {
                mask: Mask::None,
                ..RIGHT
            },
        ),
        m(
            STRICT_MASK,
            Variant {
                mask: Mask::Strict,
                ..RIGHT
            },
        ),
    ]
}

const CLOSE: Compare = Compare::Values {
    atol: 1e-5,
    rtol: 1e-4,
};

pub(crate) fn attention_pattern_spec() -> Result<Spec<AttnCase>> {
    Ok(Spec {
        exercise: "attention_pattern",
        cases: attn_cases(32)?,
        reference: Box::new(|c: &AttnCase| Ok(c.m.cache.get(HookPoint::Pattern(0))?.detach())),
        mutants: attention_mutants(pattern),
        compare: CLOSE,
    })
}

pub(crate) fn attention_spec() -> Result<Spec<AttnCase>> {
    let mut mutants = attention_mutants(attention_out);
    mutants.push(Mutant::new(
        "the output bias b_O is not added",
        |c: &AttnCase| {
            attention_out(
                &c.x,
                c.p(),
                Variant {
                    b_o: false,
                    ..RIGHT
                },
            )
        },
    ));
    Ok(Spec {
        exercise: "attention",
        cases: attn_cases(33)?,
        reference: Box::new(|c: &AttnCase| Ok(c.m.cache.get(HookPoint::AttnOut(0))?.detach())),
        mutants,
        compare: CLOSE,
    })
}

/// Checks `attention_pattern(x, p)`: queries and keys per head (with their biases), scores
/// `q·k / sqrt(d_head)`, the causal mask, and a softmax over keys.
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `p`: see [`AttnParams`] → `[batch, n_heads, q_pos, k_pos]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn attention_pattern(f: impl Fn(&Tensor, &AttnParams) -> Result<Tensor>) -> Result<Report> {
    attention_pattern_spec()?.check(&|c: &AttnCase| f(&c.x, c.p()))
}

/// Checks `attention(x, p)`: the pattern's weighted sum of values per head, through `W_O`,
/// summed over heads, plus `b_O`.
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `p`: see [`AttnParams`] → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn attention(f: impl Fn(&Tensor, &AttnParams) -> Result<Tensor>) -> Result<Report> {
    attention_spec()?.check(&|c: &AttnCase| f(&c.x, c.p()))
}
