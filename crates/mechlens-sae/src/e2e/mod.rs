//! End-to-end sparse dictionary learning (Braun et al. 2024, "Identifying functionally
//! important features with end-to-end sparse dictionary learning"): an SAE spliced into a
//! frozen model and trained on what the model does with its output, not on how well it copies
//! its input.
//!
//! - **local**: MSE between the SAE's output and the activation, plus sparsity (the usual SAE);
//! - **e2e**: KL divergence from the model's next-token distribution to the one with the SAE's
//!   output in place of the activation, plus sparsity; gradients flow through every later
//!   layer of the frozen model;
//! - **e2e + ds**: e2e plus MSE between the spliced and original activations at later layers.
//!
//! The SAE is the paper's: `c = ReLU(x W_enc + b_enc)`, `x̂ = c D + b_dec` with `D`'s rows the
//! decoder's rows scaled to unit norm (so sparsity cannot be bought by shrinking latents and
//! growing the decoder); sparsity is `mean_token ‖c‖₁ / d_in`. [`E2eSae::sae`] gives it as an
//! [`Sae`] in SAELens' format, like every other SAE of ours.

mod config;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use mechlens_core::{Error, Hook, HookPoint, HookSession, Hooks, Result, Splice};
use mechlens_models::HookedTransformer;
use mechlens_train::{AdamW, AdamWConfig, Decay, Schedule, log_due, log_table};
use polars::prelude::DataFrame;
use tch::{Kind, Tensor};

pub use config::{E2eConfig, E2eLoss};
/// The KL loss lives with the other training losses; re-exported where e2e SAEs first used it.
pub use mechlens_train::kl_divergence;

use crate::config::{Architecture, SaeConfig};
use crate::sae::Sae;

/// Names of the log's loss columns, after `step` and `lr`.
const LOG_NAMES: [&str; 5] = ["loss", "kl", "mse", "sparsity", "l0"];

/// An SAE being trained end to end (or locally, for comparison) on one hook point.
pub struct E2eSae {
    /// Settings.
    pub config: E2eConfig,
    point: HookPoint,
    downstream: Vec<HookPoint>,
    /// `[d_in, d_sae]`
    w_enc: Tensor,
    /// `[d_sae]`
    b_enc: Tensor,
    /// `[d_sae, d_in]`, used with its rows scaled to unit norm.
    w_dec: Tensor,
    /// `[d_in]`
    b_dec: Tensor,
    adam: AdamW,
    step: usize,
    log: Vec<(usize, f64, [f64; 5])>,
}

/// The SAE in place of the activation during a spliced run, keeping its latents for the
/// sparsity loss.
struct SaeInPlace {
    w_enc: Tensor,
    b_enc: Tensor,
    decoder: Tensor,
    b_dec: Tensor,
    latents: RefCell<Option<Tensor>>,
}

impl SaeInPlace {
    fn latents_and_output(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let c = x.f_matmul(&self.w_enc)?.f_add(&self.b_enc)?.f_relu()?;
        let out = c.f_matmul(&self.decoder)?.f_add(&self.b_dec)?;
        Ok((c, out))
    }
}

impl Splice for SaeInPlace {
    fn splice(&self, act: Tensor, _at: HookPoint, _: &mut HookSession<'_, '_>) -> Result<Tensor> {
        let (c, out) = self.latents_and_output(&act)?;
        *self.latents.borrow_mut() = Some(c);
        Ok(out)
    }
}

