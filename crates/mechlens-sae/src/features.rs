//! Reading what a latent means: the contexts where it fires hardest, its direct effect on
//! the logits (decoder row · W_U, SAELens' and Neuronpedia's "logit effects"), and its
//! activation distribution.

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use polars::prelude::{Column, DataFrame};
use tch::{Kind, Tensor};

use crate::sae::Sae;
use crate::store::ActivationStore;

fn frame(columns: Vec<Column>) -> Result<DataFrame> {
    DataFrame::new_infer_height(columns).map_err(Error::from)
}

fn check_latents(sae: &Sae, latents: &[i64]) -> Result<()> {
    latents.iter().try_for_each(|&l| {
        mechlens_core::shape::check_index("latent", l, sae.cfg.d_sae as usize, "the SAE")
    })
}

/// How many contexts [`top_activations`] shows per latent, and how wide.
#[derive(Clone, Copy, Debug)]
pub struct TopActivationOptions {
    /// Rows of the store per latent, strongest first (default 10).
    pub k: usize,
    /// Tokens of context on each side of the firing token (default 8).
    pub window: usize,
}

impl Default for TopActivationOptions {
    fn default() -> Self {
        Self { k: 10, window: 8 }
    }
}

/// The `opts.k` rows of `store` where each latent fires hardest, with `opts.window` tokens of
/// context on each side (the firing token in `[[ ]]`).
///
/// Columns: latent, rank, activation, window, pos, token, context.
///
/// ```no_run
/// # use mechlens_sae::{Sae, store::ActivationStore};
/// # use mechlens_sae::features::{TopActivationOptions, top_activations};
/// # fn f(model: &mechlens_models::HookedTransformer, sae: &Sae, store: &ActivationStore) -> mechlens_core::Result<()> {
/// let top = top_activations(model, sae, store, &[3, 77], TopActivationOptions { k: 5, ..Default::default() })?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for a latent out of range or a model without a tokenizer;
/// [`Error::ShapeMismatch`] when the store's width is not the SAE's `d_in`.
pub fn top_activations(
    model: &HookedTransformer,
    sae: &Sae,
    store: &ActivationStore,
    latents: &[i64],
    opts: TopActivationOptions,
) -> Result<DataFrame> {
    let _guard = tch::no_grad_guard();
    let (k, window) = (opts.k as i64, opts.window as i64);
    check_latents(sae, latents)?;
    let tokenizer = model
        .tokenizer()
        .ok_or_else(|| Error::invalid("model", "it has no tokenizer to show contexts with"))?;
    let index = Tensor::from_slice(latents);
    let mut acts = Vec::new();
    let chunk = 4096;
    let mut start = 0;
    while start < store.len() {
        let len = chunk.min(store.len() - start);
        let a = sae.encode(&store.activations.f_narrow(0, start, len)?)?;
        acts.push(a.f_index_select(1, &index)?);
        start += len;
    }
    let acts = Tensor::f_cat(&acts, 0)?; // [rows, latents]
    let k = k.clamp(1, store.len().max(1));
    let (values, rows) = acts.f_topk(k, 0, true, true)?;
    #[derive(Default)]
    struct Rows(
        Vec<i64>,
        Vec<i64>,
        Vec<f64>,
        Vec<i64>,
        Vec<i64>,
        Vec<String>,
        Vec<String>,
    );
    let mut cols = Rows::default();
    let pos_count = store.tokens.size()[1];
    for (j, &latent) in latents.iter().enumerate() {
        for r in 0..k {
            let row = rows.f_int64_value(&[r, j as i64])?;
            let (w, p) = store.origin_of(row)?;
            let ids: Vec<i64> = Vec::try_from(store.tokens.f_get(w)?)?;
            let text = |a: i64, b: i64| {
                tokenizer
                    .decode(&ids[a.clamp(0, pos_count) as usize..b.clamp(0, pos_count) as usize])
            };
            let context = format!(
                "{}[[{}]]{}",
                text(p - window, p)?,
                text(p, p + 1)?,
                text(p + 1, p + 1 + window)?
            );
            cols.0.push(latent);
            cols.1.push(r);
            cols.2.push(values.f_double_value(&[r, j as i64])?);
            cols.3.push(w);
            cols.4.push(p);
            cols.5.push(tokenizer.token_to_str(ids[p as usize])?);
            cols.6.push(context.replace('\n', "↵"));
        }
    }
    frame(vec![
        Column::new("latent".into(), cols.0),
        Column::new("rank".into(), cols.1),
        Column::new("activation".into(), cols.2),
        Column::new("window".into(), cols.3),
        Column::new("pos".into(), cols.4),
        Column::new("token".into(), cols.5),
        Column::new("context".into(), cols.6),
    ])
}

