//! What to do at hook points: [`Intervention`]s (typed edits) and closures, collected in
//! [`Hooks`]; and [`HookSession`], the state one forward pass threads through a model's
//! components so that each hook site is one line: `let x = session.hook(HookPoint::Z(l), x)?;`.

use std::fmt;
use std::rc::Rc;

use tch::{Device, Tensor};

use crate::{ActivationCache, CacheFilter, Error, HookPoint, IntoHookPoint, Result};

/// A typed edit of an activation.
pub enum Intervention {
    /// Replace the activation by this tensor, which must have the activation's shape.
    Replace(Tensor),
    /// Add this tensor (broadcast to the activation's shape; a steering vector is `[d_model]`).
    Add(Tensor),
    /// Multiply by a constant.
    Scale(f64),
    /// Set to zero (zero-ablation).
    Zero,
    /// Replace by its mean over the batch (dim 0): mean-ablation within the run.
    MeanAblate,
    /// Replace by a given mean (broadcast to the activation's shape), e.g. one computed over a
    /// reference dataset.
    Mean(Tensor),
}

impl fmt::Debug for Intervention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Replace(t) => write!(f, "Replace({:?})", t.size()),
            Self::Add(t) => write!(f, "Add({:?})", t.size()),
            Self::Scale(s) => write!(f, "Scale({s})"),
            Self::Zero => f.write_str("Zero"),
            Self::MeanAblate => f.write_str("MeanAblate"),
            Self::Mean(t) => write!(f, "Mean({:?})", t.size()),
        }
    }
}

/// A hook closure: gets the activation and its hook point; returns `Some(new)` to replace the
/// activation (same shape) or `None` to leave it as it is.
pub type HookFn<'a> = Box<dyn FnMut(&Tensor, HookPoint) -> Result<Option<Tensor>> + 'a>;

/// A module spliced into the model at a hook point (a sparse autoencoder): it replaces the
/// activation there, and runs its own hook sites through the same session so that they can
/// be cached and patched like the model's.
pub trait Splice {
    /// The replacement for `act`, the activation at hook point `at`.
    ///
    /// # Errors
    /// A shape the module cannot take, or an error from a hook on its own sites.
    fn splice(
        &self,
        act: Tensor,
        at: HookPoint,
        session: &mut HookSession<'_, '_>,
    ) -> Result<Tensor>;
}

/// One hook: a typed intervention, a closure, or a spliced module.
pub enum Hook<'a> {
    /// A typed edit.
    Intervene(Intervention),
    /// Arbitrary code.
    Closure(HookFn<'a>),
    /// A module that replaces the activation (runs after the point's other hooks and after
    /// the point is cached, so the cache keeps the model's own activation).
    Splice(Rc<dyn Splice>),
}

/// Hooks to apply during a run, in the order added (TransformerLens' order).
///
/// ```no_run
/// use mechlens_core::{Hooks, Intervention, HookPoint};
/// let hooks = Hooks::new()
///     .intervene("blocks.0.attn.hook_pattern", Intervention::Zero)?
///     .read(HookPoint::ResidPost(1), |act| { println!("{:?}", act.size()); Ok(()) })?;
/// # Ok::<(), mechlens_core::Error>(())
/// ```
#[derive(Default)]
pub struct Hooks<'a> {
    entries: Vec<(HookPoint, Hook<'a>)>,
}

impl<'a> Hooks<'a> {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a typed intervention at `point`.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a bad name.
    pub fn intervene(mut self, point: impl IntoHookPoint, edit: Intervention) -> Result<Self> {
        self.entries
            .push((point.into_hook_point()?, Hook::Intervene(edit)));
        Ok(self)
    }

    /// Adds a closure that reads the activation at `point` without changing it.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a bad name.
    pub fn read(
        mut self,
        point: impl IntoHookPoint,
        mut read: impl FnMut(&Tensor) -> Result<()> + 'a,
    ) -> Result<Self> {
        let hook: HookFn<'a> = Box::new(move |act, _| read(act).map(|()| None));
        self.entries
            .push((point.into_hook_point()?, Hook::Closure(hook)));
        Ok(self)
    }

    /// Adds a closure that returns a replacement for the activation at `point` (same shape).
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a bad name.
    pub fn edit(
        mut self,
        point: impl IntoHookPoint,
        mut edit: impl FnMut(&Tensor, HookPoint) -> Result<Tensor> + 'a,
    ) -> Result<Self> {
        let hook: HookFn<'a> = Box::new(move |act, p| edit(act, p).map(Some));
        self.entries
            .push((point.into_hook_point()?, Hook::Closure(hook)));
        Ok(self)
    }

    /// Adds a hook (in place; what persistent hooks use).
    pub fn push(&mut self, point: HookPoint, hook: Hook<'a>) {
        self.entries.push((point, hook));
    }

    /// Moves every hook of `other` to the end of these (in order).
    pub fn append(&mut self, other: Hooks<'a>) {
        self.entries.extend(other.entries);
    }

