//! Attribution-based Parameter Decomposition (Braun et al. 2025), the method SPD replaced and
//! the comparison its paper makes: the chosen matrices are split into `C` parameter
//! components, each a rank-`r` matrix in every decomposed layer at once, so that
//!
//! - they sum to the target's weights (faithfulness),
//! - the output survives keeping only the components with the largest gradient attributions
//!   on each input (minimality, batch top-k),
//! - the kept components are simple: small Schatten `p`-norms (simplicity).
//!
//! The top-k step and the norm penalty shrink the components the paper measures (ML2R
//! 0.893 on TMS 5-2, against SPD's 0.993); reproduction 06 shows both side by side.

mod components;
mod config;
mod train;

use std::path::Path;

use mechlens_core::{Error, Result};
use mechlens_train::{AdamW, AdamWConfig};
use tch::Tensor;

pub use components::ComponentFactors;
pub use config::ApdConfig;

use crate::metrics::{GroundTruthScores, ground_truth_scores};
use crate::shared::{LogRow, load_run, pick_layers, save_run};
use crate::target::Decomposable;

/// Names of the loss columns of [`Apd::log_frame`], after `step` and `lr`.
const LOSS_NAMES: [&str; 4] = ["loss", "topk_recon", "param_match", "schatten"];

/// A decomposition by APD and its training state.
pub struct Apd {
    /// Settings.
    pub config: ApdConfig,
    /// The decomposed maps' names, in the target's order.
    pub names: Vec<String>,
    /// Each layer's own factors, or `None` for a layer tied to another's (see `ties`).
    factors: Vec<Option<ComponentFactors>>,
    /// For a tied layer, the layer whose factors it transposes.
    ties: Vec<Option<usize>>,
    /// The target's weights of the decomposed maps.
    targets: Vec<Tensor>,
    pub(crate) adam: AdamW,
    step: usize,
    pub(crate) log: Vec<LogRow<4>>,
}

impl Apd {
    /// A new decomposition of the maps `layers` of `target` (names from
    /// [`Decomposable::linears`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for unusable settings (see [`ApdConfig::validate`]), no layers,
    /// a layer named twice or unknown (listing the model's), or a tie between layers that are
    /// not both decomposed, not transposes in shape, or tied twice.
    pub fn new(target: &dyn Decomposable, layers: &[&str], config: ApdConfig) -> Result<Self> {
        config.validate()?;
        mechlens_core::allocator::keep_freed_memory();
        let (names, targets) = pick_layers(target, layers)?;
        let ties = tie_indices(&names, &targets, &config.tied_transposed)?;
        let seed = config.seed as i64;
        let mut factors = Vec::new();
        for (l, w) in targets.iter().enumerate() {
            if ties[l].is_some() {
                factors.push(None);
                continue;
            }
            let (d_in, d_out) = (w.size()[0], w.size()[1]);
            let rank = config.rank.unwrap_or(d_in.min(d_out) + 1);
            let layer_seed = seed.wrapping_mul(1000).wrapping_add(l as i64);
            factors.push(Some(ComponentFactors::init(
                config.c, d_in, d_out, rank, layer_seed,
            )?));
        }
        let params = parameters_of(&factors);
        let adam = AdamW::new(
            AdamWConfig {
                weight_decay: 0.0,
                ..AdamWConfig::default()
            },
            &params,
        )?;
        Ok(Self {
            config,
            names,
            factors,
            ties,
            targets,
            adam,
            step: 0,
            log: Vec::new(),
        })
    }

