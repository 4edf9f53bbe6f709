//! Charts drawn with plotters into SVG, shown inline in a notebook.
//!
//! SVG keeps the project free of system font libraries: the browser draws the text.

use crate::display::{NotebookDisplay, emit};
use mechlens_core::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, IntoDrawingArea, SVGBackend};
use std::path::Path;

/// A finished SVG image. The last expression of a cell shows it inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svg(String);

impl Svg {
    /// Wraps SVG markup made elsewhere.
    pub fn new(markup: impl Into<String>) -> Self {
        Self(markup.into())
    }

    /// The SVG markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the SVG to `path`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file when it cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, &self.0).map_err(|source| Error::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        })
    }
}

impl NotebookDisplay for Svg {
    fn evcxr_display(&self) {
        emit("image/svg+xml", &self.0);
    }
}

/// The drawing area a chart closure draws on.
pub type SvgArea<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws a `width` × `height` pixel chart with plotters and returns it as [`Svg`].
///
/// The closure gets a white drawing area and draws on it exactly as in plotters' examples;
/// errors from plotters can be returned with `?`.
///
/// ```
/// use mechlens::prelude::*;
///
/// let svg = svg_chart(400, 300, |root| {
///     let mut chart = ChartBuilder::on(root)
///         .caption("y = x²", ("sans-serif", 20))
///         .build_cartesian_2d(-1f32..1f32, 0f32..1f32)?;
///     chart.draw_series(LineSeries::new((-10..=10).map(|i| i as f32 / 10.0).map(|x| (x, x * x)), &RED))?;
///     Ok(())
/// })?;
/// assert!(svg.as_str().starts_with("<svg"));
/// # Ok::<(), mechlens::Error>(())
/// ```
///
/// # Errors
/// [`Error::Chart`] with plotters' message when drawing fails.
pub fn svg_chart<F>(width: u32, height: u32, draw: F) -> Result<Svg>
where
    F: FnOnce(&SvgArea<'_>) -> std::result::Result<(), Box<dyn std::error::Error>>,
{
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "chart size",
            format!("{width}x{height} pixels; both sides must be at least 1"),
        ));
    }
    let mut markup = String::new();
    {
        let root = SVGBackend::with_string(&mut markup, (width, height)).into_drawing_area();
        root.fill(&plotters::style::WHITE)
            .map_err(|e| Error::Chart(e.to_string()))?;
        draw(&root).map_err(|e| Error::Chart(e.to_string()))?;
        root.present().map_err(|e| Error::Chart(e.to_string()))?;
    }
    Ok(Svg(markup))
}

/// A histogram of `values` in `bins` equal-width bins over `range` (default: their min and
/// max), drawn as bars; non-finite values and values outside the range are left out (the
/// caption says how many). For feature densities pass the log10 densities and
/// `Some((-10.0, 0.0))`; for a latent's activations, `latent_activations(...)`.
///
/// ```
/// use mechlens::prelude::*;
///
/// let svg = histogram_chart(&[0.1, 0.2, 0.25, 0.9], 4, None, "activations", "value")?;
/// assert!(svg.as_str().contains("<rect"));
/// # Ok::<(), mechlens::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidInput`] for zero bins, no finite value, or an empty or reversed range;
/// [`Error::Chart`] when drawing fails.
pub fn histogram_chart(
    values: &[f64],
    bins: usize,
    range: Option<(f64, f64)>,
    title: &str,
    x_label: &str,
) -> Result<Svg> {
    use plotters::prelude::*;
    let mechlens_sae::metrics::Bins {
        low,
        width,
        counts,
        left_out,
    } = mechlens_sae::metrics::bin_counts(values, bins, range)?;
    let (lo, hi) = (low, low + width * bins as f64);
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.05;
    let caption = if left_out > 0 {
        format!("{title} ({left_out} values outside or not finite)")
    } else {
        title.to_string()
    };
    svg_chart(480, 300, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(lo..hi, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .disable_x_mesh()
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], BLUE.mix(0.6).filled())
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn line_chart_renders_svg_with_text_and_path() -> Result<()> {
        let svg = svg_chart(320, 200, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption("loss", ("sans-serif", 16))
                .x_label_area_size(20)
                .y_label_area_size(30)
                .build_cartesian_2d(0f32..10f32, 0f32..1f32)?;
            chart.configure_mesh().draw()?;
            chart.draw_series(LineSeries::new(
                (0..10).map(|i| (i as f32, 1.0 / (1.0 + i as f32))),
                &BLUE,
            ))?;
            Ok(())
        })?;
        let s = svg.as_str();
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.contains(r#"width="320""#));
        // plotters puts text content on its own line.
        assert!(
            s.replace('\n', "").contains(">loss</text>"),
            "caption drawn as SVG text: {s}"
        );
        assert!(s.contains("<polyline"), "line series drawn");
        Ok(())
    }

    #[test]
    fn save_to_a_missing_folder_names_the_file() {
        let path = std::env::temp_dir().join("mechlens-no-such-dir/chart.svg");
        let err = Svg::new("<svg/>")
            .save(&path)
            .expect_err("folder is missing");
        let msg = err.to_string();
        assert!(
            msg.starts_with("writing ") && msg.contains("chart.svg"),
            "{msg}"
        );
    }

    #[test]
    fn histogram_draws_one_bar_per_bin_and_counts_what_it_leaves_out() -> Result<()> {
        let svg = histogram_chart(
            &[0.0, 0.5, 1.0, 7.0, f64::NAN],
            2,
            Some((0.0, 1.0)),
            "h",
            "x",
        )?;
        let s = svg.as_str();
        // The white background is a rect too.
        assert_eq!(s.matches("<rect").count(), 3, "{s}");
        assert!(
            s.replace('\n', "")
                .contains("h (2 values outside or not finite)"),
            "{s}"
        );
        assert!(histogram_chart(&[f64::NAN], 3, None, "h", "x").is_err());
        assert!(histogram_chart(&[1.0], 0, None, "h", "x").is_err());
        assert!(histogram_chart(&[1.0], 3, Some((2.0, 1.0)), "h", "x").is_err());
        // One distinct value still draws.
        assert!(histogram_chart(&[3.0, 3.0], 3, None, "h", "x").is_ok());
        Ok(())
    }

    #[test]
    fn zero_size_is_an_error() {
        let err = svg_chart(0, 10, |_| Ok(())).expect_err("zero width");
        assert!(err.to_string().contains("0x10"), "{err}");
    }

    #[test]
    fn closure_error_is_returned_not_panicked() {
        let err = svg_chart(10, 10, |_| Err("no data".into())).expect_err("closure failed");
        assert_eq!(err.to_string(), "chart could not be drawn: no data");
    }
}
