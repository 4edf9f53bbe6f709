//! A feature dashboard for one SAE latent, in the manner of sae_vis and Neuronpedia: its
//! density, its activation histogram, its logit effects, and its top-activating contexts
//! with every token coloured by the latent's activation there.

use std::fmt::Write as _;

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use mechlens_sae::Sae;
use mechlens_sae::store::ActivationStore;
use tch::{Kind, Tensor};

use super::{STYLE, View, token_span};
use crate::chart::Chart;
use crate::colors::Scale;
use crate::display::{escape_html, format_float};
use mechlens_tables::values::{IntoValues, column, column_strings};

/// How much a [`FeatureDashboard`] shows.
#[derive(Clone, Copy, Debug)]
pub struct DashboardOptions {
    /// Top-activating contexts shown.
    pub contexts: i64,
    /// Tokens of context on each side of the firing token.
    pub window: i64,
    /// Promoted and suppressed tokens shown (logit effects).
    pub logit_tokens: i64,
    /// Histogram bins.
    pub bins: usize,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self {
            contexts: 8,
            window: 8,
            logit_tokens: 8,
            bins: 30,
        }
    }
}

/// One context: its tokens, the latent's activation at each (NaN where the store kept no
/// row, e.g. BOS), and which token is the top-activating one.
#[derive(Clone, Debug)]
pub struct Context {
    /// The tokens, as text.
    pub tokens: Vec<String>,
    /// The latent's activation at each token.
    pub activations: Vec<f64>,
    /// The index in `tokens` of the firing token.
    pub peak: usize,
}

/// What is known about one latent over a store; [`FeatureDashboard::view`] renders it.
#[derive(Clone, Debug)]
pub struct FeatureDashboard {
    /// The latent.
    pub latent: i64,
    /// The fraction of the store's rows where it fires (> 0).
    pub density: f64,
    /// Its largest activation.
    pub max_activation: f64,
    /// The top-activating contexts, strongest first.
    pub contexts: Vec<Context>,
    /// Most promoted tokens with their logit effect, strongest first.
    pub promoted: Vec<(String, f64)>,
    /// Most suppressed tokens, most negative first.
    pub suppressed: Vec<(String, f64)>,
    /// Why there are no logit effects (an SAE that does not read the residual stream).
    pub logit_note: Option<String>,
    /// Its non-zero activations.
    pub nonzero: Vec<f64>,
    bins: usize,
}

