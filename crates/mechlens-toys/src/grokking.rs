//! The grokking run of Nanda et al. (2023) and its progress measures: the paper's model and
//! optimiser on modular addition, full batch, with test loss and accuracy logged as it trains,
//! and the measures the paper reads the run with (train and test loss and accuracy, the
//! restricted and excluded losses, the embedding's power in its key frequencies), and the
//! share of MLP neurons one frequency explains.
//!
//! The `mechlens train-toy grokking` command runs it to completion with checkpoints; the
//! notebooks load its committed result and may rerun a short stretch of it.

use std::path::PathBuf;

use mechlens_core::{CacheFilter, Result};
use mechlens_models::HookedTransformer;
use mechlens_train::{ModelTrainConfig, ModelTrainer, Schedule};
use tch::{Kind, Tensor};

use crate::grokking_paper::{paper_absent_biases, paper_grokking_model};
use crate::modular::{
    ModularData, NEURON_CLUSTER_THRESHOLD, embedding_frequency_power, grid_labels, grid_loss,
    grokking_config, key_frequency_logits, neuron_frequency_share,
};

/// How the model is initialised, which biases it has and how the pairs are split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GrokkingSetup {
    /// The paper's code, as far as the numbers go: its initialisation drawn from libtorch's
    /// generator in its order ([`paper_grokking_model`]), no attention or unembedding biases,
    /// MLP biases trained, a 10-step warm-up from zero, and its split
    /// ([`ModularData::paper_split`]). The committed run, since 2026-12-05.
    Paper,
    /// TransformerLens' `HookedTransformer(cfg)`: N(0, (0.8/√d_model)²) for every weight, all
    /// biases trained (or, `frozen_biases`, every bias kept at zero as TransformerLens'
    /// grokking demo does), a constant learning rate and a SplitMix64 split. Clusters 68% of
    /// neurons at 20,000 epochs, with or without biases: the comparison reproduction 03 reads.
    TransformerLens {
        /// Keep every bias (`b_Q`, `b_in`, `b_U`, ...) at its initial zero, untrained.
        frozen_biases: bool,
    },
}

/// The run's settings; the defaults are the paper's (p = 113, 30% of pairs for training,
/// AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98), full batch, loss in f64, the paper's
/// [`GrokkingSetup`]), for 20,000 epochs: grokking comes at ~11,000 and the clean-up after it
/// is most of the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct GrokkingOptions {
    /// The modulus (prime).
    pub p: usize,
    /// Share of the `p²` pairs trained on.
    pub train_fraction: f64,
    /// Seed of the train/test split.
    pub data_seed: u64,
    /// Seed of the model's initialisation.
    pub model_seed: u64,
    /// Full-batch steps.
    pub epochs: usize,
    /// AdamW's learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW's β₁, β₂.
    pub betas: (f64, f64),
    /// Initialisation, biases and split.
    pub setup: GrokkingSetup,
    /// Test loss and accuracy are logged every this many epochs (and checkpoints written,
    /// when `checkpoint_dir` is set).
    pub measure_every: usize,
    /// Where checkpoints go (`step_NNNNNNNN/` folders); `None` writes none.
    pub checkpoint_dir: Option<PathBuf>,
    /// Print a progress line every this many epochs (0: none).
    pub progress_every: usize,
}

impl Default for GrokkingOptions {
    fn default() -> Self {
        Self {
            p: 113,
            train_fraction: 0.3,
            data_seed: 0,
            model_seed: 0,
            epochs: 20_000,
            lr: 1e-3,
            weight_decay: 1.0,
            betas: (0.9, 0.98),
            setup: GrokkingSetup::Paper,
            measure_every: 100,
            checkpoint_dir: None,
            progress_every: 0,
        }
    }
}

impl GrokkingOptions {
    /// The data these options train on.
    ///
    /// # Errors
    /// As [`ModularData::new`].
    pub fn data(&self) -> Result<ModularData> {
        match self.setup {
            GrokkingSetup::Paper => {
                ModularData::paper_split(self.p, self.train_fraction, self.data_seed)
            }
            GrokkingSetup::TransformerLens { .. } => {
                ModularData::new(self.p, self.train_fraction, self.data_seed)
            }
        }
    }

