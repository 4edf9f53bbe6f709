//! E4's toy model of superposition, in ARENA's batched layout (`n_instances` models at once):
//! its data, forward pass, loss and dimensionality, against mechlens-toys' `ToyModel`.

use mechlens_core::Result;
use mechlens_toys::{ToyModel, ToyModelOptions};
use tch::{Kind, Tensor};

use crate::harness::{Case, Compare, Mutant, Spec};
use crate::random::Draw;
use crate::report::Report;

/// A toy model's tensors and a batch.
///
/// # Shapes
/// - `x`, `out`, `uniform`: `[batch, n_instances, n_features]`
/// - `w`: `[n_instances, d_hidden, n_features]`; `b`, `importance`, `probability`:
///   `[n_instances, n_features]`
pub(crate) struct ToyCase {
    pub x: Tensor,
    pub out: Tensor,
    pub uniform: Tensor,
    pub w: Tensor,
    pub b: Tensor,
    pub importance: Tensor,
    pub probability: Tensor,
}

impl Case for ToyCase {
    fn label(&self) -> String {
        format!("x {:?}, w {:?}", self.x.size(), self.w.size())
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("x", &self.x),
            ("out", &self.out),
            ("uniform", &self.uniform),
            ("w", &self.w),
            ("b", &self.b),
            ("importance", &self.importance),
            ("probability", &self.probability),
        ]
    }
}

fn cases(seed: u64) -> Vec<ToyCase> {
    let mut draw = Draw::new(seed);
    (0..5)
        .map(|_| {
            let (batch, k, m, n) = (
                draw.int(2, 8),
                draw.int(1, 4),
                draw.int(1, 5),
                draw.int(2, 8),
            );
            let shape = [batch, k, n];
            ToyCase {
                x: draw.normal(&shape, 0.5, 0.3).relu(),
                out: draw.normal(&shape, 0.5, 0.4).relu(),
                uniform: draw.normal(&shape, 0.0, 1.0).sigmoid(),
                w: draw.normal(&[k, m, n], 0.0, 0.8),
                b: draw.normal(&[k, n], 0.0, 0.3),
                importance: draw.normal(&[k, n], 0.0, 1.0).abs(),
                probability: draw.normal(&[k, n], 0.0, 1.0).sigmoid(),
            }
        })
        .collect()
}

/// mechlens-toys' model holding the case's weights.
fn library_model(c: &ToyCase) -> Result<ToyModel> {
    let size = c.w.size();
    let (k, m, n) = (size[0] as usize, size[1] as usize, size[2] as usize);
    let mut model = ToyModel::new(&ToyModelOptions::uniform(n, m, k, 1.0, 0.5))?;
    model.w = c.w.shallow_clone();
    model.b_final = c.b.shallow_clone();
    model.importance = c.importance.shallow_clone();
    model.probability = c.probability.shallow_clone();
    Ok(model)
}

const CLOSE: Compare = Compare::Values {
    atol: 1e-5,
    rtol: 1e-4,
};

