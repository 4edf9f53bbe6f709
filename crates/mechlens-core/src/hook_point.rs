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
    /// The block this hook sits in, or `None` for embedding and final hooks.
    pub fn layer(&self) -> Option<usize> {
        self.block_site().map(|(layer, _)| layer)
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

    /// A key that sorts hooks in forward order: embeddings, blocks by layer, final.
    pub fn forward_order(&self) -> (usize, usize, usize) {
        if let Some((layer, index)) = self.block_site() {
            return (1, layer, index);
        }
        if let Some(i) = MODEL_SITES.iter().position(|(p, _)| p == self) {
            return (0, 0, i);
        }
        let i = FINAL_SITES.iter().position(|(p, _)| p == self).unwrap_or(0);
        (2, 0, i)
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
