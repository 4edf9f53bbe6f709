//! One matrix as `C` rank-one subcomponents, `W ≈ Σ_c V_c U_cᵀ = V · U`, and the small
//! per-subcomponent MLPs that predict each one's causal importance from its own inner
//! activation `a · V_c`.

use mechlens_core::Result;
use tch::{Device, Kind, Tensor};

/// `C` rank-one subcomponents of a `[d_in, d_out]` matrix.
#[derive(Debug)]
pub struct LinearComponents {
    /// `[d_in, C]`: column `c` reads the input.
    pub v: Tensor,
    /// `[C, d_out]`: row `c` writes the output.
    pub u: Tensor,
}

impl LinearComponents {
    /// Random unit `V` columns and `U` rows, each `U_c` scaled by `V_cᵀ W U_c` (how much of
    /// the target lies along the pair), as the paper's code starts.
    ///
    /// # Shapes
    /// `target`: `[d_in, d_out]`
    pub fn init(target: &Tensor, c: i64, generator_seed: i64) -> Result<Self> {
        let (d_in, d_out) = (target.size()[0], target.size()[1]);
        tch::manual_seed(generator_seed);
        let v = Tensor::f_randn([d_in, c], (Kind::Float, Device::Cpu))?;
        let v = v.f_div(&v.f_norm_scalaropt_dim(2, [0], true)?)?;
        let u = Tensor::f_randn([c, d_out], (Kind::Float, Device::Cpu))?;
        let u = u.f_div(&u.f_norm_scalaropt_dim(2, [1], true)?)?;
        // (Vᵀ W Uᵀ) diagonal: one overlap per subcomponent.
        let overlap =
            v.f_tr()?
                .f_matmul(target)?
                .f_mul(&u)?
                .f_sum_dim_intlist(1, false, Kind::Float)?;
        let u = u.f_mul(&overlap.f_unsqueeze(1)?)?;
        Ok(Self {
            v: v.f_set_requires_grad(true)?,
            u: u.f_set_requires_grad(true)?,
        })
    }

    /// Subcomponents `C`.
    pub fn c(&self) -> i64 {
        self.v.size()[1]
    }

    /// `V · U` `[d_in, d_out]`: the whole decomposed matrix.
    pub fn weight(&self) -> Result<Tensor> {
        Ok(self.v.f_matmul(&self.u)?)
    }

    /// Subcomponent `c`'s matrix `V_c U_cᵀ` for every `c`: `[C, d_in, d_out]`.
    pub fn subcomponents(&self) -> Result<Tensor> {
        Ok(self
            .v
            .f_tr()?
            .f_unsqueeze(2)?
            .f_mul(&self.u.f_unsqueeze(1)?)?)
    }

    /// Each subcomponent's inner activation `a · V` `[batch, C]`.
    pub fn inner(&self, input: &Tensor) -> Result<Tensor> {
        Ok(input.f_matmul(&self.v)?)
    }

    /// `(a · V ⊙ mask) · U`: the map with each subcomponent scaled by its mask.
    ///
    /// # Shapes
    /// `input`: `[batch, d_in]`, `mask`: `[batch, C]` → `[batch, d_out]`
    pub fn forward(&self, input: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(self.inner(input)?.f_mul(mask)?.f_matmul(&self.u)?)
    }

    /// The parameters `[V, U]`.
    pub fn parameters(&self) -> Vec<Tensor> {
        vec![self.v.shallow_clone(), self.u.shallow_clone()]
    }
}

/// One MLP per subcomponent, scalar → `hidden` (GELU) → scalar: the causal-importance
/// function's raw output before the hard sigmoids.
#[derive(Debug)]
pub struct CausalImportanceMlps {
    /// `[C, hidden]`
    pub w_in: Tensor,
    /// `[C, hidden]`
    pub b_in: Tensor,
    /// `[C, hidden]`
    pub w_out: Tensor,
    /// `[C]`
    pub b_out: Tensor,
}

impl CausalImportanceMlps {
    /// Kaiming-normal weights (ReLU gain into the hidden layer, linear out of it), zero biases.
    pub fn init(c: i64, hidden: i64, generator_seed: i64) -> Result<Self> {
        tch::manual_seed(generator_seed);
        let opts = (Kind::Float, Device::Cpu);
        let grad = |t: Tensor| t.set_requires_grad(true);
        Ok(Self {
            w_in: grad(Tensor::f_randn([c, hidden], opts)?.f_mul_scalar(2f64.sqrt())?),
            b_in: grad(Tensor::f_zeros([c, hidden], opts)?),
            w_out: grad(Tensor::f_randn([c, hidden], opts)?.f_div_scalar((hidden as f64).sqrt())?),
            b_out: grad(Tensor::f_zeros([c], opts)?),
        })
    }

