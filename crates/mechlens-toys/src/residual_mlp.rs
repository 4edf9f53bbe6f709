//! The toy model of compressed computation (Braun et al. 2025, reused by the SPD paper): 100
//! sparse input features embedded by a fixed random matrix with unit-norm rows into a
//! 1,000-wide residual stream, one MLP of 50 ReLU neurons, and read off by the embedding's
//! transpose; trained so that output `i` is `x_i + ReLU(x_i)`. More ReLUs to compute than
//! neurons: the MLP must share its neurons between features.
//!
//! A 2025 follow-up (Bhagat et al., "Compressed computation is (probably) not computation in
//! superposition") showed that the model's advantage over a naive one comes from the noise the
//! random embedding adds (`W_E W_Eᵀ ≠ I`), not from computing in superposition; reproduction
//! 07 uses it as a decomposition test only.

use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, AdamWConfig, Decay, Schedule};
use polars::prelude::{Column, DataFrame};
use tch::{Device, Kind, Tensor};

/// The model's sizes and data.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualMlpOptions {
    /// Input features (100).
    pub n_features: i64,
    /// Residual stream width (1,000).
    pub d_embed: i64,
    /// MLP neurons (50).
    pub d_mlp: i64,
    /// Probability each feature is present, then uniform in [-1, 1] (0.01).
    pub probability: f64,
    /// Seed of the embedding and the initial weights.
    pub seed: u64,
}

impl Default for ResidualMlpOptions {
    fn default() -> Self {
        Self {
            n_features: 100,
            d_embed: 1000,
            d_mlp: 50,
            probability: 0.01,
            seed: 0,
        }
    }
}

/// How the MLP is trained (defaults: the papers' target training).
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualMlpTrainOptions {
    /// Steps (10,000).
    pub steps: usize,
    /// Samples per step (2,048).
    pub batch: i64,
    /// Peak learning rate, cosine to 0 (3e-3).
    pub lr: f64,
    /// AdamW's weight decay (0.01).
    pub weight_decay: f64,
    /// Log a row every this many steps (100).
    pub log_every: usize,
    /// Stop after this many of the `steps` (the schedule still spans all of them): the first
    /// steps of a long run, to check them against its log.
    pub stop_after: Option<usize>,
}

impl Default for ResidualMlpTrainOptions {
    fn default() -> Self {
        Self {
            steps: 10_000,
            batch: 2048,
            lr: 3e-3,
            weight_decay: 0.01,
            log_every: 100,
            stop_after: None,
        }
    }
}

/// A residual MLP computing `x + ReLU(x)` through a random embedding.
#[derive(Debug)]
pub struct ResidualMlp {
    /// The fixed embedding `[n_features, d_embed]`, unit-norm rows; `W_U = W_Eᵀ`.
    pub w_e: Tensor,
    /// `[d_embed, d_mlp]`
    pub w_in: Tensor,
    /// `[d_mlp, d_embed]`
    pub w_out: Tensor,
    /// Probability each feature is present.
    pub probability: f64,
}

impl ResidualMlp {
    /// A fresh model: a Gaussian embedding with its rows scaled to unit norm, and `W_in`,
    /// `W_out` Kaiming-uniform as the papers' code (PyTorch's fan-in of a `[d_in, d_out]`
    /// tensor is `d_out`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a size below 1 or a probability outside [0, 1].
    pub fn new(opts: &ResidualMlpOptions) -> Result<Self> {
        let (n, d, m) = (opts.n_features, opts.d_embed, opts.d_mlp);
        if n < 1 || d < 1 || m < 1 || !(0.0..=1.0).contains(&opts.probability) {
            return Err(Error::invalid(
                "residual MLP",
                format!(
                    "needs sizes of at least 1 and a probability in [0, 1], got {n} features, width {d}, {m} neurons, p = {}",
                    opts.probability
                ),
            ));
        }
        mechlens_core::allocator::keep_freed_memory();
        tch::manual_seed(opts.seed as i64);
        let opts_f = (Kind::Float, Device::Cpu);
        let w_e = Tensor::f_randn([n, d], opts_f)?;
        let w_e = w_e.f_div(&w_e.f_norm_scalaropt_dim(2, [1], true)?)?;
        let kaiming = |shape: [i64; 2]| -> Result<Tensor> {
            let bound = (6.0 / shape[1] as f64).sqrt();
            Ok(Tensor::f_rand(shape, opts_f)?
                .f_mul_scalar(2.0 * bound)?
                .f_sub_scalar(bound)?
                .f_set_requires_grad(true)?)
        };
        Ok(Self {
            w_e,
            w_in: kaiming([d, m])?,
            w_out: kaiming([m, d])?,
            probability: opts.probability,
        })
    }

