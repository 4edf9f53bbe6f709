//! BatchTopK SAEs: the `k·batch` largest activations of the whole batch are kept, so tokens
//! hold different numbers of latents (SAELens `batchtopk`). Trained in TopK's layout with
//! its AuxK loss; a running estimate of the smallest kept activation becomes the threshold
//! of the JumpReLU SAE it is saved as.

use mechlens_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::topk::{ranked_pre, topk_aux};
use super::{Encoded, StepInput, TrainArchitecture, TrainKind, zero};
use crate::config::{Architecture, SaeConfig};
use crate::sae::{Sae, bag_sums};
use crate::train::loss::Active;

/// Settings of a BatchTopK run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchTopK {
    /// Mean active latents per token.
    pub k: f64,
    /// AuxK coefficient.
    pub aux_loss_coefficient: f64,
    /// EMA rate of the threshold (SAELens `topk_threshold_lr`, 0.01).
    pub topk_threshold_lr: f64,
}

impl TrainArchitecture {
    /// BatchTopK with `k` active latents per token on average.
    pub fn batch_topk(k: f64) -> Self {
        Self::BatchTopK(BatchTopK {
            k,
            aux_loss_coefficient: 1.0,
            topk_threshold_lr: 0.01,
        })
    }
}

impl TrainKind for BatchTopK {
    fn name(&self) -> &'static str {
        "batchtopk"
    }

    fn saved_as(&self) -> Architecture {
        Architecture::JumpRelu
    }

    fn selects_top_k(&self) -> bool {
        true
    }

    fn validate(&self, d_sae: i64) -> Result<()> {
        let k = self.k;
        if !(k > 0.0 && k <= d_sae as f64) {
            return Err(Error::invalid(
                "k",
                format!("must be in (0, {d_sae}] (d_sae), got {k}"),
            ));
        }
        Ok(())
    }

    fn training_layout(&self, cfg: &mut SaeConfig) {
        // A per-token TopK layout: b_enc, no threshold parameter.
        cfg.architecture = Architecture::TopK;
        cfg.k = Some((self.k.ceil() as i64).clamp(1, cfg.d_sae));
    }

    fn encode(&self, input: &StepInput<'_>) -> Result<Encoded> {
        let (sae, st) = (input.sae, input.st);
        let ranked = ranked_pre(sae, input.sae_in, input.w_dec_norm, st.rescale)?;
        let relu = ranked.f_relu()?;
        let batch = relu.size()[0];
        let keep = ((self.k * batch as f64) as i64).clamp(1, relu.numel() as i64);
        let flat = relu.f_flatten(0, -1)?;
        let (values, indices) = flat.f_topk(keep, -1, true, false)?;
        let norms = input.w_dec_norm;
        let out = batch_sparse_decode(sae, &values, &indices, norms, st.rescale, batch)?
            .f_add(&sae.b_dec)?;
        let acts = flat
            .f_zeros_like()?
            .f_scatter(-1, &indices, &values.detach())?
            .f_view_as(&relu)?;
        let aux = topk_aux(sae, input.x, &out, &ranked, st, norms)?
            .f_mul_scalar(self.aux_loss_coefficient)?;
        Ok(Encoded {
            acts,
            out,
            sparsity: zero(input.x),
            aux,
        })
    }

    fn after_step(&self, threshold: &mut f64, active: &Active) -> Result<()> {
        if let Some(min) = active.min_positive()? {
            let rate = self.topk_threshold_lr;
            *threshold = (1.0 - rate) * *threshold + rate * min;
        }
        Ok(())
    }

    fn export(&self, sae: &mut Sae, threshold: f64) -> Result<()> {
        sae.threshold = Some(Tensor::f_full(
            [sae.cfg.d_sae],
            threshold,
            (Kind::Float, sae.w_enc.device()),
        )?);
        Ok(())
    }
}

/// BatchTopK's decode from the `keep` largest entries of the flattened `[batch, d_sae]`
/// activations (`flat_indices` into it): rows hold different numbers of latents, so an
/// embedding bag per row with offsets from the per-row counts. `[batch, d_in]`, no bias.
fn batch_sparse_decode(
    sae: &Sae,
    values: &Tensor,
    flat_indices: &Tensor,
    norms: &Tensor,
    rescale: bool,
    batch: i64,
) -> Result<Tensor> {
    let d_sae = sae.cfg.d_sae;
    // Flat indices are row-major: sorting them groups each row's latents together.
    let (sorted, order) = flat_indices.f_sort(-1, false)?;
    let latents = sorted.f_remainder(d_sae)?;
    let rows = sorted.f_div_scalar_mode(d_sae, "floor")?;
    let counts = rows.f_bincount::<Tensor>(None, batch)?;
    let offsets = counts.f_cumsum(0, Kind::Int64)?.f_sub(&counts)?;
    let mut weights = values.f_index_select(0, &order)?;
    if rescale {
        weights = weights.f_div(&norms.f_index_select(0, &latents)?)?;
    }
    bag_sums(&sae.w_dec, &latents, &offsets, &weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, SaeConfig};

    #[test]
    fn batch_topk_sparse_decode_equals_the_dense_product() {
        let (batch, d_in, d_sae) = (6, 5, 12);
        let sae = Sae::init(
            SaeConfig::new(Architecture::Standard, d_in, d_sae),
            Some(0.3),
            1,
        )
        .unwrap();
        tch::manual_seed(2);
        let acts = Tensor::randn([batch, d_sae], (Kind::Float, tch::Device::Cpu)).relu();
        // Row 3 keeps nothing: an empty bag.
        let acts = acts.index_fill(0, &Tensor::from_slice(&[3i64]), 0.0);
        let (values, indices) = acts.flatten(0, -1).topk(20, -1, true, false);
        let kept = acts
            .flatten(0, -1)
            .zeros_like()
            .scatter(-1, &indices, &values)
            .view([batch, d_sae]);
        let norms = sae.w_dec.norm_scalaropt_dim(2, [1], false);
        for rescale in [false, true] {
            let ours =
                batch_sparse_decode(&sae, &values, &indices, &norms, rescale, batch).unwrap();
            let weights = if rescale {
                kept.divide(&norms)
            } else {
                kept.shallow_clone()
            };
            let dense = weights.matmul(&sae.w_dec);
            let err = ours.f_sub(&dense).unwrap().abs().max().double_value(&[]);
            assert!(err < 1e-6, "rescale {rescale}: {err}");
        }
    }
}
