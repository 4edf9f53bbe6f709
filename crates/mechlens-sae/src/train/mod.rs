//! SAE training: [`Trainer`] runs [`TrainConfig`] over an [`ActivationSource`].
//!
//! - Adam (β₁ 0.9, β₂ 0.999, ε 1e-8) written out on tensors, so that its state is plain data
//!   a checkpoint can hold; learning-rate warm-up, constant or cosine schedule, linear decay;
//!   sparsity-coefficient warm-up; global gradient-norm clipping at 1.0.
//! - Dead latents: a latent that has not fired for `dead_feature_window` steps is dead (TopK
//!   kinds feed them to the AuxK loss); the count is logged.
//! - Logs every `log_every` steps into [`Trainer::log_frame`] (loss parts, L0, explained
//!   variance, dead latents, lr).
//! - Checkpoints every `checkpoint_every` steps into `checkpoint_dir/step_NNNNNNNN/`, written
//!   to a temporary folder and renamed, with the optimiser state; [`Trainer::resume`] continues
//!   to bit-identical weights (batches are addressed by step, see [`ActivationSource`]).
//! - A NaN or infinite loss or input stops training with [`Error::Training`] before the
//!   weights are touched; checkpoints already written stay as they were.

mod backward;
mod checkpoint;
mod config;
mod kinds;
mod log;
mod loss;
mod validate;

use std::time::Duration;

use mechlens_core::progress::Progress;

use crate::fused;
use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::config::ActivationNorm;
use crate::sae::Sae;
pub use config::{LrSchedule, TrainConfig};
pub use kinds::{BatchTopK, Gated, JumpRelu, Standard, TopK, TrainArchitecture};
pub use log::LogRow;
// The trainer's input, defined beside the sources (store, shards, tensors) that implement it.
pub use crate::source::{ActivationSource, TensorSource};
use validate::validate;

/// A training run.
pub struct Trainer {
    cfg: TrainConfig,
    sae: Sae,
    adam_m: Vec<Tensor>,
    adam_v: Vec<Tensor>,
    step: usize,
    steps_since_fired: Tensor,
    topk_threshold: f64,
    norm_scale: Option<f64>,
    log: Vec<LogRow>,
}

