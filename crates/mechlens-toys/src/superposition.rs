//! Toy models of superposition (Elhage et al. 2022, "Toy Models of Superposition"): `n`
//! sparse features compressed into `m < n` hidden dimensions and read back through a ReLU,
//! `x' = ReLU(Wᵀ W x + b)`. Many instances train as one batched model (ARENA's
//! `n_instances`), each with its own feature importance and probability, so a whole sparsity
//! sweep is one run.
//!
//! Measures of the paper: dimensions per feature `D* = m / ‖W‖_F²`, each feature's
//! dimensionality `D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²`, feature norms and the angles between
//! feature directions.

use std::time::Duration;

use mechlens_core::progress::Progress;
use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, AdamWConfig};
use polars::prelude::{Column, DataFrame};
use tch::{Device, Kind, Tensor};

use crate::superposition_batch::sparse_batch;
use crate::superposition_gradient::loss_and_gradients;

/// A toy model's sizes and its instances' importance and feature probability.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyModelOptions {
    /// Features `n`.
    pub n_features: usize,
    /// Hidden dimensions `m`.
    pub d_hidden: usize,
    /// Per instance, per feature: its weight in the loss `[n_instances][n_features]`.
    pub importance: Vec<Vec<f64>>,
    /// Per instance, per feature: the probability it is present `[n_instances][n_features]`.
    pub probability: Vec<Vec<f64>>,
    /// Seed of the initial weights and of the batches.
    pub seed: u64,
}

impl ToyModelOptions {
    /// `n_instances` instances that share one importance and one probability per feature
    /// (the same for every feature when given one number: use [`Self::per_instance`] to
    /// vary them).
    pub fn uniform(
        n_features: usize,
        d_hidden: usize,
        n_instances: usize,
        importance: f64,
        probability: f64,
    ) -> Self {
        Self {
            n_features,
            d_hidden,
            importance: vec![vec![importance; n_features]; n_instances],
            probability: vec![vec![probability; n_features]; n_instances],
            seed: 0,
        }
    }

    /// One instance per entry of `instances`: `(importance of feature i, probability of
    /// every feature)` computed by the closure from the instance's index.
    pub fn per_instance(
        n_features: usize,
        d_hidden: usize,
        n_instances: usize,
        importance: impl Fn(usize, usize) -> f64,
        probability: impl Fn(usize, usize) -> f64,
    ) -> Self {
        let grid = |f: &dyn Fn(usize, usize) -> f64| {
            (0..n_instances)
                .map(|inst| (0..n_features).map(|i| f(inst, i)).collect())
                .collect()
        };
        Self {
            n_features,
            d_hidden,
            importance: grid(&importance),
            probability: grid(&probability),
            seed: 0,
        }
    }

    /// The same with seed `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// How to train a toy model (ARENA's defaults: batch 1024, lr 1e-3, 5,000 steps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToyTrainOptions {
    /// Steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// AdamW's learning rate (no weight decay: the toy's loss is the whole objective).
    pub lr: f64,
    /// Log a row every this many steps.
    pub log_every: usize,
    /// Print a progress line every this many steps (0: silent).
    pub progress_every: usize,
}

impl Default for ToyTrainOptions {
    fn default() -> Self {
        Self {
            steps: 5_000,
            batch: 1024,
            lr: 1e-3,
            log_every: 100,
            progress_every: 0,
        }
    }
}

/// The batched toy model.
///
/// # Shapes
/// - `w`: `[n_instances, d_hidden, n_features]` (column `i` is feature `i`'s direction)
/// - `b_final`: `[n_instances, n_features]`
/// - `importance`, `probability`: `[n_instances, n_features]`
pub struct ToyModel {
    /// The embedding, one matrix per instance.
    pub w: Tensor,
    /// The output bias.
    pub b_final: Tensor,
    /// Importance of each feature in the loss.
    pub importance: Tensor,
    /// Probability each feature is present.
    pub probability: Tensor,
    seed: u64,
}

