//! E1's embeddings and unembedding: token and learned position embeddings (checked against
//! the library's `Embed` component) and the unembedding's affine map.

use mechlens_core::{HookSession, Result};
use mechlens_models::components::Embed;
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

/// Tokens and a table (`W_E` or `W_pos`).
pub(crate) struct TableCase {
    pub tokens: Tensor,
    pub table: Tensor,
    pub name: &'static str,
}

impl Case for TableCase {
    fn label(&self) -> String {
        format!(
            "tokens {:?}, {} {:?}",
            self.tokens.size(),
            self.name,
            self.table.size()
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("tokens", &self.tokens), (self.name, &self.table)]
    }
}

/// Tables with more rows than positions and token ids below both, so that the mistakes
/// (rows by position, by token, shifted) all give answers of the right shape.
fn table_cases(seed: u64, name: &'static str) -> Vec<TableCase> {
    let mut draw = Draw::new(seed);
    (0..5)
        .map(|_| {
            let (batch, pos) = (draw.int(1, 3), draw.int(2, 7));
            let rows = draw.int(pos + 2, pos + 12);
            let d_model = draw.int(2, 12);
            TableCase {
                tokens: draw.tokens(batch, pos, rows - 1),
                table: draw.normal(&[rows, d_model], 0.0, 1.0),
                name,
            }
        })
        .collect()
}

const EXACT: Compare = Compare::Values {
    atol: 1e-6,
    rtol: 0.0,
};

fn positions(tokens: &Tensor) -> Result<Tensor> {
    let (batch, pos) = (tokens.size()[0], tokens.size()[1]);
    Ok(Tensor::f_arange(pos, (Kind::Int64, tokens.device()))?
        .f_unsqueeze(0)?
        .f_expand([batch, pos], true)?)
}

fn rows(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_embedding(table, ids, -1, false, false)?)
}

pub(crate) fn embed_spec() -> Spec<TableCase> {
    Spec {
        exercise: "embed",
        cases: table_cases(21, "w_e"),
        reference: Box::new(|c: &TableCase| {
            let embed = Embed {
                w_e: c.table.shallow_clone(),
                w_pos: None,
            };
            embed.forward(&c.tokens, &positions(&c.tokens)?, &mut HookSession::none())
        }),
        mutants: vec![
            Mutant::new(
                "rows picked by position (0, 1, 2, ...) instead of by token id",
                |c: &TableCase| rows(&c.table, &positions(&c.tokens)?),
            ),
            Mutant::new("rows picked off by one (token + 1)", |c: &TableCase| {
                rows(&c.table, &c.tokens.f_add_scalar(1)?)
            }),
        ],
        compare: EXACT,
    }
}

pub(crate) fn pos_embed_spec() -> Spec<TableCase> {
    Spec {
        exercise: "pos_embed",
        cases: table_cases(22, "w_pos"),
        reference: Box::new(|c: &TableCase| {
            let embed = Embed {
                w_e: Tensor::f_zeros(c.table.size(), (Kind::Float, c.table.device()))?,
                w_pos: Some(c.table.shallow_clone()),
            };
            let zeros = c.tokens.f_zeros_like()?;
            embed.forward(&zeros, &positions(&c.tokens)?, &mut HookSession::none())
        }),
        mutants: vec![
            Mutant::new(
                "rows picked by token id; the position embedding is indexed by position",
                |c: &TableCase| rows(&c.table, &c.tokens),
            ),
            Mutant::new(
                "positions counted from 1; the first position is row 0 of W_pos",
                |c: &TableCase| rows(&c.table, &positions(&c.tokens)?.f_add_scalar(1)?),
            ),
        ],
        compare: EXACT,
    }
}

/// Checks `embed(tokens, w_e)`: each token's row of `W_E`.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` int64; `w_e`: `[d_vocab, d_model]` → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn embed(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    embed_spec().check(&|c: &TableCase| f(&c.tokens, &c.table))
}

/// Checks `pos_embed(tokens, w_pos)`: row `p` of `W_pos` at position `p`, the same for every
/// sequence of the batch.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` int64; `w_pos`: `[n_ctx, d_model]` → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn pos_embed(f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    pos_embed_spec().check(&|c: &TableCase| f(&c.tokens, &c.table))
}

/// The unembedding's inputs.
pub(crate) struct UnembedCase {
    pub x: Tensor,
    pub w_u: Tensor,
    pub b_u: Tensor,
}

impl Case for UnembedCase {
    fn label(&self) -> String {
        format!("x {:?}, w_u {:?}", self.x.size(), self.w_u.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("x", &self.x), ("w_u", &self.w_u), ("b_u", &self.b_u)]
    }
}

pub(crate) fn unembed_spec() -> Spec<UnembedCase> {
    let mut draw = Draw::new(23);
    let cases = (0..5)
        .map(|_| {
            let (batch, pos, d_model, vocab) = (
                draw.int(1, 3),
                draw.int(1, 6),
                draw.int(2, 12),
                draw.int(3, 20),
            );
            UnembedCase {
                x: draw.normal(&[batch, pos, d_model], 0.0, 1.0),
                w_u: draw.normal(&[d_model, vocab], 0.0, 0.5),
                b_u: draw.normal(&[vocab], 0.0, 0.5),
            }
        })
        .collect();
    Spec {
        exercise: "unembed",
        cases,
        reference: Box::new(|c: &UnembedCase| {
            Ok(Tensor::f_einsum("bpd,dv->bpv", &[&c.x, &c.w_u], None::<&[i64]>)?.f_add(&c.b_u)?)
        }),
        mutants: vec![Mutant::new(
            "the bias b_U is not added",
            |c: &UnembedCase| Ok(c.x.f_matmul(&c.w_u)?),
        )],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    }
}

/// Checks `unembed(x, w_u, b_u)`: the logits `x · W_U + b_U`.
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `w_u`: `[d_model, d_vocab]`; `b_u`: `[d_vocab]` →
///   `[batch, pos, d_vocab]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn unembed(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    unembed_spec().check(&|c: &UnembedCase| f(&c.x, &c.w_u, &c.b_u))
}
