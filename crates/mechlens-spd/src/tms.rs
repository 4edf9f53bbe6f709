//! The toy model of superposition as an SPD target (the SPD paper's TMS): `n` features
//! through `m` hidden dimensions, `x' = ReLU(W₂ (W₁ x) + b)` with `W₂ = W₁ᵀ` tied, and
//! optionally identity hidden layers between (the paper's "TMS + identity" variant, where
//! the extra `m × m` matrix should decompose into `m` components).
//!
//! The maps are named as in the paper's code: `linear1` (`[n, m]`), `hidden_layers.0` ...
//! (`[m, m]`), `linear2` (`[m, n]`). Tied in the target, they are decomposed separately.

use mechlens_core::{Error, Result};
use mechlens_toys::ToyModel;
use tch::{Device, Kind, Tensor};

use crate::target::{Decomposable, LinearFn};

/// A trained toy model of superposition.
#[derive(Debug)]
pub struct TmsTarget {
    /// `W` `[m, n]`: column `i` is feature `i`'s direction in the hidden space.
    pub w: Tensor,
    /// Output bias `[n]`.
    pub b: Tensor,
    /// Identity hidden layers between `linear1` and `linear2`.
    pub identity_layers: usize,
}

impl TmsTarget {
    /// Instance `instance` of a trained [`ToyModel`], with `identity_layers` identity
    /// matrices inserted after the hidden layer.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an instance the model does not have.
    pub fn from_toy(toy: &ToyModel, instance: usize, identity_layers: usize) -> Result<Self> {
        let n = toy.w.size()[0] as usize;
        if instance >= n {
            return Err(Error::invalid(
                "instance",
                format!("the toy model has instances 0..{n}, got {instance}"),
            ));
        }
        let i = instance as i64;
        Ok(Self {
            w: toy.w.f_get(i)?.f_detach()?.copy(),
            b: toy.b_final.f_get(i)?.f_detach()?.copy(),
            identity_layers,
        })
    }

    /// Features `n`.
    pub fn n_features(&self) -> i64 {
        self.w.size()[1]
    }

    /// Hidden dimensions `m`.
    pub fn d_hidden(&self) -> i64 {
        self.w.size()[0]
    }

    /// A batch as the paper's data: each feature present with `probability`, then uniform
    /// in [0, 1] (libtorch's generator: seed it with `tch::manual_seed`).
    ///
    /// # Shapes
    /// → `[batch, n_features]`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a batch below 1 or a probability outside [0, 1].
    pub fn batch(&self, batch: i64, probability: f64) -> Result<Tensor> {
        if batch < 1 || !(0.0..=1.0).contains(&probability) {
            return Err(Error::invalid(
                "TMS batch",
                format!(
                    "needs a batch of at least 1 and a probability in [0, 1], got {batch} and {probability}"
                ),
            ));
        }
        let shape = [batch, self.n_features()];
        let values = Tensor::f_rand(shape, (Kind::Float, Device::Cpu))?;
        let present = Tensor::f_rand(shape, (Kind::Float, Device::Cpu))?.f_lt(probability)?;
        Ok(values.f_mul(&present)?)
    }

    /// The true rank-one pieces of `linear1` or `linear2`: one per feature, the feature's
    /// read-in (`e_i ⊗ W[:, i]`) or read-out (`W[:, i] ⊗ e_i`), shaped like the map.
    ///
    /// # Shapes
    /// → `[n_features, n, m]` for `linear1`, `[n_features, m, n]` for `linear2`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for any other name: an identity layer has no unique pieces
    /// (every orthonormal basis of it is one).
    pub fn true_pieces(&self, layer: &str) -> Result<Tensor> {
        let n = self.n_features();
        let eye = Tensor::f_eye(n, (Kind::Float, Device::Cpu))?;
        let w = self.w.f_detach()?;
        match layer {
            // piece_i[j, k] = δ_ij W[k, i]
            "linear1" => Ok(eye.f_unsqueeze(2)?.f_mul(&w.f_tr()?.f_unsqueeze(0)?)?),
            // piece_i[k, j] = W[k, i] δ_ij
            "linear2" => Ok(w.f_tr()?.f_unsqueeze(2)?.f_mul(&eye.f_unsqueeze(1)?)?),
            other => Err(Error::invalid(
                "layer",
                format!("true pieces are known for \"linear1\" and \"linear2\", not {other:?}"),
            )),
        }
    }

    /// The name of identity layer `i`.
    fn hidden_name(i: usize) -> String {
        format!("hidden_layers.{i}")
    }
}

impl Decomposable for TmsTarget {
    fn linears(&self) -> Vec<(String, Tensor)> {
        let m = self.d_hidden();
        let mut out = vec![("linear1".to_string(), self.w.tr())];
        for i in 0..self.identity_layers {
            out.push((
                Self::hidden_name(i),
                Tensor::eye(m, (Kind::Float, Device::Cpu)),
            ));
        }
        out.push(("linear2".to_string(), self.w.shallow_clone()));
        out
    }

    /// # Shapes
    /// `x`: `[batch, n_features]` → `[batch, n_features]`
    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
        let mut h = linear("linear1", x)?;
        for i in 0..self.identity_layers {
            h = linear(&Self::hidden_name(i), &h)?;
        }
        Ok(linear("linear2", &h)?.f_add(&self.b)?.f_relu()?)
    }
}
