//! Every way to run a [`HookedTransformer`]: logits, hooks for one run, caches, gradients,
//! losses, and runs that start or stop part-way. Each goes through [`HookedTransformer::session`],
//! which checks the hook names, borrows the persistent hooks, builds the hook session and
//! runs the forward pass, so they differ only in what they ask for.

use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, HookSession, Hooks, Result};
use tch::{Device, Kind, Tensor};

use super::{HookedTransformer, Start};
use crate::input::{ModelInput, Tokens};

/// A metric's gradients with respect to activations, and the activations themselves, from
/// one forward and one backward pass ([`HookedTransformer::gradients_with_activations`]).
pub struct GradientRun {
    /// The metric's value.
    pub value: f64,
    /// The activations the filter kept (detached).
    pub activations: ActivationCache,
    /// The metric's gradient with respect to each of them (zeros where it does not depend
    /// on one).
    pub gradients: ActivationCache,
}

/// What one run asks for besides the logits (everything off by default).
#[derive(Default)]
struct RunPlan<'p, 'h> {
    /// Hooks for this run only (persistent hooks always apply).
    hooks: Option<&'p mut Hooks<'h>>,
    /// Activations to record, and where to move them.
    cache: Option<(&'p CacheFilter, Option<Device>)>,
    /// Stop at the residual stream entering this block.
    stop: Option<usize>,
    /// Keep the autograd graph (no `no_grad`; cached tensors stay attached).
    gradients: bool,
    /// Positions the last block carries past its attention (see `Block::forward`).
    keep: Option<&'p Tensor>,
}

/// Where a run's input comes from, once read.
enum Source {
    Tokens(Tokens),
    /// A residual stream entering the given block.
    Residual(Tensor, usize),
}

impl HookedTransformer {
    /// The one runner: checks the plan's hook names, then reads the input (`source`, so that a
    /// bad hook name is reported before a bad input, as TransformerLens does), then runs with
    /// the persistent hooks and the plan's. The persistent hooks are released before it
    /// returns, so the caller may run the model again.
    fn session(
        &self,
        source: impl FnOnce() -> Result<Source>,
        plan: RunPlan<'_, '_>,
    ) -> Result<(Tensor, ActivationCache)> {
        if let Some(hooks) = &plan.hooks {
            self.check_hooks(&hooks.points())?;
        }
        if let Some((CacheFilter::Names(points), _)) = &plan.cache {
            self.check_hooks(points)?;
        }
        let source = source()?;
        let mut persistent = self.persistent()?;
        let mut s = HookSession::none().with_persistent(&mut persistent);
        if let Some(hooks) = plan.hooks {
            s = s.with_hooks(hooks);
        }
        if let Some((filter, device)) = plan.cache {
            s = s.with_cache(filter, device);
        }
        let _guard = if plan.gradients {
            s = s.tracking_gradients();
            None
        } else {
            Some(tch::no_grad_guard())
        };
        let out = match &source {
            Source::Tokens(t) => self.m.run(
                Start::Tokens(&t.tokens),
                t.attention_mask.as_ref(),
                plan.stop,
                None,
                plan.keep,
                &mut s,
            )?,
            Source::Residual(r, layer) => self.m.run(
                Start::Residual(r, *layer),
                None,
                plan.stop,
                None,
                plan.keep,
                &mut s,
            )?,
        };
        Ok((out, s.into_cache()))
    }

    /// `input` read as tokens, as the runner's source.
    fn tokens_of(&self, input: &(impl ModelInput + ?Sized)) -> Result<Source> {
        self.input(input, 0).map(Source::Tokens)
    }

    /// Logits of `input`.
    ///
    /// # Shapes
    /// - `input`: tokens `[batch, pos]` (or `[pos]`, or text) → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// Bad tokens (empty, out of vocabulary, too long), or a persistent hook's error.
    pub fn forward(&self, input: impl ModelInput) -> Result<Tensor> {
        let (logits, _) = self.session(|| self.tokens_of(&input), RunPlan::default())?;
        Ok(logits)
    }