    /// The hook points that have hooks.
    pub fn points(&self) -> Vec<HookPoint> {
        self.entries.iter().map(|(p, _)| *p).collect()
    }

    /// Whether there are no hooks.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every hook.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes the spliced modules, keeping the other hooks.
    pub fn clear_splices(&mut self) {
        self.entries.retain(|(_, h)| !matches!(h, Hook::Splice(_)));
    }

    /// The points that have a spliced module.
    pub fn splice_points(&self) -> Vec<HookPoint> {
        self.entries
            .iter()
            .filter(|(_, h)| matches!(h, Hook::Splice(_)))
            .map(|(p, _)| *p)
            .collect()
    }

    fn has(&self, point: HookPoint) -> bool {
        self.entries.iter().any(|(p, _)| *p == point)
    }

    fn splices_at(&self, point: HookPoint) -> Vec<Rc<dyn Splice>> {
        self.entries
            .iter()
            .filter_map(|(p, h)| match h {
                Hook::Splice(s) if *p == point => Some(Rc::clone(s)),
                _ => None,
            })
            .collect()
    }

    fn apply(&mut self, point: HookPoint, mut act: Tensor) -> Result<Tensor> {
        for (p, hook) in &mut self.entries {
            if *p == point {
                act = apply_hook(hook, point, act)?;
            }
        }
        Ok(act)
    }
}

fn apply_hook(hook: &mut Hook<'_>, point: HookPoint, act: Tensor) -> Result<Tensor> {
    let shape = act.size();
    let new = match hook {
        Hook::Splice(_) => return Ok(act),
        Hook::Closure(f) => match f(&act, point)? {
            Some(new) => new,
            None => return Ok(act),
        },
        Hook::Intervene(edit) => match edit {
            Intervention::Replace(t) => t.f_to_device(act.device())?.f_to_kind(act.kind())?,
            Intervention::Add(t) => act.f_add(&t.f_to_device(act.device())?)?,
            Intervention::Scale(s) => act.f_mul_scalar(*s)?,
            Intervention::Zero => act.zeros_like(),
            Intervention::MeanAblate => act.f_mean_dim(0, true, None)?.f_expand_as(&act)?,
            Intervention::Mean(t) => {
                let t = t.f_to_device(act.device())?.f_to_kind(act.kind())?;
                t.f_expand(shape.as_slice(), false)
                    .map_err(|_| Error::ShapeMismatch {
                        what: format!("mean for {point}"),
                        expected: format!("a shape that broadcasts to {shape:?}"),
                        got: t.size(),
                    })?
            }
        },
    };
    if new.size() != shape {
        return Err(Error::ShapeMismatch {
            what: format!("replacement at {point}"),
            expected: format!("{shape:?} (the activation's shape)"),
            got: new.size(),
        });
    }
    Ok(new)
}

/// The hook state of one forward pass: the hooks to apply, what to cache, and whether
/// gradients are being tracked. Models call [`HookSession::hook`] at every hook site.
pub struct HookSession<'s, 'a> {
    persistent: Option<&'s mut Hooks<'static>>,
    hooks: Option<&'s mut Hooks<'a>>,
    filter: Option<&'s CacheFilter>,
    cache: ActivationCache,
    cache_device: Option<Device>,
    track_grad: bool,
}

impl<'s, 'a> HookSession<'s, 'a> {
    /// A session that does nothing: hook sites return their input untouched.
    pub fn none() -> Self {
        Self {
            persistent: None,
            hooks: None,
            filter: None,
            cache: ActivationCache::new(),
            cache_device: None,
            track_grad: false,
        }
    }

    /// Applies `hooks` during the run.
    pub fn with_hooks(mut self, hooks: &'s mut Hooks<'a>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Applies the model's persistent hooks (before the run's own).
    pub fn with_persistent(mut self, hooks: &'s mut Hooks<'static>) -> Self {
        if !hooks.is_empty() {
            self.persistent = Some(hooks);
        }
        self
    }

    /// Records the activations `filter` keeps, moved to `device` when given.
    pub fn with_cache(mut self, filter: &'s CacheFilter, device: Option<Device>) -> Self {
        self.filter = Some(filter);
        self.cache_device = device;
        self
    }

    /// Keeps the autograd graph: each hook site's activation becomes differentiable (a leaf
    /// when nothing upstream needs gradients), and cached tensors are not detached.
    pub fn tracking_gradients(mut self) -> Self {
        self.track_grad = true;
        self
    }

    /// Whether anything at all happens at hook sites (lets models take fused fast paths).
    pub fn is_active(&self) -> bool {
        self.persistent.is_some()
            || self.hooks.is_some()
            || self.filter.is_some()
            || self.track_grad
    }

    /// Whether `point` is hooked or cached in this run.
    pub fn wants(&self, point: HookPoint) -> bool {
        self.persistent.as_ref().is_some_and(|h| h.has(point))
            || self.hooks.as_ref().is_some_and(|h| h.has(point))
            || self.filter.is_some_and(|f| f.keeps(&point))
    }

