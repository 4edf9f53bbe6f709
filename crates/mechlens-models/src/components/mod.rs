//! The parts every decoder here is built from, each with its TransformerLens hook sites:
//! embeddings, norms, rotary embeddings, attention, MLPs, the pre-norm (decoder) block and
//! the post-norm (BERT) block.

mod attention;
mod block;
mod embed;
mod encoder_block;
mod mlp;
mod norm;
mod rotary;

pub use attention::{Attention, AttnContext, AttnWeights, LayerKv};
pub use block::Block;
pub use embed::{Embed, EncoderEmbed};
pub use encoder_block::EncoderBlock;
pub use mlp::Mlp;
pub use norm::Norm;
pub use rotary::Rotary;

use mechlens_core::Result;
use tch::Tensor;

/// `x @ w + b` over the last dim, as one BLAS call (`addmm`) on the flattened leading dims.
///
/// # Shapes
/// - `x`: `[..., d_in]`, `w`: `[d_in, d_out]`, `b`: `[d_out]` → `[..., d_out]`
pub(crate) fn affine(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let mut shape = x.size();
    let d_in = shape.pop().unwrap_or(0);
    let d_out = w.size().get(1).copied().unwrap_or(0);
    let flat = x.f_reshape([-1, d_in])?;
    let out = match b {
        Some(b) => b.f_addmm(&flat, w)?,
        None => flat.f_mm(w)?,
    };
    shape.push(d_out);
    Ok(out.f_reshape(shape.as_slice())?)
}
