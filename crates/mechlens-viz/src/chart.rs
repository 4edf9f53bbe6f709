//! A chart builder over plotters: line, scatter, bar and histogram charts from slices,
//! tensors or DataFrame columns, with titles, axis labels, legends and log axes.
//!
//! The builder keeps the first error it meets (a missing column, a 2-D tensor, series of
//! different lengths) and returns it from [`Chart::svg`]; displayed as a cell's result, a
//! failed chart shows its error instead of a broken image. Drawing is in `draw`.

mod draw;

use mechlens_core::{Error, Result};
use polars::prelude::DataFrame;
use std::path::Path;

use crate::svg::Svg;
use mechlens_tables::values::{IntoValues, column, column_strings};

/// Which kind of chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChartKind {
    Line,
    Scatter,
    Bar,
    Histogram { bins: usize },
}

#[derive(Clone, Debug)]
struct Series {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    labels: Vec<String>,
}

/// A chart being described; [`Chart::svg`] draws it.
///
/// ```
/// use mechlens_viz::Chart;
///
/// let steps = [0.0, 100.0, 200.0, 300.0];
/// let svg = Chart::line("training loss")
///     .x_label("step")
///     .y_label("loss")
///     .log_y()
///     .series("train", &steps, &[4.1, 2.0, 1.2, 0.9])
///     .series("eval", &steps, &[4.2, 2.3, 1.5, 1.3])
///     .svg()?;
/// assert!(svg.as_str().contains("eval"));
/// # Ok::<(), mechlens_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Chart {
    kind: ChartKind,
    title: String,
    x_label: String,
    y_label: String,
    log_x: bool,
    log_y: bool,
    size: (u32, u32),
    series: Vec<Series>,
    range: Option<(f64, f64)>,
    error: Option<String>,
}