impl E2eSae {
    /// A new SAE for `model` at `config.hook`, started as SAELens starts one (decoder rows of
    /// norm 1, encoder = decoderᵀ, zero biases; seeded).
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a hook point the model lacks (with the closest names);
    /// [`Error::InvalidInput`] for unusable settings, a point of no fixed width, or a
    /// downstream point that is the SAE's own.
    pub fn new(model: &HookedTransformer, config: E2eConfig) -> Result<Self> {
        config.validate()?;
        let point = model.hook_point(config.hook.as_str())?;
        let d_in = model.hook_width(point).ok_or_else(|| {
            Error::invalid(
                "SAE hook point",
                format!("{point} has no fixed width to train an SAE on"),
            )
        })?;
        let downstream = match &config.loss {
            E2eLoss::EndToEndDownstream { hooks, .. } => hooks
                .iter()
                .map(|h| {
                    let p = model.hook_point(h.as_str())?;
                    if p == point {
                        return Err(Error::invalid(
                            "downstream hooks",
                            format!("{p} is the SAE's own hook point; name later ones"),
                        ));
                    }
                    Ok(p)
                })
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let mut cfg = SaeConfig::new(Architecture::Standard, d_in, config.d_sae);
        cfg.apply_b_dec_to_input = false;
        let init = Sae::init(cfg, Some(1.0), config.seed)?;
        let grad = |t: &Tensor| t.f_detach()?.copy().f_set_requires_grad(true);
        let b_enc = init
            .b_enc
            .as_ref()
            .ok_or_else(|| Error::invalid("SAE", "a standard SAE has b_enc"))?;
        let (w_enc, b_enc, w_dec, b_dec) = (
            grad(&init.w_enc)?,
            grad(b_enc)?,
            grad(&init.w_dec)?,
            grad(&init.b_dec)?,
        );
        let adam = AdamW::new(
            AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            &[
                w_enc.shallow_clone(),
                b_enc.shallow_clone(),
                w_dec.shallow_clone(),
                b_dec.shallow_clone(),
            ],
        )?;
        Ok(Self {
            config,
            point,
            downstream,
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            adam,
            step: 0,
            log: Vec::new(),
        })
    }

    /// A run that starts from `sae`'s weights (for example a local SAE to fine-tune end to
    /// end, or a known construction): a standard ReLU SAE at `config.hook` with `config.d_sae`
    /// latents that does not subtract `b_dec` from its input.
    ///
    /// # Errors
    /// As [`E2eSae::new`]; [`Error::InvalidInput`] for another architecture or input
    /// convention, or sizes other than the config's and the hook's.
    pub fn from_sae(model: &HookedTransformer, config: E2eConfig, sae: &Sae) -> Result<Self> {
        let mut run = Self::new(model, config)?;
        let (d_in, d_sae) = (run.w_enc.size()[0], run.config.d_sae);
        if sae.cfg.architecture != Architecture::Standard || sae.cfg.apply_b_dec_to_input {
            return Err(Error::invalid(
                "starting SAE",
                format!(
                    "must be a standard ReLU SAE with apply_b_dec_to_input false, got {} with apply_b_dec_to_input {}",
                    sae.cfg.architecture, sae.cfg.apply_b_dec_to_input
                ),
            ));
        }
        if (sae.cfg.d_in, sae.cfg.d_sae) != (d_in, d_sae) {
            return Err(Error::invalid(
                "starting SAE",
                format!(
                    "is {} → {} but the run needs {d_in} → {d_sae} (the width of {} and d_sae)",
                    sae.cfg.d_in, sae.cfg.d_sae, run.point
                ),
            ));
        }
        let b_enc = sae
            .b_enc
            .as_ref()
            .ok_or_else(|| Error::invalid("starting SAE", "a standard SAE has b_enc"))?;
        tch::no_grad(|| -> Result<()> {
            run.w_enc.f_copy_(&sae.w_enc)?;
            run.b_enc.f_copy_(b_enc)?;
            run.w_dec.f_copy_(&sae.w_dec)?;
            run.b_dec.f_copy_(&sae.b_dec)?;
            Ok(())
        })?;
        Ok(run)
    }

    fn parameters(&self) -> [Tensor; 4] {
        [
            self.w_enc.shallow_clone(),
            self.b_enc.shallow_clone(),
            self.w_dec.shallow_clone(),
            self.b_dec.shallow_clone(),
        ]
    }

    /// The decoder with unit-norm rows `[d_sae, d_in]`.
    fn decoder(&self) -> Result<Tensor> {
        Ok(self.w_dec.f_div(
            &self
                .w_dec
                .f_norm_scalaropt_dim(2, [1], true)?
                .f_clamp_min(1e-12)?,
        )?)
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The hook point the SAE sits at.
    pub fn hook_point(&self) -> HookPoint {
        self.point
    }

    /// The model's own run on `tokens`, without gradients: its logits, the activation at the
    /// SAE's point and at each downstream point.
    fn clean_run(
        &self,
        model: &HookedTransformer,
        tokens: &Tensor,
    ) -> Result<(Option<Tensor>, Tensor, Vec<Tensor>)> {
        let _guard = tch::no_grad_guard();
        if self.config.loss == E2eLoss::Local {
            return Ok((None, model.run_to_hook(tokens, self.point)?, Vec::new()));
        }
        let seen: RefCell<Vec<Option<Tensor>>> =
            RefCell::new((0..=self.downstream.len()).map(|_| None).collect());
        let mut hooks = Hooks::new();
        for (i, p) in std::iter::once(&self.point)
            .chain(&self.downstream)
            .enumerate()
        {
            let seen = &seen;
            hooks = hooks.read(*p, move |act| {
                seen.borrow_mut()[i] = Some(act.shallow_clone());
                Ok(())
            })?;
        }
        let logits = model.run_with_hooks(tokens, hooks)?;
        let mut seen = seen.into_inner().into_iter();
        let x = seen
            .next()
            .flatten()
            .ok_or_else(|| Error::invalid("SAE hook point", format!("{} never ran", self.point)))?;
        let downstream = seen
            .zip(&self.downstream)
            .map(|(t, p)| {
                t.ok_or_else(|| Error::invalid("downstream hooks", format!("{p} never ran")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Some(logits), x, downstream))
    }

    /// The step's loss and its parts (in [`LOG_NAMES`] order).
    fn losses(&self, model: &HookedTransformer, tokens: &Tensor) -> Result<(Tensor, [f64; 5])> {
        let (clean_logits, x, clean_downstream) = self.clean_run(model, tokens)?;
        let splice = Rc::new(SaeInPlace {
            w_enc: self.w_enc.shallow_clone(),
            b_enc: self.b_enc.shallow_clone(),
            decoder: self.decoder()?,
            b_dec: self.b_dec.shallow_clone(),
            latents: RefCell::new(None),
        });
        let zero = || Tensor::f_zeros([], (Kind::Float, x.device()));
        let (mut kl, mut mse) = (zero()?, zero()?);
        let latents = match (&self.config.loss, clean_logits) {
            (E2eLoss::Local, _) | (_, None) => {
                let (c, out) = splice.latents_and_output(&x)?;
                mse = out.f_mse_loss(&x, tch::Reduction::Mean)?;
                c
            }
            (loss, Some(clean_logits)) => {
                let seen: RefCell<Vec<Option<Tensor>>> =
                    RefCell::new(self.downstream.iter().map(|_| None).collect());
                let mut hooks = Hooks::new();
                hooks.push(self.point, Hook::Splice(splice.clone()));
                for (i, p) in self.downstream.iter().enumerate() {
                    let seen = &seen;
                    hooks = hooks.read(*p, move |act| {
                        seen.borrow_mut()[i] = Some(act.shallow_clone());
                        Ok(())
                    })?;
                }
                let logits = model.forward_with_grad(tokens, hooks)?;
                kl = kl_divergence(&clean_logits, &logits)?;
                if let E2eLoss::EndToEndDownstream { coeff, .. } = loss {
                    let per_hook = coeff / self.downstream.len() as f64;
                    for (new, old) in seen.into_inner().into_iter().zip(&clean_downstream) {
                        let new = new.ok_or_else(|| {
                            Error::invalid("downstream hooks", "a downstream point never ran")
                        })?;
                        mse = mse.f_add(
                            &new.f_mse_loss(old, tch::Reduction::Mean)?
                                .f_mul_scalar(per_hook)?,
                        )?;
                    }
                }
                splice.latents.borrow_mut().take().ok_or_else(|| {
                    Error::invalid("SAE hook point", format!("{} never ran", self.point))
                })?
            }
        };
        let d_in = x.size().last().copied().unwrap_or(1) as f64;
        let c = latents.f_flatten(0, -2)?;
        let sparsity = c
            .f_abs()?
            .f_sum_dim_intlist(-1, false, Kind::Float)?
            .f_mean(Kind::Float)?
            .f_div_scalar(d_in)?;
        let l0 = c.f_gt(0.0)?.f_sum(Kind::Float)?.double_value(&[]) / c.size()[0] as f64;
        let loss = kl
            .f_add(&mse)?
            .f_add(&sparsity.f_mul_scalar(self.config.sparsity_coeff)?)?;
        let value = |t: &Tensor| t.double_value(&[]);
        let parts = [value(&loss), value(&kl), value(&mse), value(&sparsity), l0];
        Ok((loss, parts))
    }

    /// Trains until `config.steps`, each step on the tokens `data(step)` gives (`[batch,
    /// pos]`).
    ///
    /// # Errors
    /// [`Error::Training`] naming the step when the loss stops being finite (the SAE stays as
    /// it was after the previous step); the model's errors for bad tokens.
    pub fn train(
        &mut self,
        model: &HookedTransformer,
        data: &mut dyn FnMut(usize) -> Result<Tensor>,
    ) -> Result<()> {
        let schedule = Schedule {
            lr: self.config.lr,
            warmup_steps: self.config.warmup_steps,
            warmup_from_zero: false,
            decay: Decay::Cosine { final_lr: 0.0 },
        };
        let params = self.parameters();
        while self.step < self.config.steps {
            let tokens = data(self.step)?;
            let (loss, parts) = self.losses(model, &tokens)?;
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                return Err(Error::Training {
                    step: self.step,
                    reason: format!(
                        "the {} SAE's loss is {value}; the SAE was left as it was after the previous step",
                        self.config.loss.name()
                    ),
                });
            }
            let lr = schedule.at(self.step, self.config.steps);
            self.adam.minimize(&loss, &params, lr)?;
            if log_due(self.step, self.config.log_every, self.config.steps) {
                self.log.push((self.step, lr, parts));
            }
            self.step += 1;
        }
        Ok(())
    }

    /// The log: `step`, `lr`, `loss`, `kl`, `mse` (local: to the input; e2e+ds: the weighted
    /// downstream terms), `sparsity` and `l0` (mean active latents per token).
    ///
    /// # Errors
    /// Only if polars cannot build the frame.
    pub fn log_frame(&self) -> Result<DataFrame> {
        log_table(&self.log, LOG_NAMES)
    }

    /// The SAE as trained, in SAELens' format (a standard ReLU SAE without `b_dec` subtracted
    /// from its input, decoder rows of unit norm), recording `model_name` and the hook point.
    ///
    /// # Errors
    /// Only libtorch's.
    pub fn sae(&self, model_name: &str) -> Result<Sae> {
        let _guard = tch::no_grad_guard();
        let d_in = self.w_enc.size()[0];
        let mut cfg = SaeConfig::new(Architecture::Standard, d_in, self.config.d_sae)
            .with_hook(model_name, &self.point.to_string());
        cfg.apply_b_dec_to_input = false;
        cfg.metadata.insert(
            "e2e_loss".into(),
            serde_json::json!(self.config.loss.name()),
        );
        Ok(Sae {
            cfg,
            w_enc: self.w_enc.f_detach()?.copy(),
            w_dec: self.decoder()?.f_detach()?.copy(),
            b_enc: Some(self.b_enc.f_detach()?.copy()),
            b_dec: self.b_dec.f_detach()?.copy(),
            threshold: None,
            b_gate: None,
            b_mag: None,
            r_mag: None,
        })
    }

    /// Writes [`E2eSae::sae`] to the SAELens folder `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] when the folder cannot be written.
    pub fn save(&self, model_name: &str, dir: &Path) -> Result<()> {
        self.sae(model_name)?.save(dir)
    }
}
