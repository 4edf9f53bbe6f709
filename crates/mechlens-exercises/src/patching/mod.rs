//! Set E3, attribution and patching (ARENA 1.4.1, on the induction model of E2): the logit
//! difference and its residual direction, the residual stream decomposed into what each
//! component adds to it, the normalised patching metric, activation patching of `resid_pre`
//! by layer × position and of head outputs by layer × head, and path patching from a head
//! into later heads' query, key or value inputs. Checked against mechlens-analysis
//! (`activation_patch`, `path_patch`, themselves tested against TransformerLens and closed
//! forms), a closed form, or ARENA's formula written out.

mod activation;
mod metric;
mod path;
#[cfg(test)]
mod tests;

use mechlens_analysis::HeadInput;
use mechlens_core::{HookPoint, Result};
use tch::{Kind, Tensor};

use crate::harness::Case;
use crate::random::Draw;
use crate::transformer::model_case::{ModelCase, model_case_with_heads};

/// The checks of set E3 (re-exported flat in [`crate::check`]).
pub mod checks {
    pub use super::activation::{
        head_out_patching, patch_head_vector, patch_position, resid_pre_patching,
    };
    pub use super::metric::{logit_diff, logit_diff_directions, patching_metric, stack_logit_diff};
    pub use super::path::{path_patch_heads, receiver_input};
}

/// A random model with clean tokens (and the clean run's cache), corrupted tokens of the same
/// shape, the metric's answer and wrong token, and a path to patch: a sender head, receiving
/// heads in a later layer, and which of their inputs.
pub(crate) struct PatchCase {
    pub case: ModelCase,
    pub corrupted: Tensor,
    pub answer: i64,
    pub wrong: i64,
    pub sender: (usize, usize),
    pub receiver_layer: usize,
    pub receivers: Vec<usize>,
    pub input: HeadInput,
    /// Whether the label names the path (the path checks' cases).
    pub is_path: bool,
}

impl PatchCase {
    /// Three cases of seed `seed`. Attention-only models (`attn_only`, for the path checks,
    /// whose reference is exact there) have 2 or 3 layers, the first case 3 with the sender in
    /// layer 0 and the receivers in layer 2, so that a head between them matters; the others
    /// have 1 or 2 layers with layer norms and MLPs. Always at least two heads, so that one
    /// head and its whole layer differ.
    pub(crate) fn draw(seed: u64, attn_only: bool) -> Result<Vec<PatchCase>> {
        let mut draw = Draw::new(seed);
        (0..3)
            .map(|i| {
                let layers = match (attn_only, i) {
                    (true, 0) => 3,
                    (true, _) => draw.int(2, 3) as usize,
                    (false, _) => draw.int(1, 2) as usize,
                };
                let heads = draw.int(2, 4) as usize;
                let mut points = Vec::new();
                for l in 0..layers {
                    points.extend([
                        HookPoint::ResidPre(l),
                        HookPoint::ResidPost(l),
                        HookPoint::Z(l),
                        HookPoint::Q(l),
                        HookPoint::QInput(l),
                        HookPoint::KInput(l),
                        HookPoint::VInput(l),
                    ]);
                }
                let case =
                    model_case_with_heads(&mut draw, seed + i, layers, attn_only, points, heads)?;
                let size = case.tokens.size();
                let vocab = case.model.cfg().d_vocab as i64;
                let corrupted = draw.tokens(size[0], size[1], vocab);
                let answer = draw.int(0, vocab - 1);
                let wrong = (answer + draw.int(1, vocab - 1)) % vocab;
                let (sender_layer, receiver_layer) = if i == 0 {
                    (0, layers - 1)
                } else {
                    let r = draw.int(1, layers as i64 - 1) as usize;
                    (draw.int(0, r as i64 - 1) as usize, r)
                };
                let sender = (sender_layer, draw.int(0, heads as i64 - 1) as usize);
                // A strict subset of the layer's heads, so that patching them all is wrong.
                let first = draw.int(0, heads as i64 - 1) as usize;
                let receivers = if heads > 2 && i == 1 {
                    vec![first, (first + 1) % heads]
                } else {
                    vec![first]
                };
                let input = [HeadInput::Q, HeadInput::K, HeadInput::V][i as usize % 3];
                Ok(PatchCase {
                    case,
                    corrupted,
                    answer,
                    wrong,
                    sender,
                    receiver_layer,
                    receivers,
                    input,
                    is_path: attn_only,
                })
            })
            .collect()
    }

    /// The metric of every check: at the last position, the answer's logit minus the wrong
    /// token's, averaged over the batch.
    pub(crate) fn metric(&self, logits: &Tensor) -> Result<Tensor> {
        let last = logits.f_select(1, -1)?;
        Ok(last
            .f_select(1, self.answer)?
            .f_sub(&last.f_select(1, self.wrong)?)?
            .f_mean(Kind::Float)?)
    }
}

impl Case for PatchCase {
    fn label(&self) -> String {
        let run = format!(
            "{}, corrupted {:?}",
            self.case.describe(),
            self.corrupted.size()
        );
        if !self.is_path {
            return run;
        }
        format!(
            "{run}, sender L{}H{}, receiving heads {:?} of layer {} ({:?})",
            self.sender.0, self.sender.1, self.receivers, self.receiver_layer, self.input
        )
    }
    fn inputs(&self) -> Vec<(&'static str, &Tensor)> {
        vec![("corrupted", &self.corrupted)]
    }
}