    /// The freshly initialised model, and the names of the parameters that stay at zero.
    ///
    /// # Errors
    /// As [`HookedTransformer::from_config`] and [`paper_grokking_model`].
    pub fn initial_model(&self) -> Result<(HookedTransformer, Vec<String>)> {
        match self.setup {
            GrokkingSetup::Paper => {
                let model = paper_grokking_model(self.p, self.model_seed)?;
                let absent = paper_absent_biases(&model);
                Ok((model, absent))
            }
            GrokkingSetup::TransformerLens { frozen_biases } => {
                let model =
                    HookedTransformer::from_config(&grokking_config(self.p), self.model_seed)?;
                let mut frozen = Vec::new();
                if frozen_biases {
                    frozen.extend(
                        model
                            .named_parameters()
                            .into_iter()
                            .map(|(name, _)| name)
                            .filter(|name| {
                                name.rsplit('.').next().is_some_and(|p| p.starts_with("b_"))
                            }),
                    );
                }
                Ok((model, frozen))
            }
        }
    }

    /// A trainer for the freshly initialised model of [`GrokkingOptions::initial_model`],
    /// logging the train loss every 10 epochs and `test_loss` and `test_accuracy` every
    /// `measure_every` epochs.
    ///
    /// # Errors
    /// As [`ModularData::new`] and [`ModelTrainer::new`].
    pub fn trainer(&self, data: &ModularData) -> Result<ModelTrainer> {
        let (model, frozen) = self.initial_model()?;
        let schedule = match self.setup {
            // The paper's LambdaLR(min(step / 10, 1)).
            GrokkingSetup::Paper => Schedule {
                warmup_steps: 10,
                warmup_from_zero: true,
                ..Schedule::constant(self.lr)
            },
            GrokkingSetup::TransformerLens { .. } => Schedule::constant(self.lr),
        };
        let mut cfg = ModelTrainConfig::new(self.epochs, schedule)
            .betas(self.betas.0, self.betas.1)
            .weight_decay(self.weight_decay)
            .log_every(10)
            .progress_every(self.progress_every)
            .freeze(frozen);
        cfg.loss_in_f64 = true;
        if let Some(dir) = &self.checkpoint_dir {
            cfg = cfg.checkpoints(dir, self.measure_every);
        }
        let every = self.measure_every;
        let (tokens, labels) = (
            data.test.tokens.shallow_clone(),
            data.test_labels.shallow_clone(),
        );
        let (tokens2, labels2) = (tokens.shallow_clone(), labels.shallow_clone());
        Ok(ModelTrainer::new(model, cfg)?
            .with_metric("test_loss", every, move |m| {
                last_position_loss(&m.forward(&tokens)?, &labels)
            })
            .with_metric("test_accuracy", every, move |m| {
                accuracy(&m.forward(&tokens2)?, &labels2)
            }))
    }
}

/// Mean cross-entropy (in f64) of the logits at the last position.
///
/// # Shapes
/// - `logits`: `[pairs, 3, d_vocab]`, `labels`: `[pairs]` → scalar
fn last_position_loss(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let last = logits.f_select(1, -1)?.f_to_kind(Kind::Double)?;
    Ok(last
        .f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0)?
        .f_double_value(&[])?)
}

/// Share of pairs whose last-position argmax is the label.
fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let predicted = logits.f_select(1, -1)?.f_argmax(-1, false)?;
    Ok(predicted
        .f_eq_tensor(labels)?
        .f_to_kind(Kind::Double)?
        .f_mean(Kind::Double)?
        .f_double_value(&[])?)
}

/// The paper's measures of one model, read with a fixed set of key frequencies (the paper
/// uses the final model's for every checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressMeasures {
    /// Loss on the training pairs.
    pub train_loss: f64,
    /// Loss on the held-out pairs.
    pub test_loss: f64,
    /// Accuracy on the training pairs.
    pub train_accuracy: f64,
    /// Accuracy on the held-out pairs.
    pub test_accuracy: f64,
    /// Loss on every pair of logits kept to the key frequencies' directions: low once the
    /// model's answer is carried by the Fourier algorithm.
    pub restricted_loss: f64,
    /// Loss on the training pairs of logits with those directions removed: high once the
    /// training set is solved through the algorithm rather than memorised.
    pub excluded_loss: f64,
    /// Share of the embedding's non-constant Fourier power in the key frequencies.
    pub key_power_share: f64,
}

