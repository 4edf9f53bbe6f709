//! APD's training step, on a batch `x`:
//! 1. run the target, keeping each decomposed map's input and the gradient of every output
//!    with respect to each map's output;
//! 2. attribute: component `c`'s attribution on a sample is
//!    `Σ_o (Σ_l ∂y_o/∂h_l · (a_l A_c,l B_c,l))²`, the squared first-order effect of the
//!    component on each output `y_o`, summed;
//! 3. keep the `floor(top_k · batch)` largest attributions of the whole batch (batch top-k)
//!    and run the model with only those components (minimality: match the target's output);
//! 4. add faithfulness `Σ_l ‖W_l − Σ_c A_c,l B_c,l‖²` and the kept components' Schatten
//!    norms (simplicity), both over the decomposed weights' entries.
//!
//! The learning rate rises linearly over the first steps, then stays constant.

use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, Decay, Schedule, log_table};
use polars::prelude::DataFrame;
use tch::{Kind, Tensor};

use super::{Apd, LOSS_NAMES};
use crate::shared::{LogRow, Method, StepPlan, train_steps};
use crate::target::{Decomposable, weight_named};

/// What the target's pass gives: its output and each component's attribution.
struct AttributedPass {
    output: Tensor,
    /// `[batch, C]`
    attributions: Tensor,
}

impl Apd {
    /// Runs the target and attributes its output to the components.
    fn attributed_pass(&self, target: &dyn Decomposable, x: &Tensor) -> Result<AttributedPass> {
        let linears = target.linears();
        let n = self.names.len();
        let mut inputs: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        // A zero added to each decomposed map's output: the gradient reaching it is the
        // gradient with respect to that output.
        let mut probes: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        let output = target.run_routed(x, &self.names, &mut |name, input| {
            let out = input.f_matmul(weight_named(&linears, name)?)?;
            let Some(l) = self.names.iter().position(|m| m == name) else {
                return Ok(out);
            };
            inputs[l] = Some(input.f_detach()?);
            let probe = out.f_zeros_like()?.f_set_requires_grad(true)?;
            probes[l] = Some(probe.shallow_clone());
            Ok(out.f_add(&probe)?)
        })?;
        let never_used = |l: usize| {
            Error::invalid(
                "target model",
                format!(
                    "its forward pass never used the decomposed map {:?}",
                    self.names[l]
                ),
            )
        };
        let inputs = (0..n)
            .map(|l| inputs[l].take().ok_or_else(|| never_used(l)))
            .collect::<Result<Vec<_>>>()?;
        let probes = (0..n)
            .map(|l| probes[l].take().ok_or_else(|| never_used(l)))
            .collect::<Result<Vec<_>>>()?;
        let shape = output.size();
        if shape.len() != 2 {
            return Err(Error::ShapeMismatch {
                what: "the target's output, for APD's gradient attributions".into(),
                expected: "[batch, d_out]".into(),
                got: shape,
            });
        }
        let component_outputs = tch::no_grad(|| {
            (0..n)
                .map(|l| self.factors_of(l)?.component_outputs(&inputs[l]))
                .collect::<Result<Vec<_>>>()
        })?;
        let mut attributions =
            Tensor::f_zeros([shape[0], self.config.c], (Kind::Float, x.device()))?;
        for o in 0..shape[1] {
            let y = output.f_select(1, o)?.f_sum(Kind::Float)?;
            let grads = Tensor::f_run_backward(&[&y], &probes, true, false)?;
            let _guard = tch::no_grad_guard();
            let mut effect = Tensor::f_zeros([shape[0], self.config.c], (Kind::Float, x.device()))?;
            for (g, per) in grads.iter().zip(&component_outputs) {
                // [batch, 1, d_out] · [batch, C, d_out] summed over d_out.
                effect = effect.f_add(&per.f_mul(&g.f_unsqueeze(1)?)?.f_sum_dim_intlist(
                    2,
                    false,
                    Kind::Float,
                )?)?;
            }
            attributions = attributions.f_add(&effect.f_square()?)?;
        }
        Ok(AttributedPass {
            output: output.f_detach()?,
            attributions,
        })
    }

    /// The batch top-k mask of `attributions` `[batch, C]`: ones at the batch's
    /// `floor(top_k · batch)` largest values.
    fn top_k_mask_of(&self, attributions: &Tensor) -> Result<Tensor> {
        let batch = attributions.size()[0];
        let k = ((self.config.top_k * batch as f64).floor() as i64)
            .clamp(1, attributions.numel() as i64);
        let flat = attributions.f_flatten(0, 1)?;
        let (_, index) = flat.f_topk(k, 0, true, false)?;
        let mask = flat.f_zeros_like()?.f_index_fill(0, &index, 1.0)?;
        Ok(mask.f_reshape([batch, -1])?)
    }

    /// Runs the target with decomposed layer `l` computed from the components `mask` keeps.
    fn masked_run(&self, target: &dyn Decomposable, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let linears = target.linears();
        target.run_routed(x, &self.names, &mut |name, input| {
            if let Some(l) = self.names.iter().position(|n| n == name) {
                return self.factors_of(l)?.forward_masked(input, mask);
            }
            Ok(input.f_matmul(weight_named(&linears, name)?)?)
        })
    }