    /// The raw importance of each subcomponent from its inner activation.
    ///
    /// # Shapes
    /// `inner`: `[batch, C]` → `[batch, C]`
    pub fn forward(&self, inner: &Tensor) -> Result<Tensor> {
        let h = self
            .b_in
            .f_addcmul(&inner.f_unsqueeze(2)?, &self.w_in)?
            .f_gelu("none")?;
        Ok(h.f_mul(&self.w_out)?
            .f_sum_dim_intlist(2, false, Kind::Float)?
            .f_add(&self.b_out)?)
    }

    /// The parameters.
    pub fn parameters(&self) -> Vec<Tensor> {
        [&self.w_in, &self.b_in, &self.w_out, &self.b_out]
            .iter()
            .map(|t| t.shallow_clone())
            .collect()
    }
}

/// The importance that scales the masks: `clamp(x, 0, 1)` (the paper's lower-leaky hard
/// sigmoid with no leak).
pub fn lower_hard_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_clamp(0.0, 1.0)?)
}

/// The importance that is penalised: like [`lower_hard_sigmoid`], but above 1 it keeps a
/// slope of 0.01, so an importance pushed past 1 is still pulled back.
pub fn upper_leaky_hard_sigmoid(x: &Tensor) -> Result<Tensor> {
    let leak = x.f_sub_scalar(1.0)?.f_mul_scalar(0.01)?.f_add_scalar(1.0)?;
    // `a.where_self(cond, b)` is `torch.where(cond, a, b)`.
    Ok(leak.f_where_self(&x.f_gt(1.0)?, &x.f_clamp(0.0, 1.0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_that_is_a_sum_of_rank_one_pieces_is_their_sum() {
        // W = Σ v_c u_cᵀ with known pieces: weight() and subcomponents() agree with it.
        let v = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 0.0, 1.0, -1.0]).reshape([3, 2]);
        let u = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let comps = LinearComponents {
            v: v.copy(),
            u: u.copy(),
        };
        let w = v.matmul(&u);
        assert!(comps.weight().unwrap().allclose(&w, 1e-6, 1e-6, false));
        let subs = comps.subcomponents().unwrap();
        assert_eq!(subs.size(), [2, 3, 2]);
        assert!(
            subs.sum_dim_intlist(0, false, Kind::Float)
                .allclose(&w, 1e-6, 1e-6, false)
        );
        // Masking one subcomponent out leaves the other's map.
        let x = Tensor::from_slice(&[1.0f32, 1.0, 1.0]).reshape([1, 3]);
        let mask = Tensor::from_slice(&[1.0f32, 0.0]).reshape([1, 2]);
        let want = x.matmul(&subs.get(0));
        assert!(
            comps
                .forward(&x, &mask)
                .unwrap()
                .allclose(&want, 1e-6, 1e-6, false)
        );
    }

    #[test]
    fn init_scales_u_by_the_overlap_with_the_target() {
        let target = Tensor::eye(4, (Kind::Float, Device::Cpu));
        let comps = LinearComponents::init(&target, 6, 0).unwrap();
        for c in 0..6 {
            let vc = comps.v.select(1, c);
            let uc = comps.u.get(c);
            let vn = vc.norm().double_value(&[]);
            // U_c = û_c · (v_cᵀ I û_c), so v_c · U_c = (v_c · û_c)².
            let dot = vc.dot(&uc).double_value(&[]);
            let un = uc.norm().double_value(&[]);
            assert!((vn - 1.0).abs() < 1e-5);
            assert!((dot.abs() - un * un).abs() < 1e-5, "{dot} vs {un}");
        }
    }

    #[test]
    fn hard_sigmoids_clamp_and_leak_above_one() {
        let x = Tensor::from_slice(&[-1.0f32, 0.5, 3.0]);
        let lower = Vec::<f32>::try_from(lower_hard_sigmoid(&x).unwrap()).unwrap();
        assert_eq!(lower, [0.0, 0.5, 1.0]);
        let upper = Vec::<f32>::try_from(upper_leaky_hard_sigmoid(&x).unwrap()).unwrap();
        assert_eq!(upper[..2], [0.0, 0.5]);
        assert!((upper[2] - 1.02).abs() < 1e-6);
    }
}