/// The model's logits at the `=` position for every pair, laid out as the `(a, b)` grid.
///
/// # Shapes
/// → `[p, p, d_vocab]`
///
/// # Errors
/// Only the model's.
pub fn grid_logits(model: &HookedTransformer, data: &ModularData) -> Result<Tensor> {
    let p = data.p as i64;
    let logits = model.forward(&data.all_tokens)?.f_select(1, -1)?;
    Ok(logits.f_view([p, p, -1])?)
}

/// [`ProgressMeasures`] of `model` on `data`, restricted to or excluding `key_frequencies`.
///
/// # Errors
/// As [`key_frequency_logits`] (a frequency outside `1..=(p−1)/2`).
pub fn progress_measures(
    model: &HookedTransformer,
    data: &ModularData,
    key_frequencies: &[usize],
) -> Result<ProgressMeasures> {
    let _guard = tch::no_grad_guard();
    let p = data.p;
    let grid = grid_logits(model, data)?;
    let index = |batch: &mechlens_train::Batch| -> Result<Tensor> {
        let t = &batch.tokens;
        Ok(t.f_select(1, 0)?
            .f_mul_scalar(p as i64)?
            .f_add(&t.f_select(1, 1)?)?)
    };
    let (train, test) = (index(&data.train)?, index(&data.test)?);
    let all = Tensor::f_arange((p * p) as i64, (Kind::Int64, grid.device()))?;
    let answers = grid.f_narrow(2, 0, p as i64)?;
    let accuracy_on = |idx: &Tensor| -> Result<f64> {
        let flat = answers
            .f_reshape([(p * p) as i64, -1])?
            .f_index_select(0, idx)?;
        Ok(flat
            .f_argmax(-1, false)?
            .f_eq_tensor(&grid_labels(idx, p)?)?
            .f_to_kind(Kind::Double)?
            .f_mean(Kind::Double)?
            .f_double_value(&[])?)
    };
    // First, as it checks every key frequency is in 1..=(p−1)/2.
    let restricted = key_frequency_logits(&grid, p, key_frequencies, true)?;
    let excluded = key_frequency_logits(&grid, p, key_frequencies, false)?;
    let power = embedding_frequency_power(&model.w_e(), p)?;
    let total = power.f_sum(Kind::Double)?.f_double_value(&[])?;
    let mut held = 0.0;
    for &k in key_frequencies {
        held += power.f_double_value(&[k as i64 - 1])?;
    }
    Ok(ProgressMeasures {
        train_loss: grid_loss(&answers, p, &train)?,
        test_loss: grid_loss(&answers, p, &test)?,
        train_accuracy: accuracy_on(&train)?,
        test_accuracy: accuracy_on(&test)?,
        restricted_loss: grid_loss(&restricted, p, &all)?,
        excluded_loss: grid_loss(&excluded, p, &train)?,
        key_power_share: if total > 0.0 { held / total } else { 0.0 },
    })
}

/// Share of the MLP neurons with at least [`NEURON_CLUSTER_THRESHOLD`] of their variance over
/// the `(a, b)` grid, at the `=` position, explained by one frequency (the paper's clustering;
/// it rises during clean-up as neurons shed their other frequencies).
///
/// # Errors
/// As [`neuron_frequency_share`]; the model's own.
pub fn clustered_neuron_share(model: &HookedTransformer, data: &ModularData) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    let p = data.p as i64;
    let mlp_post = "blocks.0.mlp.hook_post";
    let (_, cache) = model.run_with_cache(&data.all_tokens, CacheFilter::names([mlp_post])?)?;
    let neurons = cache.get(mlp_post)?.f_select(1, -1)?.f_view([p, p, -1])?;
    let (_, explained) = neuron_frequency_share(&neurons, data.p)?;
    Ok(explained
        .f_ge(NEURON_CLUSTER_THRESHOLD)?
        .f_to_kind(Kind::Double)?
        .f_mean(Kind::Double)?
        .f_double_value(&[])?)
}