    /// Logits with the autograd graph kept, for training: gradients flow to every weight
    /// that requires them. `hooks` apply for this run (and the persistent ones, as always).
    ///
    /// # Shapes
    /// - `input`: tokens `[batch, pos]` → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// As [`HookedTransformer::run_with_hooks`].
    pub fn forward_with_grad(
        &self,
        input: impl ModelInput,
        mut hooks: Hooks<'_>,
    ) -> Result<Tensor> {
        let plan = RunPlan {
            hooks: Some(&mut hooks),
            gradients: true,
            ..RunPlan::default()
        };
        let (logits, _) = self.session(|| self.tokens_of(&input), plan)?;
        Ok(logits)
    }

    /// [`HookedTransformer::forward_with_grad`]'s logits at the positions `keep` only, for a
    /// loss that reads no others. With no hooks (persistent or given), every block runs in
    /// full except the last, which carries only `keep` past its attention, so its MLP, the
    /// final norm and the unembedding run only there. With hooks, the run is the full one
    /// (every hook sees every position) and the logits are selected after it.
    ///
    /// # Shapes
    /// - `input`: tokens `[batch, pos]`, `keep`: `[k]` positions → `[batch, k, d_vocab]`
    ///
    /// # Errors
    /// As [`HookedTransformer::forward_with_grad`]; [`Error::InvalidInput`] for an empty
    /// `keep` or a position outside the input.
    pub fn forward_with_grad_at(
        &self,
        input: impl ModelInput,
        mut hooks: Hooks<'_>,
        keep: &[i64],
    ) -> Result<Tensor> {
        let index = Tensor::from_slice(keep).f_to_device(self.device())?;
        let hooked = !hooks.is_empty() || !self.persistent()?.is_empty();
        let plan = RunPlan {
            hooks: Some(&mut hooks),
            gradients: true,
            keep: (!hooked).then_some(&index),
            ..RunPlan::default()
        };
        let source = || -> Result<Source> {
            let tokens = self.tokens_of(&input)?;
            let len = match &tokens {
                Source::Tokens(t) => t.tokens.size()[1],
                Source::Residual(r, _) => r.size()[1],
            };
            if keep.is_empty() || keep.iter().any(|&p| p < 0 || p >= len) {
                return Err(Error::invalid(
                    "kept positions",
                    format!(
                        "must be non-empty and each in 0..{len} (the input's length), got {keep:?}"
                    ),
                ));
            }
            Ok(tokens)
        };
        let (logits, _) = self.session(source, plan)?;
        if hooked {
            Ok(logits.f_index_select(1, &index)?)
        } else {
            Ok(logits)
        }
    }

    /// Runs with `hooks` active for this run only; returns the logits.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a hook point the model lacks; a hook's own error;
    /// [`Error::ShapeMismatch`] for a replacement of the wrong shape.
    pub fn run_with_hooks(&self, input: impl ModelInput, mut hooks: Hooks<'_>) -> Result<Tensor> {
        let plan = RunPlan {
            hooks: Some(&mut hooks),
            ..RunPlan::default()
        };
        let (logits, _) = self.session(|| self.tokens_of(&input), plan)?;
        Ok(logits)
    }

    /// Runs and records the activations `filter` keeps. Returns `(logits, cache)`.
    ///
    /// # Errors
    /// As [`HookedTransformer::forward`]; [`Error::UnknownHook`] for a filter name the model lacks.
    pub fn run_with_cache(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
    ) -> Result<(Tensor, ActivationCache)> {
        self.run_with_hooks_and_cache(input, Hooks::new(), filter, None)
    }

    /// Runs with `hooks` and records what `filter` keeps, moving cached tensors to
    /// `cache_device` when given (e.g. `Some(Device::Cpu)` to spare GPU memory).
    ///
    /// # Errors
    /// See [`HookedTransformer::run_with_hooks`].
    pub fn run_with_hooks_and_cache(
        &self,
        input: impl ModelInput,
        mut hooks: Hooks<'_>,
        filter: CacheFilter,
        cache_device: Option<Device>,
    ) -> Result<(Tensor, ActivationCache)> {
        let plan = RunPlan {
            hooks: Some(&mut hooks),
            cache: Some((&filter, cache_device)),
            ..RunPlan::default()
        };
        self.session(|| self.tokens_of(&input), plan)
    }

