//! [`HookPoint`]: every place in a model where an activation can be read or changed.
//!
//! The names are exactly TransformerLens' (`blocks.3.attn.hook_pattern`), so a user moving
//! from Python types the same strings. Parsing an unknown name is an error that lists the
//! closest valid names, never a hook that silently never fires.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A hook site. Variants with a `usize` live in that block (layer).
///
/// Layouts follow TransformerLens: residual-stream hooks are `[batch, pos, d_model]`,
/// per-head hooks `[batch, pos, head, d_head]` (keys and values of grouped-query attention
/// have `n_kv_heads` heads), attention scores and patterns `[batch, head, query_pos, key_pos]`,
/// MLP hooks `[batch, pos, d_mlp]`, LayerNorm scales `[batch, pos, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is documented by its TransformerLens name in `NAMES`
pub enum HookPoint {
    Embed,
    PosEmbed,
    TokenTypeEmbed,
    EmbedLnScale,
    EmbedLnNormalized,
    FullEmbed,
    ResidPre(usize),
    AttnIn(usize),
    QInput(usize),
    KInput(usize),
    VInput(usize),
    Ln1Scale(usize),
    Ln1Normalized(usize),
    Q(usize),
    K(usize),
    V(usize),
    RotQ(usize),
    RotK(usize),
    AttnScores(usize),
    Pattern(usize),
    Z(usize),
    Result(usize),
    AttnOut(usize),
    ResidMid(usize),
    MlpIn(usize),
    Ln2Scale(usize),
    Ln2Normalized(usize),
    MlpPre(usize),
    MlpPreLinear(usize),
    MlpPost(usize),
    MlpOut(usize),
    ResidPost(usize),
    NormalizedResidPost(usize),
    LnFinalScale,
    LnFinalNormalized,
    UnembedIn,
    UnembedOut,
    /// A hook inside a sparse autoencoder spliced in at another hook point
    /// (`blocks.3.hook_resid_pre.hook_sae_acts_post`, SAELens' names).
    Sae(SaeSite, SaeAnchor),
}

/// The hook points of a spliced sparse autoencoder, in forward order (SAELens' names).
///
/// Shapes: input, recons, error and output have the anchor's shape (`[..., d_in]`); acts
/// have `[..., d_sae]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaeSite {
    /// `hook_sae_input`: the activation the SAE reads (before normalisation).
    Input,
    /// `hook_sae_acts_pre`: latent pre-activations.
    ActsPre,
    /// `hook_sae_acts_post`: latent activations (after ReLU / TopK / threshold).
    ActsPost,
    /// `hook_sae_recons`: the reconstruction (before de-normalisation).
    Recons,
    /// `hook_sae_error`: input − reconstruction (only when the error term is kept).
    Error,
    /// `hook_sae_output`: what replaces the activation in the model.
    Output,
}

impl SaeSite {
    /// Every site, in forward order.
    pub const ALL: [SaeSite; 6] = [
        SaeSite::Input,
        SaeSite::ActsPre,
        SaeSite::ActsPost,
        SaeSite::Recons,
        SaeSite::Error,
        SaeSite::Output,
    ];

    /// The name after the anchor: `hook_sae_acts_post`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Input => "hook_sae_input",
            Self::ActsPre => "hook_sae_acts_pre",
            Self::ActsPost => "hook_sae_acts_post",
            Self::Recons => "hook_sae_recons",
            Self::Error => "hook_sae_error",
            Self::Output => "hook_sae_output",
        }
    }
}

/// The model hook point an SAE is spliced into, stored compactly so that [`HookPoint`] stays
/// `Copy`. Built by [`HookPoint::sae`]; read back by [`SaeAnchor::point`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaeAnchor {
    group: u8,
    index: u8,
    layer: u32,
}

impl SaeAnchor {
    /// The model hook point.
    pub fn point(self) -> HookPoint {
        let (group, layer, index) = (self.group, self.layer as usize, self.index as usize);
        match group {
            0 => MODEL_SITES[index].0,
            1 => BLOCK_SITES[index].0(layer),
            _ => FINAL_SITES[index].0,
        }
    }
}

/// Hook sites outside the blocks, in forward order, with their names.
const MODEL_SITES: [(HookPoint, &str); 6] = [
    (HookPoint::Embed, "hook_embed"),
    (HookPoint::PosEmbed, "hook_pos_embed"),
    (HookPoint::TokenTypeEmbed, "embed.hook_token_type_embed"),
    (HookPoint::EmbedLnScale, "embed.ln.hook_scale"),
    (HookPoint::EmbedLnNormalized, "embed.ln.hook_normalized"),
    (HookPoint::FullEmbed, "hook_full_embed"),
];

const FINAL_SITES: [(HookPoint, &str); 4] = [
    (HookPoint::LnFinalScale, "ln_final.hook_scale"),
    (HookPoint::LnFinalNormalized, "ln_final.hook_normalized"),
    (HookPoint::UnembedIn, "unembed.hook_in"),
    (HookPoint::UnembedOut, "unembed.hook_out"),
];

