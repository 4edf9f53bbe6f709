//! Reconstruction and sparsity measures of an SAE on a batch of activations, with SAELens'
//! definitions (`sae_lens.evals`): L0 and L1 per token, MSE, explained variance
//! `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²`, cosine similarity and L2 ratio `‖x̂‖ / ‖x‖` (shrinkage),
//! log10 feature density, dead (never fired) and dense (fired on > 10 % of tokens) latents.

use mechlens_core::{Error, Result};
use polars::prelude::{Column, DataFrame};
use tch::{Kind, Tensor};

use crate::sae::Sae;

/// Measures of one SAE on one set of activations.
#[derive(Debug)]
pub struct SparsityReport {
    /// Tokens measured.
    pub tokens: i64,
    /// Mean active latents per token.
    pub l0: f64,
    /// Mean Σ|acts| per token.
    pub l1: f64,
    /// Mean squared error per element.
    pub mse: f64,
    /// `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²`.
    pub explained_variance: f64,
    /// Mean cosine similarity of x̂ and x.
    pub cosine_similarity: f64,
    /// Mean ‖x̂‖ / ‖x‖ over tokens with ‖x‖ > 1e-6 (below 1: shrinkage).
    pub l2_ratio: f64,
    /// Latents that never fired.
    pub dead_latents: i64,
    /// Latents that fired on more than 10 % of tokens.
    pub dense_latents: i64,
    /// log10 of each latent's firing rate, `[d_sae]` (−10 for latents that never fired,
    /// the `1e-10` floor SAELens adds).
    pub log10_density: Tensor,
}

impl SparsityReport {
    /// Measures `sae` on `x`, in chunks of `batch` tokens.
    ///
    /// # Shapes
    /// `x`: `[..., d_in]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the width is not `d_in`, [`Error::InvalidInput`] for no
    /// tokens or NaN activations.
    pub fn measure(sae: &Sae, x: &Tensor, batch: i64) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let d_in = sae.cfg.d_in;
        if x.size().last() != Some(&d_in) {
            return Err(Error::ShapeMismatch {
                what: "activations to measure".into(),
                expected: format!("[..., d_in={d_in}]"),
                got: x.size(),
            });
        }
        let x = x.f_reshape([-1, d_in])?.f_to_kind(Kind::Float)?;
        let n = x.size()[0];
        if n == 0 {
            return Err(Error::invalid("activations", "no tokens to measure"));
        }
        if !bool::try_from(x.f_isfinite()?.f_all()?)? {
            return Err(Error::invalid("activations", "they contain NaN or inf"));
        }
        let mut sums = [0.0f64; 6];
        let mut ratio_tokens = 0.0;
        let mut fired = Tensor::zeros([sae.cfg.d_sae], (Kind::Double, x.device()));
        let mean = x.f_mean_dim(0, true, Kind::Float)?;
        let mut start = 0;
        while start < n {
            let len = batch.max(1).min(n - start);
            let xb = x.f_narrow(0, start, len)?;
            let (acts, recon) = sae.encode_decode(&xb)?;
            let sum = |t: Tensor| -> Result<f64> { Ok(t.f_sum(Kind::Double)?.double_value(&[])) };
            let active = acts.f_gt(0.0)?;
            sums[0] += sum(active.f_to_kind(Kind::Double)?)?;
            sums[1] += sum(acts.f_abs()?)?;
            sums[2] += sum(recon.f_sub(&xb)?.f_square()?)?;
            sums[3] += sum(xb.f_sub(&mean)?.f_square()?)?;
            let norm_x = xb.f_norm_scalaropt_dim(2, [-1], false)?;
            let norm_r = recon.f_norm_scalaropt_dim(2, [-1], false)?;
            let cos = recon
                .f_mul(&xb)?
                .f_sum_dim_intlist(-1, false, Kind::Float)?
                .f_div(&norm_x.f_mul(&norm_r)?.f_clamp_min(1e-8)?)?;
            sums[4] += sum(cos)?;
            // Shrinkage is undefined for (near-)zero inputs; SAELens skips them too.
            let valid = norm_x.f_gt(1e-6)?;
            sums[5] += sum(norm_r
                .f_div(&norm_x.f_clamp_min(1e-6)?)?
                .f_masked_select(&valid)?)?;
            ratio_tokens += sum(valid.f_to_kind(Kind::Double)?)?;
            fired = fired.f_add(&active.f_sum_dim_intlist(0, false, Kind::Double)?)?;
            start += len;
        }
        let tokens = n as f64;
        let density = fired.f_div_scalar(tokens)?;
        let count = |t: Tensor| -> Result<i64> { Ok(t.f_sum(Kind::Int64)?.int64_value(&[])) };
        Ok(Self {
            tokens: n,
            l0: sums[0] / tokens,
            l1: sums[1] / tokens,
            mse: sums[2] / (tokens * d_in as f64),
            explained_variance: 1.0 - sums[2] / sums[3],
            cosine_similarity: sums[4] / tokens,
            l2_ratio: sums[5] / ratio_tokens.max(1.0),
            dead_latents: count(fired.f_eq(0.0)?)?,
            dense_latents: count(density.f_gt(0.1)?)?,
            log10_density: density
                .f_add_scalar(1e-10)?
                .f_log10()?
                .f_to_kind(Kind::Float)?,
        })
    }

    /// The scalar measures as a two-column table (metric, value).
    ///
    /// # Errors
    /// Only if polars refuses the columns.
    pub fn frame(&self) -> Result<DataFrame> {
        metric_frame(&self.rows())
    }

    /// `(metric, value)` for every scalar measure.
    pub(crate) fn rows(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("tokens", self.tokens as f64),
            ("l0", self.l0),
            ("l1", self.l1),
            ("mse", self.mse),
            ("explained_variance", self.explained_variance),
            ("cosine_similarity", self.cosine_similarity),
            ("l2_ratio", self.l2_ratio),
            ("dead_latents", self.dead_latents as f64),
            ("dense_latents", self.dense_latents as f64),
        ]
    }
}

