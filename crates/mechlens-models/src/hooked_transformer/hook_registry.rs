//! Which hook points a [`HookedTransformer`] has, and the hooks that stay on it between runs
//! (persistent hooks and spliced SAEs).

use mechlens_core::{Error, Hook, HookPoint, Hooks, IntoHookPoint, Result, SaeSite};

use super::HookedTransformer;
use crate::config::Positional;

impl HookedTransformer {
    /// Every hook point this model fires, in forward order. Opt-in points appear once enabled
    /// (they also fire whenever a hook or cache filter names them).
    pub fn hook_points(&self) -> Vec<HookPoint> {
        use HookPoint::*;
        let cfg = &self.m.cfg;
        let mut points = vec![Embed];
        if self.m.embed.w_pos.is_some() {
            points.push(PosEmbed);
        }
        let rotary = matches!(cfg.positional, Positional::Rotary(_));
        for b in &self.m.blocks {
            let l = b.layer;
            points.push(ResidPre(l));
            if b.attn_in {
                points.push(AttnIn(l));
            } else if b.split_qkv_input {
                points.extend([QInput(l), KInput(l), VInput(l)]);
            }
            points.extend([Ln1Scale(l), Ln1Normalized(l), Q(l), K(l), V(l)]);
            if rotary {
                points.extend([RotQ(l), RotK(l)]);
            }
            points.extend([AttnScores(l), Pattern(l), Z(l)]);
            if b.attn.use_result {
                points.push(Result(l));
            }
            points.push(AttnOut(l));
            if !b.parallel {
                points.push(ResidMid(l));
            }
            if b.mlp_in {
                points.push(MlpIn(l));
            }
            points.extend([Ln2Scale(l), Ln2Normalized(l), MlpPre(l)]);
            if b.mlp.w_gate.is_some() {
                points.push(MlpPreLinear(l));
            }
            points.extend([MlpPost(l), MlpOut(l), ResidPost(l)]);
        }
        points.extend([LnFinalScale, LnFinalNormalized, UnembedIn, UnembedOut]);
        // A spliced SAE's hooks follow the point it is spliced in at.
        let anchors = self
            .hooks
            .try_borrow()
            .map(|h| h.splice_points())
            .unwrap_or_default();
        if !anchors.is_empty() {
            for anchor in anchors {
                points.extend(SaeSite::ALL.iter().filter_map(|s| anchor.sae(*s).ok()));
            }
            points.sort_by_key(HookPoint::forward_order);
            points.dedup();
        }
        points
    }

    /// Every hook point this model could fire, opt-in ones included.
    fn possible_hook_points(&self) -> Vec<HookPoint> {
        let mut points = self.hook_points();
        for l in 0..self.m.cfg.n_layers {
            points.extend([
                HookPoint::AttnIn(l),
                HookPoint::QInput(l),
                HookPoint::KInput(l),
                HookPoint::VInput(l),
                HookPoint::Result(l),
                HookPoint::MlpIn(l),
            ]);
        }
        points
    }

    /// Parses a hook name and checks the model has it.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] with the closest names this model has.
    pub fn hook_point(&self, name: impl IntoHookPoint) -> Result<HookPoint> {
        let valid = self.possible_hook_points();
        match name.into_hook_point() {
            Ok(p) if valid.contains(&p) => Ok(p),
            Ok(p) => HookPoint::parse_for(&p.to_string(), &valid),
            Err(Error::UnknownHook { name, .. }) => HookPoint::parse_for(&name, &valid),
            Err(e) => Err(e),
        }
    }

    pub(super) fn check_hooks(&self, points: &[HookPoint]) -> Result<()> {
        points
            .iter()
            .try_for_each(|p| self.hook_point(*p).map(|_| ()))
    }

    /// Adds a hook that stays for every later run until [`HookedTransformer::reset_hooks`].
    ///
    /// # Errors
    /// [`Error::UnknownHook`].
    pub fn add_hook(&self, point: impl IntoHookPoint, hook: Hook<'static>) -> Result<()> {
        let point = self.hook_point(point)?;
        self.persistent()?.push(point, hook);
        Ok(())
    }

    /// Removes every persistent hook.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_hooks(&self) -> Result<()> {
        self.persistent()?.clear();
        Ok(())
    }

    /// Removes the spliced modules (SAEs), keeping the other persistent hooks.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if called from inside a hook.
    pub fn reset_splices(&self) -> Result<()> {
        self.persistent()?.clear_splices();
        Ok(())
    }

    /// The width of the last dim(s) of the activation at `point` as an SAE reads it
    /// (`d_model` on the residual stream, `d_mlp` in the MLP, `n_heads·d_head` for per-head
    /// hooks), or `None` for points without one (patterns, LayerNorm scales).
    pub fn hook_width(&self, point: HookPoint) -> Option<i64> {
        use HookPoint::*;
        let cfg = &self.m.cfg;
        let width = match point {
            Embed | PosEmbed | TokenTypeEmbed | FullEmbed | ResidPre(_) | AttnIn(_) | QInput(_)
            | KInput(_) | VInput(_) | Ln1Normalized(_) | AttnOut(_) | ResidMid(_) | MlpIn(_)
            | Ln2Normalized(_) | MlpOut(_) | ResidPost(_) | LnFinalNormalized | UnembedIn => {
                cfg.d_model
            }
            MlpPre(_) | MlpPreLinear(_) | MlpPost(_) => cfg.d_mlp,
            Q(_) | RotQ(_) | Z(_) => cfg.n_heads * cfg.d_head,
            K(_) | V(_) | RotK(_) => cfg.n_kv_heads * cfg.d_head,
            _ => return None,
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