/// Each latent's direct effect on the logits, `W_dec[latent] · W_U`: its `k` most promoted
/// (`direction` "top", rank 0 first) and most suppressed ("bottom") tokens.
///
/// Columns: latent, direction, rank, token_id, token, effect.
///
/// # Errors
/// [`Error::InvalidInput`] for a latent out of range or no tokenizer;
/// [`Error::ShapeMismatch`] when `d_in` is not the model's `d_model` (logit effects need a
/// residual-stream SAE).
pub fn logit_effects(
    model: &HookedTransformer,
    sae: &Sae,
    latents: &[i64],
    k: i64,
) -> Result<DataFrame> {
    let _guard = tch::no_grad_guard();
    check_latents(sae, latents)?;
    let tokenizer = model
        .tokenizer()
        .ok_or_else(|| Error::invalid("model", "it has no tokenizer to name tokens with"))?;
    let w_u = model.w_u();
    if w_u.size()[0] != sae.cfg.d_in {
        return Err(Error::ShapeMismatch {
            what: "SAE decoder for logit effects".into(),
            expected: format!("d_in = d_model = {} (a residual-stream SAE)", w_u.size()[0]),
            got: vec![sae.cfg.d_in],
        });
    }
    let rows = sae.w_dec.f_index_select(0, &Tensor::from_slice(latents))?;
    let effects = rows
        .f_to_device(w_u.device())?
        .f_to_kind(w_u.kind())?
        .f_matmul(&w_u)?
        .f_to_kind(Kind::Double)?;
    let k = k.clamp(1, effects.size()[1]);
    #[derive(Default)]
    struct Rows(
        Vec<i64>,
        Vec<&'static str>,
        Vec<i64>,
        Vec<i64>,
        Vec<String>,
        Vec<f64>,
    );
    let mut cols = Rows::default();
    for (j, &latent) in latents.iter().enumerate() {
        let row = effects.f_get(j as i64)?;
        for (direction, largest) in [("top", true), ("bottom", false)] {
            let (values, ids) = row.f_topk(k, 0, largest, true)?;
            for r in 0..k {
                let id = ids.f_int64_value(&[r])?;
                cols.0.push(latent);
                cols.1.push(direction);
                cols.2.push(r);
                cols.3.push(id);
                cols.4.push(tokenizer.token_to_str(id)?);
                cols.5.push(values.f_double_value(&[r])?);
            }
        }
    }
    frame(vec![
        Column::new("latent".into(), cols.0),
        Column::new("direction".into(), cols.1),
        Column::new("rank".into(), cols.2),
        Column::new("token_id".into(), cols.3),
        Column::new("token".into(), cols.4),
        Column::new("effect".into(), cols.5),
    ])
}

/// The non-zero activations of `latent` over every row of `store` (1-D, in row order): the
/// values behind an activation histogram.
///
/// # Errors
/// [`Error::InvalidInput`] for a latent out of range; [`Error::ShapeMismatch`] when the
/// store's width is not the SAE's `d_in`.
pub fn latent_activations(sae: &Sae, store: &ActivationStore, latent: i64) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    check_latents(sae, &[latent])?;
    let mut parts = Vec::new();
    let chunk = 4096;
    let mut start = 0;
    while start < store.len() {
        let len = chunk.min(store.len() - start);
        let a = sae
            .encode(&store.activations.f_narrow(0, start, len)?)?
            .f_select(1, latent)?;
        parts.push(a.f_masked_select(&a.f_gt(0.0)?)?);
        start += len;
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

/// Histogram of `latent`'s non-zero activations over `store` in `bins` bins (columns
/// bin_start, bin_end, count; see [`mechlens_tables::histogram`]).
///
/// # Errors
/// As [`latent_activations`]; [`Error::InvalidInput`] when the latent never fires there.
pub fn activation_histogram(
    sae: &Sae,
    store: &ActivationStore,
    latent: i64,
    bins: i64,
) -> Result<DataFrame> {
    let values = latent_activations(sae, store, latent)?;
    if values.numel() == 0 {
        return Err(Error::invalid(
            "latent",
            format!(
                "{latent} never fires on these {} rows; nothing to histogram",
                store.len()
            ),
        ));
    }
    mechlens_tables::histogram(&values, bins, None)
}
