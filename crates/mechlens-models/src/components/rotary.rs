//! Rotary position embeddings (Su et al. 2021, "RoFormer"), in both conventions: rotating
//! halves (GPT-NeoX, Hugging Face Llama) and rotating adjacent pairs (GPT-J, llama2.c).
//! Tables follow Hugging Face's float32 arithmetic so that results match to 1e-6.

use mechlens_core::Result;
use tch::{Device, Kind, Tensor};

use crate::config::{RopeScaling, RotaryConfig};

/// Precomputed cos/sin tables for positions `0..n_ctx`.
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
    dim: i64,
    interleaved: bool,
}

impl Rotary {
    /// Tables for `n_ctx` positions.
    ///
    /// # Errors
    /// libtorch's error if allocation fails.
    pub fn new(cfg: &RotaryConfig, n_ctx: usize, device: Device) -> Result<Self> {
        let dim = cfg.dim as i64;
        let exponents = Tensor::f_arange_start_step(0, dim, 2, (Kind::Int64, Device::Cpu))?
            .f_to_kind(Kind::Float)?
            .f_div_scalar(dim as f64)?;
        let mut inv_freq = Tensor::from(cfg.base as f32)
            .f_pow(&exponents)?
            .f_reciprocal()?;
        match cfg.scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => inv_freq = inv_freq.f_div_scalar(factor)?,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                let low_wavelen = original_max_position_embeddings / low_freq_factor;
                let high_wavelen = original_max_position_embeddings / high_freq_factor;
                let wavelen = inv_freq
                    .f_reciprocal()?
                    .f_mul_scalar(2.0 * std::f64::consts::PI)?;
                let scaled = inv_freq.f_div_scalar(factor)?;
                let long = wavelen.f_gt(low_wavelen)?;
                let llama = scaled.f_where_self(&long, &inv_freq)?;
                let smooth = wavelen
                    .f_reciprocal()?
                    .f_mul_scalar(original_max_position_embeddings)?
                    .f_sub_scalar(low_freq_factor)?
                    .f_div_scalar(high_freq_factor - low_freq_factor)?;
                let one_minus = smooth.f_neg()?.f_add_scalar(1.0)?;
                let smoothed = one_minus
                    .f_mul(&llama)?
                    .f_div_scalar(factor)?
                    .f_add(&smooth.f_mul(&llama)?)?;
                let medium = wavelen
                    .f_ge(high_wavelen)?
                    .f_logical_and(&wavelen.f_le(low_wavelen)?)?;
                inv_freq = smoothed.f_where_self(&medium, &llama)?;
            }
        }
        let positions = Tensor::f_arange(n_ctx as i64, (Kind::Float, Device::Cpu))?;
        let freqs = positions.f_unsqueeze(1)?.f_mul(&inv_freq.f_unsqueeze(0)?)?;
        Ok(Self {
            cos: freqs.f_cos()?.f_to_device(device)?,
            sin: freqs.f_sin()?.f_to_device(device)?,
            dim,
            interleaved: cfg.interleaved,
        })
    }

    /// Rotates the first `dim` features of each head by its position.
    ///
    /// # Shapes
    /// - `x`: `[batch, pos, head, d_head]`, `positions`: `[batch, pos]` (int64)
    ///   → `[batch, pos, head, d_head]`
    pub fn apply(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let (b, p, h, dh) = (size[0], size[1], size[2], size[3]);
        let half = self.dim / 2;
        let flat = positions.f_reshape([-1])?;
        let kind = x.kind();
        let cos = self
            .cos
            .f_index_select(0, &flat)?
            .f_view([b, p, 1, half])?
            .f_to_kind(kind)?;
        let sin = self
            .sin
            .f_index_select(0, &flat)?
            .f_view([b, p, 1, half])?
            .f_to_kind(kind)?;
        let rot = x.f_narrow(-1, 0, self.dim)?;
        let rotated = if self.interleaved {
            let pairs = rot.f_reshape([b, p, h, half, 2])?;
            let x1 = pairs.f_select(-1, 0)?;
            let x2 = pairs.f_select(-1, 1)?;
            let r1 = x1.f_mul(&cos)?.f_sub(&x2.f_mul(&sin)?)?;
            let r2 = x1.f_mul(&sin)?.f_add(&x2.f_mul(&cos)?)?;
            Tensor::f_stack(&[r1, r2], -1)?.f_reshape([b, p, h, self.dim])?
        } else {
            let x1 = rot.f_narrow(-1, 0, half)?;
            let x2 = rot.f_narrow(-1, half, half)?;
            let r1 = x1.f_mul(&cos)?.f_sub(&x2.f_mul(&sin)?)?;
            let r2 = x2.f_mul(&cos)?.f_add(&x1.f_mul(&sin)?)?;
            Tensor::f_cat(&[r1, r2], -1)?
        };
        if self.dim == dh {
            return Ok(rotated);
        }
        Ok(Tensor::f_cat(
            &[rotated, x.f_narrow(-1, self.dim, dh - self.dim)?],
            -1,
        )?)
    }
}
