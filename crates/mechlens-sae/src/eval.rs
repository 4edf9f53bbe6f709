//! What an SAE costs the model when it replaces the activation it reads (SAELens'
//! `get_recons_loss`): next-token cross-entropy clean, with the SAE spliced in (no error
//! term), and with the activation zero-ablated; the CE loss score
//! `(CE_zero − CE_sae) / (CE_zero − CE_clean)` (1: the SAE loses nothing, 0: as bad as
//! deleting the activation); and the same for the KL divergence from the clean next-token
//! distribution, `KL score = (KL_zero − KL_sae) / KL_zero`.

use std::rc::Rc;

use mechlens_core::{Error, Hook, Hooks, Intervention, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::DataFrame;
use tch::{Kind, Tensor};

use crate::metrics::SparsityReport;
use crate::sae::Sae;
use crate::splice::SplicedSae;

/// Cross-entropy and KL of a model with an SAE spliced in.
#[derive(Clone, Debug, PartialEq)]
pub struct SpliceReport {
    /// Mean next-token CE of the clean model.
    pub ce_clean: f64,
    /// With the SAE's reconstruction in place of the activation.
    pub ce_with_sae: f64,
    /// With the activation zeroed.
    pub ce_zero_ablated: f64,
    /// `(CE_zero − CE_sae) / (CE_zero − CE_clean)`.
    pub ce_loss_score: f64,
    /// Mean KL(clean ‖ with SAE) per token.
    pub kl_with_sae: f64,
    /// Mean KL(clean ‖ zero-ablated) per token.
    pub kl_zero_ablated: f64,
    /// `(KL_zero − KL_sae) / KL_zero`.
    pub kl_score: f64,
}

impl SpliceReport {
    /// Runs `tokens` `[batch, pos]` clean, with `sae` spliced in at `at` (or its
    /// `metadata.hook_name`), and zero-ablated there.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the SAE names no hook and none is given; the errors of
    /// `run_with_hooks` (unknown hook, shapes, bad tokens).
    pub fn measure(
        model: &HookedTransformer,
        sae: Rc<Sae>,
        at: Option<&str>,
        tokens: &Tensor,
    ) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let name = at.or(sae.cfg.hook_name()).ok_or_else(|| {
            Error::invalid("SAE hook point", "the SAE names no hook point; pass one")
        })?;
        let point = model.hook_point(name)?;
        let clean = model.forward(tokens)?;
        let mut hooks = Hooks::new();
        hooks.push(point, Hook::Splice(Rc::new(SplicedSae::new(sae, false))));
        let spliced = model.run_with_hooks(tokens, hooks)?;
        let zero =
            model.run_with_hooks(tokens, Hooks::new().intervene(point, Intervention::Zero)?)?;
        let (ce_clean, ce_with_sae, ce_zero_ablated) = (
            ce(&clean, tokens)?,
            ce(&spliced, tokens)?,
            ce(&zero, tokens)?,
        );
        let (kl_with_sae, kl_zero_ablated) = (kl(&clean, &spliced)?, kl(&clean, &zero)?);
        Ok(Self {
            ce_clean,
            ce_with_sae,
            ce_zero_ablated,
            ce_loss_score: (ce_zero_ablated - ce_with_sae) / (ce_zero_ablated - ce_clean),
            kl_with_sae,
            kl_zero_ablated,
            kl_score: (kl_zero_ablated - kl_with_sae) / kl_zero_ablated,
        })
    }

    /// The measures as a two-column table (metric, value).
    ///
    /// # Errors
    /// Only if polars refuses the columns.
    pub fn frame(&self) -> Result<DataFrame> {
        crate::metrics::metric_frame(&self.rows())
    }

    /// `(metric, value)` for every measure.
    pub(crate) fn rows(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("ce_clean", self.ce_clean),
            ("ce_with_sae", self.ce_with_sae),
            ("ce_zero_ablated", self.ce_zero_ablated),
            ("ce_loss_score", self.ce_loss_score),
            ("kl_with_sae", self.kl_with_sae),
            ("kl_zero_ablated", self.kl_zero_ablated),
            ("kl_score", self.kl_score),
        ]
    }
}

