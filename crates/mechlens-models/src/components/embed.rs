//! Token and learned position embeddings (`hook_embed`, `hook_pos_embed`), and BERT's
//! embedding, which adds token types and a LayerNorm (`hook_full_embed`).

use mechlens_core::{HookPoint, HookSession, Result};
use tch::Tensor;

use super::Norm;

/// Embedding tables.
pub struct Embed {
    /// Token embedding `W_E`, `[d_vocab, d_model]`.
    pub w_e: Tensor,
    /// Learned position embedding `W_pos`, `[n_ctx, d_model]`, when the model has one.
    pub w_pos: Option<Tensor>,
}

impl Embed {
    /// The residual stream at the first block: token embedding plus position embedding.
    /// Tokens must already be checked against the vocabulary.
    ///
    /// # Shapes
    /// - `tokens`, `positions`: `[batch, pos]` int64 → `[batch, pos, d_model]`
    pub fn forward(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let embed = s.hook(
            HookPoint::Embed,
            Tensor::f_embedding(&self.w_e, tokens, -1, false, false)?,
        )?;
        match &self.w_pos {
            Some(w_pos) => {
                let pos = Tensor::f_embedding(w_pos, positions, -1, false, false)?;
                let pos = s.hook(HookPoint::PosEmbed, pos)?;
                Ok(embed.f_add(&pos)?)
            }
            None => Ok(embed),
        }
    }
}

/// BERT's embedding: tokens, learned positions and token types, summed and normalised.
pub struct EncoderEmbed {
    /// Tokens and positions (`w_pos` is always present).
    pub embed: Embed,
    /// Token type embedding, `[type_vocab, d_model]`.
    pub w_token_type: Tensor,
    /// The embedding LayerNorm (`embed.ln`).
    pub ln: Norm,
}

impl EncoderEmbed {
    /// The residual stream at the first block. Tokens and types must already be checked.
    ///
    /// # Shapes
    /// - `tokens`, `types`, `positions`: `[batch, pos]` int64 → `[batch, pos, d_model]`
    pub fn forward(
        &self,
        tokens: &Tensor,
        types: &Tensor,
        positions: &Tensor,
        s: &mut HookSession,
    ) -> Result<Tensor> {
        let sum = self.embed.forward(tokens, positions, s)?;
        let tt = s.hook(
            HookPoint::TokenTypeEmbed,
            Tensor::f_embedding(&self.w_token_type, types, -1, false, false)?,
        )?;
        let x = self.ln.forward(
            &sum.f_add(&tt)?,
            HookPoint::EmbedLnScale,
            HookPoint::EmbedLnNormalized,
            s,
        )?;
        s.hook(HookPoint::FullEmbed, x)
    }
}