impl FeatureDashboard {
    /// Measures `latent` of `sae` over `store` (collected from `model` at the SAE's hook).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a latent out of range or a model without a tokenizer;
    /// [`Error::ShapeMismatch`] when the store's width is not the SAE's `d_in`.
    pub fn build(
        model: &HookedTransformer,
        sae: &Sae,
        store: &ActivationStore,
        latent: i64,
        opts: DashboardOptions,
    ) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        mechlens_core::shape::check_index("latent", latent, sae.cfg.d_sae as usize, "the SAE")?;
        let tokenizer = model.require_tokenizer()?;
        if store.is_empty() {
            return Err(Error::invalid(
                "activation store",
                "it has no rows to measure the latent on",
            ));
        }
        // The latent over every row, in chunks so that [rows, d_sae] never exists at once.
        let mut parts = Vec::new();
        let mut start = 0;
        while start < store.len() {
            let len = 4096.min(store.len() - start);
            parts.push(
                sae.encode(&store.activations.f_narrow(0, start, len)?)?
                    .f_select(1, latent)?,
            );
            start += len;
        }
        let acts = Tensor::f_cat(&parts, 0)?.f_to_kind(Kind::Double)?;
        let all: Vec<f64> = (&acts).into_values("latent activations")?;
        let nonzero: Vec<f64> = all.iter().copied().filter(|&v| v > 0.0).collect();
        let density = nonzero.len() as f64 / all.len() as f64;
        let max_activation = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);

        // Activations laid out as the windows: [n_windows, context], NaN where no row is kept.
        let (n_windows, ctx) = (store.tokens.size()[0], store.tokens.size()[1]);
        let linear = store
            .origin
            .f_select(1, 0)?
            .f_mul_scalar(ctx)?
            .f_add(&store.origin.f_select(1, 1)?)?;
        let grid = Tensor::f_full(
            [n_windows * ctx],
            f64::NAN,
            (Kind::Double, tch::Device::Cpu),
        )?
        .f_index_put_(&[Some(linear)], &acts, false)?
        .f_reshape([n_windows, ctx])?;
        let k = opts.contexts.clamp(1, store.len());
        let (_, rows) = acts.f_topk(k, 0, true, true)?;
        let mut contexts = Vec::new();
        for r in Vec::<i64>::try_from(rows)? {
            if all[r as usize] <= 0.0 {
                break; // fewer firing rows than contexts asked for
            }
            let (w, p) = store.origin_of(r)?;
            let (a, b) = ((p - opts.window).max(0), (p + opts.window + 1).min(ctx));
            let ids = Vec::<i64>::try_from(store.tokens.f_get(w)?.f_narrow(0, a, b - a)?)?;
            contexts.push(Context {
                tokens: ids
                    .iter()
                    .map(|&id| tokenizer.token_to_str(id))
                    .collect::<Result<_>>()?,
                activations: (&grid.f_get(w)?.f_narrow(0, a, b - a)?).into_values("context")?,
                peak: (p - a) as usize,
            });
        }

        let (mut promoted, mut suppressed, mut logit_note) = (Vec::new(), Vec::new(), None);
        match mechlens_sae::features::logit_effects(model, sae, &[latent], opts.logit_tokens) {
            Ok(df) => {
                let directions = column_strings(&df, "direction")?;
                let tokens = column_strings(&df, "token")?;
                let effects = column(&df, "effect")?.into_values("effect")?;
                for ((d, t), e) in directions.into_iter().zip(tokens).zip(effects) {
                    if d == "top" {
                        promoted.push((t, e))
                    } else {
                        suppressed.push((t, e))
                    }
                }
            }
            Err(Error::ShapeMismatch { expected, .. }) => {
                logit_note = Some(format!("no logit effects: they need {expected}"));
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            latent,
            density,
            max_activation,
            contexts,
            promoted,
            suppressed,
            logit_note,
            nonzero,
            bins: opts.bins,
        })
    }

    /// Renders the dashboard.
    ///
    /// # Errors
    /// [`Error::Chart`] when the histogram cannot be drawn.
    pub fn view(&self) -> Result<View> {
        let mut html = format!(
            "<div class=\"mlv mechlens-dashboard\" style=\"border:1px solid #ddd;padding:8px\">{STYLE}"
        );
        let _ = write!(
            html,
            "<h4>Latent {}</h4><div>density {} (log10 {}) · max activation {}</div>",
            self.latent,
            format_float(self.density),
            format_float(self.density.log10()),
            format_float(self.max_activation)
        );
        html.push_str(
            "<div style=\"display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start\"><div>",
        );
        if self.nonzero.is_empty() {
            html.push_str("<p>It never fires on these rows.</p>");
        } else {
            let chart = Chart::histogram("activations where it fires", self.bins)
                .x_label("activation")
                .size(380, 220)
                .values(&self.nonzero)
                .svg()?;
            html.push_str(chart.as_str());
        }
        html.push_str("</div><div class=\"mlv-logits\">");
        if let Some(note) = &self.logit_note {
            let _ = write!(html, "<p>{}</p>", escape_html(note));
        } else {
            let limit = self
                .promoted
                .iter()
                .chain(&self.suppressed)
                .map(|(_, e)| e.abs())
                .fold(0.0, f64::max);
            let scale = Scale::Diverging {
                limit: if limit > 0.0 { limit } else { 1.0 },
            };
            for (name, list) in [
                ("promoted", &self.promoted),
                ("suppressed", &self.suppressed),
            ] {
                let _ = write!(html, "<div><b>{name}</b><table>");
                for (t, e) in list {
                    let _ = write!(
                        html,
                        "<tr><td>{}</td><td>{}</td></tr>",
                        token_span(t, *e, scale, ""),
                        format_float(*e)
                    );
                }
                html.push_str("</table></div>");
            }
        }
        html.push_str("</div></div><div class=\"mlv-contexts\"><b>top contexts</b>");
        let scale = Scale::Sequential {
            min: 0.0,
            max: if self.max_activation > 0.0 {
                self.max_activation
            } else {
                1.0
            },
        };
        for c in &self.contexts {
            html.push_str("<div class=\"mlv-row\">");
            for (i, (t, &v)) in c.tokens.iter().zip(&c.activations).enumerate() {
                let span = token_span(t, v, scale, &format!("{}: ", crate::heatmap::visible(t)));
                if i == c.peak {
                    let _ = write!(html, "<b style=\"text-decoration:underline\">{span}</b>");
                } else {
                    html.push_str(&span);
                }
            }
            html.push_str("</div>");
        }
        html.push_str("</div></div>");
        Ok(View::new(html))
    }
}

crate::display::display_fallible!(FeatureDashboard, "dashboard", view);
