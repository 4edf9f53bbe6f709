//! E1's whole model: embeddings, blocks with residual connections, the final LayerNorm and
//! the unembedding, checked against `HookedTransformer::forward` of random two-layer models.

use mechlens_core::Result;
use tch::{Kind, Tensor};

use super::attention::{RIGHT, attention_out};
use super::model_case::{ModelCase, model_case};
use super::params::GptParams;
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct ForwardCase {
    pub m: ModelCase,
    pub params: GptParams,
}

impl Case for ForwardCase {
    fn label(&self) -> String {
        self.m.describe()
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        let p = &self.params;
        vec![
            ("tokens", &self.m.tokens),
            ("w_e", &p.w_e),
            ("w_pos", &p.w_pos),
            ("w_u", &p.w_u),
            ("blocks[0].attn.w_q", &p.blocks[0].attn.w_q),
            ("blocks[0].mlp.w_in", &p.blocks[0].mlp.w_in),
        ]
    }
}

fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.size().last().copied().unwrap_or(0);
    Ok(x.f_layer_norm([d], Some(w), Some(b), eps, false)?)
}

/// A GPT-2 forward pass with the parts a mistake changes.
#[derive(Clone, Copy)]
struct Variant {
    ln_final: bool,
    attn_residual: bool,
    /// The MLP reads the block's input instead of the stream after attention.
    parallel: bool,
    ln_before_attn: bool,
}

const RIGHT_FORWARD: Variant = Variant {
    ln_final: true,
    attn_residual: true,
    parallel: false,
    ln_before_attn: true,
};

fn forward(tokens: &Tensor, p: &GptParams, v: Variant) -> Result<Tensor> {
    let pos = tokens.size()[1];
    let mut x = Tensor::f_embedding(&p.w_e, tokens, -1, false, false)?
        .f_add(&p.w_pos.f_narrow(0, 0, pos)?)?;
    for b in &p.blocks {
        let attn_in = if v.ln_before_attn {
            layer_norm(&x, &b.ln1_w, &b.ln1_b, p.eps)?
        } else {
            x.shallow_clone()
        };
        let attn = attention_out(&attn_in, &b.attn, RIGHT)?;
        let mid = if v.attn_residual {
            x.f_add(&attn)?
        } else {
            attn
        };
        let mlp_in = layer_norm(
            if v.parallel { &x } else { &mid },
            &b.ln2_w,
            &b.ln2_b,
            p.eps,
        )?;
        let mlp = mlp_in
            .f_matmul(&b.mlp.w_in)?
            .f_add(&b.mlp.b_in)?
            .f_gelu("tanh")?
            .f_matmul(&b.mlp.w_out)?
            .f_add(&b.mlp.b_out)?;
        x = mid.f_add(&mlp)?;
    }
    if v.ln_final {
        x = layer_norm(&x, &p.ln_final_w, &p.ln_final_b, p.eps)?;
    }
    Ok(x.f_matmul(&p.w_u)?.f_add(&p.b_u)?.f_to_kind(Kind::Float)?)
}

pub(crate) fn transformer_spec() -> Result<Spec<ForwardCase>> {
    let mut draw = Draw::new(51);
    let cases = (0..3)
        .map(|i| {
            let m = model_case(&mut draw, 5100 + i, 2, false, vec![])?;
            let params = GptParams::from_model(&m.model)?;
            Ok(ForwardCase { m, params })
        })
        .collect::<Result<Vec<_>>>()?;
    let m = |mistake: &'static str, v: Variant| {
        Mutant::new(mistake, move |c: &ForwardCase| {
            forward(&c.m.tokens, &c.params, v)
        })
    };
    Ok(Spec {
        exercise: "transformer",
        cases,
        reference: Box::new(|c| Ok(c.m.logits.detach())),
        mutants: vec![
            m(
                "the final LayerNorm (ln_final) is not applied before the unembedding",
                Variant {
                    ln_final: false,
                    ..RIGHT_FORWARD
                },
            ),
            m(
                "no residual connection around attention: the stream is x + attn(ln1(x)), not attn(ln1(x))",
                Variant {
                    attn_residual: false,
                    ..RIGHT_FORWARD
                },
            ),
            m(
                "the MLP reads the block's input; it reads the stream after attention has been added (x + attn)",
                Variant {
                    parallel: true,
                    ..RIGHT_FORWARD
                },
            ),
            m(
                "attention reads the stream without ln1 before it",
                Variant {
                    ln_before_attn: false,
                    ..RIGHT_FORWARD
                },
            ),
        ],
        compare: Compare::Values {
            atol: 1e-4,
            rtol: 1e-4,
        },
    })
}

/// Checks `transformer(tokens, p)`: the logits of the whole GPT-2-style model — embeddings,
/// each block (`x + attn(ln1(x))`, then `+ mlp(ln2(·))`), the final LayerNorm and the
/// unembedding — against `HookedTransformer::forward` on random two-layer models.
///
/// # Shapes
/// - `tokens`: `[batch, pos]` int64; `p`: see [`GptParams`] → `[batch, pos, d_vocab]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn transformer(f: impl Fn(&Tensor, &GptParams) -> Result<Tensor>) -> Result<Report> {
    transformer_spec()?.check(&|c| f(&c.m.tokens, &c.params))
}