type BlockSite = (fn(usize) -> HookPoint, &'static str);

/// Hook sites inside a block, in forward order, with the name after `blocks.L.`.
const BLOCK_SITES: [BlockSite; 27] = [
    (HookPoint::ResidPre, "hook_resid_pre"),
    (HookPoint::AttnIn, "hook_attn_in"),
    (HookPoint::QInput, "hook_q_input"),
    (HookPoint::KInput, "hook_k_input"),
    (HookPoint::VInput, "hook_v_input"),
    (HookPoint::Ln1Scale, "ln1.hook_scale"),
    (HookPoint::Ln1Normalized, "ln1.hook_normalized"),
    (HookPoint::Q, "attn.hook_q"),
    (HookPoint::K, "attn.hook_k"),
    (HookPoint::V, "attn.hook_v"),
    (HookPoint::RotQ, "attn.hook_rot_q"),
    (HookPoint::RotK, "attn.hook_rot_k"),
    (HookPoint::AttnScores, "attn.hook_attn_scores"),
    (HookPoint::Pattern, "attn.hook_pattern"),
    (HookPoint::Z, "attn.hook_z"),
    (HookPoint::Result, "attn.hook_result"),
    (HookPoint::AttnOut, "hook_attn_out"),
    (HookPoint::ResidMid, "hook_resid_mid"),
    (HookPoint::MlpIn, "hook_mlp_in"),
    (HookPoint::Ln2Scale, "ln2.hook_scale"),
    (HookPoint::Ln2Normalized, "ln2.hook_normalized"),
    (HookPoint::MlpPre, "mlp.hook_pre"),
    (HookPoint::MlpPreLinear, "mlp.hook_pre_linear"),
    (HookPoint::MlpPost, "mlp.hook_post"),
    (HookPoint::MlpOut, "hook_mlp_out"),
    (HookPoint::ResidPost, "hook_resid_post"),
    (HookPoint::NormalizedResidPost, "hook_normalized_resid_post"),
];

/// TransformerLens' encoder puts the embedding hooks under `embed.`.
const ENCODER_ALIASES: [(HookPoint, &str); 2] = [
    (HookPoint::Embed, "embed.hook_embed"),
    (HookPoint::PosEmbed, "embed.hook_pos_embed"),
];

impl HookPoint {
    /// The block this hook sits in, or `None` for embedding and final hooks (an SAE's hooks
    /// sit in their anchor's block).
    pub fn layer(&self) -> Option<usize> {
        if let HookPoint::Sae(_, anchor) = self {
            return anchor.point().layer();
        }
        self.block_site().map(|(layer, _)| layer)
    }

    /// The hook `site` of an SAE spliced in at this point.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when this point is itself an SAE hook (SAEs do not nest).
    pub fn sae(self, site: SaeSite) -> Result<HookPoint> {
        let (group, layer, index, _) = self.forward_order();
        if matches!(self, HookPoint::Sae(..)) {
            return Err(Error::invalid(
                "SAE hook point",
                format!("{self} is inside an SAE; splice SAEs at model hook points"),
            ));
        }
        let layer = u32::try_from(layer)
            .map_err(|_| Error::invalid("layer", format!("{layer} is too large")))?;
        Ok(HookPoint::Sae(
            site,
            SaeAnchor {
                group: group as u8,
                index: index as u8,
                layer,
            },
        ))
    }

    /// `(layer, index into the block's forward order)` for block hooks.
    fn block_site(&self) -> Option<(usize, usize)> {
        use HookPoint::*;
        let layer = match *self {
            ResidPre(l)
            | AttnIn(l)
            | QInput(l)
            | KInput(l)
            | VInput(l)
            | Ln1Scale(l)
            | Ln1Normalized(l)
            | Q(l)
            | K(l)
            | V(l)
            | RotQ(l)
            | RotK(l)
            | AttnScores(l)
            | Pattern(l)
            | Z(l)
            | Result(l)
            | AttnOut(l)
            | ResidMid(l)
            | MlpIn(l)
            | Ln2Scale(l)
            | Ln2Normalized(l)
            | MlpPre(l)
            | MlpPreLinear(l)
            | MlpPost(l)
            | MlpOut(l)
            | ResidPost(l)
            | NormalizedResidPost(l) => l,
            _ => return None,
        };
        let index = BLOCK_SITES
            .iter()
            .position(|(make, _)| make(layer) == *self)?;
        Some((layer, index))
    }

    /// A key that sorts hooks in forward order: embeddings, blocks by layer, final; an SAE's
    /// hooks right after the point it is spliced in at.
    pub fn forward_order(&self) -> (usize, usize, usize, usize) {
        if let HookPoint::Sae(site, anchor) = self {
            let (group, layer, index, _) = anchor.point().forward_order();
            return (group, layer, index, 1 + *site as usize);
        }
        if let Some((layer, index)) = self.block_site() {
            return (1, layer, index, 0);
        }
        if let Some(i) = MODEL_SITES.iter().position(|(p, _)| p == self) {
            return (0, 0, i, 0);
        }
        let i = FINAL_SITES.iter().position(|(p, _)| p == self).unwrap_or(0);
        (2, 0, i, 0)
    }

    /// Every hook name a model with `n_layers` blocks could have, in forward order.
    ///
    /// Models list their own subset with `hook_points()`; this is the superset used for
    /// suggestions.
    pub fn all_names(n_layers: usize) -> Vec<String> {
        let mut names: Vec<String> = MODEL_SITES.iter().map(|(_, n)| n.to_string()).collect();
        for layer in 0..n_layers {
            names.extend(
                BLOCK_SITES
                    .iter()
                    .map(|(_, n)| format!("blocks.{layer}.{n}")),
            );
        }
        names.extend(FINAL_SITES.iter().map(|(_, n)| n.to_string()));
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
        if let HookPoint::Sae(site, anchor) = self {
            return write!(f, "{}.{}", anchor.point(), site.name());
        }
        if let Some((layer, index)) = self.block_site() {
            return write!(f, "blocks.{layer}.{}", BLOCK_SITES[index].1);
        }
        let name = MODEL_SITES
            .iter()
            .chain(FINAL_SITES.iter())
            .find(|(p, _)| p == self)
            .map_or("?", |(_, n)| n);
        f.write_str(name)
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
            return BLOCK_SITES
                .iter()
                .find(|(_, n)| *n == site)
                .map(|(make, _)| make(layer))
                .ok_or_else(|| unknown(layer + 1));
        }
        MODEL_SITES
            .iter()
            .chain(FINAL_SITES.iter())
            .chain(ENCODER_ALIASES.iter())
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
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

/// The `n` names of `candidates` closest to `name` by edit distance.
pub fn closest(name: &str, candidates: &[String], n: usize) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .map(|c| (edit_distance(name, c), c))
        .collect();
    scored.sort_by_key(|(d, _)| *d);
    scored.into_iter().take(n).map(|(_, c)| c.clone()).collect()
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for name in HookPoint::all_names(3) {
            let point: HookPoint = name.parse().unwrap();
            assert_eq!(point.to_string(), name);
        }
    }

    #[test]
    fn names_are_transformer_lens_strings() {
        assert_eq!(
            HookPoint::Pattern(3).to_string(),
            "blocks.3.attn.hook_pattern"
        );
        assert_eq!(
            HookPoint::Ln1Scale(0).to_string(),
            "blocks.0.ln1.hook_scale"
        );
        assert_eq!(
            HookPoint::LnFinalNormalized.to_string(),
            "ln_final.hook_normalized"
        );
        assert_eq!(
            "embed.hook_embed".parse::<HookPoint>().unwrap(),
            HookPoint::Embed
        );
    }

    #[test]
    fn unknown_name_suggests_close_ones() {
        let err = "blocks.2.attn.hook_patern"
            .parse::<HookPoint>()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("blocks.2.attn.hook_pattern"), "{text}");
        let err = HookPoint::parse_for("blocks.9.hook_resid_pre", &[HookPoint::ResidPre(1)]);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("blocks.1.hook_resid_pre")
        );
    }

    #[test]
    fn sae_hooks_use_saelens_names() {
        let name = "blocks.2.hook_resid_pre.hook_sae_acts_post";
        let point: HookPoint = name.parse().unwrap();
        assert_eq!(
            point,
            HookPoint::ResidPre(2).sae(SaeSite::ActsPost).unwrap()
        );
        assert_eq!(point.to_string(), name);
        assert_eq!(point.layer(), Some(2));
        let err = "blocks.2.hook_resid_pre.hook_sae_act"
            .parse::<HookPoint>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("hook_sae_acts_post"), "{err}");
        assert!(point.sae(SaeSite::Input).is_err());
        // An SAE's hooks sort right after its anchor, before the next model hook.
        let mut points = vec![HookPoint::AttnIn(2), point, HookPoint::ResidPre(2)];
        points.sort_by_key(HookPoint::forward_order);
        assert_eq!(
            points,
            vec![HookPoint::ResidPre(2), point, HookPoint::AttnIn(2)]
        );
    }

    #[test]
    fn forward_order_sorts_layers_then_sites() {
        let mut points = vec![
            HookPoint::LnFinalScale,
            HookPoint::Q(1),
            HookPoint::Pattern(0),
            HookPoint::Embed,
        ];
        points.sort_by_key(HookPoint::forward_order);
        assert_eq!(
            points,
            vec![
                HookPoint::Embed,
                HookPoint::Pattern(0),
                HookPoint::Q(1),
                HookPoint::LnFinalScale
            ]
        );
    }
}
