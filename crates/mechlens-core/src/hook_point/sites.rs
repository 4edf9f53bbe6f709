//! The one table of hook sites: each site's TransformerLens name, what sets its width, when a
//! decoder fires it, and where it sits in an encoder (BERT) block. [`HookPoint`]'s variants,
//! its names both ways, the forward order, a model's list of hook points, hook widths and the
//! encoder's list all come from here.

/// What the last dim(s) of a site's activation measure, as an SAE reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// `d_model`: the residual stream and everything written into it.
    DModel,
    /// `d_mlp`: inside the MLP.
    DMlp,
    /// `n_heads · d_head`: per query head.
    QueryHeads,
    /// `n_kv_heads · d_head`: per key/value head.
    KvHeads,
    /// No width an SAE could read: patterns, scores, LayerNorm scales, logits.
    None,
}

/// A TransformerLens flag that turns a site on (it also fires whenever a hook or a cache
/// filter names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptIn {
    /// `use_attn_in`: `hook_attn_in`.
    AttnIn,
    /// `use_split_qkv_input`: `hook_q_input`, `hook_k_input`, `hook_v_input`.
    SplitQkvInput,
    /// `use_attn_result`: `attn.hook_result`.
    AttnResult,
    /// `use_hook_mlp_in`: `hook_mlp_in`.
    MlpIn,
}

/// When a decoder fires a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fires {
    /// In every decoder.
    Always,
    /// With learned position embeddings (GPT-2, GPT-Neo).
    LearnedPositions,
    /// With rotary embeddings (NeoX, Llama).
    Rotary,
    /// In blocks whose MLP reads the attention's output (not GPT-J/NeoX parallel blocks, not
    /// attention-only blocks).
    SequentialBlock,
    /// In blocks with an MLP (not TransformerLens' `attn_only` models).
    Mlp,
    /// Where the model normalises (not `normalization_type=None`).
    Normalized,
    /// The MLP's norm: with an MLP and normalisation.
    MlpNorm,
    /// With a gated MLP (Llama).
    GatedMlp,
    /// When its flag is on.
    OptIn(OptIn),
    /// Never in a decoder (BERT's embedding LayerNorm, token types, post-norm output).
    Never,
}

/// Whether a site is outside the blocks (before or after them) or in each block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Group {
    Embedding,
    Block,
    Final,
}

/// One row of the table.
pub(crate) struct Site {
    pub(crate) group: Group,
    /// The TransformerLens name (after `blocks.L.` for block sites).
    pub(crate) name: &'static str,
    /// The hook point of this site in `layer` (ignored outside blocks).
    pub(crate) make: fn(usize) -> HookPoint,
    pub(crate) width: Width,
    pub(crate) fires: Fires,
    /// Position in a BERT block's (post-norm) forward order, or in the embeddings; `None`
    /// where an encoder has no such site.
    pub(crate) encoder: Option<u8>,
}

