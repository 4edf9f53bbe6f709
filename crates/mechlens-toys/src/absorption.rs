//! Feature absorption on toy data (Chanin et al. 2024): a small ReLU SAE trained on a
//! [`FeatureTree`], tied or untied, and the absorption of a parent feature by its child.
//!
//! The SAE is the standard one with the L1 penalty scaled by decoder norms (SAELens'
//! standard training SAE, Anthropic's April 2024 update), without `b_dec` subtracted from
//! the input, trained with Adam. Its decoder starts at the true directions, as in the
//! paper's toy: the question is whether training moves it away from them. "Tied" shares
//! one matrix between encoder and decoder (`W_enc = W_decᵀ`), which removes the freedom
//! absorption needs (an encoder row with a negative component on the child).

use mechlens_core::{Error, Result};
use mechlens_sae::absorption::{Absorption, absorption};
use mechlens_sae::{Architecture, Sae, SaeConfig};
use mechlens_train::{AdamW, AdamWConfig};
use tch::{Kind, Tensor};

use crate::feature_tree::{FeatureTree, TreeBatch};
use crate::matching::matched_rows;

/// How to train the toy SAE (defaults: the calibration of the paper's toy).
#[derive(Clone, Debug, PartialEq)]
pub struct ToySaeOptions {
    /// Encoder = decoderᵀ (false).
    pub tied: bool,
    /// L1 coefficient on activations × decoder norms (3e-2).
    pub l1_coefficient: f64,
    /// Adam's learning rate (1e-3).
    pub lr: f64,
    /// Samples per step (4096).
    pub batch_size: i64,
    /// Steps (6000).
    pub steps: usize,
}

impl Default for ToySaeOptions {
    fn default() -> Self {
        Self {
            tied: false,
            l1_coefficient: 3e-2,
            lr: 1e-3,
            batch_size: 4096,
            steps: 6000,
        }
    }
}

/// A trained toy SAE and the loss it ended at.
#[derive(Debug)]
pub struct ToySaeRun {
    /// The SAE (one latent per true feature), in SAELens' layout.
    pub sae: Sae,
    /// Mean over the last step's batch: squared error summed over dimensions.
    pub final_mse: f64,
    /// Mean over the last step's batch: L1 of activations × decoder norms.
    pub final_l1: f64,
}

/// Trains a ReLU SAE with one latent per feature of `tree` on its batches 0, 1, 2, ...
///
/// # Errors
/// [`Error::InvalidInput`] for a batch size below 1, no steps, or a negative or non-finite
/// L1 coefficient or learning rate; [`Error::Training`] (naming the step) when the loss
/// stops being finite.
pub fn train_toy_sae(tree: &FeatureTree, options: &ToySaeOptions) -> Result<ToySaeRun> {
    let o = options;
    if o.batch_size < 1 || o.steps == 0 {
        return Err(Error::invalid(
            "toy SAE training",
            format!(
                "needs a batch size and a number of steps of at least 1, got {} and {}",
                o.batch_size, o.steps
            ),
        ));
    }
    for (name, value) in [("l1_coefficient", o.l1_coefficient), ("lr", o.lr)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(Error::invalid(
                name,
                format!("must be finite and not negative, got {value}"),
            ));
        }
    }
    let (d_in, d_sae) = (tree.d(), tree.n_features());
    let w_dec = tree.directions.copy().set_requires_grad(true);
    let w_enc = (!o.tied).then(|| {
        tree.directions
            .tr()
            .contiguous()
            .detach()
            .set_requires_grad(true)
    });
    let b_enc = Tensor::zeros([d_sae], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let b_dec = Tensor::zeros([d_in], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let mut params = vec![
        w_dec.shallow_clone(),
        b_enc.shallow_clone(),
        b_dec.shallow_clone(),
    ];
    if let Some(w) = &w_enc {
        params.push(w.shallow_clone());
    }
    let adam_cfg = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let mut adam = AdamW::new(adam_cfg, &params)?;
    let (mut final_mse, mut final_l1) = (f64::NAN, f64::NAN);
    for step in 0..o.steps {
        let x = tree.sample(o.batch_size, step as u64)?.activations;
        let encoder = match &w_enc {
            Some(w) => w.shallow_clone(),
            None => w_dec.tr(),
        };
        let acts = x.f_matmul(&encoder)?.f_add(&b_enc)?.f_relu()?;
        let recon = acts.f_matmul(&w_dec)?.f_add(&b_dec)?;
        let mse = recon
            .f_sub(&x)?
            .f_square()?
            .f_sum_dim_intlist(1, false, Kind::Float)?
            .f_mean(Kind::Float)?;
        let norms = w_dec.f_norm_scalaropt_dim(2, [1], false)?;
        let l1 = acts
            .f_mul(&norms)?
            .f_sum_dim_intlist(1, false, Kind::Float)?
            .f_mean(Kind::Float)?;
        let loss = mse.f_add(&l1.f_mul_scalar(o.l1_coefficient)?)?;
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            return Err(Error::Training {
                step,
                reason: format!("the toy SAE's loss is {value}; no weights were returned"),
            });
        }
        let grads = Tensor::f_run_backward(&[&loss], &params, false, false)?;
        adam.step(&params, &grads, o.lr)?;
        final_mse = mse.double_value(&[]);
        final_l1 = l1.double_value(&[]);
    }
    let mut cfg = SaeConfig::new(Architecture::Standard, d_in, d_sae);
    cfg.apply_b_dec_to_input = false;
    let mut sae = Sae::init(cfg, None, 0)?;
    sae.w_dec = w_dec.detach().copy();
    sae.w_enc = match &w_enc {
        Some(w) => w.detach().copy(),
        None => w_dec.detach().tr().contiguous(),
    };
    sae.b_enc = Some(b_enc.detach().copy());
    sae.b_dec = b_dec.detach().copy();
    Ok(ToySaeRun {
        sae,
        final_mse,
        final_l1,
    })
}