    /// Input features.
    pub fn n_features(&self) -> i64 {
        self.w_e.size()[0]
    }

    /// A batch: each feature present with the model's probability, then uniform in [-1, 1]
    /// (libtorch's generator).
    ///
    /// # Shapes
    /// → `[batch, n_features]`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a batch below 1.
    pub fn batch(&self, batch: i64) -> Result<Tensor> {
        if batch < 1 {
            return Err(Error::invalid(
                "batch",
                format!("must be at least 1, got {batch}"),
            ));
        }
        let shape = [batch, self.n_features()];
        let opts = (Kind::Float, Device::Cpu);
        let values = Tensor::f_rand(shape, opts)?
            .f_mul_scalar(2.0)?
            .f_sub_scalar(1.0)?;
        let present = Tensor::f_rand(shape, opts)?.f_lt(self.probability)?;
        Ok(values.f_mul(&present)?)
    }

    /// The labels, `x + ReLU(x)`.
    pub fn labels(x: &Tensor) -> Result<Tensor> {
        Ok(x.f_add(&x.f_relu()?)?)
    }

    /// Embed, add the MLP's output to the residual stream, read off by `W_Eᵀ`.
    ///
    /// # Shapes
    /// `x`: `[batch, n_features]` → `[batch, n_features]`
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let resid = x.f_matmul(&self.w_e)?;
        let mlp = resid
            .f_matmul(&self.w_in)?
            .f_relu()?
            .f_matmul(&self.w_out)?;
        Ok(resid.f_add(&mlp)?.f_matmul(&self.w_e.f_tr()?)?)
    }

    /// Trains `W_in` and `W_out` (the embedding stays fixed) on the squared error against
    /// [`ResidualMlp::labels`]; returns the log (`step`, `lr`, `loss`).
    ///
    /// # Errors
    /// [`Error::Training`] for a loss that stops being finite (weights as after the previous
    /// step); [`Error::InvalidInput`] for zero steps.
    pub fn train(&mut self, opts: &ResidualMlpTrainOptions) -> Result<DataFrame> {
        if opts.steps == 0 {
            return Err(Error::invalid("training", "steps must be at least 1"));
        }
        let params = [self.w_in.shallow_clone(), self.w_out.shallow_clone()];
        let mut adam = AdamW::new(
            AdamWConfig {
                weight_decay: opts.weight_decay,
                ..AdamWConfig::default()
            },
            &params,
        )?;
        let schedule = Schedule {
            lr: opts.lr,
            warmup_steps: 0,
            warmup_from_zero: false,
            decay: Decay::Cosine { final_lr: 0.0 },
        };
        let mut rows: Vec<(u64, f64, f64)> = Vec::new();
        let last = opts.stop_after.unwrap_or(opts.steps).min(opts.steps);
        for step in 0..last {
            let x = self.batch(opts.batch)?;
            let loss = self
                .forward(&x)?
                .f_mse_loss(&Self::labels(&x)?, tch::Reduction::Mean)?;
            let value = loss.f_double_value(&[])?;
            if !value.is_finite() {
                return Err(Error::Training {
                    step,
                    reason: format!("the loss is {value}; the weights were not updated"),
                });
            }
            let grads = Tensor::f_run_backward(&[&loss], &params, false, false)?;
            let lr = schedule.at(step, opts.steps);
            adam.step(&params, &grads, lr)?;
            if step % opts.log_every.max(1) == 0 || step + 1 == last {
                rows.push((step as u64, lr, value));
            }
        }
        let columns = vec![
            Column::new("step".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new("lr".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Column::new("loss".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
        ];
        DataFrame::new_infer_height(columns).map_err(Error::from)
    }

    /// Writes the weights and the probability to one safetensors file (atomically).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let tensors = [
            ("w_e", self.w_e.detach()),
            ("w_in", self.w_in.detach()),
            ("w_out", self.w_out.detach()),
            ("probability", Tensor::from_slice(&[self.probability])),
        ];
        mechlens_checkpoint::safetensors::write(&tensors, path)
    }

    /// Reads a model written by [`ResidualMlp::save`].
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming a missing tensor or
    /// shapes that do not fit together.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let tensors = mechlens_checkpoint::safetensors::read(path)?;
        let get = |name: &str| -> Result<Tensor> {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| {
                    Error::invalid(
                        "residual MLP file",
                        format!("{} has no tensor `{name}`", path.display()),
                    )
                })
        };
        let (w_e, w_in, w_out) = (get("w_e")?, get("w_in")?, get("w_out")?);
        let (e, i, o) = (w_e.size(), w_in.size(), w_out.size());
        if e.len() != 2 || i.len() != 2 || o.len() != 2 || i[0] != e[1] || o != [i[1], e[1]] {
            return Err(Error::invalid(
                "residual MLP file",
                format!(
                    "{}: w_e {e:?}, w_in {i:?}, w_out {o:?} do not fit [n, d], [d, m], [m, d]",
                    path.display()
                ),
            ));
        }
        Ok(Self {
            w_e,
            w_in,
            w_out,
            probability: get("probability")?.f_double_value(&[0])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_computes_what_its_equation_says_and_saves_whole() {
        let opts = ResidualMlpOptions {
            n_features: 6,
            d_embed: 20,
            d_mlp: 3,
            probability: 0.5,
            seed: 2,
        };
        let model = ResidualMlp::new(&opts).unwrap();
        let norms = model.w_e.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!(norms.allclose(
            &Tensor::ones([6], (Kind::Float, Device::Cpu)),
            1e-5,
            1e-5,
            false
        ));
        let x = model.batch(32).unwrap();
        assert!(x.abs().max().double_value(&[]) <= 1.0);
        // y_i = Σ_j x_j (W_E W_Eᵀ)_ji + Σ_n ReLU(x W_E W_in)_n (W_out W_Eᵀ)_ni
        let g = model.w_e.matmul(&model.w_e.tr());
        let want = x.matmul(&g)
            + x.matmul(&model.w_e)
                .matmul(&model.w_in)
                .relu()
                .matmul(&model.w_out.matmul(&model.w_e.tr()));
        assert!(
            model
                .forward(&x)
                .unwrap()
                .allclose(&want, 1e-4, 1e-5, false)
        );
        let dir = std::env::temp_dir().join(format!("mechlens-resid-mlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        model.save(&path).unwrap();
        let back = ResidualMlp::load(&path).unwrap();
        assert!(
            back.forward(&x)
                .unwrap()
                .allclose(&model.forward(&x).unwrap(), 1e-6, 1e-6, false)
        );
        assert_eq!(back.probability, 0.5);
        let _ = std::fs::remove_dir_all(&dir);
        let e = ResidualMlp::new(&ResidualMlpOptions { d_mlp: 0, ..opts }).unwrap_err();
        assert!(e.to_string().contains("0 neurons"), "{e}");
    }

    #[test]
    fn training_lowers_the_loss_below_the_identity_readout() {
        // The identity part x ↦ x is free through W_E W_Eᵀ; the ReLU part must be learned.
        let opts = ResidualMlpOptions {
            n_features: 20,
            d_embed: 100,
            d_mlp: 10,
            probability: 0.05,
            seed: 0,
        };
        let mut model = ResidualMlp::new(&opts).unwrap();
        let log = model
            .train(&ResidualMlpTrainOptions {
                steps: 300,
                batch: 512,
                ..Default::default()
            })
            .unwrap();
        let loss = log.column("loss").unwrap().f64().unwrap();
        let (first, last) = (loss.get(0).unwrap(), loss.get(loss.len() - 1).unwrap());
        assert!(last < first / 2.0, "{first} -> {last}");
    }
}