impl ToyModel {
    /// A fresh model: `W` Xavier-normal, `b_final` zero.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for zero sizes, importance or probability lists of another
    /// shape, or a probability outside [0, 1].
    pub fn new(opts: &ToyModelOptions) -> Result<Self> {
        // A batch of 10 instances × 1024 × 5 features is past glibc's mmap threshold: without
        // this each step maps and unmaps its tensors anew (see mechlens_core::allocator).
        mechlens_core::allocator::keep_freed_memory();
        let (n, m) = (opts.n_features, opts.d_hidden);
        let k = opts.importance.len();
        if n == 0 || m == 0 || k == 0 {
            return Err(Error::invalid(
                "toy model",
                format!(
                    "n_features, d_hidden and the number of instances must be at least 1, got {n}, {m}, {k}"
                ),
            ));
        }
        let table = |name: &str, rows: &[Vec<f64>]| -> Result<Tensor> {
            if rows.len() != k || rows.iter().any(|r| r.len() != n) {
                return Err(Error::invalid(
                    name,
                    format!("must be {k} instances × {n} features, like importance"),
                ));
            }
            let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
            Ok(Tensor::from_slice(&flat).f_view([k as i64, n as i64])?)
        };
        let importance = table("importance", &opts.importance)?;
        let probability = table("probability", &opts.probability)?;
        if opts
            .probability
            .iter()
            .flatten()
            .any(|p| !(0.0..=1.0).contains(p))
        {
            return Err(Error::invalid("probability", "each must be in [0, 1]"));
        }
        tch::manual_seed(opts.seed as i64);
        let std = (2.0 / (n + m) as f64).sqrt();
        let w = Tensor::f_randn([k as i64, m as i64, n as i64], (Kind::Float, Device::Cpu))?
            .f_mul_scalar(std)?
            .f_set_requires_grad(true)?;
        let b_final = Tensor::f_zeros([k as i64, n as i64], (Kind::Float, Device::Cpu))?
            .f_set_requires_grad(true)?;
        Ok(Self {
            w,
            b_final,
            importance,
            probability,
            seed: opts.seed,
        })
    }