impl SparsityReport {
    /// How many latents have each log10 firing density: [`histogram`] of
    /// `log10_density` over `[-10, 0]` (never-firing latents land in the first bin), the
    /// feature-density histogram SAELens users plot.
    ///
    /// # Errors
    /// As [`histogram`].
    pub fn density_histogram(&self, bins: i64) -> Result<DataFrame> {
        // A latent firing on every token sits a hair above 0 (the 1e-10 floor); it belongs in
        // the last bin.
        let clamped = self.log10_density.f_clamp(-10.0, 0.0)?;
        histogram(&clamped, bins, Some((-10.0, 0.0)))
    }
}

/// Equal-width bins and how many values fell in each.
#[derive(Clone, Debug, PartialEq)]
pub struct Bins {
    /// Left edge of the first bin.
    pub low: f64,
    /// Width of every bin.
    pub width: f64,
    /// Values per bin.
    pub counts: Vec<i64>,
    /// Values outside the range or not finite.
    pub left_out: usize,
}

/// Counts `values` in `bins` equal-width bins over `range` (default: the finite values' min
/// and max), as numpy's `histogram` does: the last bin includes its right edge; values
/// outside the range and non-finite ones are left out (and counted in `left_out`).
///
/// # Errors
/// [`Error::InvalidInput`] for zero bins, no finite value, or an empty or reversed range.
pub fn bin_counts(values: &[f64], bins: usize, range: Option<(f64, f64)>) -> Result<Bins> {
    if bins == 0 {
        return Err(Error::invalid("bins", "0; need at least 1"));
    }
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Err(Error::invalid(
            "histogram values",
            format!("none of the {} values is finite", values.len()),
        ));
    }
    let (lo, hi) = range.unwrap_or_else(|| {
        finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    });
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Err(Error::invalid(
            "histogram range",
            format!("[{lo}, {hi}]; expected finite bounds with low <= high"),
        ));
    }
    // A single value still gets a bin of width 1 around it.
    let (lo, hi) = if hi == lo {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0i64; bins];
    let mut left_out = values.len() - finite.len();
    for v in finite {
        if v < lo || v > hi {
            left_out += 1;
        } else {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
    }
    Ok(Bins {
        low: lo,
        width,
        counts,
        left_out,
    })
}

/// [`bin_counts`] of a tensor's values as a table: bin_start, bin_end, count.
///
/// # Errors
/// As [`bin_counts`], and for a negative `bins`.
pub fn histogram(values: &Tensor, bins: i64, range: Option<(f64, f64)>) -> Result<DataFrame> {
    let bins = usize::try_from(bins)
        .map_err(|_| Error::invalid("bins", format!("{bins}; need at least 1")))?;
    let values = Vec::<f64>::try_from(values.f_flatten(0, -1)?.f_to_kind(Kind::Double)?)?;
    let b = bin_counts(&values, bins, range)?;
    let edge = |i: usize| b.low + i as f64 * b.width;
    DataFrame::new_infer_height(vec![
        Column::new("bin_start".into(), (0..bins).map(edge).collect::<Vec<_>>()),
        Column::new("bin_end".into(), (1..=bins).map(edge).collect::<Vec<_>>()),
        Column::new("count".into(), b.counts),
    ])
    .map_err(|e| Error::invalid("histogram frame", e.to_string()))
}

/// Scalar measures as a two-column table (metric, value).
pub(crate) fn metric_frame(rows: &[(&str, f64)]) -> Result<DataFrame> {
    DataFrame::new_infer_height(vec![
        Column::new(
            "metric".into(),
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        ),
        Column::new("value".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
    ])
    .map_err(|e| Error::invalid("report frame", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_as_numpy_does() {
        // numpy.histogram([0, .5, 1, 2, nan], bins=2, range=(0, 1)) -> [1, 2]: the last bin
        // includes its right edge; out-of-range and NaN values are left out.
        let v = Tensor::from_slice(&[0.0f64, 0.5, 1.0, 2.0, f64::NAN]);
        let h = histogram(&v, 2, Some((0.0, 1.0))).unwrap();
        let counts: Vec<i64> = h
            .column("count")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(counts, [1, 2]);
        let starts: Vec<f64> = h
            .column("bin_start")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(starts, [0.0, 0.5]);
        assert!(histogram(&v, 0, None).is_err());
        assert!(histogram(&Tensor::from_slice(&[f64::NAN]), 3, None).is_err());
        assert!(histogram(&v, 2, Some((1.0, 0.0))).is_err());
        let one = histogram(&Tensor::from_slice(&[3.0f64]), 1, None).unwrap();
        assert_eq!(one.column("count").unwrap().i64().unwrap().get(0), Some(1));
    }
}
