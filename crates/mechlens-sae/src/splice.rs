//! Splicing an SAE into a model (SAELens' `HookedSAETransformer.add_sae`).
//!
//! The SAE replaces the activation at its hook point with its output. Its own hook sites are
//! named after that point (`blocks.2.hook_resid_pre.hook_sae_acts_post`) and are cached and
//! patched like the model's. With the error term kept, the model's output is unchanged, and
//! an edit of a latent changes it by exactly that latent's contribution.
//!
//! The model's hook at the point itself still sees the model's own activation (it runs, and
//! is cached, before the SAE).

use std::rc::Rc;

use mechlens_core::{Error, Hook, HookPoint, HookSession, IntoHookPoint, Result, Splice};
use mechlens_models::HookedTransformer;
use tch::Tensor;

use crate::sae::{Sae, Sites};

/// An SAE attached at a hook point.
pub struct SplicedSae {
    sae: Rc<Sae>,
    use_error_term: bool,
}

impl SplicedSae {
    /// `sae`, replacing the activation with its reconstruction, plus the error term
    /// (`x − sae(x)`, so that the output is unchanged) when `use_error_term`.
    pub fn new(sae: Rc<Sae>, use_error_term: bool) -> Self {
        Self {
            sae,
            use_error_term,
        }
    }
}

impl Splice for SplicedSae {
    fn splice(
        &self,
        act: Tensor,
        at: HookPoint,
        session: &mut HookSession<'_, '_>,
    ) -> Result<Tensor> {
        let out = self
            .sae
            .forward_with(&act, self.use_error_term, &mut Sites::of(session, at))?;
        Ok(out.f_to_kind(act.kind())?)
    }
}

/// How to splice an SAE in (SAELens' `use_error_term`).
#[derive(Clone, Debug, Default)]
pub struct SpliceOptions {
    /// The hook point to attach at; by default the SAE's own (`cfg.json` metadata `hook_name`).
    pub at: Option<String>,
    /// Add back what the SAE fails to reconstruct, so the model's output is unchanged and only
    /// edits to the SAE's latents change it (SAELens' `use_error_term`).
    pub use_error_term: bool,
}

/// SAEs on a [`HookedTransformer`].
pub trait SaeSplicing {
    /// Attaches `sae` at its hook point (`sae.cfg` metadata `hook_name`, or `opts.at` when
    /// given) for every later run, until [`SaeSplicing::reset_saes`] or `reset_hooks`.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a point the model lacks, [`Error::InvalidInput`] when the SAE
    /// names no hook point and none is given, [`Error::ShapeMismatch`] when `d_in` differs
    /// from the width of the activation there (checked on the first run).
    /// Pass an `Rc<Sae>` to keep using the SAE yourself, or the `Sae` to hand it over.
    fn add_sae(&self, sae: impl Into<Rc<Sae>>, opts: SpliceOptions) -> Result<HookPoint>;

    /// Detaches every SAE, keeping the other persistent hooks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    fn reset_saes(&self) -> Result<()>;
}

impl SaeSplicing for HookedTransformer {
    fn add_sae(&self, sae: impl Into<Rc<Sae>>, opts: SpliceOptions) -> Result<HookPoint> {
        let sae: Rc<Sae> = sae.into();
        let SpliceOptions { at, use_error_term } = opts;
        let name = match at.as_deref().or(sae.cfg.hook_name()) {
            Some(name) => name.to_string(),
            None => {
                return Err(Error::invalid(
                    "SAE hook point",
                    "the SAE's cfg.json has no metadata.hook_name; pass the hook point to attach it at",
                ));
            }
        };
        let point = self.hook_point(name.as_str().into_hook_point()?)?;
        let width = self.hook_width(point);
        if let Some(width) = width
            && width != sae.cfg.d_in
        {
            return Err(Error::ShapeMismatch {
                what: format!("SAE spliced in at {point}"),
                expected: format!("d_in = {width} (the width of {point})"),
                got: vec![sae.cfg.d_in],
            });
        }
        self.add_hook(
            point,
            Hook::Splice(Rc::new(SplicedSae {
                sae,
                use_error_term,
            })),
        )?;
        Ok(point)
    }

    fn reset_saes(&self) -> Result<()> {
        self.reset_splices()
    }
}
