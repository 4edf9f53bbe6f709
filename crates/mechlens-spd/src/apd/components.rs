//! One layer's share of APD's parameter components: component `c` writes `A_c · B_c` into the
//! layer, a matrix of rank at most `r`, so `W ≈ Σ_c A_c B_c`. The factors may be another
//! layer's transposed (tied weights).

use mechlens_core::Result;
use tch::{Device, Kind, Tensor};

/// The factors of `C` rank-`r` components of a `[d_in, d_out]` matrix.
#[derive(Debug)]
pub struct ComponentFactors {
    /// `[C, d_in, r]`
    pub a: Tensor,
    /// `[C, r, d_out]`
    pub b: Tensor,
}

impl ComponentFactors {
    /// Xavier-normal factors (gain 1, PyTorch's fans for 3-d tensors), as the paper's code
    /// starts, drawn from libtorch's generator seeded with `generator_seed`.
    pub fn init(c: i64, d_in: i64, d_out: i64, rank: i64, generator_seed: i64) -> Result<Self> {
        tch::manual_seed(generator_seed);
        // torch.nn.init: fan_in = size(1)·Π size(2..), fan_out = size(0)·Π size(2..).
        let xavier = |shape: [i64; 3]| -> Result<Tensor> {
            let (fan_in, fan_out) = (shape[1] * shape[2], shape[0] * shape[2]);
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            Ok(Tensor::f_randn(shape, (Kind::Float, Device::Cpu))?
                .f_mul_scalar(std)?
                .f_set_requires_grad(true)?)
        };
        Ok(Self {
            a: xavier([c, d_in, rank])?,
            b: xavier([c, rank, d_out])?,
        })
    }

    /// The factors of the transposed matrix, `(A_c B_c)ᵀ = B_cᵀ A_cᵀ`, sharing these
    /// tensors (gradients reach them).
    pub fn transposed(&self) -> Result<Self> {
        Ok(Self {
            a: self.b.f_transpose(1, 2)?,
            b: self.a.f_transpose(1, 2)?,
        })
    }

    /// Each component's matrix `A_c B_c`.
    ///
    /// # Shapes
    /// → `[C, d_in, d_out]`
    pub fn weights(&self) -> Result<Tensor> {
        Ok(self.a.f_matmul(&self.b)?)
    }

    /// The whole decomposed matrix `Σ_c A_c B_c` `[d_in, d_out]`.
    pub fn weight(&self) -> Result<Tensor> {
        Ok(self.weights()?.f_sum_dim_intlist(0, false, Kind::Float)?)
    }

    /// Each component's share of the layer's output, `input · A_c B_c`.
    ///
    /// # Shapes
    /// `input`: `[batch, d_in]` → `[batch, C, d_out]`
    pub fn component_outputs(&self, input: &Tensor) -> Result<Tensor> {
        // [C, batch, r] → [C, batch, d_out] → [batch, C, d_out]
        let inner = input.f_unsqueeze(0)?.f_matmul(&self.a)?;
        Ok(inner.f_matmul(&self.b)?.f_transpose(0, 1)?)
    }

    /// The layer's output with component `c` of sample `b` scaled by `mask[b, c]`.
    ///
    /// # Shapes
    /// `input`: `[batch, d_in]`, `mask`: `[batch, C]` → `[batch, d_out]`
    pub fn forward_masked(&self, input: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (c, rank) = (self.a.size()[0], self.a.size()[2]);
        let d_in = self.a.size()[1];
        // [d_in, C·r]: every component's A side by side, so one matmul serves all.
        let a = self.a.f_permute([1, 0, 2])?.f_reshape([d_in, c * rank])?;
        let inner = input.f_matmul(&a)?.f_reshape([-1, c, rank])?;
        let inner = inner
            .f_mul(&mask.f_unsqueeze(2)?)?
            .f_reshape([-1, c * rank])?;
        Ok(inner.f_matmul(&self.b.f_reshape([c * rank, -1])?)?)
    }

    /// Each component's Schatten-`p` proxy of the paper, `Σ_r (‖A_c[:, r]‖² ‖B_c[r, :]‖²)^{p/2}`
    /// (exact when the `A` columns and `B` rows are orthogonal).
    ///
    /// # Shapes
    /// → `[C]`
    pub fn schatten(&self, p: f64) -> Result<Tensor> {
        let s_a = self
            .a
            .f_square()?
            .f_sum_dim_intlist(1, false, Kind::Float)?; // [C, r]
        let s_b = self
            .b
            .f_square()?
            .f_sum_dim_intlist(2, false, Kind::Float)?; // [C, r]
        Ok(s_a
            .f_mul(&s_b)?
            .f_add_scalar(1e-16)?
            .f_pow_tensor_scalar(0.5 * p)?
            .f_sum_dim_intlist(1, false, Kind::Float)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_forward_is_the_masked_sum_of_component_outputs() {
        let f = ComponentFactors::init(4, 5, 3, 2, 1).unwrap();
        let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
        let mask = Tensor::rand([6, 4], (Kind::Float, Device::Cpu))
            .gt(0.5)
            .to_kind(Kind::Float);
        let per = f.component_outputs(&x).unwrap(); // [6, 4, 3]
        let want = (per * mask.unsqueeze(2)).sum_dim_intlist(1, false, Kind::Float);
        let got = f.forward_masked(&x, &mask).unwrap();
        assert!(got.allclose(&want, 1e-5, 1e-5, false));
        // All ones: the whole matrix.
        let ones = Tensor::ones([6, 4], (Kind::Float, Device::Cpu));
        let full = x.matmul(&f.weight().unwrap());
        assert!(
            f.forward_masked(&x, &ones)
                .unwrap()
                .allclose(&full, 1e-5, 1e-5, false)
        );
        // Transposed factors make the transposed matrix.
        let t = f.transposed().unwrap();
        assert!(
            t.weight()
                .unwrap()
                .allclose(&f.weight().unwrap().tr(), 1e-6, 1e-6, false)
        );
    }

    #[test]
    fn schatten_of_orthogonal_factors_is_the_sum_of_singular_values() {
        // One component 3·e₀e₀ᵀ + 2·e₁e₁ᵀ with orthogonal factors: singular values 3 and 2,
        // so Σσᵖ is 5 for p = 1 and 13 for p = 2.
        let a = Tensor::from_slice(&[3.0f32, 0.0, 0.0, 1.0, 0.0, 0.0]).reshape([1, 3, 2]);
        let b = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 2.0]).reshape([1, 2, 2]);
        let f = ComponentFactors { a, b };
        let nuclear = f.schatten(1.0).unwrap().double_value(&[0]);
        assert!((nuclear - 5.0).abs() < 1e-5, "{nuclear}");
        let p2 = f.schatten(2.0).unwrap().double_value(&[0]);
        assert!((p2 - 13.0).abs() < 1e-4, "{p2}");
    }
}