    /// `x' = ReLU(Wᵀ W x + b)`.
    ///
    /// # Shapes
    /// - `x`: `[batch, n_instances, n_features]` → the same
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Two batched matmuls over instances: the products einsum would form, without its
        // planning on every call (a tenth of a training step at this size; same bits).
        let per_instance = x.f_transpose(0, 1)?; // [instance, batch, feature]
        let hidden = per_instance.f_bmm(&self.w.f_transpose(1, 2)?)?;
        let out = hidden.f_bmm(&self.w)?.f_transpose(0, 1)?;
        Ok(out.f_add(&self.b_final)?.f_relu()?)
    }

    /// Batch number `index` of this model's training stream: each feature present with its
    /// instance's probability, then uniform in [0, 1). [`Self::train`]'s step `s` trains on
    /// batch `s`; the stream depends only on the model's seed (superposition_batch).
    ///
    /// # Shapes
    /// → `[batch, n_instances, n_features]`
    ///
    /// # Errors
    /// Only libtorch's.
    pub fn batch(&self, batch: usize, index: u64) -> Result<Tensor> {
        let (probability, shape) = self.flat_probability()?;
        sparse_batch(&probability, shape, batch, self.seed, index)
    }

    /// A fresh batch drawn by the same rule as [`Self::batch`], from a stream seeded by
    /// libtorch's generator (so `tch::manual_seed` repeats it, and each call differs).
    ///
    /// # Shapes
    /// → `[batch, n_instances, n_features]`
    pub fn generate_batch(&self, batch: usize) -> Result<Tensor> {
        let seed = Tensor::f_randint(i64::MAX, [1], (Kind::Int64, Device::Cpu))?;
        let (probability, shape) = self.flat_probability()?;
        sparse_batch(
            &probability,
            shape,
            batch,
            seed.f_int64_value(&[0])? as u64,
            0,
        )
    }

    /// The probabilities as the sampler reads them, and their `[n_instances, n_features]`.
    fn flat_probability(&self) -> Result<(Vec<f32>, [i64; 2])> {
        let size = self.probability.size();
        let flat = Vec::<f32>::try_from(self.probability.f_flatten(0, -1)?)?;
        Ok((flat, [size[0], size[1]]))
    }

    /// Importance-weighted squared error, mean over batch and features, per instance
    /// `[n_instances]` (ARENA's loss; training sums it over instances).
    pub fn loss(&self, x: &Tensor, out: &Tensor) -> Result<Tensor> {
        Ok(out
            .f_sub(x)?
            .f_square()?
            .f_mul(&self.importance)?
            .f_mean_dim(&[0i64, 2][..], false, Kind::Float)?)
    }

    /// Trains every instance at once; returns the log (`step`, `loss` summed over instances,
    /// then `loss_0`, `loss_1`...).
    ///
    /// # Errors
    /// [`Error::Training`] for a non-finite loss; [`Error::InvalidInput`] for zero steps or batch.
    pub fn train(&mut self, opts: &ToyTrainOptions) -> Result<DataFrame> {
        if opts.steps == 0 || opts.batch == 0 {
            return Err(Error::invalid(
                "toy training",
                "steps and batch must be at least 1",
            ));
        }
        let params = [self.w.shallow_clone(), self.b_final.shallow_clone()];
        let mut adam = AdamW::new(
            AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            &params,
        )?;
        let mut progress = (opts.progress_every > 0).then(|| {
            Progress::new("toy model", opts.steps as u64)
                .unit("steps")
                .every(Duration::ZERO)
        });
        let mut rows: Vec<(u64, Vec<f64>)> = Vec::new();
        let (probability, shape) = self.flat_probability()?;
        for step in 0..opts.steps {
            let x = sparse_batch(&probability, shape, opts.batch, self.seed, step as u64)?;
            // The gradient in closed form: the same values as autograd's through forward()
            // and loss(), without building a graph each step (superposition_gradient).
            let (per_instance, grad_w, grad_b) =
                loss_and_gradients(&x, &self.w, &self.b_final, &self.importance)?;
            let value = per_instance.f_sum(Kind::Float)?.f_double_value(&[])?;
            if !value.is_finite() {
                return Err(Error::Training {
                    step,
                    reason: format!("the loss is {value}; the weights were not updated"),
                });
            }
            adam.step(&params, &[grad_w, grad_b], opts.lr)?;
            if step % opts.log_every.max(1) == 0 || step + 1 == opts.steps {
                rows.push((step as u64, Vec::<f64>::try_from(per_instance.detach())?));
            }
            if let Some(p) = progress.as_mut()
                && ((step + 1) % opts.progress_every == 0 || step + 1 == opts.steps)
            {
                p.note(format!("loss {value:.5}"));
                p.advance((step as u64 + 1).saturating_sub(p.done()));
            }
        }
        let mut columns = vec![
            Column::new("step".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new(
                "loss".into(),
                rows.iter()
                    .map(|r| r.1.iter().sum::<f64>())
                    .collect::<Vec<_>>(),
            ),
        ];
        let k = self.importance.size()[0] as usize;
        for i in 0..k {
            columns.push(Column::new(
                format!("loss_{i}").into(),
                rows.iter().map(|r| r.1[i]).collect::<Vec<_>>(),
            ));
        }
        DataFrame::new_infer_height(columns).map_err(Error::from)
    }

    /// Writes `w`, `b_final`, `importance`, `probability` and the seed to one safetensors
    /// file (atomically), for [`ToyModel::load`].
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let seed = Tensor::from_slice(&[self.seed as i64]);
        let tensors = [
            ("w", self.w.detach()),
            ("b_final", self.b_final.detach()),
            ("importance", self.importance.shallow_clone()),
            ("probability", self.probability.shallow_clone()),
            ("seed", seed),
        ];
        mechlens_checkpoint::safetensors::write(&tensors, path)
    }

    /// A model written by [`ToyModel::save`], ready to analyse or train further.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming the tensor for a file
    /// that lacks one or whose shapes disagree.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let tensors = mechlens_checkpoint::safetensors::read(path)?;
        let get = |name: &str| -> Result<Tensor> {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.shallow_clone())
                .ok_or_else(|| {
                    Error::invalid(
                        "toy model file",
                        format!(
                            "{} has no tensor `{name}`; it was not written by ToyModel::save",
                            path.display()
                        ),
                    )
                })
        };
        let w = get("w")?.f_to_kind(Kind::Float)?;
        let (k, n) = (w.size()[0], w.size().get(2).copied().unwrap_or(0));
        let [b_final, importance, probability] = ["b_final", "importance", "probability"].map(&get);
        let (b_final, importance, probability) = (b_final?, importance?, probability?);
        for (name, t) in [
            ("b_final", &b_final),
            ("importance", &importance),
            ("probability", &probability),
        ] {
            if w.dim() != 3 || t.size() != [k, n] {
                return Err(Error::invalid(
                    "toy model file",
                    format!(
                        "{}: `{name}` is {:?}, expected [{k}, {n}] to match `w` {:?}",
                        path.display(),
                        t.size(),
                        w.size()
                    ),
                ));
            }
        }
        Ok(Self {
            w: w.f_set_requires_grad(true)?,
            b_final: b_final.f_to_kind(Kind::Float)?.f_set_requires_grad(true)?,
            importance: importance.f_to_kind(Kind::Float)?,
            probability: probability.f_to_kind(Kind::Float)?,
            seed: get("seed")?.f_int64_value(&[0])? as u64,
        })
    }

    /// Each feature's norm `‖W_i‖`.
    ///
    /// # Shapes
    /// → `[n_instances, n_features]`
    pub fn feature_norms(&self) -> Result<Tensor> {
        Ok(self.w.detach().f_norm_scalaropt_dim(2, [1], false)?)
    }

    /// Dimensions per feature `D* = m / ‖W‖_F²` of each instance `[n_instances]`.
    pub fn dimensions_per_feature(&self) -> Result<Tensor> {
        let m = self.w.size()[1] as f64;
        let frob =
            self.w
                .detach()
                .f_square()?
                .f_sum_dim_intlist(&[1i64, 2][..], false, Kind::Float)?;
        Ok(frob.f_reciprocal()?.f_mul_scalar(m)?)
    }

    /// Each feature's dimensionality `D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²`: 1 for a feature with a
    /// dimension of its own, 1/2 for an antipodal pair, 2/5 in a pentagon; near 0 for a
    /// feature the model does not represent.
    ///
    /// # Shapes
    /// → `[n_instances, n_features]`
    pub fn feature_dimensionality(&self) -> Result<Tensor> {
        let w = self.w.detach(); // [k, m, n]
        let norms = w.f_norm_scalaropt_dim(2, [1], true)?; // [k, 1, n]
        let unit = w.f_div(&norms.f_clamp_min(1e-12)?)?;
        // overlaps[k, i, j] = Ŵ_i · W_j
        let overlaps = Tensor::f_einsum("kmi,kmj->kij", &[&unit, &w], None::<&[i64]>)?;
        let interference = overlaps
            .f_square()?
            .f_sum_dim_intlist(-1, false, Kind::Float)?;
        Ok(norms
            .f_squeeze_dim(1)?
            .f_square()?
            .f_div(&interference.f_clamp_min(1e-12)?)?)
    }

    /// `WᵀW` of instance `instance`: how each feature's read-out overlaps the others'.
    ///
    /// # Shapes
    /// → `[n_features, n_features]`
    pub fn gram(&self, instance: usize) -> Result<Tensor> {
        let w = self.w.detach().f_get(instance as i64)?;
        Ok(w.f_tr()?.f_matmul(&w)?)
    }

    /// The angles (degrees, in [0, 360)) of each feature's direction in a 2-d hidden space,
    /// for instance `instance`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `d_hidden` is not 2.
    pub fn angles_2d(&self, instance: usize) -> Result<Vec<f64>> {
        if self.w.size()[1] != 2 {
            return Err(Error::invalid(
                "angles_2d",
                "needs a 2-dimensional hidden space",
            ));
        }
        let w: Vec<Vec<f64>> = Vec::try_from(
            self.w
                .detach()
                .f_get(instance as i64)?
                .f_to_kind(Kind::Double)?,
        )?;
        Ok((0..w[0].len())
            .map(|i| w[1][i].atan2(w[0][i]).to_degrees().rem_euclid(360.0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensionality_is_one_for_orthogonal_and_a_half_for_antipodal_features() {
        let mut model = ToyModel::new(&ToyModelOptions::uniform(3, 2, 1, 1.0, 0.1)).unwrap();
        // Feature 0 alone on axis x, features 1 and 2 antipodal on axis y.
        model.w = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0, 1.0, -1.0]).view([1, 2, 3]);
        let d: Vec<f64> = Vec::try_from(
            model
                .feature_dimensionality()
                .unwrap()
                .get(0)
                .to_kind(Kind::Double),
        )
        .unwrap();
        assert!(
            (d[0] - 1.0).abs() < 1e-6 && (d[1] - 0.5).abs() < 1e-6 && (d[2] - 0.5).abs() < 1e-6,
            "{d:?}"
        );
        // D* = m / ‖W‖_F² = 2 / 3.
        let dstar = model.dimensions_per_feature().unwrap().double_value(&[0]);
        assert!((dstar - 2.0 / 3.0).abs() < 1e-6);
        let angles = model.angles_2d(0).unwrap();
        assert!(
            (angles[1] - 90.0).abs() < 1e-4 && (angles[2] - 270.0).abs() < 1e-4,
            "{angles:?}"
        );
        assert!(ToyModel::new(&ToyModelOptions::uniform(3, 2, 1, 1.0, 1.5)).is_err());
    }

    #[test]
    fn a_saved_model_loads_back_equal_and_a_foreign_file_is_named() {
        let model = ToyModel::new(&ToyModelOptions::uniform(4, 2, 3, 1.0, 0.1).seed(9)).unwrap();
        let dir = std::env::temp_dir().join(format!("toy-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("toy.safetensors");
        model.save(&path).unwrap();
        let back = ToyModel::load(&path).unwrap();
        assert!(back.w.equal(&model.w) && back.probability.equal(&model.probability));
        assert_eq!(back.seed, 9);
        let other = dir.join("other.safetensors");
        mechlens_checkpoint::safetensors::write(&[("w", model.w.detach())], &other).unwrap();
        let err = ToyModel::load(&other).err().unwrap().to_string();
        assert!(err.contains("no tensor `b_final`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
