//! E1's bonus rotary position embedding (Su et al. 2021), in the convention of llama2.c and
//! so of BabyLlama: each adjacent pair of features `(2i, 2i + 1)` of a query or key is rotated
//! by `position · base^(−2i/d_head)`. Checked against the library's `Rotary`, which is tested
//! equal to Hugging Face on the Llama architectures and drives BabyLlama.

use mechlens_core::Result;
use mechlens_models::components::Rotary;
use mechlens_models::{RopeScaling, RotaryConfig};
use tch::{Device, Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

pub(crate) struct RotaryCase {
    pub x: Tensor,
    pub base: f64,
}

impl Case for RotaryCase {
    fn label(&self) -> String {
        format!("x {:?}, base {}", self.x.size(), self.base)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("x", &self.x)]
    }
}

/// The library's rotation of every position `0..pos`, adjacent pairs or halves.
fn library(c: &RotaryCase, interleaved: bool, first_position: i64) -> Result<Tensor> {
    let size = c.x.size();
    let (batch, pos, d_head) = (size[0], size[1], size[3]);
    let cfg = RotaryConfig {
        dim: d_head as usize,
        base: c.base,
        interleaved,
        scaling: RopeScaling::None,
    };
    let rotary = Rotary::new(&cfg, (pos + first_position) as usize, Device::Cpu)?;
    let positions = Tensor::f_arange_start(
        first_position,
        pos + first_position,
        (Kind::Int64, Device::Cpu),
    )?
    .f_unsqueeze(0)?
    .f_expand([batch, pos], false)?
    .f_contiguous()?;
    rotary.apply(&c.x, &positions)
}

/// Adjacent pairs rotated by `sign · position · base^(−step·i/d_head)`: the mistakes the
/// library cannot make.
pub(crate) fn pairs_rotated(c: &RotaryCase, sign: f64, step: f64) -> Result<Tensor> {
    let size = c.x.size();
    let (b, p, h, d) = (size[0], size[1], size[2], size[3]);
    let half = d / 2;
    let pair = Tensor::f_arange(half, (Kind::Double, Device::Cpu))?;
    let inv_freq = pair
        .f_mul_scalar(-step / d as f64)?
        .f_mul_scalar(c.base.ln())?
        .f_exp()?;
    let angles = Tensor::f_arange(p, (Kind::Double, Device::Cpu))?
        .f_unsqueeze(1)?
        .f_mul(&inv_freq.f_unsqueeze(0)?)?
        .f_view([1, p, 1, half])?;
    let (cos, sin) = (
        angles.f_cos()?.f_to_kind(Kind::Float)?,
        angles.f_sin()?.f_mul_scalar(sign)?.f_to_kind(Kind::Float)?,
    );
    let pairs = c.x.f_reshape([b, p, h, half, 2])?;
    let (x1, x2) = (pairs.f_select(-1, 0)?, pairs.f_select(-1, 1)?);
    let r1 = x1.f_mul(&cos)?.f_sub(&x2.f_mul(&sin)?)?;
    let r2 = x1.f_mul(&sin)?.f_add(&x2.f_mul(&cos)?)?;
    Ok(Tensor::f_stack(&[r1, r2], -1)?.f_reshape([b, p, h, d])?)
}

pub(crate) fn rotary_spec() -> Spec<RotaryCase> {
    let mut draw = Draw::new(13);
    // Bases small enough that a few positions turn the slow pairs visibly too.
    let cases = [10_000.0, 100.0, 10.0, 500.0]
        .into_iter()
        .map(|base| {
            let shape = [
                draw.int(1, 2),
                draw.int(3, 8),
                draw.int(1, 3),
                2 * draw.int(2, 4),
            ];
            RotaryCase {
                x: draw.normal(&shape, 0.0, 1.0),
                base,
            }
        })
        .collect();
    Spec {
        exercise: "rotary",
        cases,
        reference: Box::new(|c: &RotaryCase| library(c, true, 0)),
        mutants: vec![
            Mutant::new(
                "the halves (i, i + d_head/2) were rotated together, Hugging Face Llama's convention; llama2.c and BabyLlama rotate adjacent pairs (2i, 2i + 1)",
                |c: &RotaryCase| library(c, false, 0),
            ),
            Mutant::new(
                "each pair turns the wrong way: the first of the pair becomes x₁·cos − x₂·sin, the second x₁·sin + x₂·cos",
                |c: &RotaryCase| pairs_rotated(c, -1.0, 2.0),
            ),
            Mutant::new(
                "pair i turns at base^(−i/d_head); its frequency is base^(−2i/d_head)",
                |c: &RotaryCase| pairs_rotated(c, 1.0, 1.0),
            ),
            Mutant::new(
                "the positions start at 1; the first token is position 0 and is not rotated",
                |c: &RotaryCase| library(c, true, 1),
            ),
        ],
        compare: Compare::Values {
            atol: 1e-5,
            rtol: 1e-4,
        },
    }
}

/// Checks `rotary(x, base)`: each position `p`'s adjacent feature pairs `(2i, 2i + 1)`
/// rotated by the angle `p · base^(−2i/d_head)`, positions counted from 0 (llama2.c's and
/// BabyLlama's convention).
///
/// # Shapes
/// - `x`: `[batch, pos, n_heads, d_head]` (`d_head` even) → the same
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn rotary(f: impl Fn(&Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    rotary_spec().check(&|c| f(&c.x, c.base))
}
