//! Losses on a model's output shared by every trainer that compares two runs of a model:
//! the KL divergence of next-token distributions (end-to-end SAEs, parameter
//! decomposition of a language model).

use mechlens_core::Result;
use tch::Tensor;

/// `KL(p_clean ‖ p_new)` of the next-token distributions, mean over tokens, in `clean`'s
/// precision (the training loss in float; `SpliceReport` in double).
///
/// # Shapes
/// `clean`, `new`: `[..., d_vocab]` → scalar
pub fn kl_divergence(clean: &Tensor, new: &Tensor) -> Result<Tensor> {
    let kind = clean.kind();
    let log_p = clean.f_log_softmax(-1, kind)?.f_flatten(0, -2)?;
    let log_q = new.f_log_softmax(-1, kind)?.f_flatten(0, -2)?;
    let tokens = log_p.size()[0] as f64;
    Ok(log_p
        .f_exp()?
        .f_mul(&log_p.f_sub(&log_q)?)?
        .f_sum(kind)?
        .f_div_scalar(tokens)?)
}