/// The latent of `sae` that represents each feature of `tree`: the one-to-one assignment
/// of decoder rows to true directions with the largest summed |cosine|.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the SAE's width is not the tree's.
pub fn feature_latents(sae: &Sae, tree: &FeatureTree) -> Result<Vec<usize>> {
    if sae.cfg.d_in != tree.d() {
        return Err(Error::ShapeMismatch {
            what: "SAE input width against the feature tree".into(),
            expected: format!("d_in = {}", tree.d()),
            got: vec![sae.cfg.d_in],
        });
    }
    matched_rows(&sae.w_dec, &tree.directions)
}

/// How much `child` absorbs `parent` in `sae`, measured on `batch`: the parent's latent
/// (see [`feature_latents`]) against which features were present.
///
/// # Errors
/// [`Error::InvalidInput`] for a feature index outside the tree, or when the batch has no
/// sample with the parent and the child, or none with the parent alone; as
/// [`feature_latents`].
pub fn feature_absorption(
    sae: &Sae,
    tree: &FeatureTree,
    batch: &TreeBatch,
    parent: usize,
    child: usize,
) -> Result<Absorption> {
    let n = tree.features.len();
    if parent >= n || child >= n || parent == child {
        return Err(Error::invalid(
            "parent and child",
            format!("must be two different features in 0..{n}, got {parent} and {child}"),
        ));
    }
    let latent = feature_latents(sae, tree)?[parent] as i64;
    let acts = sae.encode(&batch.activations)?.f_select(1, latent)?;
    absorption(
        &acts,
        &batch.present.f_select(1, parent as i64)?,
        &batch.present.f_select(1, child as i64)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short() -> ToySaeOptions {
        ToySaeOptions {
            steps: 300,
            batch_size: 1024,
            ..ToySaeOptions::default()
        }
    }

    #[test]
    fn a_tied_sae_keeps_its_encoder_equal_to_the_decoder_transposed() {
        let tree = FeatureTree::absorption_toy(true, 0).unwrap();
        let opts = ToySaeOptions {
            tied: true,
            ..short()
        };
        let run = train_toy_sae(&tree, &opts).unwrap();
        assert!(run.sae.w_enc.equal(&run.sae.w_dec.tr().contiguous()));
        assert!(run.final_mse.is_finite() && run.final_l1 > 0.0);
        // It moved: training happened.
        assert!(!run.sae.w_dec.equal(&tree.directions));
    }

    #[test]
    fn the_true_dictionary_absorbs_nothing_and_each_feature_gets_its_own_latent() {
        // An SAE that is exactly the truth (encoder = decoderᵀ = directions, no biases):
        // the parent's latent fires whenever the parent is present.
        let tree = FeatureTree::absorption_toy(true, 2).unwrap();
        let mut cfg = SaeConfig::new(Architecture::Standard, 50, 4);
        cfg.apply_b_dec_to_input = false;
        let mut sae = Sae::init(cfg, None, 0).unwrap();
        // Latents in another order than the features: matching must undo it.
        let order = Tensor::from_slice(&[2i64, 0, 3, 1]);
        sae.w_dec = tree.directions.index_select(0, &order);
        sae.w_enc = sae.w_dec.tr().contiguous();
        assert_eq!(feature_latents(&sae, &tree).unwrap(), [1, 3, 0, 2]);
        let batch = tree.sample(20_000, 0).unwrap();
        let a = feature_absorption(&sae, &tree, &batch, 0, 1).unwrap();
        assert_eq!(a.absorption, 0.0);
        assert_eq!(a.fires_without_child, 1.0);
    }

    #[test]
    fn bad_settings_and_features_are_refused() {
        let tree = FeatureTree::absorption_toy(true, 0).unwrap();
        let e = train_toy_sae(
            &tree,
            &ToySaeOptions {
                steps: 0,
                ..short()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = train_toy_sae(
            &tree,
            &ToySaeOptions {
                lr: f64::NAN,
                ..short()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("lr"), "{e}");
        // A learning rate so large that the loss overflows: the step is named.
        let e = train_toy_sae(
            &tree,
            &ToySaeOptions {
                lr: 1e30,
                ..short()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Training { .. }), "{e}");
        let run = train_toy_sae(
            &tree,
            &ToySaeOptions {
                steps: 1,
                ..short()
            },
        )
        .unwrap();
        let batch = tree.sample(100, 0).unwrap();
        let e = feature_absorption(&run.sae, &tree, &batch, 0, 4).unwrap_err();
        assert!(e.to_string().contains("0..4"), "{e}");
        let other = FeatureTree::new(vec![crate::TreeFeature::root(0.5)], 8, 1.0, 0).unwrap();
        assert!(feature_latents(&run.sae, &other).is_err());
    }
}
