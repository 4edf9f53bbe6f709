//! One Adam step per parameter in one pass, in `torch.optim.Adam`'s order of operations.

use std::sync::Mutex;

use tch::Tensor;

use super::{f32_slice, f32_slice_mut, fast, overlaps, same_shape, team, threads};
use mechlens_core::Result;

/// One Adam step's settings, as `torch.optim.Adam` (no weight decay, no amsgrad) reads them.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// β₁, β₂.
    pub betas: (f64, f64),
    /// ε, added to `√v̂`.
    pub eps: f64,
    /// The step number, from 1 (for the bias corrections).
    pub step: i32,
    /// Multiplies the gradient first: gradient clipping's factor, 1 for none.
    pub grad_scale: f64,
}

/// One Adam update of `param` in place, with its moments `m` and `v`, in the order of
/// `torch.optim.Adam`'s single-tensor step: `g ← s·grad`, `m ← m + (1−β₁)(g − m)`,
/// `v ← β₂v + (1−β₂)g²`, `param ← param − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`.
///
/// # Shapes
/// `param`, `grad`, `m` and `v` all have one shape.
pub fn adam_step_(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    adam: &AdamStep,
) -> Result<()> {
    for (name, t) in [("Adam grad", grad), ("Adam m", &*m), ("Adam v", &*v)] {
        same_shape(t, name, param, "the parameter's shape")?;
    }
    let (b1, b2) = adam.betas;
    let step_size = adam.lr / (1.0 - b1.powi(adam.step));
    let c2_sqrt = (1.0 - b2.powi(adam.step)).sqrt();
    let shared =
        overlaps(param, grad) || overlaps(param, m) || overlaps(param, v) || overlaps(m, v);
    if !fast(&[param, grad, m, v]) || shared {
        let g = grad.f_mul_scalar(adam.grad_scale)?;
        let _ = m.f_lerp_(&g, 1.0 - b1)?;
        let _ = v
            .f_mul_scalar_(b2)?
            .f_add_(&g.f_square()?.f_mul_scalar(1.0 - b2)?)?;
        let denom = v.f_sqrt()?.f_div_scalar(c2_sqrt)?.f_add_scalar(adam.eps)?;
        let _ = param.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
        return Ok(());
    }
    let (scale, b1, b2) = (adam.grad_scale as f32, b1 as f32, b2 as f32);
    let (step_size, c2_sqrt, eps) = (step_size as f32, c2_sqrt as f32, adam.eps as f32);
    let grad = f32_slice(grad);
    let (p, m, v) = (f32_slice_mut(param), f32_slice_mut(m), f32_slice_mut(v));
    let threads = threads();
    let chunk = p.len().div_ceil(threads).max(1);
    type Parts<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a [f32]);
    let parts: Vec<Mutex<Parts<'_>>> = p
        .chunks_mut(chunk)
        .zip(m.chunks_mut(chunk))
        .zip(v.chunks_mut(chunk))
        .zip(grad.chunks(chunk))
        .map(|(((p, m), v), g)| Mutex::new((p, m, v, g)))
        .collect();
    team::for_each_block(parts.len(), threads, &|i| {
        let Ok(mut part) = parts[i].lock() else {
            return;
        };
        let (p, m, v, g) = &mut *part;
        for (((p, m), v), &g) in p
            .iter_mut()
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .zip(g.iter())
        {
            let g = g * scale;
            *m += (1.0 - b1) * (g - *m);
            *v = *v * b2 + (1.0 - b2) * g * g;
            *p -= step_size * (*m / (v.sqrt() / c2_sqrt + eps));
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{max_diff, randn, strided};
    use super::*;
    use tch::{Device, Kind};

    /// Against libtorch's own Adam (the C++ `torch::optim::Adam` behind `tch::nn::Adam`),
    /// a few steps with a changing gradient, on both paths.
    #[test]
    fn adam_matches_libtorch_adam() {
        use tch::nn::{self, OptimizerConfig};
        let vs = nn::VarStore::new(Device::Cpu);
        let start = randn(&[64, 9], 8);
        let weight = vs.root().var_copy("w", &start);
        let mut reference = nn::Adam::default().build(&vs, 1e-2).unwrap();
        let mut fast_p = start.copy();
        let mut slow_p = strided(&start);
        let (mut m, mut v) = (start.zeros_like(), start.zeros_like());
        let (mut sm, mut sv) = (strided(&m), strided(&v));
        for step in 1..=4 {
            let target = randn(&[64, 9], 20 + i64::from(step));
            reference.zero_grad();
            let loss = (&weight - &target).square().sum(Kind::Float) * 0.5;
            loss.backward();
            reference.step();
            let adam = AdamStep {
                lr: 1e-2,
                betas: (0.9, 0.999),
                eps: 1e-8,
                step,
                grad_scale: 1.0,
            };
            let grad = &fast_p - &target;
            adam_step_(&mut fast_p, &grad, &mut m, &mut v, &adam).unwrap();
            let slow_grad = strided(&(&slow_p - &target));
            adam_step_(&mut slow_p, &slow_grad, &mut sm, &mut sv, &adam).unwrap();
        }
        let expected = tch::no_grad(|| weight.copy());
        assert!(
            max_diff(&fast_p, &expected) < 1e-6,
            "{}",
            max_diff(&fast_p, &expected)
        );
        assert!(max_diff(&slow_p, &expected) < 1e-6);
    }

    /// Step 1 at lr 0.1 with torch's default betas and eps.
    fn first_step(grad_scale: f64) -> AdamStep {
        AdamStep {
            lr: 0.1,
            betas: (0.9, 0.999),
            eps: 1e-8,
            step: 1,
            grad_scale,
        }
    }

    #[test]
    fn adam_scales_the_gradient_first() {
        let p = randn(&[10], 9);
        let g = randn(&[10], 10);
        let adam = first_step(0.25);
        let (mut a, mut b) = (p.copy(), p.copy());
        let (mut m1, mut v1, mut m2, mut v2) = (
            p.zeros_like(),
            p.zeros_like(),
            p.zeros_like(),
            p.zeros_like(),
        );
        adam_step_(&mut a, &g, &mut m1, &mut v1, &adam).unwrap();
        let unscaled = AdamStep {
            grad_scale: 1.0,
            ..adam
        };
        adam_step_(&mut b, &(&g * 0.25), &mut m2, &mut v2, &unscaled).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
        assert!(max_diff(&m1, &(&g * 0.025)) < 1e-7);
    }

    #[test]
    fn shapes_that_disagree_are_errors() {
        let mut x = randn(&[4, 3], 11);
        let adam = first_step(1.0);
        let (mut m, mut v) = (randn(&[4, 3], 1), randn(&[4, 3], 2));
        let err = adam_step_(&mut x, &randn(&[3], 1), &mut m, &mut v, &adam).unwrap_err();
        assert!(err.to_string().contains("Adam grad"), "{err}");
    }
}
