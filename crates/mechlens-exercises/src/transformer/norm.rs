//! E1's normalisations: LayerNorm, and RMSNorm (the bonus, as in Llama), checked against the
//! library's `Norm` component.

use mechlens_core::{HookPoint, HookSession, Result};
use mechlens_models::Normalization;
use mechlens_models::components::Norm;
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

/// A normalisation's inputs.
pub(crate) struct NormCase {
    pub x: Tensor,
    pub w: Tensor,
    pub b: Tensor,
    pub eps: f64,
}

impl Case for NormCase {
    fn label(&self) -> String {
        format!("x {:?}, eps {:.0e}", self.x.size(), self.eps)
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("x", &self.x), ("w", &self.w), ("b", &self.b)]
    }
}

/// Five cases: `[batch, pos, d_model]` with batch 1–3, pos 2–6, d_model 3–16, inputs off
/// centre and of varied scale (so that forgetting the mean shows), weights around one.
fn cases(seed: u64) -> Vec<NormCase> {
    let mut draw = Draw::new(seed);
    [1e-5, 1e-5, 0.1, 1e-3, 0.5]
        .into_iter()
        .map(|eps| {
            let shape = [draw.int(1, 3), draw.int(2, 6), draw.int(3, 16)];
            let (mean, std) = (draw.uniform(-2.0, 2.0), draw.uniform(0.3, 3.0));
            let d = shape[2];
            NormCase {
                x: draw.normal(&shape, mean, std),
                w: draw.normal(&[d], 1.0, 0.3),
                b: draw.normal(&[d], 0.0, 0.3),
                eps,
            }
        })
        .collect()
}

fn library(case: &NormCase, kind: Normalization) -> Result<Tensor> {
    let norm = Norm {
        kind,
        w: Some(case.w.shallow_clone()),
        b: (kind == Normalization::LayerNorm).then(|| case.b.shallow_clone()),
        eps: case.eps,
    };
    norm.forward(
        &case.x,
        HookPoint::LnFinalScale,
        HookPoint::LnFinalNormalized,
        &mut HookSession::none(),
    )
}

/// `(x - centre) / sqrt(var + eps) * w + b` with the parts a mistake changes as flags.
struct Variant {
    centre: bool,
    unbiased: bool,
    eps_outside: bool,
    dim: i64,
    weight: bool,
    bias: bool,
}

const LAYER_NORM: Variant = Variant {
    centre: true,
    unbiased: false,
    eps_outside: false,
    dim: -1,
    weight: true,
    bias: true,
};

fn variant(case: &NormCase, v: &Variant) -> Result<Tensor> {
    let x = &case.x;
    let centred = if v.centre {
        x.f_sub(&x.f_mean_dim(v.dim, true, Kind::Float)?)?
    } else {
        x.shallow_clone()
    };
    let var = if v.centre {
        x.f_var_dim(v.dim, v.unbiased, true)?
    } else {
        x.f_pow_tensor_scalar(2)?
            .f_mean_dim(v.dim, true, Kind::Float)?
    };
    let scale = if v.eps_outside {
        var.f_sqrt()?.f_add_scalar(case.eps)?
    } else {
        var.f_add_scalar(case.eps)?.f_sqrt()?
    };
    let mut out = centred.f_div(&scale)?;
    if v.weight {
        out = out.f_mul(&case.w)?;
    }
    if v.bias {
        out = out.f_add(&case.b)?;
    }
    Ok(out)
}

fn mutant(mistake: &'static str, v: Variant) -> Mutant<NormCase> {
    Mutant::new(mistake, move |c| variant(c, &v))
}

const VALUES: Compare = Compare::Values {
    atol: 1e-5,
    rtol: 1e-4,
};

pub(crate) fn layer_norm_spec() -> Spec<NormCase> {
    Spec {
        exercise: "layer_norm",
        cases: cases(11),
        reference: Box::new(|c| library(c, Normalization::LayerNorm)),
        mutants: vec![
            mutant(
                "the mean is not subtracted: x / sqrt(mean(x²) + eps) is RMSNorm, not LayerNorm",
                Variant {
                    centre: false,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "the unbiased variance (dividing by d_model - 1); LayerNorm divides by d_model (`var_dim(-1, false, true)`)",
                Variant {
                    unbiased: true,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "eps is added after the square root, sqrt(var) + eps; it belongs inside, sqrt(var + eps)",
                Variant {
                    eps_outside: true,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "normalised over the position dim (1); LayerNorm normalises each vector over d_model, the last dim",
                Variant {
                    dim: 1,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "the weight w is not applied",
                Variant {
                    weight: false,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "the bias b is not added",
                Variant {
                    bias: false,
                    ..LAYER_NORM
                },
            ),
        ],
        compare: VALUES,
    }
}

/// RMSNorm's cases ignore `b` (RMSNorm has no bias).
pub(crate) fn rms_norm_spec() -> Spec<NormCase> {
    let rms = Variant {
        centre: false,
        bias: false,
        ..LAYER_NORM
    };
    Spec {
        exercise: "rms_norm",
        cases: cases(12),
        reference: Box::new(|c| library(c, Normalization::Rms)),
        mutants: vec![
            mutant(
                "the mean is subtracted: that is LayerNorm; RMSNorm divides x itself by its root mean square",
                Variant {
                    centre: true,
                    bias: false,
                    ..LAYER_NORM
                },
            ),
            mutant(
                "eps is added after the square root, sqrt(mean(x²)) + eps; it belongs inside",
                Variant {
                    eps_outside: true,
                    ..rms
                },
            ),
            mutant(
                "the weight w is not applied",
                Variant {
                    weight: false,
                    ..rms
                },
            ),
        ],
        compare: VALUES,
    }
}

/// Checks `layer_norm(x, w, b, eps)`: LayerNorm over the last dim,
/// `(x - mean) / sqrt(var + eps) * w + b`, the variance biased.
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `w`, `b`: `[d_model]` → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode ([`crate::check::strict`]), a check that does not pass.
pub fn layer_norm(f: impl Fn(&Tensor, &Tensor, &Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    layer_norm_spec().check(&|c| f(&c.x, &c.w, &c.b, c.eps))
}

/// Checks `rms_norm(x, w, eps)`: `x / sqrt(mean(x²) + eps) * w` over the last dim (Llama's
/// normalisation).
///
/// # Shapes
/// - `x`: `[batch, pos, d_model]`; `w`: `[d_model]` → `[batch, pos, d_model]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn rms_norm(f: impl Fn(&Tensor, &Tensor, f64) -> Result<Tensor>) -> Result<Report> {
    rms_norm_spec().check(&|c| f(&c.x, &c.w, c.eps))
}