/// Declares [`HookPoint`] and [`SITES`] from one list, so that a site is written once.
macro_rules! hook_sites {
    (
        embedding { $( $ev:ident = $ename:literal, $ewidth:ident, $efires:expr, $eenc:expr; )* }
        block { $( $bv:ident = $bname:literal, $bwidth:ident, $bfires:expr, $benc:expr; )* }
        final { $( $fv:ident = $fname:literal, $fwidth:ident, $ffires:expr, $fenc:expr; )* }
    ) => {
        /// A hook site. Variants with a `usize` live in that block (layer).
        ///
        /// Layouts follow TransformerLens: residual-stream hooks are `[batch, pos, d_model]`,
        /// per-head hooks `[batch, pos, head, d_head]` (keys and values of grouped-query
        /// attention have `n_kv_heads` heads), attention scores and patterns
        /// `[batch, head, query_pos, key_pos]`, MLP hooks `[batch, pos, d_mlp]`, LayerNorm
        /// scales `[batch, pos, 1]`. Each variant's documentation is its TransformerLens name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HookPoint {
            $( #[doc = concat!("`", $ename, "`")] $ev, )*
            $( #[doc = concat!("`blocks.L.", $bname, "`")] $bv(usize), )*
            $( #[doc = concat!("`", $fname, "`")] $fv, )*
            /// A hook inside a sparse autoencoder spliced in at another hook point
            /// (`blocks.3.hook_resid_pre.hook_sae_acts_post`, SAELens' names).
            Sae(super::SaeSite, super::SaeAnchor),
        }

        /// Each site's index in [`SITES`] (declared in the same order).
        #[derive(Clone, Copy)]
        #[repr(u8)]
        #[allow(clippy::enum_variant_names)]
        enum SiteId {
            $( $ev, )*
            $( $bv, )*
            $( $fv, )*
        }

        /// Every site, in forward order: embeddings, a block, the final ones.
        pub(crate) const SITES: &[Site] = &[
            $( Site { group: Group::Embedding, name: $ename, make: |_| HookPoint::$ev,
                      width: Width::$ewidth, fires: $efires, encoder: $eenc }, )*
            $( Site { group: Group::Block, name: $bname, make: HookPoint::$bv,
                      width: Width::$bwidth, fires: $bfires, encoder: $benc }, )*
            $( Site { group: Group::Final, name: $fname, make: |_| HookPoint::$fv,
                      width: Width::$fwidth, fires: $ffires, encoder: $fenc }, )*
        ];

        impl HookPoint {
            /// `(index into SITES, layer)` (layer 0 outside blocks); `None` for SAE hooks.
            pub(crate) fn site(&self) -> Option<(usize, usize)> {
                match *self {
                    $( HookPoint::$ev => Some((SiteId::$ev as usize, 0)), )*
                    $( HookPoint::$bv(layer) => Some((SiteId::$bv as usize, layer)), )*
                    $( HookPoint::$fv => Some((SiteId::$fv as usize, 0)), )*
                    HookPoint::Sae(..) => None,
                }
            }
        }
    };
}

use Fires::{
    Always, GatedMlp, LearnedPositions, Mlp, MlpNorm, Never, Normalized, Rotary, SequentialBlock,
};
use OptIn::{AttnIn, AttnResult, MlpIn, SplitQkvInput};

hook_sites! {
    embedding {
        Embed = "hook_embed", DModel, Always, Some(0);
        PosEmbed = "hook_pos_embed", DModel, LearnedPositions, Some(1);
        TokenTypeEmbed = "embed.hook_token_type_embed", DModel, Never, Some(2);
        EmbedLnScale = "embed.ln.hook_scale", None, Never, Some(3);
        EmbedLnNormalized = "embed.ln.hook_normalized", DModel, Never, Some(4);
        FullEmbed = "hook_full_embed", DModel, Never, Some(5);
    }
    block {
        ResidPre = "hook_resid_pre", DModel, Always, Some(0);
        AttnIn = "hook_attn_in", DModel, Fires::OptIn(AttnIn), None;
        QInput = "hook_q_input", DModel, Fires::OptIn(SplitQkvInput), None;
        KInput = "hook_k_input", DModel, Fires::OptIn(SplitQkvInput), None;
        VInput = "hook_v_input", DModel, Fires::OptIn(SplitQkvInput), None;
        Ln1Scale = "ln1.hook_scale", None, Normalized, Some(9);
        Ln1Normalized = "ln1.hook_normalized", DModel, Normalized, Some(10);
        Q = "attn.hook_q", QueryHeads, Always, Some(1);
        K = "attn.hook_k", KvHeads, Always, Some(2);
        V = "attn.hook_v", KvHeads, Always, Some(3);
        RotQ = "attn.hook_rot_q", QueryHeads, Rotary, None;
        RotK = "attn.hook_rot_k", KvHeads, Rotary, None;
        AttnScores = "attn.hook_attn_scores", None, Always, Some(4);
        Pattern = "attn.hook_pattern", None, Always, Some(5);
        Z = "attn.hook_z", QueryHeads, Always, Some(6);
        AttnResult = "attn.hook_result", None, Fires::OptIn(AttnResult), None;
        AttnOut = "hook_attn_out", DModel, Always, Some(7);
        ResidMid = "hook_resid_mid", DModel, SequentialBlock, Some(8);
        MlpIn = "hook_mlp_in", DModel, Fires::OptIn(MlpIn), None;
        Ln2Scale = "ln2.hook_scale", None, MlpNorm, Some(15);
        Ln2Normalized = "ln2.hook_normalized", DModel, MlpNorm, Some(16);
        MlpPre = "mlp.hook_pre", DMlp, Mlp, Some(11);
        MlpPreLinear = "mlp.hook_pre_linear", DMlp, GatedMlp, None;
        MlpPost = "mlp.hook_post", DMlp, Mlp, Some(12);
        MlpOut = "hook_mlp_out", DModel, Mlp, Some(13);
        ResidPost = "hook_resid_post", DModel, Always, Some(14);
        NormalizedResidPost = "hook_normalized_resid_post", DModel, Never, Some(17);
    }
    final {
        LnFinalScale = "ln_final.hook_scale", None, Normalized, None;
        LnFinalNormalized = "ln_final.hook_normalized", DModel, Normalized, None;
        UnembedIn = "unembed.hook_in", DModel, Always, None;
        UnembedOut = "unembed.hook_out", None, Always, None;
    }
}

/// TransformerLens' encoder puts the embedding hooks under `embed.`; these names parse too.
pub(crate) const ENCODER_ALIASES: [(HookPoint, &str); 2] = [
    (HookPoint::Embed, "embed.hook_embed"),
    (HookPoint::PosEmbed, "embed.hook_pos_embed"),
];

/// What decides which sites a decoder fires: its architecture and TransformerLens' opt-in
/// flags. Blocks may differ (each passes its own).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecoderSites {
    /// Learned position embeddings (`hook_pos_embed`).
    pub learned_positions: bool,
    /// Rotary embeddings (`attn.hook_rot_q`, `attn.hook_rot_k`).
    pub rotary: bool,
    /// A parallel block: attention and MLP read the same input (no `hook_resid_mid`).
    pub parallel: bool,
    /// A gated MLP (`mlp.hook_pre_linear`).
    pub gated_mlp: bool,
    /// No MLP (TransformerLens' `attn_only`): no MLP, `ln2` or `hook_resid_mid` sites.
    pub attn_only: bool,
    /// No normalisation (`normalization_type=None`): no `ln*` sites.
    pub unnormalized: bool,
    /// `use_attn_in` (takes precedence over `use_split_qkv_input`, as in TransformerLens).
    pub attn_in: bool,
    /// `use_split_qkv_input`.
    pub split_qkv_input: bool,
    /// `use_attn_result`.
    pub attn_result: bool,
    /// `use_hook_mlp_in`.
    pub mlp_in: bool,
    /// Every opt-in site whatever the flags: the points a hook or cache filter may name.
    pub all_opt_in: bool,
}

impl DecoderSites {
    fn fires(&self, fires: Fires) -> bool {
        match fires {
            Fires::Always => true,
            Fires::LearnedPositions => self.learned_positions,
            Fires::Rotary => self.rotary,
            Fires::SequentialBlock => !self.parallel && !self.attn_only,
            Fires::Mlp => !self.attn_only,
            Fires::Normalized => !self.unnormalized,
            Fires::MlpNorm => !self.attn_only && !self.unnormalized,
            Fires::GatedMlp => self.gated_mlp && !self.attn_only,
            Fires::Never => false,
            // TransformerLens has no hook_mlp_in without an MLP, whatever the flag.
            Fires::OptIn(OptIn::MlpIn) if self.attn_only => false,
            Fires::OptIn(_) if self.all_opt_in => true,
            Fires::OptIn(OptIn::AttnIn) => self.attn_in,
            Fires::OptIn(OptIn::SplitQkvInput) => self.split_qkv_input && !self.attn_in,
            Fires::OptIn(OptIn::AttnResult) => self.attn_result,
            Fires::OptIn(OptIn::MlpIn) => self.mlp_in,
        }
    }

    fn points(&self, group: Group, layer: usize) -> impl Iterator<Item = HookPoint> + '_ {
        SITES
            .iter()
            .filter(move |s| s.group == group && self.fires(s.fires))
            .map(move |s| (s.make)(layer))
    }

    /// The embedding sites, in forward order.
    pub fn embedding_points(&self) -> Vec<HookPoint> {
        self.points(Group::Embedding, 0).collect()
    }

    /// Block `layer`'s sites, in forward order.
    pub fn block_points(&self, layer: usize) -> Vec<HookPoint> {
        self.points(Group::Block, layer).collect()
    }

    /// The sites after the last block, in forward order.
    pub fn final_points(&self) -> Vec<HookPoint> {
        self.points(Group::Final, 0).collect()
    }
}

/// Every hook point of a BERT encoder (TransformerLens' `HookedEncoder`) with `n_layers`
/// blocks, in forward order (post-norm blocks: `hook_resid_mid` before `ln1`).
pub fn encoder_points(n_layers: usize) -> Vec<HookPoint> {
    let in_order = |group: Group, layer: usize| {
        let mut sites: Vec<(u8, HookPoint)> = SITES
            .iter()
            .filter(|s| s.group == group)
            .filter_map(|s| s.encoder.map(|position| (position, (s.make)(layer))))
            .collect();
        sites.sort_by_key(|(position, _)| *position);
        sites.into_iter().map(|(_, point)| point)
    };
    let mut points: Vec<HookPoint> = in_order(Group::Embedding, 0).collect();
    for layer in 0..n_layers {
        points.extend(in_order(Group::Block, layer));
    }
    points
}