    /// The step's loss and its parts (in [`LOSS_NAMES`] order, unweighted but the total).
    fn losses(&self, target: &dyn Decomposable, x: &Tensor) -> Result<(Tensor, [f64; 4])> {
        let cfg = &self.config;
        let pass = self.attributed_pass(target, x)?;
        let mask = self.top_k_mask_of(&pass.attributions)?;
        let out = self.masked_run(target, x, &mask)?;
        let recon = out.f_mse_loss(&pass.output, tch::Reduction::Mean)?;
        let kept_per_component = mask.f_sum_dim_intlist(0, false, Kind::Float)?; // [C]
        let mut param_match = Tensor::f_zeros([], (Kind::Float, x.device()))?;
        let mut schatten = Tensor::f_zeros([], (Kind::Float, x.device()))?;
        let mut n_params = 0;
        for (l, w) in self.targets.iter().enumerate() {
            let f = self.factors_of(l)?;
            param_match =
                param_match.f_add(&w.f_sub(&f.weight()?)?.f_square()?.f_sum(Kind::Float)?)?;
            schatten = schatten.f_add(
                &f.schatten(cfg.schatten_p)?
                    .f_mul(&kept_per_component)?
                    .f_sum(Kind::Float)?,
            )?;
            n_params += w.numel();
        }
        let param_match = param_match.f_div_scalar(n_params as f64)?;
        let schatten = schatten.f_div_scalar((n_params as i64 * x.size()[0]) as f64)?;
        let loss = recon
            .f_mul_scalar(cfg.topk_recon_coeff)?
            .f_add(&param_match.f_mul_scalar(cfg.param_match_coeff)?)?
            .f_add(&schatten.f_mul_scalar(cfg.schatten_coeff)?)?;
        let value = |t: &Tensor| t.double_value(&[]);
        let parts = [
            value(&loss),
            value(&recon),
            value(&param_match),
            value(&schatten),
        ];
        Ok((loss, parts))
    }

    /// Trains until `config.steps`, drawing the batch of each step from `data(step)` right
    /// after seeding libtorch's generator from `config.seed` and the step (so a stopped and
    /// resumed run is the uninterrupted one, as with SPD).
    ///
    /// # Errors
    /// [`Error::Training`] naming the step when a loss stops being finite (the
    /// decomposition stays as it was after the previous step); a batch that does not fit
    /// the target: its shape error.
    pub fn train(
        &mut self,
        target: &dyn Decomposable,
        data: &mut dyn FnMut(usize) -> Result<Tensor>,
    ) -> Result<()> {
        self.train_steps(target, data, usize::MAX)
    }

    /// [`Apd::train`] for at most `n` more steps (fewer when `config.steps` comes first), on
    /// the whole run's schedule: train in chunks and [`Apd::save`] between them to keep
    /// checkpoints.
    ///
    /// # Errors
    /// As [`Apd::train`].
    pub fn train_steps(
        &mut self,
        target: &dyn Decomposable,
        data: &mut dyn FnMut(usize) -> Result<Tensor>,
        n: usize,
    ) -> Result<()> {
        let plan = StepPlan {
            seed: self.config.seed,
            steps: self.config.steps,
            log_every: self.config.log_every,
            schedule: Schedule {
                lr: self.config.lr,
                warmup_steps: (self.config.steps as f64 * self.config.lr_warmup_fraction) as usize,
                warmup_from_zero: false,
                decay: Decay::Constant,
            },
        };
        let params = self.parameters();
        train_steps(self, target, data, &params, &plan, n)
    }

    /// The log: `step`, `lr`, then the total loss and its parts.
    ///
    /// # Errors
    /// Only if polars cannot build the frame.
    pub fn log_frame(&self) -> Result<DataFrame> {
        log_table(&self.log, LOSS_NAMES)
    }

    /// Each component's gradient attribution on each sample of `x`.
    ///
    /// # Shapes
    /// `x`: the target's input with `batch` rows → `[batch, C]`
    ///
    /// # Errors
    /// The target's shape errors; an output that is not `[batch, d_out]`.
    pub fn attributions(&self, target: &dyn Decomposable, x: &Tensor) -> Result<Tensor> {
        Ok(self.attributed_pass(target, x)?.attributions)
    }

    /// The batch top-k mask on `x` (ones where a component is kept) `[batch, C]`.
    ///
    /// # Errors
    /// As [`Apd::attributions`].
    pub fn top_k_mask(&self, target: &dyn Decomposable, x: &Tensor) -> Result<Tensor> {
        self.top_k_mask_of(&self.attributions(target, x)?)
    }

    /// The decomposed model's output on `x` with each component scaled by `mask` `[batch, C]`
    /// (ones: all components; [`Apd::top_k_mask`]: the ones APD keeps).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mask that is not `[batch, C]`; the target's errors.
    pub fn run_masked(
        &self,
        target: &dyn Decomposable,
        x: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let (batch, c) = (x.size()[0], self.config.c);
        if mask.size() != [batch, c] {
            return Err(Error::ShapeMismatch {
                what: "APD mask".into(),
                expected: format!("[batch, C] = [{batch}, {c}]"),
                got: mask.size(),
            });
        }
        let _guard = tch::no_grad_guard();
        self.masked_run(target, x, mask)
    }
}

impl Method<4> for Apd {
    const LOSS: &'static str = "APD loss";
    fn step_losses(&self, target: &dyn Decomposable, x: &Tensor) -> Result<(Tensor, [f64; 4])> {
        self.losses(target, x)
    }
    fn state(&mut self) -> (&mut AdamW, &mut usize, &mut Vec<LogRow<4>>) {
        (&mut self.adam, &mut self.step, &mut self.log)
    }
}
