//! What SPD's and APD's tests share: a one-map model whose weight is a sum of five known
//! rank-one pieces, its sparse data, and a lock on libtorch's generator.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use mechlens_core::Result;
use mechlens_spd::{Decomposable, LinearFn};
use tch::{Device, Kind, Tensor};

/// `y = x · W`: one decomposable map.
pub struct OneMap {
    pub w: Tensor,
}

impl Decomposable for OneMap {
    fn linears(&self) -> Vec<(String, Tensor)> {
        vec![("map".into(), self.w.shallow_clone())]
    }
    fn run(&self, x: &Tensor, linear: &mut LinearFn<'_>) -> Result<Tensor> {
        linear("map", x)
    }
}

/// `W = Σ_i e_i ⊗ w_i`: 5 input features, each with its own output direction in 4 dims;
/// the model and the pieces `[5, 5, 4]`.
pub fn five_pieces() -> (OneMap, Tensor) {
    tch::manual_seed(11);
    let rows = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
    let eye = Tensor::eye(5, (Kind::Float, Device::Cpu));
    let pieces = eye.unsqueeze(2) * rows.unsqueeze(0);
    (OneMap { w: rows }, pieces)
}

/// Each input feature present with p = 0.05, uniform in [0, 1].
pub fn sparse_batch(n: i64) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    Tensor::rand([n, 5], opts) * Tensor::rand([n, 5], opts).lt(0.05).to_kind(Kind::Float)
}

static RNG: Mutex<()> = Mutex::new(());

/// Holds libtorch's global generator for one test. A binary's tests run on parallel threads,
/// and SPD and APD seed the generator at every step: without the lock one test's draws would
/// come from another's seeds.
pub fn rng_lock() -> MutexGuard<'static, ()> {
    RNG.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
