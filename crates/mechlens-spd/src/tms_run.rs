//! Reproduction 06's run (the SPD paper's TMS 5-2): the toy model it decomposes and the
//! decomposition, shared by `mechlens train-toy spd-tms` (which writes the committed run in
//! datasets/spd-tms-5-2) and anyone who wants to train it again.

use mechlens_core::Result;
use mechlens_toys::{ToyModel, ToyModelOptions, ToyTrainOptions};

use crate::{Apd, ApdConfig, Decomposable, Spd, SpdConfig, TmsTarget};

/// The maps of TMS 5-2 with known pieces, in the paper's names (the identity variant adds
/// `hidden_layers.0` between them).
pub const TMS_LAYERS: [&str; 2] = ["linear1", "linear2"];
/// Feature probability of the toy's data and of SPD's.
pub const TMS_FEATURE_PROBABILITY: f64 = 0.05;

/// The paper's target: 5 features in 2 dimensions, uniform importance, each feature present
/// with probability 0.05, ReLU output with a bias; 8 instances trained at once (10,000 steps,
/// batch 1024, AdamW 1e-3, seed 0), of which [`tms_instance`] picks one.
///
/// # Errors
/// Only the toy's training errors.
pub fn tms_5_2_toy() -> Result<ToyModel> {
    let mut toy = ToyModel::new(&ToyModelOptions::uniform(
        5,
        2,
        8,
        1.0,
        TMS_FEATURE_PROBABILITY,
    ))?;
    toy.train(&ToyTrainOptions {
        steps: 10_000,
        batch: 1024,
        lr: 1e-3,
        log_every: 1_000,
        progress_every: 0,
    })?;
    Ok(toy)
}

/// The instance that represents every feature best (the largest smallest column norm of `W`):
/// a pentagon, where an unlucky instance may have left a feature out.
///
/// # Errors
/// Only libtorch's.
pub fn tms_instance(toy: &ToyModel) -> Result<usize> {
    let norms = toy
        .w
        .f_detach()?
        .f_norm_scalaropt_dim(2, [1i64].as_slice(), false)?; // [instance, feature]
    let (smallest, _) = norms.f_min_dim(1, false)?;
    Ok(smallest.f_argmax(0, false)?.f_int64_value(&[])? as usize)
}

/// SPD of every map of `target` (`linear1`, any identity layers, `linear2`) with the paper's
/// settings ([`SpdConfig`]'s defaults) but `steps` steps, on fresh batches of 4,096 drawn
/// from libtorch's generator (seeded per step by [`Spd::train`]).
///
/// # Errors
/// The decomposition's ([`mechlens_core::Error::Training`] for a loss that stops being
/// finite).
pub fn spd_tms(target: &TmsTarget, steps: usize) -> Result<Spd> {
    let config = SpdConfig {
        steps,
        ..SpdConfig::default()
    };
    let batch = config.batch_size;
    let names: Vec<String> = target.linears().into_iter().map(|(n, _)| n).collect();
    let layers: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut spd = Spd::new(target, &layers, config)?;
    spd.train(target, &mut |_| {
        target.batch(batch, TMS_FEATURE_PROBABILITY)
    })?;
    Ok(spd)
}

/// The APD paper's TMS 5-2 settings ([`ApdConfig`]'s defaults: C = 5, rank 3, batch top-k
/// 0.211, Schatten coefficient 0.7, batch 2,048, constant learning rate 3e-2 after a 5%
/// warm-up) with `linear2` tied to `linear1` transposed, as in the paper's model.
pub fn apd_tms_config(steps: usize) -> ApdConfig {
    ApdConfig {
        steps,
        tied_transposed: vec![("linear2".into(), "linear1".into())],
        ..ApdConfig::default()
    }
}

/// APD of TMS 5-2's two maps with [`apd_tms_config`] for `steps` steps, on fresh batches
/// from libtorch's generator (seeded per step by [`Apd::train`]).
///
/// # Errors
/// The decomposition's ([`mechlens_core::Error::Training`] for a loss that stops being
/// finite); a target with identity layers (APD's TMS runs have none).
pub fn apd_tms(target: &TmsTarget, steps: usize) -> Result<Apd> {
    if target.identity_layers != 0 {
        return Err(mechlens_core::Error::invalid(
            "APD target",
            "reproduction 06 runs APD on TMS 5-2 without identity layers",
        ));
    }
    let config = apd_tms_config(steps);
    let batch = config.batch_size;
    let mut apd = Apd::new(target, &TMS_LAYERS, config)?;
    apd.train(target, &mut |_| {
        target.batch(batch, TMS_FEATURE_PROBABILITY)
    })?;
    Ok(apd)
}
