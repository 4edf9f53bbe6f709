//! E1's MLP, GPT-2's `W_out · gelu_new(W_in · x + b_in) + b_out`, checked against the
//! library's `Mlp` component.

use mechlens_core::{HookSession, Result};
use mechlens_models::Activation;
use mechlens_models::components::Mlp;
use tch::Tensor;

use super::params::MlpParams;
use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct MlpCase {
    pub x: Tensor,
    pub p: MlpParams,
}

impl Case for MlpCase {
    fn label(&self) -> String {
        format!("x {:?}, w_in {:?}", self.x.size(), self.p.w_in.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("x", &self.x),
            ("w_in", &self.p.w_in),
            ("b_in", &self.p.b_in),
            ("w_out", &self.p.w_out),
            ("b_out", &self.p.b_out),
        ]
    }
}

#[derive(Clone, Copy)]
enum Act {
    GeluTanh,
    GeluErf,
    Relu,
}

fn variant(c: &MlpCase, act: Act, b_in: bool, b_out: bool) -> Result<Tensor> {
    let mut pre = c.x.f_matmul(&c.p.w_in)?;
    if b_in {
        pre = pre.f_add(&c.p.b_in)?;
    }
    let post = match act {
        Act::GeluTanh => pre.f_gelu("tanh")?,
        Act::GeluErf => pre.f_gelu("none")?,
        Act::Relu => pre.f_relu()?,
    };
    let out = post.f_matmul(&c.p.w_out)?;
    Ok(if b_out { out.f_add(&c.p.b_out)? } else { out })
}

pub(crate) fn mlp_spec() -> Spec<MlpCase> {
    let mut draw = Draw::new(41);
    let cases = (0..5)
        .map(|_| {
            let (d_model, d_mlp) = (draw.int(2, 12), draw.int(4, 32));
            let (batch, pos) = (draw.int(1, 3), draw.int(1, 6));
            MlpCase {
                x: draw.normal(&[batch, pos, d_model], 0.0, 1.5),
                p: MlpParams {
                    w_in: draw.normal(&[d_model, d_mlp], 0.0, 0.7),
                    b_in: draw.normal(&[d_mlp], 0.0, 0.5),
                    w_out: draw.normal(&[d_mlp, d_model], 0.0, 0.5),
                    b_out: draw.normal(&[d_model], 0.0, 0.5),
                },
            }
        })
        .collect();
    Spec {
        exercise: "mlp",
        cases,
        reference: Box::new(|c: &MlpCase| {
            let mlp = Mlp {
                w_in: c.p.w_in.shallow_clone(),
                b_in: Some(c.p.b_in.shallow_clone()),
                w_gate: None,
                w_out: c.p.w_out.shallow_clone(),
                b_out: Some(c.p.b_out.shallow_clone()),
                act: Activation::GeluTanh,
            };
            mlp.forward(0, &c.x, &mut HookSession::none())
        }),
        mutants: vec![
            Mutant::new("ReLU where GPT-2 uses GELU", |c: &MlpCase| {
                variant(c, Act::Relu, true, true)
            }),
            Mutant::new(
                "the exact (erf) GELU; GPT-2 uses its tanh approximation, `gelu(\"tanh\")` (TransformerLens' gelu_new)",
                |c: &MlpCase| variant(c, Act::GeluErf, true, true),
            ),
            Mutant::new(
                "the bias b_in is not added before the GELU",
                |c: &MlpCase| variant(c, Act::GeluTanh, false, true),
            ),
            Mutant::new("the bias b_out is not added", |c: &MlpCase| {
                variant(c, Act::GeluTanh, true, false)
            }),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    }
}

/// Checks `mlp(x, p)`: `gelu_new(x · W_in + b_in) · W_out + b_out`, with GELU's tanh
/// approximation as in GPT-2.
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `p`: see [`MlpParams`] → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn mlp(f: impl Fn(&Tensor, &MlpParams) -> Result<Tensor>) -> Result<Report> {
    mlp_spec().check(&|c: &MlpCase| f(&c.x, &c.p))
}