/// Everything one evaluation of an SAE on a model gives, as one table: the reconstruction and
/// sparsity measures ([`SparsityReport`]) on the activations at the SAE's hook, and what
/// splicing it in costs the model ([`SpliceReport`]) — what SAELens' `run_evals` reports.
#[derive(Debug)]
pub struct SaeReport {
    /// L0, L1, MSE, explained variance, cosine, L2 ratio, densities, dead and dense latents.
    pub sparsity: SparsityReport,
    /// CE and KL with the SAE spliced in; `None` when measured without a model.
    pub splice: Option<SpliceReport>,
}

impl SaeReport {
    /// Runs `tokens` `[batch, pos]` through `model`: the activations at `at` (or the SAE's
    /// `metadata.hook_name`) feed the sparsity measures, leaving out BOS positions (their
    /// outsized norms are not what an SAE is for, and SAELens leaves special tokens out too),
    /// and the SAE is spliced in for the CE and KL scores.
    ///
    /// # Errors
    /// As [`SpliceReport::measure`] and [`SparsityReport::measure`].
    pub fn measure(
        model: &HookedTransformer,
        sae: Rc<Sae>,
        at: Option<&str>,
        tokens: &Tensor,
    ) -> Result<Self> {
        let name = at
            .or(sae.cfg.hook_name())
            .ok_or_else(|| {
                Error::invalid("SAE hook point", "the SAE names no hook point; pass one")
            })?
            .to_string();
        let point = model.hook_point(&name)?;
        let acts = model.run_to_hook(tokens, point)?;
        let acts = acts.f_reshape([tokens.size()[0], tokens.size()[1], -1])?;
        let acts = match model.cfg().bos_token_id {
            Some(bos) => acts.f_index(&[Some(tokens.f_ne(bos)?.f_to_device(acts.device())?)])?,
            None => acts.f_flatten(0, 1)?,
        };
        let sparsity = SparsityReport::measure(&sae, &acts, 4096)?;
        let splice = SpliceReport::measure(model, sae, Some(&name), tokens)?;
        Ok(Self {
            sparsity,
            splice: Some(splice),
        })
    }

    /// A report from measures taken separately (e.g. sparsity on a held-out store).
    pub fn from_parts(sparsity: SparsityReport, splice: Option<SpliceReport>) -> Self {
        Self { sparsity, splice }
    }

    /// Every scalar measure as a two-column table (metric, value), splice scores included
    /// when measured, and the mean log10 feature density.
    ///
    /// # Errors
    /// Only if polars refuses the columns.
    pub fn frame(&self) -> Result<DataFrame> {
        let mut rows = self.sparsity.rows();
        rows.extend(self.splice.iter().flat_map(SpliceReport::rows));
        rows.push((
            "mean_log10_density",
            self.sparsity
                .log10_density
                .f_mean(Kind::Double)?
                .double_value(&[]),
        ));
        crate::metrics::metric_frame(&rows)
    }

    /// The feature-density histogram (see [`SparsityReport::density_histogram`]).
    ///
    /// # Errors
    /// As [`mechlens_tables::histogram`].
    pub fn density_histogram(&self, bins: i64) -> Result<DataFrame> {
        self.sparsity.density_histogram(bins)
    }
}

/// Mean next-token cross-entropy of `logits` `[batch, pos, vocab]` on `tokens`.
fn ce(logits: &Tensor, tokens: &Tensor) -> Result<f64> {
    let p = logits.size()[1];
    if p < 2 {
        return Err(Error::invalid(
            "tokens",
            "a next-token loss needs at least two positions",
        ));
    }
    let logp = logits
        .f_narrow(1, 0, p - 1)?
        .f_log_softmax(-1, Kind::Double)?;
    let next = tokens
        .f_to_device(logits.device())?
        .f_narrow(1, 1, p - 1)?
        .f_unsqueeze(-1)?;
    Ok(-logp
        .f_gather(-1, &next, false)?
        .f_mean(Kind::Double)?
        .double_value(&[]))
}

/// Mean over positions of KL(p ‖ q) between the next-token distributions, in double.
fn kl(p_logits: &Tensor, q_logits: &Tensor) -> Result<f64> {
    let (p, q) = (
        p_logits.f_to_kind(Kind::Double)?,
        q_logits.f_to_kind(Kind::Double)?,
    );
    Ok(crate::e2e::kl_divergence(&p, &q)?.double_value(&[]))
}
