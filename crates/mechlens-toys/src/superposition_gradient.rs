//! The toy model of superposition's loss and its gradient in closed form, for training.
//!
//! The model is two batched matmuls and a ReLU, so its gradient is three more matmuls; written
//! out, a training step skips building and walking an autograd graph and zeroing gradients,
//! which at this size (10 instances, 5 features, batch 1,024) cost more than the arithmetic.
//! The values equal autograd's to float rounding (tested against libtorch's autograd).
//!
//! With `xᵢ` the batch of instance `i` (`[batch, n]`), `W` its `[m, n]` weights:
//! `h = x Wᵀ`, `pre = h W + b`, `x' = ReLU(pre)`, `d = x' − x`,
//! `L = Σᵢ mean_{batch, n}(importance · d²)`. Then
//! `g = 2 · importance · d / (batch · n) ⊙ [pre > 0]`, `∂L/∂b = Σ_batch g`,
//! `∂L/∂W = hᵀ g + (g W)ᵀ x` (the second term through `h`).

use mechlens_core::Result;
use tch::{Kind, Tensor};

/// The per-instance loss `[n_instances]` and the gradients of its sum with respect to `w`
/// and `b_final`.
///
/// # Shapes
/// - `x`: `[batch, n_instances, n_features]`
/// - `w`: `[n_instances, d_hidden, n_features]`, `b_final` and `importance`:
///   `[n_instances, n_features]`
/// - → (`[n_instances]`, like `w`, like `b_final`)
pub(crate) fn loss_and_gradients(
    x: &Tensor,
    w: &Tensor,
    b_final: &Tensor,
    importance: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let _guard = tch::no_grad_guard();
    let (batch, n) = (x.size()[0], x.size()[2]);
    let x = x.f_transpose(0, 1)?; // [instance, batch, feature]
    let importance = importance.f_unsqueeze(1)?; // [instance, 1, feature]
    let hidden = x.f_bmm(&w.f_transpose(1, 2)?)?; // [instance, batch, m]
    let pre = b_final.f_unsqueeze(1)?.f_baddbmm(&hidden, w, 1.0, 1.0)?; // b + h W
    let diff = pre.f_relu()?.f_sub(&x)?;
    let weighted = diff.f_mul(&importance)?;
    // mean over batch and features of importance · d²
    let per_instance = weighted
        .f_mul(&diff)?
        .f_mean_dim(&[1i64, 2][..], false, Kind::Float)?;
    // ∂L/∂pre: the loss's derivative, through the ReLU (zero where it was off)
    let grad_pre = weighted
        .f_mul_scalar(2.0 / (batch * n) as f64)?
        .f_mul(&pre.f_gt(0.0)?)?;
    let grad_b = grad_pre.f_sum_dim_intlist(&[1i64][..], false, Kind::Float)?;
    let grad_hidden = grad_pre.f_bmm(&w.f_transpose(1, 2)?)?; // [instance, batch, m]
    let mut grad_w = hidden.f_transpose(1, 2)?.f_bmm(&grad_pre)?;
    let _ = grad_w.f_baddbmm_(&grad_hidden.f_transpose(1, 2)?, &x)?;
    Ok((per_instance, grad_w, grad_b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToyModel, ToyModelOptions};

    fn max_relative_difference(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(1e-12);
        (a - b).abs().max().double_value(&[]) / scale
    }

    #[test]
    fn loss_and_gradients_equal_libtorch_autograd() {
        // Per-instance importance and probability, a bias with both signs (some ReLUs off),
        // and features present often enough that every path carries gradient.
        let importance: Vec<Vec<f64>> = (0..3)
            .map(|i| (0..6).map(|j| 0.9f64.powi(j) + i as f64).collect())
            .collect();
        let probability = vec![vec![0.7; 6], vec![0.3; 6], vec![1.0; 6]];
        let opts = ToyModelOptions {
            n_features: 6,
            d_hidden: 3,
            importance,
            probability,
            seed: 4,
        };
        let model = ToyModel::new(&opts).unwrap();
        tch::manual_seed(11);
        let _ = model
            .b_final
            .shallow_clone()
            .requires_grad_(false)
            .uniform_(-0.3, 0.3)
            .requires_grad_(true);
        let x = model.generate_batch(64).unwrap();

        let reference = model.loss(&x, &model.forward(&x).unwrap()).unwrap();
        reference.sum(Kind::Float).backward();
        let (loss, grad_w, grad_b) =
            loss_and_gradients(&x, &model.w, &model.b_final, &model.importance).unwrap();

        assert!(max_relative_difference(&loss, &reference.detach()) < 1e-6);
        assert!(max_relative_difference(&grad_w, &model.w.grad()) < 1e-5);
        assert!(max_relative_difference(&grad_b, &model.b_final.grad()) < 1e-5);
        // The ReLU was off somewhere, so its mask was exercised.
        let pre = model.forward(&x).unwrap();
        assert!(pre.eq(0.0).any().int64_value(&[]) == 1);
    }
}