    /// Every trained tensor: each untied layer's `A`, `B`.
    pub fn parameters(&self) -> Vec<Tensor> {
        parameters_of(&self.factors)
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The index of decomposed layer `name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] listing the decomposed layers.
    pub fn layer(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid(
                "layer",
                format!("{name:?} is not decomposed; these are: {:?}", self.names),
            )
        })
    }

    /// Layer `l`'s factors: its own, or its source's transposed.
    pub(crate) fn factors_of(&self, l: usize) -> Result<ComponentFactors> {
        let source = self.ties[l].unwrap_or(l);
        // `tie_indices` never ties a layer to a tied one, so a source has its own factors.
        let own = self.factors[source].as_ref().ok_or_else(|| {
            Error::invalid(
                "tied layer",
                format!("{:?} has no factors", self.names[source]),
            )
        })?;
        if self.ties[l].is_some() {
            return own.transposed();
        }
        Ok(ComponentFactors {
            a: own.a.shallow_clone(),
            b: own.b.shallow_clone(),
        })
    }

    /// Every component's matrix in layer `name`.
    ///
    /// # Shapes
    /// → `[C, d_in, d_out]`
    ///
    /// # Errors
    /// An unknown layer (listing the decomposed ones).
    pub fn component_weights(&self, name: &str) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        self.factors_of(self.layer(name)?)?.weights()
    }

    /// MMCS and ML2R of decomposed layer `layer` against true pieces `[K, d_in, d_out]`.
    ///
    /// # Errors
    /// An unknown layer (listing the decomposed ones); as [`ground_truth_scores`].
    pub fn scores_against(&self, layer: &str, truth: &Tensor) -> Result<GroundTruthScores> {
        ground_truth_scores(&self.component_weights(layer)?, truth)
    }

    /// The target's weight of decomposed layer `l`.
    pub fn target_weight(&self, l: usize) -> &Tensor {
        &self.targets[l]
    }

    /// Every trained tensor with its file name: `{layer}.A`, `{layer}.B` of untied layers.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, f) in self.names.iter().zip(&self.factors) {
            if let Some(f) = f {
                out.push((format!("{name}.A"), f.a.shallow_clone()));
                out.push((format!("{name}.B"), f.b.shallow_clone()));
            }
        }
        out
    }

    /// Writes the decomposition, the optimiser's state and the log to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_run(
            &self.named_parameters(),
            &self.adam,
            &self.log,
            self.step,
            path,
        )
    }

    /// Loads a decomposition written by [`Apd::save`] into this one, built with
    /// [`Apd::new`] for the same target, layers and settings; counts `step` steps done and
    /// restores the optimiser's state and the log, so training resumes exactly.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file; [`Error::InvalidInput`] naming the first tensor the
    /// file lacks or whose shape differs (both shapes given); nothing is changed then.
    pub fn load_parameters(&mut self, path: &Path) -> Result<()> {
        let named = self.named_parameters();
        self.step = load_run(
            &named,
            &mut self.adam,
            &mut self.log,
            path,
            "APD",
            &self.names,
        )?;
        Ok(())
    }
}

/// Each untied layer's `A` and `B`, in layer order.
fn parameters_of(factors: &[Option<ComponentFactors>]) -> Vec<Tensor> {
    factors
        .iter()
        .flatten()
        .flat_map(|f| [f.a.shallow_clone(), f.b.shallow_clone()])
        .collect()
}

/// For each decomposed layer, the index of the layer it is tied to (transposed), if any.
fn tie_indices(
    names: &[String],
    targets: &[Tensor],
    tied: &[(String, String)],
) -> Result<Vec<Option<usize>>> {
    let mut ties = vec![None; names.len()];
    let index = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            Error::invalid(
                "tied_transposed",
                format!("{name:?} is not among the decomposed layers {names:?}"),
            )
        })
    };
    for (layer, source) in tied {
        let (l, s) = (index(layer)?, index(source)?);
        let (wl, ws) = (targets[l].size(), targets[s].size());
        if l == s || ties[l].is_some() || ties[s].is_some() || ties.contains(&Some(l)) {
            return Err(Error::invalid(
                "tied_transposed",
                format!(
                    "{layer:?} → {source:?}: a layer can be tied once, to another layer that is not tied itself"
                ),
            ));
        }
        if wl != [ws[1], ws[0]] {
            return Err(Error::invalid(
                "tied_transposed",
                format!(
                    "{layer:?} is {wl:?} but {source:?} transposed is [{}, {}]",
                    ws[1], ws[0]
                ),
            ));
        }
        ties[l] = Some(s);
    }
    Ok(ties)
}
