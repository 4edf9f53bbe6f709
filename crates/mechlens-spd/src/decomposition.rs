//! [`Spd`]: a model's chosen matrices as rank-one subcomponents with causal-importance
//! functions, and the training that fits them (Bushnaq et al. 2025, "Stochastic Parameter
//! Decomposition").
//!
//! One step, on a batch `x`:
//! 1. run the target, keeping each decomposed map's input `a_l`;
//! 2. causal importances `g_l = σ(MLP_c(a_l · V_c))` per subcomponent, through a hard sigmoid
//!    (clamped for the masks, leaking above 1 for the penalty);
//! 3. stochastic masks `m = g + (1 − g)·r`, `r ~ U(0, 1)`: a subcomponent the input does not
//!    need may be scaled anywhere in [0, 1] and the output must not change;
//! 4. losses: the target's output against the output with every layer masked (stochastic
//!    reconstruction) and with each layer masked alone (layer-wise), plus importance
//!    minimality `Σ_l Σ_c mean_b g^p`. The part of `W` the subcomponents miss, `W − V·U`,
//!    is either a "delta component" with a uniform random mask of its own (the paper's
//!    default: it must not matter) or penalised directly (faithfulness).
//!
//! Before the first step, `V·U` is fitted to `W` alone for a few hundred steps (the paper's
//! faithfulness warm-up). The learning rate follows `config.lr_decay` (a cosine to 0 by default).

use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, AdamWConfig, Schedule, log_table};
use polars::prelude::DataFrame;
use tch::{Kind, Tensor};

use crate::components::{
    CausalImportanceMlps, LinearComponents, lower_hard_sigmoid, upper_leaky_hard_sigmoid,
};
use crate::config::SpdConfig;
use crate::shared::{LogRow, Method, StepPlan, check_finite, pick_layers, train_steps};
use crate::target::{Decomposable, weight_named};

/// Names of the loss columns of [`Spd::log_frame`], after `step` and `lr`.
const LOSS_NAMES: [&str; 5] = [
    "loss",
    "stochastic_recon",
    "stochastic_recon_layerwise",
    "importance_minimality",
    "faithfulness",
];

/// A decomposition and its training state.
pub struct Spd {
    /// Settings.
    pub config: SpdConfig,
    /// The decomposed maps' names, in the target's order.
    pub names: Vec<String>,
    /// Their subcomponents.
    pub components: Vec<LinearComponents>,
    /// Their causal-importance functions.
    pub importance_fns: Vec<CausalImportanceMlps>,
    /// The target's weights of the decomposed maps.
    targets: Vec<Tensor>,
    pub(crate) adam: AdamW,
    step: usize,
    warmed_up: bool,
    pub(crate) log: Vec<LogRow<5>>,
}

/// What one batch gives: the target's output and each decomposed map's input.
struct TargetPass {
    output: Tensor,
    inputs: Vec<Tensor>,
}

impl Spd {
    /// A new decomposition of the maps `layers` of `target` (names from
    /// [`Decomposable::linears`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for unusable settings (see [`SpdConfig::validate`]), no layers,
    /// a layer named twice, or a name the model does not have (the error lists those it has).
    pub fn new(target: &dyn Decomposable, layers: &[&str], config: SpdConfig) -> Result<Self> {
        config.validate()?;
        // The paper's batch of 4,096 makes every mask and importance tensor larger than
        // glibc's mmap threshold; without this a step spends half its time in page faults
        // (42.6 → 21.6 ms per TMS 5-2 step on 2 cores; see mechlens_core::allocator).
        mechlens_core::allocator::keep_freed_memory();
        let (names, targets) = pick_layers(target, layers)?;
        let seed = config.seed as i64;
        let mut components = Vec::new();
        let mut importance_fns = Vec::new();
        for (i, w) in targets.iter().enumerate() {
            let layer_seed = seed.wrapping_mul(1000).wrapping_add(2 * i as i64);
            components.push(LinearComponents::init(w, config.c, layer_seed)?);
            importance_fns.push(CausalImportanceMlps::init(
                config.c,
                config.ci_hidden,
                layer_seed + 1,
            )?);
        }
        let adam = AdamW::new(
            AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            &parameters_of(&components, &importance_fns),
        )?;
        Ok(Self {
            adam,
            config,
            names,
            components,
            importance_fns,
            targets,
            step: 0,
            warmed_up: false,
            log: Vec::new(),
        })
    }