    /// Whether `point` is named explicitly (a hook on it, or a cache filter listing it by
    /// name). Opt-in hook points (per-head results, split inputs) are computed only then or
    /// when the model enables them.
    pub fn names(&self, point: HookPoint) -> bool {
        self.persistent.as_ref().is_some_and(|h| h.has(point))
            || self.hooks.as_ref().is_some_and(|h| h.has(point))
            || matches!(self.filter, Some(CacheFilter::Names(points)) if points.contains(&point))
    }

    /// The hook site: applies hooks at `point` to `act`, records it if cached, and returns
    /// the (possibly replaced) activation.
    ///
    /// # Errors
    /// A hook's own error, or [`Error::ShapeMismatch`] for a replacement of the wrong shape.
    pub fn hook(&mut self, point: HookPoint, act: Tensor) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(act);
        }
        let mut act = act;
        if self.track_grad && !act.requires_grad() {
            act = act.detach().set_requires_grad(true);
        }
        if let Some(hooks) = self.persistent.as_mut() {
            act = hooks.apply(point, act)?;
        }
        if let Some(hooks) = self.hooks.as_mut() {
            act = hooks.apply(point, act)?;
        }
        if self.filter.is_some_and(|f| f.keeps(&point)) {
            let stored = if self.track_grad {
                act.shallow_clone()
            } else {
                act.detach()
            };
            let stored = match self.cache_device {
                Some(device) => stored.f_to_device(device)?,
                None => stored,
            };
            self.cache.insert(point, stored);
        }
        self.splice(point, act)
    }

    /// Runs the modules spliced in at `point` (persistent hooks first, then the run's own).
    fn splice(&mut self, point: HookPoint, mut act: Tensor) -> Result<Tensor> {
        let mut splices = Vec::new();
        if let Some(hooks) = self.persistent.as_ref() {
            splices.extend(hooks.splices_at(point));
        }
        if let Some(hooks) = self.hooks.as_ref() {
            splices.extend(hooks.splices_at(point));
        }
        for module in splices {
            let shape = act.size();
            act = module.splice(act, point, self)?;
            if act.size() != shape {
                return Err(Error::ShapeMismatch {
                    what: format!("output of the module spliced in at {point}"),
                    expected: format!("{shape:?} (the activation's shape)"),
                    got: act.size(),
                });
            }
        }
        Ok(act)
    }

    /// Ends the session, returning what it cached.
    pub fn into_cache(self) -> ActivationCache {
        self.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn act() -> Tensor {
        Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3])
    }

    #[test]
    fn interventions_edit_as_named() {
        let point = HookPoint::ResidPre(0);
        let mut hooks = Hooks::new()
            .intervene(point, Intervention::Scale(2.0))
            .unwrap()
            .intervene(
                point,
                Intervention::Add(Tensor::from_slice(&[1.0f32, 1.0, 1.0])),
            )
            .unwrap();
        let mut session = HookSession::none().with_hooks(&mut hooks);
        let out = session.hook(point, act()).unwrap();
        let expected = Tensor::from_slice(&[1.0f32, 3.0, 5.0, 7.0, 9.0, 11.0]).reshape([2, 3]);
        assert!(out.allclose(&expected, 0.0, 0.0, false));
    }

    #[test]
    fn mean_ablation_averages_over_batch() {
        let point = HookPoint::MlpOut(1);
        let mut hooks = Hooks::new()
            .intervene(point, Intervention::MeanAblate)
            .unwrap();
        let mut session = HookSession::none().with_hooks(&mut hooks);
        let out = session.hook(point, act()).unwrap();
        let expected = Tensor::from_slice(&[1.5f32, 2.5, 3.5, 1.5, 2.5, 3.5]).reshape([2, 3]);
        assert!(out.allclose(&expected, 0.0, 0.0, false));
    }

    #[test]
    fn wrong_replacement_shape_names_hook_and_shapes() {
        let point = HookPoint::Z(2);
        let mut hooks = Hooks::new()
            .intervene(
                point,
                Intervention::Replace(Tensor::zeros([3, 2], (Kind::Float, Device::Cpu))),
            )
            .unwrap();
        let mut session = HookSession::none().with_hooks(&mut hooks);
        let err = session.hook(point, act()).unwrap_err().to_string();
        assert!(err.contains("blocks.2.attn.hook_z"), "{err}");
        assert!(err.contains("[2, 3]") && err.contains("[3, 2]"), "{err}");
    }

    #[test]
    fn cache_keeps_only_filtered_points() {
        let filter = CacheFilter::names(["blocks.0.hook_resid_pre"]).unwrap();
        let mut session = HookSession::none().with_cache(&filter, None);
        let _ = session.hook(HookPoint::ResidPre(0), act()).unwrap();
        let _ = session.hook(HookPoint::ResidPost(0), act()).unwrap();
        let cache = session.into_cache();
        assert_eq!(cache.hook_points(), vec![HookPoint::ResidPre(0)]);
        assert!(
            cache
                .get("blocks.0.hook_resid_post")
                .unwrap_err()
                .to_string()
                .contains("run_with_cache")
        );
    }
}
