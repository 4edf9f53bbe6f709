//! [`HookPoint`]: every place in a model where an activation can be read or changed.
//!
//! The names are exactly TransformerLens' (`blocks.3.attn.hook_pattern`), so a user moving
//! from Python types the same strings. Parsing an unknown name is an error that lists the
//! closest valid names, never a hook that silently never fires.
//!
//! - `sites`: the one table of sites (name, width, when a decoder fires it, its place in an
//!   encoder block), from which the enum and everything below are derived.
//! - `sae`: the hook points of a spliced SAE.
//! - `suggest`: the closest names to a mistyped one.

mod sae;
mod sites;
mod suggest;

use std::fmt;
use std::str::FromStr;

pub use sae::{SaeAnchor, SaeSite};
pub use sites::{DecoderSites, Fires, HookPoint, OptIn, Width, encoder_points};

use sites::{ENCODER_ALIASES, Group, SITES};
use suggest::closest;

use crate::{Error, Result};

/// Where a hook point comes in a forward pass: embeddings, then each block by layer, then the
/// final sites; an SAE's hooks right after the point it is spliced in at. Sorting hook points
/// by it puts them in forward order (the activation cache keeps them so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ForwardOrder {
    group: Group,
    layer: usize,
    site: u8,
    /// 0 for a model hook, 1 + the SAE site for an SAE's hook.
    sae_site: u8,
}

impl HookPoint {
    /// The block this hook sits in, or `None` for embedding and final hooks (an SAE's hooks
    /// sit in their anchor's block).
    pub fn layer(&self) -> Option<usize> {
        if let HookPoint::Sae(_, anchor) = self {
            return anchor.point().layer();
        }
        let (site, layer) = self.site()?;
        (SITES[site].group == Group::Block).then_some(layer)
    }

    /// What sets the width of this hook's last dim(s) (SAE hooks: [`Width::None`]).
    pub fn width(&self) -> Width {
        self.site()
            .map_or(Width::None, |(site, _)| SITES[site].width)
    }

    /// The hook `site` of an SAE spliced in at this point.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when this point is itself an SAE hook (SAEs do not nest).
    pub fn sae(self, site: SaeSite) -> Result<HookPoint> {
        let Some((index, layer)) = self.site() else {
            return Err(Error::invalid(
                "SAE hook point",
                format!("{self} is inside an SAE; splice SAEs at model hook points"),
            ));
        };
        let layer = u32::try_from(layer)
            .map_err(|_| Error::invalid("layer", format!("{layer} is too large")))?;
        // The table has fewer than 256 sites (a test checks), so the index fits.
        let site_index = u8::try_from(index)
            .map_err(|_| Error::invalid("hook site", format!("index {index} past 255")))?;
        Ok(HookPoint::Sae(
            site,
            SaeAnchor {
                site: site_index,
                layer,
            },
        ))
    }

    /// Where this hook comes in a forward pass (a sort key; see [`ForwardOrder`]).
    pub fn forward_order(&self) -> ForwardOrder {
        match self {
            HookPoint::Sae(site, anchor) => ForwardOrder {
                sae_site: 1 + *site as u8,
                ..anchor.point().forward_order()
            },
            _ => {
                let (site, layer) = self.site().unwrap_or_default();
                ForwardOrder {
                    group: SITES[site].group,
                    layer,
                    site: site as u8,
                    sae_site: 0,
                }
            }
        }
    }

    /// Every hook name a model with `n_layers` blocks could have, in forward order.
    ///
    /// Models list their own subset with `hook_points()`; this is the superset used for
    /// suggestions.
    pub fn all_names(n_layers: usize) -> Vec<String> {
        let named = |group: Group| SITES.iter().filter(move |s| s.group == group);
        let mut names: Vec<String> = named(Group::Embedding)
            .map(|s| s.name.to_string())
            .collect();
        for layer in 0..n_layers {
            names.extend(named(Group::Block).map(|s| format!("blocks.{layer}.{}", s.name)));
        }
        names.extend(named(Group::Final).map(|s| s.name.to_string()));
        names
    }

    /// Parses a name and checks it against `valid` (a model's hook points); an unknown or
    /// absent name is an [`Error::UnknownHook`] suggesting the closest of `valid`.
    pub fn parse_for(name: &str, valid: &[HookPoint]) -> Result<HookPoint> {
        match name.parse::<HookPoint>() {
            Ok(point) if valid.contains(&point) => Ok(point),
            _ => {
                let names: Vec<String> = valid.iter().map(|p| p.to_string()).collect();
                Err(Error::UnknownHook {
                    name: name.to_string(),
                    suggestions: closest(name, &names, 3),
                })
            }
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Sae(site, anchor) => write!(f, "{}.{}", anchor.point(), site.name()),
            _ => {
                let (site, layer) = self.site().unwrap_or_default();
                let site = &SITES[site];
                match site.group {
                    Group::Block => write!(f, "blocks.{layer}.{}", site.name),
                    _ => f.write_str(site.name),
                }
            }
        }
    }
}

impl FromStr for HookPoint {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let unknown = |layers: usize| Error::UnknownHook {
            name: name.to_string(),
            suggestions: closest(name, &HookPoint::all_names(layers), 3),
        };
        if let Some((anchor, site)) = name.rsplit_once(".hook_sae_") {
            let site = SaeSite::ALL
                .into_iter()
                .find(|s| s.name() == format!("hook_sae_{site}"))
                .ok_or_else(|| Error::UnknownHook {
                    name: name.to_string(),
                    suggestions: SaeSite::ALL
                        .iter()
                        .map(|s| format!("{anchor}.{}", s.name()))
                        .collect(),
                })?;
            return anchor.parse::<HookPoint>()?.sae(site);
        }
        if let Some(rest) = name.strip_prefix("blocks.") {
            let (layer, site) = rest.split_once('.').ok_or_else(|| unknown(1))?;
            let layer: usize = layer.parse().map_err(|_| unknown(1))?;
            return SITES
                .iter()
                .find(|s| s.group == Group::Block && s.name == site)
                .map(|s| (s.make)(layer))
                .ok_or_else(|| unknown(layer + 1));
        }
        SITES
            .iter()
            .filter(|s| s.group != Group::Block)
            .map(|s| ((s.make)(0), s.name))
            .chain(ENCODER_ALIASES)
            .find(|(_, n)| *n == name)
            .map(|(p, _)| p)
            .ok_or_else(|| unknown(1))
    }
}

impl TryFrom<&str> for HookPoint {
    type Error = Error;
    fn try_from(name: &str) -> Result<Self> {
        name.parse()
    }
}

/// Anything that names a hook point: a [`HookPoint`] or its TransformerLens string.
pub trait IntoHookPoint {
    /// The hook point, or an [`Error::UnknownHook`].
    fn into_hook_point(self) -> Result<HookPoint>;
}

impl IntoHookPoint for HookPoint {
    fn into_hook_point(self) -> Result<HookPoint> {
        Ok(self)
    }
}

impl IntoHookPoint for &HookPoint {
    fn into_hook_point(self) -> Result<HookPoint> {
        Ok(*self)
    }
}

impl IntoHookPoint for &str {
    fn into_hook_point(self) -> Result<HookPoint> {
        self.parse()
    }
}

impl IntoHookPoint for &String {
    fn into_hook_point(self) -> Result<HookPoint> {
        self.parse()
    }
}

impl IntoHookPoint for String {
    fn into_hook_point(self) -> Result<HookPoint> {
        self.parse()
    }
}

#[cfg(test)]
mod tests;