    /// Gradients of a scalar `metric(logits)` with respect to the activations `filter` keeps
    /// (TransformerLens' backward hooks). Returns `(metric value, gradients by hook point)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the metric is not a scalar; the forward's errors.
    pub fn gradients(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
        metric: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<(f64, ActivationCache)> {
        let run = self.gradients_with_activations(input, filter, metric)?;
        Ok((run.value, run.gradients))
    }

    /// [`HookedTransformer::gradients`] that also returns the activations themselves (detached),
    /// from the same forward pass. Attribution patching needs both.
    ///
    /// # Errors
    /// As [`HookedTransformer::gradients`].
    pub fn gradients_with_activations(
        &self,
        input: impl ModelInput,
        filter: CacheFilter,
        metric: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<GradientRun> {
        let plan = RunPlan {
            cache: Some((&filter, None)),
            gradients: true,
            ..RunPlan::default()
        };
        // The session has released the hooks: the metric may run the model again.
        let (logits, acts) = self.session(|| self.tokens_of(&input), plan)?;
        let value = metric(&logits)?;
        if value.numel() != 1 {
            return Err(Error::ShapeMismatch {
                what: "metric".into(),
                expected: "a scalar (one element)".into(),
                got: value.size(),
            });
        }
        let (points, tensors): (Vec<HookPoint>, Vec<Tensor>) =
            acts.iter().map(|(p, t)| (*p, t.shallow_clone())).unzip();
        let grads = Tensor::f_run_backward(&[&value], &tensors, false, false)?;
        let (mut out_acts, mut out_grads) = (ActivationCache::new(), ActivationCache::new());
        for ((point, act), grad) in points.into_iter().zip(&tensors).zip(grads) {
            let grad = if grad.defined() {
                grad
            } else {
                act.zeros_like()
            };
            out_grads.insert(point, grad.detach());
            out_acts.insert(point, act.detach());
        }
        Ok(GradientRun {
            value: value.f_double_value(&[])?,
            activations: out_acts,
            gradients: out_grads,
        })
    }

    /// Mean next-token cross-entropy loss (a scalar).
    ///
    /// # Errors
    /// As [`HookedTransformer::forward`]; [`Error::InvalidInput`] for a single-token input.
    pub fn loss(&self, input: impl ModelInput) -> Result<Tensor> {
        let t = self.input(&input, 0)?;
        let per_token = self.per_token_loss_of(&t)?;
        match &t.attention_mask {
            Some(mask) => {
                let m = mask
                    .f_narrow(1, 1, per_token.size()[1])?
                    .f_to_kind(Kind::Float)?;
                Ok(per_token
                    .f_mul(&m)?
                    .f_sum(Kind::Float)?
                    .f_div(&m.f_sum(Kind::Float)?)?)
            }
            None => Ok(per_token.f_mean(Kind::Float)?),
        }
    }

    /// Next-token loss at each position: `[batch, pos - 1]`.
    ///
    /// # Errors
    /// As [`HookedTransformer::loss`].
    pub fn per_token_loss(&self, input: impl ModelInput) -> Result<Tensor> {
        let t = self.input(&input, 0)?;
        self.per_token_loss_of(&t)
    }

    fn per_token_loss_of(&self, t: &Tokens) -> Result<Tensor> {
        let p = t.tokens.size()[1];
        if p < 2 {
            return Err(Error::invalid("input", "a loss needs at least two tokens"));
        }
        let tokens = Tokens {
            tokens: t.tokens.shallow_clone(),
            attention_mask: t.attention_mask.as_ref().map(Tensor::shallow_clone),
            token_type_ids: None,
        };
        let (logits, _) = self.session(|| Ok(Source::Tokens(tokens)), RunPlan::default())?;
        let logp = logits
            .f_narrow(1, 0, p - 1)?
            .f_log_softmax(-1, Kind::Float)?;
        let next = t.tokens.f_narrow(1, 1, p - 1)?.f_unsqueeze(-1)?;
        Ok(logp
            .f_gather(-1, &next, false)?
            .f_squeeze_dim(-1)?
            .f_neg()?)
    }

    /// The residual stream entering block `stop_at_layer` (TransformerLens' `stop_at_layer`).
    ///
    /// # Shapes
    /// → `[batch, pos, d_model]`
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a layer past `n_layers`.
    pub fn forward_to_layer(&self, input: impl ModelInput, stop_at_layer: usize) -> Result<Tensor> {
        let source = || {
            self.check_layer("stop_at_layer", stop_at_layer)?;
            self.tokens_of(&input)
        };
        let plan = RunPlan {
            stop: Some(stop_at_layer),
            ..RunPlan::default()
        };
        let (residual, _) = self.session(source, plan)?;
        Ok(residual)
    }

    /// The activation at `point` alone, running only as far as it needs: blocks after the
    /// hook's layer are skipped (TransformerLens' `run_with_cache(names_filter=…,
    /// stop_at_layer=layer + 1)`). Persistent hooks and spliced SAEs apply as in a full run.
    ///
    /// # Shapes
    /// → the hook's shape, e.g. `[batch, pos, d_model]` on the residual stream.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a point the model lacks; the forward's errors.
    pub fn run_to_hook(&self, input: impl ModelInput, point: HookPoint) -> Result<Tensor> {
        let filter = CacheFilter::Names(vec![point]);
        let plan = RunPlan {
            cache: Some((&filter, None)),
            // After the last block this still skips the final norm and the unembedding.
            stop: point
                .layer()
                .map(|l| l + 1)
                .filter(|&l| l <= self.m.blocks.len()),
            ..RunPlan::default()
        };
        let (_, cache) = self.session(|| self.tokens_of(&input), plan)?;
        cache.get(point).map(|t| t.shallow_clone())
    }

    /// Logits from a residual stream entering block `start_at_layer` (TransformerLens'
    /// `start_at_layer`).
    ///
    /// # Shapes
    /// - `residual`: `[batch, pos, d_model]` → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a residual of the wrong shape; [`Error::InvalidInput`] for a
    /// layer past `n_layers`.
    pub fn forward_from_layer(&self, residual: &Tensor, start_at_layer: usize) -> Result<Tensor> {
        self.forward_from_layer_with_hooks(residual, start_at_layer, Hooks::new())
    }

    /// [`HookedTransformer::forward_from_layer`] with `hooks` active in the blocks it runs
    /// (hooks on earlier layers or the embeddings never fire). Activation patching uses it to
    /// rerun only what a patch can change.
    ///
    /// # Shapes
    /// - `residual`: `[batch, pos, d_model]` → `[batch, pos, d_vocab]`
    ///
    /// # Errors
    /// As [`HookedTransformer::forward_from_layer`] and [`HookedTransformer::run_with_hooks`].
    pub fn forward_from_layer_with_hooks(
        &self,
        residual: &Tensor,
        start_at_layer: usize,
        mut hooks: Hooks<'_>,
    ) -> Result<Tensor> {
        let source = || {
            self.check_layer("start_at_layer", start_at_layer)?;
            let d = self.m.cfg.d_model as i64;
            mechlens_core::shape::expect_shape(residual, "residual", &[None, None, Some(d)])?;
            Ok(Source::Residual(
                residual.f_to_device(self.device)?,
                start_at_layer,
            ))
        };
        let plan = RunPlan {
            hooks: Some(&mut hooks),
            ..RunPlan::default()
        };
        let (logits, _) = self.session(source, plan)?;
        Ok(logits)
    }

    fn check_layer(&self, what: &str, layer: usize) -> Result<()> {
        let n = self.m.cfg.n_layers;
        if layer > n {
            return Err(Error::invalid(
                what,
                format!("layer {layer} is past the model's {n} layers (0..={n})"),
            ));
        }
        Ok(())
    }
}
