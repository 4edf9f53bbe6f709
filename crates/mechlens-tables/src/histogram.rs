//! Equal-width histograms with numpy's rules: counts of a list of numbers, and the same as a
//! table (`bin_start`, `bin_end`, `count`) that charts and notebooks read.

use mechlens_core::{Error, Result};
use polars::prelude::{Column, DataFrame};
use tch::{Kind, Tensor};

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
    .map_err(Error::from)
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