pub(crate) fn sparse_features_spec() -> Spec<ToyCase> {
    Spec {
        exercise: "sparse_features",
        cases: cases(101),
        // ToyModel::generate_batch's rule, on the case's draws.
        reference: Box::new(|c: &ToyCase| {
            Ok(c.x.f_mul(&c.uniform.f_lt_tensor(&c.probability)?)?)
        }),
        mutants: vec![
            Mutant::new(
                "a feature is present when the uniform draw is at least its probability, so with probability 1 − p; it is present when the draw is below p",
                |c: &ToyCase| Ok(c.x.f_mul(&c.uniform.f_ge_tensor(&c.probability)?)?),
            ),
            Mutant::new(
                "present features are set to 1; a present feature takes its value from `values`",
                |c: &ToyCase| {
                    Ok(c.uniform
                        .f_lt_tensor(&c.probability)?
                        .f_to_kind(Kind::Float)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `sparse_features(values, uniform, probability)`: each feature is present where its
/// uniform draw is below its instance's probability, with its value from `values`, else 0.
/// (The randomness is handed in, so the check can compare.)
///
/// # Shapes
/// - `values`, `uniform`: `[batch, n_instances, n_features]`; `probability`:
///   `[n_instances, n_features]` → `[batch, n_instances, n_features]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn sparse_features(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    sparse_features_spec().check(&|c| f(&c.x, &c.uniform, &c.probability))
}

/// `x Wᵀ W + b`, then a ReLU, with the parts a mistake changes.
fn forward(c: &ToyCase, relu: bool, bias: bool, bias_after: bool) -> Result<Tensor> {
    let hidden = Tensor::f_einsum("bin,imn->bim", &[&c.x, &c.w], None::<&[i64]>)?;
    let mut out = Tensor::f_einsum("bim,imn->bin", &[&hidden, &c.w], None::<&[i64]>)?;
    if bias && !bias_after {
        out = out.f_add(&c.b)?;
    }
    if relu {
        out = out.f_relu()?;
    }
    if bias && bias_after {
        out = out.f_add(&c.b)?;
    }
    Ok(out)
}

pub(crate) fn toy_forward_spec() -> Spec<ToyCase> {
    Spec {
        exercise: "toy_forward",
        cases: cases(102),
        reference: Box::new(|c: &ToyCase| library_model(c)?.forward(&c.x)),
        mutants: vec![
            Mutant::new(
                "no ReLU at the end: it is what lets the model filter interference",
                |c: &ToyCase| forward(c, false, true, false),
            ),
            Mutant::new(
                "the bias is added after the ReLU; it goes before",
                |c: &ToyCase| forward(c, true, true, true),
            ),
            Mutant::new("the bias b is not added", |c: &ToyCase| {
                forward(c, true, false, false)
            }),
        ],
        compare: CLOSE,
    }
}

/// Checks `toy_forward(x, w, b)`: `ReLU(x Wᵀ W + b)` per instance: `h = W x` maps the
/// features into `d_hidden` dimensions, `Wᵀ h + b` reads them back.
///
/// # Shapes
/// - `x`: `[batch, n_instances, n_features]`; `w`: `[n_instances, d_hidden, n_features]`;
///   `b`: `[n_instances, n_features]` → `[batch, n_instances, n_features]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn toy_forward(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    toy_forward_spec().check(&|c| f(&c.x, &c.w, &c.b))
}

fn loss(c: &ToyCase, importance: bool, square: bool, dims: &[i64]) -> Result<Tensor> {
    let diff = c.out.f_sub(&c.x)?;
    let mut err = if square {
        diff.f_square()?
    } else {
        diff.f_abs()?
    };
    if importance {
        err = err.f_mul(&c.importance)?;
    }
    Ok(err.f_mean_dim(dims, false, Kind::Float)?)
}

pub(crate) fn toy_loss_spec() -> Spec<ToyCase> {
    Spec {
        exercise: "toy_loss",
        cases: cases(103),
        reference: Box::new(|c: &ToyCase| library_model(c)?.loss(&c.x, &c.out)),
        mutants: vec![
            Mutant::new(
                "the importance is not applied: each feature's error is weighted by it",
                |c: &ToyCase| loss(c, false, true, &[0, 2]),
            ),
            Mutant::new("the error is not squared", |c: &ToyCase| {
                loss(c, true, false, &[0, 2])
            }),
            Mutant::new(
                "features are summed; ARENA's loss takes the mean over batch and features",
                |c: &ToyCase| {
                    let n = c.x.size()[2] as f64;
                    Ok(loss(c, true, true, &[0, 2])?.f_mul_scalar(n)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `toy_loss(x, out, importance)`: the importance-weighted squared error, mean over the
/// batch and the features, one number per instance.
///
/// # Shapes
/// - `x`, `out`: `[batch, n_instances, n_features]`; `importance`: `[n_instances, n_features]`
///   → `[n_instances]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn toy_loss(f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>) -> Result<Report> {
    toy_loss_spec().check(&|c| f(&c.x, &c.out, &c.importance))
}

pub(crate) fn dimensions_spec() -> Spec<ToyCase> {
    Spec {
        exercise: "dimensions_per_feature",
        cases: cases(104),
        reference: Box::new(|c: &ToyCase| library_model(c)?.dimensions_per_feature()),
        mutants: vec![
            Mutant::new(
                "‖W‖_F is not squared: D* = d_hidden / ‖W‖_F²",
                |c: &ToyCase| {
                    let m = c.w.size()[1] as f64;
                    let frob =
                        c.w.f_square()?
                            .f_sum_dim_intlist(&[1i64, 2][..], false, Kind::Float)?
                            .f_sqrt()?;
                    Ok(frob.f_reciprocal()?.f_mul_scalar(m)?)
                },
            ),
            Mutant::new(
                "the numerator is n_features; it is d_hidden, the dimensions there are to share",
                |c: &ToyCase| {
                    let n = c.w.size()[2] as f64;
                    let frob =
                        c.w.f_square()?
                            .f_sum_dim_intlist(&[1i64, 2][..], false, Kind::Float)?;
                    Ok(frob.f_reciprocal()?.f_mul_scalar(n)?)
                },
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `dimensions_per_feature(w)`: `D* = d_hidden / ‖W‖_F²` per instance, how many
/// hidden dimensions each represented feature gets (1/2 for antipodal pairs, 2/5 for a
/// pentagon).
///
/// # Shapes
/// - `w`: `[n_instances, d_hidden, n_features]` → `[n_instances]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn dimensions_per_feature(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    dimensions_spec().check(&|c| f(&c.w))
}

fn dimensionality(c: &ToyCase, normalise: bool, self_term: bool) -> Result<Tensor> {
    let w = &c.w;
    let norms = w.f_norm_scalaropt_dim(2, [1], true)?;
    let left = if normalise {
        w.f_div(&norms)?
    } else {
        w.shallow_clone()
    };
    let mut overlaps = Tensor::f_einsum("kmi,kmj->kij", &[&left, w], None::<&[i64]>)?.f_square()?;
    if !self_term {
        let n = w.size()[2];
        let eye = Tensor::f_eye(n, (Kind::Float, w.device()))?;
        overlaps = overlaps.f_mul(&eye.f_neg()?.f_add_scalar(1.0)?)?;
    }
    Ok(norms
        .f_squeeze_dim(1)?
        .f_square()?
        .f_div(&overlaps.f_sum_dim_intlist(-1, false, Kind::Float)?)?)
}

pub(crate) fn dimensionality_spec() -> Spec<ToyCase> {
    Spec {
        exercise: "feature_dimensionality",
        cases: cases(105),
        reference: Box::new(|c: &ToyCase| library_model(c)?.feature_dimensionality()),
        mutants: vec![
            Mutant::new(
                "W_i is not normalised in the overlaps: the denominator is Σ_j (Ŵ_i · W_j)², with Ŵ_i = W_i / ‖W_i‖",
                |c: &ToyCase| dimensionality(c, false, true),
            ),
            Mutant::new(
                "the feature itself is left out of the sum; j runs over every feature, i included",
                |c: &ToyCase| dimensionality(c, true, false),
            ),
        ],
        compare: CLOSE,
    }
}

/// Checks `feature_dimensionality(w)`: per instance and feature,
/// `D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²` (`W_i` the column of feature `i`, `Ŵ_i` its unit vector):
/// 1 for a feature with a dimension to itself, 1/2 in an antipodal pair, 2/5 in a pentagon.
///
/// # Shapes
/// - `w`: `[n_instances, d_hidden, n_features]` → `[n_instances, n_features]`
///
/// # Errors
/// In strict mode, a check that does not pass.
pub fn feature_dimensionality(f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Report> {
    dimensionality_spec().check(&|c| f(&c.w))
}