    /// Every trained tensor: each layer's `V`, `U`, then its importance MLP's.
    pub fn parameters(&self) -> Vec<Tensor> {
        parameters_of(&self.components, &self.importance_fns)
    }

    fn component_parameters(&self) -> Vec<Tensor> {
        self.components
            .iter()
            .flat_map(|c| c.parameters())
            .collect()
    }

    /// Steps done (after the warm-up).
    pub fn step(&self) -> usize {
        self.step
    }

    /// After [`Spd::load_parameters`]: `step` steps done, the warm-up behind.
    pub(crate) fn mark_loaded(&mut self, step: usize) {
        self.step = step;
        self.warmed_up = true;
    }

    /// The index of decomposed layer `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] listing the decomposed layers.
    pub fn layer(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid(
                "layer",
                format!("{name:?} is not decomposed; these are: {:?}", self.names),
            )
        })
    }

    /// Runs the target as it is, keeping the decomposed maps' inputs.
    fn target_pass(&self, target: &dyn Decomposable, x: &Tensor) -> Result<TargetPass> {
        let _guard = tch::no_grad_guard();
        let linears = target.linears();
        let mut inputs: Vec<Option<Tensor>> = (0..self.names.len()).map(|_| None).collect();
        let output = target.run_routed(x, &self.names, &mut |name, input| {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                inputs[i] = Some(input.shallow_clone());
            }
            Ok(input.f_matmul(weight_named(&linears, name)?)?)
        })?;
        let inputs = inputs
            .into_iter()
            .zip(&self.names)
            .map(|(input, name)| {
                input.ok_or_else(|| {
                    Error::invalid(
                        "target model",
                        format!("its forward pass never used the decomposed map {name:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TargetPass { output, inputs })
    }

    /// Runs the target with decomposed layer `l` computed as `(a·V ⊙ masks[l])·U`, plus
    /// `delta[l]`-scaled `W − V·U` when given; a layer with no mask keeps its own weight.
    fn masked_run(
        &self,
        target: &dyn Decomposable,
        x: &Tensor,
        masks: &[Option<&Tensor>],
        delta: &[Option<&Tensor>],
    ) -> Result<Tensor> {
        let linears = target.linears();
        target.run_routed(
            x,
            &self.names,
            &mut self.linear_with(&linears, masks, delta),
        )
    }

    /// The computation of each map behind [`Spd::masked_run`].
    fn linear_with<'a>(
        &'a self,
        linears: &'a [(String, Tensor)],
        masks: &'a [Option<&'a Tensor>],
        delta: &'a [Option<&'a Tensor>],
    ) -> impl FnMut(&str, &Tensor) -> Result<Tensor> + 'a {
        move |name, input| self.map_output(linears, masks, delta, name, input)
    }

    /// Map `name` applied to `input` `[rows, d_in]`: decomposed and masked, or the
    /// target's own weight.
    fn map_output(
        &self,
        linears: &[(String, Tensor)],
        masks: &[Option<&Tensor>],
        delta: &[Option<&Tensor>],
        name: &str,
        input: &Tensor,
    ) -> Result<Tensor> {
        if let Some(l) = self.names.iter().position(|n| n == name)
            && let Some(mask) = masks[l]
        {
            let mut out = self.components[l].forward(input, mask)?;
            if let Some(d) = delta[l] {
                let residual = self.targets[l].f_sub(&self.components[l].weight()?)?;
                out = out.f_add(&input.f_matmul(&residual)?.f_mul(&d.f_unsqueeze(1)?)?)?;
            }
            return Ok(out);
        }
        Ok(input.f_matmul(weight_named(linears, name)?)?)
    }

    /// Per decomposed layer, the clamped and the upper-leaky importances `[batch, C]`.
    fn importances_of(&self, inputs: &[Tensor]) -> Result<Vec<(Tensor, Tensor)>> {
        inputs
            .iter()
            .enumerate()
            .map(|(l, a)| {
                let raw = self.importance_fns[l].forward(&self.components[l].inner(a)?)?;
                Ok((lower_hard_sigmoid(&raw)?, upper_leaky_hard_sigmoid(&raw)?))
            })
            .collect()
    }

    /// `Σ_l ‖W_l − V_l U_l‖²` over the total number of entries.
    fn faithfulness(&self) -> Result<Tensor> {
        let mut total = Tensor::zeros([], (Kind::Float, tch::Device::Cpu));
        let mut n = 0;
        for (c, w) in self.components.iter().zip(&self.targets) {
            total = total.f_add(&w.f_sub(&c.weight()?)?.f_square()?.f_sum(Kind::Float)?)?;
            n += w.numel();
        }
        Ok(total.f_div_scalar(n as f64)?)
    }

    /// Fits `V·U` to `W` (faithfulness only) for the configured warm-up steps; done once,
    /// by the first [`Spd::train`].
    fn warm_up(&mut self) -> Result<()> {
        let params = self.component_parameters();
        let mut adam = AdamW::new(
            AdamWConfig {
                weight_decay: self.config.faithfulness_warmup_weight_decay,
                ..AdamWConfig::default()
            },
            &params,
        )?;
        for step in 0..self.config.faithfulness_warmup_steps {
            let loss = self.faithfulness()?;
            check_finite(&loss, step, "faithfulness warm-up")?;
            adam.minimize(&loss, &params, self.config.faithfulness_warmup_lr)?;
        }
        self.warmed_up = true;
        Ok(())
    }

    /// Trains until `config.steps`, drawing the batch of each step from `data(step)`.
    /// libtorch's generator is seeded before each step from `config.seed` and the step, so
    /// a `data` that draws from it (or depends on the step alone) makes the run the same
    /// whether it stops and resumes ([`Spd::save`], [`Spd::load_parameters`]) or not.
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

    /// [`Spd::train`] for at most `n` more steps (fewer when `config.steps` comes first), on
    /// the whole run's schedule: train in chunks and [`Spd::save`] between them to keep
    /// checkpoints.
    ///
    /// # Errors
    /// As [`Spd::train`].
    pub fn train_steps(
        &mut self,
        target: &dyn Decomposable,
        data: &mut dyn FnMut(usize) -> Result<Tensor>,
        n: usize,
    ) -> Result<()> {
        if !self.warmed_up {
            self.warm_up()?;
        }
        let plan = StepPlan {
            seed: self.config.seed,
            steps: self.config.steps,
            log_every: self.config.log_every,
            schedule: Schedule {
                lr: self.config.lr,
                warmup_steps: 0,
                warmup_from_zero: false,
                decay: self.config.lr_decay,
            },
        };
        let params = self.parameters();
        train_steps(self, target, data, &params, &plan, n)
    }

    /// The step's loss and its parts (in [`LOSS_NAMES`] order, unweighted but the total).
    fn losses(&self, target: &dyn Decomposable, x: &Tensor) -> Result<(Tensor, [f64; 5])> {
        let cfg = &self.config;
        let pass = self.target_pass(target, x)?;
        let importances = self.importances_of(&pass.inputs)?;
        let n = self.names.len();
        let masks = importances
            .iter()
            .map(|(g, _)| -> Result<Tensor> {
                let r = g.f_rand_like()?;
                Ok(g.f_add(&g.f_neg()?.f_add_scalar(1.0)?.f_mul(&r)?)?)
            })
            .collect::<Result<Vec<_>>>()?;
        // One delta mask per row a map reads: a sample of a toy, a token of a transformer.
        let deltas = pass
            .inputs
            .iter()
            .map(|a| -> Result<Option<Tensor>> {
                Ok(cfg
                    .use_delta_component
                    .then(|| Tensor::f_rand([a.size()[0]], (Kind::Float, a.device())))
                    .transpose()?)
            })
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<Option<&Tensor>> = masks.iter().map(Some).collect();
        let all_deltas: Vec<Option<&Tensor>> = deltas.iter().map(Option::as_ref).collect();
        let out = self.masked_run(target, x, &all, &all_deltas)?;
        let recon = cfg.output_loss.between(&out, &pass.output)?;
        let mut layerwise = Tensor::zeros([], (Kind::Float, x.device()));
        for l in 0..n {
            let mut one = vec![None; n];
            one[l] = Some(&masks[l]);
            let mut one_delta = vec![None; n];
            one_delta[l] = deltas[l].as_ref();
            let out = self.masked_run(target, x, &one, &one_delta)?;
            layerwise = layerwise.f_add(&cfg.output_loss.between(&out, &pass.output)?)?;
        }
        let layerwise = layerwise.f_div_scalar(n as f64)?;
        let mut minimality = Tensor::zeros([], (Kind::Float, x.device()));
        for (_, upper) in &importances {
            let per_component = upper
                .f_add_scalar(1e-12)?
                .f_pow_tensor_scalar(cfg.p)?
                .f_mean_dim(0, false, Kind::Float)?;
            minimality = minimality.f_add(&per_component.f_sum(Kind::Float)?)?;
        }
        let faithfulness = self.faithfulness()?;
        let loss = recon
            .f_mul_scalar(cfg.stochastic_recon_coeff)?
            .f_add(&layerwise.f_mul_scalar(cfg.stochastic_recon_layerwise_coeff)?)?
            .f_add(&minimality.f_mul_scalar(cfg.importance_minimality_coeff)?)?
            .f_add(&faithfulness.f_mul_scalar(if cfg.use_delta_component {
                0.0
            } else {
                cfg.faithfulness_coeff
            })?)?;
        let value = |t: &Tensor| t.double_value(&[]);
        let parts = [
            value(&loss),
            value(&recon),
            value(&layerwise),
            value(&minimality),
            value(&faithfulness),
        ];
        Ok((loss, parts))
    }

    /// The log: `step`, `lr`, then the total loss and its parts.
    ///
    /// # Errors
    /// Only if polars cannot build the frame.
    pub fn log_frame(&self) -> Result<DataFrame> {
        log_table(&self.log, LOSS_NAMES)
    }

    /// Causal importances (clamped to [0, 1]) of every subcomponent on `x`, per decomposed
    /// layer.
    ///
    /// # Shapes
    /// `x`: the target's input with `batch` rows → one `[batch, C]` per layer
    ///
    /// # Errors
    /// The target's shape errors.
    pub fn causal_importances(&self, target: &dyn Decomposable, x: &Tensor) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        let pass = self.target_pass(target, x)?;
        Ok(self
            .importances_of(&pass.inputs)?
            .into_iter()
            .map(|(g, _)| g)
            .collect())
    }

    /// The decomposed model's output on `x` with every subcomponent scaled by `masks`
    /// (one `[rows, C]` per layer: ones for all of `V·U`, the causal importances for the
    /// parts the input needs) and no delta component.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mask count other than the decomposed layers'.
    pub fn run_masked(
        &self,
        target: &dyn Decomposable,
        x: &Tensor,
        masks: &[Tensor],
    ) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let linears = target.linears();
        let masks = self.mask_refs(masks)?;
        let none = vec![None; self.names.len()];
        target.run_routed(
            x,
            &self.names,
            &mut self.linear_with(&linears, &masks, &none),
        )
    }

    /// How [`Spd::run_masked`] computes each map, for a target that runs it its own way
    /// (a [`crate::TransformerTarget`]'s run with a cache): `linears` is the target's
    /// [`Decomposable::linears`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a mask count other than the decomposed layers'.
    pub fn masked_linear<'a>(
        &'a self,
        linears: &'a [(String, Tensor)],
        masks: &'a [Tensor],
    ) -> Result<impl FnMut(&str, &Tensor) -> Result<Tensor> + 'a> {
        let masks = self.mask_refs(masks)?;
        let none = vec![None; self.names.len()];
        Ok(move |name: &str, input: &Tensor| self.map_output(linears, &masks, &none, name, input))
    }

    fn mask_refs<'a>(&self, masks: &'a [Tensor]) -> Result<Vec<Option<&'a Tensor>>> {
        if masks.len() != self.names.len() {
            return Err(Error::ShapeMismatch {
                what: "masks, one per decomposed layer".into(),
                expected: format!("{} ({:?})", self.names.len(), self.names),
                got: vec![masks.len() as i64],
            });
        }
        Ok(masks.iter().map(Some).collect())
    }

    /// The target's weight of decomposed layer `l`.
    pub fn target_weight(&self, l: usize) -> &Tensor {
        &self.targets[l]
    }
}

impl Method<5> for Spd {
    const LOSS: &'static str = "SPD loss";
    fn step_losses(&self, target: &dyn Decomposable, x: &Tensor) -> Result<(Tensor, [f64; 5])> {
        self.losses(target, x)
    }
    fn state(&mut self) -> (&mut AdamW, &mut usize, &mut Vec<LogRow<5>>) {
        (&mut self.adam, &mut self.step, &mut self.log)
    }
}

/// Each layer's `V`, `U`, then its importance MLP's tensors, in layer order.
fn parameters_of(
    components: &[LinearComponents],
    importance_fns: &[CausalImportanceMlps],
) -> Vec<Tensor> {
    let mut out = Vec::new();
    for (c, g) in components.iter().zip(importance_fns) {
        out.extend(c.parameters());
        out.extend(g.parameters());
    }
    out
}