impl Chart {
    fn new(kind: ChartKind, title: &str) -> Self {
        Self {
            kind,
            title: title.to_string(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            size: (560, 340),
            series: Vec::new(),
            range: None,
            error: None,
        }
    }

    /// Lines through `(x, y)` points, one per [`Chart::series`], with a legend.
    pub fn line(title: &str) -> Self {
        Self::new(ChartKind::Line, title)
    }

    /// Points, optionally labelled ([`Chart::point_labels`]): feature geometry, embeddings.
    pub fn scatter(title: &str) -> Self {
        Self::new(ChartKind::Scatter, title)
    }

    /// Bars, one per category ([`Chart::bars`]); negative values go down from 0.
    pub fn bar(title: &str) -> Self {
        Self::new(ChartKind::Bar, title)
    }

    /// A histogram of [`Chart::values`] in `bins` equal-width bins (on log10 of the values
    /// with [`Chart::log_x`], as for feature densities).
    pub fn histogram(title: &str, bins: usize) -> Self {
        Self::new(ChartKind::Histogram { bins }, title)
    }

    fn fail(mut self, message: String) -> Self {
        self.error.get_or_insert(message);
        self
    }

    /// The x axis' label.
    pub fn x_label(mut self, label: &str) -> Self {
        self.x_label = label.to_string();
        self
    }

    /// The y axis' label.
    pub fn y_label(mut self, label: &str) -> Self {
        self.y_label = label.to_string();
        self
    }

    /// A log10 x axis; values ≤ 0 are left out (the title says how many).
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// A log10 y axis; values ≤ 0 are left out (the title says how many).
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    /// The image size in pixels (default 560 × 340).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// For a histogram: the binned range, in the values' units (before log10).
    pub fn range(mut self, low: f64, high: f64) -> Self {
        self.range = Some((low, high));
        self
    }

    /// Adds a series of `(x[i], y[i])` points named `name` in the legend.
    pub fn series(self, name: &str, x: impl IntoValues, y: impl IntoValues) -> Self {
        let x = match x.into_values(&format!("x of series `{name}`")) {
            Ok(v) => v,
            Err(e) => return self.fail(e.to_string()),
        };
        let y = match y.into_values(&format!("y of series `{name}`")) {
            Ok(v) => v,
            Err(e) => return self.fail(e.to_string()),
        };
        self.push(name, x, y)
    }

    /// Adds a series with `y` at x = 0, 1, 2, ...
    pub fn series_y(self, name: &str, y: impl IntoValues) -> Self {
        match y.into_values(&format!("y of series `{name}`")) {
            Ok(y) => {
                let x = (0..y.len()).map(|i| i as f64).collect();
                self.push(name, x, y)
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    fn push(mut self, name: &str, x: Vec<f64>, y: Vec<f64>) -> Self {
        if x.len() != y.len() {
            return self.fail(format!(
                "series `{name}` has {} x values but {} y values; they must pair up",
                x.len(),
                y.len()
            ));
        }
        self.series.push(Series {
            name: name.to_string(),
            x,
            y,
            labels: Vec::new(),
        });
        self
    }

    /// Labels the points of the last series added (a scatter's feature names, say).
    pub fn point_labels<S: AsRef<str>>(mut self, labels: &[S]) -> Self {
        let Some(last) = self.series.last_mut() else {
            return self.fail("point_labels needs a series added before it".into());
        };
        if labels.len() != last.x.len() {
            let message = format!(
                "{} point labels for series `{}` of {} points",
                labels.len(),
                last.name,
                last.x.len()
            );
            return self.fail(message);
        }
        last.labels = labels.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Adds the `x` and `y` columns of `df` as a series named after `y`.
    pub fn frame(self, df: &DataFrame, x: &str, y: &str) -> Self {
        match (column(df, x), column(df, y)) {
            (Ok(xc), Ok(yc)) => self.series(y, xc, yc),
            (Err(e), _) | (_, Err(e)) => self.fail(e.to_string()),
        }
    }

    /// Adds one series per distinct value of `group` in `df` (a long-format table: one row
    /// per point), in order of first appearance.
    pub fn frame_by(self, df: &DataFrame, x: &str, y: &str, group: &str) -> Self {
        let read = || -> Result<(Vec<f64>, Vec<f64>, Vec<String>)> {
            Ok((
                column(df, x)?.into_values(x)?,
                column(df, y)?.into_values(y)?,
                column_strings(df, group)?,
            ))
        };
        let (xs, ys, groups) = match read() {
            Ok(parts) => parts,
            Err(e) => return self.fail(e.to_string()),
        };
        let mut order: Vec<String> = Vec::new();
        for g in &groups {
            if !order.contains(g) {
                order.push(g.clone());
            }
        }
        order.into_iter().fold(self, |chart, g| {
            let (x, y): (Vec<f64>, Vec<f64>) = groups
                .iter()
                .zip(xs.iter().zip(&ys))
                .filter(|(h, _)| **h == g)
                .map(|(_, (&x, &y))| (x, y))
                .unzip();
            chart.push(&g, x, y)
        })
    }

    /// For a bar chart: one bar per category.
    pub fn bars<S: AsRef<str>>(self, categories: &[S], values: impl IntoValues) -> Self {
        let values = match values.into_values("bar values") {
            Ok(v) => v,
            Err(e) => return self.fail(e.to_string()),
        };
        if categories.len() != values.len() {
            let message = format!(
                "{} categories but {} bar values",
                categories.len(),
                values.len()
            );
            return self.fail(message);
        }
        let x = (0..values.len()).map(|i| i as f64).collect();
        let mut chart = self.push("bars", x, values);
        if let Some(last) = chart.series.last_mut() {
            last.labels = categories.iter().map(|s| s.as_ref().to_string()).collect();
        }
        chart
    }

    /// For a histogram: the values to bin.
    pub fn values(self, values: impl IntoValues) -> Self {
        match values.into_values("histogram values") {
            // Binned values are kept as the series' x; its y is unused.
            Ok(v) => {
                let y = vec![0.0; v.len()];
                self.push("values", v, y)
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Draws the chart.
    ///
    /// # Errors
    /// The first problem met while building ([`Error::InvalidInput`] naming it), no series,
    /// no point left to draw, or [`Error::Chart`] from plotters.
    pub fn svg(&self) -> Result<Svg> {
        if let Some(e) = &self.error {
            return Err(Error::invalid(format!("chart `{}`", self.title), e.clone()));
        }
        if self.series.is_empty() {
            return Err(Error::invalid(
                format!("chart `{}`", self.title),
                "nothing to draw: add a series (or bars, or values) first",
            ));
        }
        match self.kind {
            ChartKind::Line | ChartKind::Scatter => self.draw_xy(),
            ChartKind::Bar => self.draw_bars(),
            ChartKind::Histogram { bins } => self.draw_histogram(bins),
        }
    }

    /// Writes the chart to an SVG file.
    ///
    /// # Errors
    /// As [`Chart::svg`] and [`Svg::save`].
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        self.svg()?.save(path)
    }

    /// Writes the chart to a PNG file.
    ///
    /// # Errors
    /// As [`Chart::svg`] and [`Svg::save_png`].
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        self.svg()?.save_png(path)
    }
}

crate::display::display_fallible!(Chart, "chart", svg);

#[cfg(test)]
mod tests;
