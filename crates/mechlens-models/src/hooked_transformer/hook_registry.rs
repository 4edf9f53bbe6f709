//! Which hook points a [`HookedTransformer`] has, and the hooks that stay on it between runs
//! (persistent hooks and spliced SAEs). Which sites fire where is mechlens-core's hook table;
//! this file only says what this model is (positions, block kind, MLP, the opt-in flags).

use mechlens_core::{
    DecoderSites, Error, Hook, HookPoint, Hooks, IntoHookPoint, Result, SaeSite, Width,
};

use super::HookedTransformer;
use crate::components::Block;
use crate::config::Positional;

impl HookedTransformer {
    /// Every hook point this model fires, in forward order. Opt-in points appear once enabled
    /// (they also fire whenever a hook or cache filter names them). A spliced SAE's hooks
    /// follow the point it is spliced in at.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        self.points(false)
    }

    /// The table's sites for this model: the ones it fires, or (`all_opt_in`) every one a hook
    /// or cache filter may name.
    fn points(&self, all_opt_in: bool) -> Vec<HookPoint> {
        let model = self.sites_of(None, all_opt_in);
        let mut points = model.embedding_points();
        for block in &self.m.blocks {
            points.extend(
                self.sites_of(Some(block), all_opt_in)
                    .block_points(block.layer),
            );
        }
        points.extend(model.final_points());
        // Kept beside the hooks (not read from them) so that this works inside a hook too,
        // while the run holds the hooks.
        let anchors = self.splice_anchors.borrow();
        if !anchors.is_empty() {
            for anchor in anchors.iter() {
                points.extend(SaeSite::ALL.iter().filter_map(|s| anchor.sae(*s).ok()));
            }
            points.sort_by_key(HookPoint::forward_order);
            points.dedup();
        }
        points
    }

    /// What this model is, for the hook table: the whole model's (`block: None`) or a block's.
    fn sites_of(&self, block: Option<&Block>, all_opt_in: bool) -> DecoderSites {
        let mut sites = DecoderSites {
            learned_positions: self.m.embed.w_pos.is_some(),
            unnormalized: self.m.cfg.normalization == crate::config::Normalization::Identity,
            rotary: matches!(self.m.cfg.positional, Positional::Rotary(_)),
            all_opt_in,
            ..DecoderSites::default()
        };
        if let Some(b) = block {
            sites.parallel = b.parallel;
            sites.gated_mlp = b.mlp.as_ref().is_some_and(|m| m.w_gate.is_some());
            sites.attn_only = b.mlp.is_none();
            sites.attn_in = b.attn_in;
            sites.split_qkv_input = b.split_qkv_input;
            sites.attn_result = b.attn.use_result;
            sites.mlp_in = b.mlp_in;
        }
        sites
    }

    /// Parses a hook name and checks the model has it.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] with the closest names this model has.
    pub fn hook_point(&self, name: impl IntoHookPoint) -> Result<HookPoint> {
        let valid = self.points(true);
        match name.into_hook_point() {
            Ok(p) if valid.contains(&p) => Ok(p),
            Ok(p) => HookPoint::parse_for(&p.to_string(), &valid),
            Err(Error::UnknownHook { name, .. }) => HookPoint::parse_for(&name, &valid),
            Err(e) => Err(e),
        }
    }

    /// Checks that the model has every point, building its list of points once (every run
    /// with hooks or a filter comes through here; patching does so hundreds of times).
    pub(super) fn check_hooks(&self, points: &[HookPoint]) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let valid = self.points(true);
        points
            .iter()
            .filter(|p| !valid.contains(p))
            .try_for_each(|p| HookPoint::parse_for(&p.to_string(), &valid).map(|_| ()))
    }

    /// Adds a hook that stays for every later run until [`HookedTransformer::reset_hooks`].
    ///
    /// # Errors
    /// [`Error::UnknownHook`].
    pub fn add_hook(&self, point: impl IntoHookPoint, hook: Hook<'static>) -> Result<()> {
        let point = self.hook_point(point)?;
        let mut hooks = self.persistent()?;
        hooks.push(point, hook);
        self.note_splices(&hooks);
        Ok(())
    }

    /// Adds `hooks` for every later run until [`HookedTransformer::reset_hooks`]: the same
    /// builder as a run's own hooks ([`HookedTransformer::run_with_hooks`]), kept.
    ///
    /// ```no_run
    /// # use mechlens_core::{Hooks, Intervention};
    /// # fn f(model: &mechlens_models::HookedTransformer) -> mechlens_core::Result<()> {
    /// model.add_hooks(Hooks::new().intervene("blocks.0.hook_mlp_out", Intervention::MeanAblate)?)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownHook`] (then none of them is added); [`Error::InvalidInput`] if called
    /// from inside a hook.
    pub fn add_hooks(&self, hooks: Hooks<'static>) -> Result<()> {
        self.check_hooks(&hooks.points())?;
        let mut persistent = self.persistent()?;
        persistent.append(hooks);
        self.note_splices(&persistent);
        Ok(())
    }

    /// Removes every persistent hook.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_hooks(&self) -> Result<()> {
        let mut hooks = self.persistent()?;
        hooks.clear();
        self.note_splices(&hooks);
        Ok(())
    }

    /// Removes the spliced modules (SAEs), keeping the other persistent hooks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_splices(&self) -> Result<()> {
        let mut hooks = self.persistent()?;
        hooks.clear_splices();
        self.note_splices(&hooks);
        Ok(())
    }

    /// Records where SAEs are spliced, after the persistent hooks changed.
    fn note_splices(&self, hooks: &Hooks<'static>) {
        *self.splice_anchors.borrow_mut() = hooks.splice_points();
    }

    /// The width of the last dim(s) of the activation at `point` as an SAE reads it
    /// (`d_model` on the residual stream, `d_mlp` in the MLP, `n_heads·d_head` for per-head
    /// hooks), or `None` for points without one (patterns, LayerNorm scales).
    pub fn hook_width(&self, point: HookPoint) -> Option<i64> {
        let cfg = &self.m.cfg;
        let width = match point.width() {
            Width::DModel => cfg.d_model,
            Width::DMlp => cfg.d_mlp,
            Width::QueryHeads => cfg.n_heads * cfg.d_head,
            Width::KvHeads => cfg.n_kv_heads * cfg.d_head,
            Width::None => return None,
        };
        i64::try_from(width).ok()
    }

    pub(crate) fn persistent(&self) -> Result<std::cell::RefMut<'_, Hooks<'static>>> {
        self.hooks.try_borrow_mut().map_err(|_| {
            Error::invalid(
                "hooks",
                "a hook cannot run or change the model it is hooked into",
            )
        })
    }
}