impl Trainer {
    /// A fresh run: SAELens' initialisation seeded by `cfg.seed`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for unusable settings (zero sizes, `k` out of range,
    /// `checkpoint_every` without `checkpoint_dir`), [`Error::Io`] when the checkpoint folder
    /// cannot be created or written.
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        validate(&cfg)?;
        // Every step allocates and frees the same batch-sized buffers (see the allocator
        // module); without this a test thread's malloc arena page-faults them in anew.
        mechlens_core::allocator::keep_freed_memory();
        if let Some(dir) = &cfg.checkpoint_dir {
            checkpoint::check_writable(dir)?;
        }
        let kind = cfg.sae.kind();
        let mut sae_cfg = cfg.sae_config();
        kind.training_layout(&mut sae_cfg);
        let mut sae = Sae::init(sae_cfg, cfg.decoder_init_norm, cfg.seed)?;
        kind.init(&mut sae)?;
        for p in sae.parameters_mut() {
            *p = p.detach().set_requires_grad(true);
        }
        let zeros: Vec<Tensor> = sae
            .parameters_mut()
            .iter()
            .map(|p| p.zeros_like())
            .collect();
        Ok(Self {
            adam_v: zeros.iter().map(Tensor::zeros_like).collect(),
            adam_m: zeros,
            step: 0,
            steps_since_fired: Tensor::zeros([cfg.d_sae], (Kind::Int64, tch::Device::Cpu)),
            topk_threshold: 0.0,
            norm_scale: None,
            log: Vec::new(),
            sae,
            cfg,
        })
    }

    /// A run that starts from `sae`'s weights instead of a fresh initialisation: fine-tuning
    /// a pretrained or saved SAE, or starting where another library's run starts. Everything
    /// else is `cfg`'s (losses, `apply_b_dec_to_input`, schedules); Adam's moments start at
    /// zero. The weights are copied: `sae` itself does not change.
    ///
    /// # Errors
    /// As [`Trainer::new`]; [`Error::InvalidInput`] when `sae` is not the architecture `cfg`
    /// trains (a saved BatchTopK SAE is JumpReLU, and BatchTopK trains a TopK layout), or
    /// lacks one of its parameters; [`Error::ShapeMismatch`] when a parameter's shape is not
    /// `cfg`'s (`d_in`, `d_sae`).
    pub fn from_sae(cfg: TrainConfig, sae: &Sae) -> Result<Self> {
        // A fresh run gives the layout to fill (and validates cfg); its weights are replaced.
        let mut trainer = Self::new(cfg)?;
        let trained = trainer.sae.cfg.architecture;
        if sae.cfg.architecture != trained {
            return Err(Error::invalid(
                "SAE to train",
                format!(
                    "it is a {:?} SAE and this config trains {:?} ({})",
                    sae.cfg.architecture,
                    trained,
                    trainer.cfg.sae.name()
                ),
            ));
        }
        let given: Vec<(&str, &Tensor)> = sae.named_parameters();
        let names = trainer.sae.parameter_names();
        let _guard = tch::no_grad_guard();
        for (name, p) in names.into_iter().zip(trainer.sae.parameters_mut()) {
            let Some((_, from)) = given.iter().find(|(n, _)| *n == name) else {
                return Err(Error::invalid(
                    "SAE to train",
                    format!("it has no {name}, which a {trained:?} SAE trains"),
                ));
            };
            if from.size() != p.size() {
                return Err(Error::ShapeMismatch {
                    what: format!("{name} of the SAE to train"),
                    expected: format!("{:?} (d_in and d_sae of the config)", p.size()),
                    got: from.size(),
                });
            }
            *p = from
                .f_to_kind(Kind::Float)?
                .f_to_device(p.device())?
                .f_detach_copy()?
                .set_requires_grad(true);
        }
        Ok(trainer)
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The fitted input scale of `expected_average_only_in` (√d_in / mean norm), once known.
    pub fn norm_scale(&self) -> Option<f64> {
        self.norm_scale
    }

    /// Runs to `total_steps`.
    ///
    /// # Errors
    /// As [`Trainer::train_steps`].
    pub fn run(&mut self, source: &mut dyn ActivationSource) -> Result<()> {
        self.train_steps(source, self.cfg.total_steps.saturating_sub(self.step))
    }

    /// Runs `n` more steps (never past `total_steps`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the source's width is not `d_in`; [`Error::Training`]
    /// for a NaN/inf input or loss (weights untouched; earlier checkpoints intact);
    /// [`Error::Io`] when a checkpoint cannot be written.
    pub fn train_steps(&mut self, source: &mut dyn ActivationSource, n: usize) -> Result<()> {
        if source.d_in() != self.cfg.d_in {
            return Err(Error::ShapeMismatch {
                what: "training activations".into(),
                expected: format!("[batch, d_in={}] (the SAE's d_in)", self.cfg.d_in),
                got: vec![self.cfg.batch_size, source.d_in()],
            });
        }
        if self.cfg.normalize_activations == ActivationNorm::ExpectedAverageOnlyIn
            && self.norm_scale.is_none()
        {
            self.norm_scale = Some(self.fit_norm_scale(source)?);
        }
        let end = (self.step + n).min(self.cfg.total_steps);
        let every = self.cfg.progress_every;
        let mut progress = (every > 0).then(|| {
            Progress::new("steps", self.cfg.total_steps as u64)
                .starting_at(self.step as u64)
                .unit("steps")
                .every(Duration::ZERO)
        });
        while self.step < end {
            self.train_step(source)?;
            if let Some(progress) = progress.as_mut()
                && (self.step.is_multiple_of(every) || self.step == end)
            {
                self.report(progress);
            }
            if let (Some(every), Some(dir)) =
                (self.cfg.checkpoint_every, self.cfg.checkpoint_dir.clone())
                && self.step.is_multiple_of(every)
            {
                checkpoint::save(self, &dir)?;
            }
        }
        Ok(())
    }

    fn fit_norm_scale(&self, source: &mut dyn ActivationSource) -> Result<f64> {
        let batches = 10.min(self.cfg.total_steps.max(1));
        let mut total = 0.0;
        for s in 0..batches {
            let x = source.batch(s, self.cfg.batch_size)?;
            total += x
                .f_norm_scalaropt_dim(2, [-1], false)?
                .f_mean(Kind::Double)?
                .double_value(&[]);
        }
        let mean = total / batches as f64;
        if !(mean.is_finite() && mean > 0.0) {
            return Err(Error::Training {
                step: 0,
                reason: format!(
                    "cannot fit expected_average_only_in: the mean activation norm is {mean}"
                ),
            });
        }
        Ok((self.cfg.d_in as f64).sqrt() / mean)
    }

    fn train_step(&mut self, source: &mut dyn ActivationSource) -> Result<()> {
        let step = self.step;
        let mut x = source
            .batch(step, self.cfg.batch_size)?
            .f_to_kind(Kind::Float)?;
        if x.size() != [self.cfg.batch_size, self.cfg.d_in] {
            return Err(Error::ShapeMismatch {
                what: format!("training batch of step {step}"),
                expected: format!("[{}, {}]", self.cfg.batch_size, self.cfg.d_in),
                got: x.size(),
            });
        }
        if let Some(scale) = self.norm_scale {
            x = x.f_mul_scalar(scale)?;
        }
        self.cfg.sae.kind().before_step(&mut self.sae)?;
        let dead = self
            .steps_since_fired
            .f_gt(self.cfg.dead_feature_window as i64)?;
        let n_dead = dead.f_sum(Kind::Int64)?.int64_value(&[]);
        let coefficient = self.cfg.sparsity_coefficient_at(step);
        let state = loss::StepState {
            dead: &dead,
            n_dead,
            sparsity_coefficient: coefficient,
            rescale: self.cfg.rescale_acts_by_decoder_norm,
        };
        let (out, grads) = match backward::step(&self.sae, &self.cfg.sae, &x, &state) {
            Some(stepped) => {
                let (out, grads) = stepped?;
                (out, Some(grads))
            }
            None => (loss::forward(&self.sae, &self.cfg.sae, &x, &state)?, None),
        };
        let loss = out.loss.double_value(&[]);
        // A NaN or inf activation always reaches the loss (through the reconstruction error),
        // so the batch is only searched for one when the loss is not finite.
        if !loss.is_finite() && !bool::try_from(x.f_isfinite()?.f_all()?)? {
            return Err(Error::Training {
                step,
                reason: "the activations of this batch contain NaN or inf; fix the data source (the weights were not updated)".into(),
            });
        }
        if !loss.is_finite() {
            return Err(Error::Training {
                step,
                reason: format!(
                    "the loss is {loss} (mse {}, sparsity {}, aux {}); the weights were not updated{}",
                    out.mse.double_value(&[]),
                    out.sparsity.double_value(&[]),
                    out.aux.double_value(&[]),
                    self.cfg
                        .checkpoint_dir
                        .as_ref()
                        .map_or(String::new(), |d| format!(
                            ", and the checkpoints in {} are intact",
                            d.display()
                        ))
                ),
            });
        }
        let grads = match grads {
            Some(grads) => grads,
            None => self.autograd_grads(&out.loss)?,
        };
        let lr = self.cfg.lr_at(step);
        self.adam_update(lr, step, &grads)?;
        let fired = out.active.fired(self.cfg.d_sae)?;
        self.steps_since_fired = self
            .steps_since_fired
            .f_add_scalar(1)?
            .f_masked_fill(&fired, 0)?;
        (self.cfg.sae.kind()).after_step(&mut self.topk_threshold, &out.active)?;
        self.step += 1;
        if step.is_multiple_of(self.cfg.log_every.max(1)) || self.step == self.cfg.total_steps {
            self.log
                .push(self.log_row(step, lr, coefficient, &x, &out)?);
        }
        Ok(())
    }

    /// Backpropagates `loss`; the gradients in [`Sae::parameters_mut`]'s order.
    fn autograd_grads(&mut self, loss: &Tensor) -> Result<Vec<Tensor>> {
        for p in self.sae.parameters_mut() {
            p.zero_grad();
        }
        loss.f_backward()?;
        Ok(self
            .sae
            .parameters_mut()
            .iter()
            .map(|p| {
                let g = p.grad();
                if g.defined() { g } else { p.zeros_like() }
            })
            .collect())
    }

    /// Clips the global gradient norm, then one Adam step (`torch.optim.Adam`'s order of
    /// operations, one fused pass per parameter on the CPU).
    fn adam_update(&mut self, lr: f64, step: usize, grads: &[Tensor]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let mut grad_scale = 1.0;
        if let Some(max) = self.cfg.clip_grad_norm {
            let total = fused::squared_norm(&grads.iter().collect::<Vec<_>>())?.sqrt();
            // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when above max.
            grad_scale = (max / (total + 1e-6)).min(1.0);
        }
        let adam = fused::AdamStep {
            lr,
            betas: (self.cfg.adam_beta1, self.cfg.adam_beta2),
            eps: 1e-8,
            step: i32::try_from(step + 1).unwrap_or(i32::MAX),
            grad_scale,
        };
        let params = self.sae.parameters_mut();
        for (((p, g), m), v) in params
            .into_iter()
            .zip(grads)
            .zip(&mut self.adam_m)
            .zip(&mut self.adam_v)
        {
            fused::adam_step_(p, g, m, v, &adam)?;
        }
        Ok(())
    }

    /// The trained SAE for inference, as SAELens saves it: TopK decoder norms folded when
    /// trained with rescaling, BatchTopK turned into JumpReLU with its learned threshold, a
    /// fitted input scale folded into the weights.
    ///
    /// # Errors
    /// Only on a libtorch failure.
    pub fn sae(&self) -> Result<Sae> {
        let _guard = tch::no_grad_guard();
        let copy = |t: &Tensor| t.detach().copy();
        let s = &self.sae;
        let mut cfg = self.cfg.sae_config();
        let mut sae = Sae {
            cfg: cfg.clone(),
            w_enc: copy(&s.w_enc),
            w_dec: copy(&s.w_dec),
            b_enc: s.b_enc.as_ref().map(copy),
            b_dec: copy(&s.b_dec),
            threshold: s.threshold.as_ref().map(copy),
            b_gate: s.b_gate.as_ref().map(copy),
            b_mag: s.b_mag.as_ref().map(copy),
            r_mag: s.r_mag.as_ref().map(copy),
        };
        let kind = self.cfg.sae.kind();
        let rescaled = self.cfg.rescale_acts_by_decoder_norm && kind.selects_top_k();
        let mut threshold = self.topk_threshold;
        if let Some(scale) = self.norm_scale {
            // x·scale in training ⇒ W_enc·scale, W_dec / scale, b_dec / scale on raw inputs.
            sae.w_enc = sae.w_enc.f_mul_scalar(scale)?;
            sae.w_dec = sae.w_dec.f_div_scalar(scale)?;
            sae.b_dec = sae.b_dec.f_div_scalar(scale)?;
            if rescaled {
                threshold /= scale;
            }
        }
        if rescaled {
            let norms = sae.decoder_norms()?;
            sae.w_dec = sae.w_dec.f_div(&norms.f_unsqueeze(1)?)?;
            sae.w_enc = sae.w_enc.f_mul(&norms)?;
            sae.b_enc = sae.b_enc.as_ref().map(|b| b.f_mul(&norms)).transpose()?;
        }
        cfg.rescale_acts_by_decoder_norm = false;
        sae.cfg = cfg;
        kind.export(&mut sae, threshold)?;
        Ok(sae)
    }
}
