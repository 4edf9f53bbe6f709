//! A chart builder over plotters: line, scatter, bar and histogram charts from slices,
//! tensors or DataFrame columns, with titles, axis labels, legends and log axes.
//!
//! The builder keeps the first error it meets (a missing column, a 2-D tensor, series of
//! different lengths) and returns it from [`Chart::svg`]; displayed as a cell's result, a
//! failed chart shows its error instead of a broken image.

use mechlens_core::{Error, Result};
use plotters::prelude::*;
use polars::prelude::DataFrame;
use std::path::Path;

use crate::colors::finite_range;
use crate::svg::{Svg, SvgArea, svg_chart};
use mechlens_tables::values::{IntoValues, column, column_strings};

/// Which kind of chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
    kind: Kind,
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

/// Left out of a chart: how many points were not finite, or not positive on a log axis.
fn usable(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() || (log && v <= 0.0) {
        None
    } else if log {
        Some(v.log10())
    } else {
        Some(v)
    }
}

/// Axis tick text: a plain number, or `1e-3` style on a log axis (where `v` is the exponent).
fn tick(v: f64, log: bool) -> String {
    if log {
        let e = v.round();
        if (v - e).abs() < 1e-6 {
            format!("1e{e}")
        } else {
            format!("{:.2e}", 10f64.powf(v))
        }
    } else {
        let text = crate::display::format_float(v);
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    }
}

/// `lo..hi` widened by 5% (or by 1 around a single value) so that points are not on the frame.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

/// A chart's frame: its caption, margin and the room for axis labels (`x_area` pixels below).
fn frame<'a, 'b>(
    root: &'a SvgArea<'b>,
    caption: &str,
    x_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(x_area)
        .y_label_area_size(56);
    builder
}

impl Chart {
    fn new(kind: Kind, title: &str) -> Self {
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
        Self::new(Kind::Line, title)
    }

    /// Points, optionally labelled ([`Chart::point_labels`]): feature geometry, embeddings.
    pub fn scatter(title: &str) -> Self {
        Self::new(Kind::Scatter, title)
    }

    /// Bars, one per category ([`Chart::bars`]); negative values go down from 0.
    pub fn bar(title: &str) -> Self {
        Self::new(Kind::Bar, title)
    }

    /// A histogram of [`Chart::values`] in `bins` equal-width bins (on log10 of the values
    /// with [`Chart::log_x`], as for feature densities).
    pub fn histogram(title: &str, bins: usize) -> Self {
        Self::new(Kind::Histogram { bins }, title)
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
            Kind::Line | Kind::Scatter => self.draw_xy(),
            Kind::Bar => self.draw_bars(),
            Kind::Histogram { bins } => self.draw_histogram(bins),
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

    fn caption(&self, left_out: usize) -> String {
        if left_out > 0 {
            let why = if self.log_x || self.log_y {
                "not finite or ≤ 0 on a log axis"
            } else {
                "not finite"
            };
            format!("{} ({left_out} points left out: {why})", self.title)
        } else {
            self.title.clone()
        }
    }

    fn draw_xy(&self) -> Result<Svg> {
        let (lx, ly) = (self.log_x, self.log_y);
        // Each series' usable points in plot coordinates (log10 on log axes), with labels.
        let mut left_out = 0;
        let mut pts: Vec<Vec<Option<(f64, f64, usize)>>> = Vec::new();
        for s in &self.series {
            let p: Vec<Option<(f64, f64, usize)>> =
                s.x.iter()
                    .zip(&s.y)
                    .enumerate()
                    .map(|(i, (&x, &y))| Some((usable(x, lx)?, usable(y, ly)?, i)))
                    .collect();
            left_out += p.iter().filter(|q| q.is_none()).count();
            pts.push(p);
        }
        let all: Vec<(f64, f64)> = pts
            .iter()
            .flatten()
            .flatten()
            .map(|&(x, y, _)| (x, y))
            .collect();
        if all.is_empty() {
            return Err(Error::invalid(
                format!("chart `{}`", self.title),
                "no finite point to draw (every value is NaN, inf, or ≤ 0 on a log axis)",
            ));
        }
        let range = |coord: fn(&(f64, f64)) -> f64| {
            let values: Vec<f64> = all.iter().map(coord).collect();
            let (lo, hi) = finite_range(&values).unwrap_or((0.0, 1.0));
            padded(lo, hi)
        };
        let (xs, ys) = (range(|p| p.0), range(|p| p.1));
        let caption = self.caption(left_out);
        let legend = self.series.len() > 1 || self.kind == Kind::Line;
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart = frame(root, &caption, 36).build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&|v| tick(*v, lx))
                .y_label_formatter(&|v| tick(*v, ly))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (k, (s, p)) in self.series.iter().zip(&pts).enumerate() {
                let color = Palette99::pick(k).to_rgba();
                if self.kind == Kind::Line {
                    // A non-finite point breaks the line rather than joining across it.
                    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
                    for q in p {
                        match q {
                            Some((x, y, _)) => {
                                segments.last_mut().map_or((), |seg| seg.push((*x, *y)))
                            }
                            None => segments.push(Vec::new()),
                        }
                    }
                    let mut first = true;
                    for seg in segments.into_iter().filter(|s| !s.is_empty()) {
                        let drawn =
                            chart.draw_series(LineSeries::new(seg, color.stroke_width(2)))?;
                        if first {
                            drawn.label(s.name.as_str()).legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                            });
                            first = false;
                        }
                    }
                } else {
                    let drawn = chart.draw_series(
                        p.iter()
                            .flatten()
                            .map(|&(x, y, _)| Circle::new((x, y), 4, color.mix(0.7).filled())),
                    )?;
                    drawn
                        .label(s.name.as_str())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
                    if !s.labels.is_empty() {
                        chart.draw_series(p.iter().flatten().map(|&(x, y, i)| {
                            EmptyElement::at((x, y))
                                + Text::new(
                                    s.labels[i].clone(),
                                    (6, -6),
                                    ("sans-serif", 11).into_font(),
                                )
                        }))?;
                    }
                }
            }
            if legend {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()?;
            }
            Ok(())
        })
    }

    fn draw_bars(&self) -> Result<Svg> {
        let s = &self.series[0];
        let n = s.y.len();
        if n == 0 {
            return Err(Error::invalid(
                format!("chart `{}`", self.title),
                "no bars to draw",
            ));
        }
        let left_out = s.y.iter().filter(|v| !v.is_finite()).count();
        let finite: Vec<f64> = s.y.iter().copied().filter(|v| v.is_finite()).collect();
        let lo = finite.iter().copied().fold(0.0, f64::min);
        let hi = finite.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if hi > lo {
            (lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.05)
        } else {
            (0.0, 1.0)
        };
        let caption = self.caption(left_out);
        let labels = s.labels.clone();
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart =
                frame(root, &caption, 48).build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(n.min(40))
                .x_label_formatter(&|v| {
                    let i = v.round();
                    if (v - i).abs() < 1e-6 && i >= 0.0 {
                        labels.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_label_formatter(&|v| tick(*v, false))
                .draw()?;
            chart.draw_series(s.y.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
                |(i, &v)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], BLUE.mix(0.6).filled())
                },
            ))?;
            Ok(())
        })
    }

    fn draw_histogram(&self, bins: usize) -> Result<Svg> {
        let raw = &self.series[0].x;
        let log = self.log_x;
        let mut left_out = 0;
        let values: Vec<f64> = raw
            .iter()
            .filter_map(|&v| {
                let u = usable(v, log);
                if u.is_none() {
                    left_out += 1;
                }
                u
            })
            .collect();
        let range = match self.range {
            Some((a, b)) if log => {
                if a <= 0.0 || b <= 0.0 {
                    return Err(Error::invalid(
                        "histogram range",
                        format!("({a}, {b}) on a log axis; both ends must be > 0"),
                    ));
                }
                Some((a.log10(), b.log10()))
            }
            other => other,
        };
        let mechlens_tables::Bins {
            low,
            width,
            counts,
            left_out: outside,
        } = mechlens_tables::bin_counts(&values, bins, range)?;
        let (lo, hi) = (low, low + width * bins as f64);
        let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.05;
        let caption = self.caption(left_out + outside);
        let y_label = if self.y_label.is_empty() {
            "count"
        } else {
            self.y_label.as_str()
        };
        svg_chart(self.size.0, self.size.1, |root| {
            let mut chart = frame(root, &caption, 36).build_cartesian_2d(lo..hi, 0f64..top)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(y_label)
                .disable_x_mesh()
                .x_label_formatter(&|v| tick(*v, log))
                .draw()?;
            chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], BLUE.mix(0.6).filled())
            }))?;
            Ok(())
        })
    }
}

/// A histogram of `values` in `bins` equal-width bins over `range` (default: their min and
/// max). Shorthand for `Chart::histogram(title, bins).x_label(x_label).values(values)`.
///
/// # Errors
/// As [`Chart::svg`]: zero bins, no finite value, an empty or reversed range.
pub fn histogram_chart(
    values: &[f64],
    bins: usize,
    range: Option<(f64, f64)>,
    title: &str,
    x_label: &str,
) -> Result<Svg> {
    let mut chart = Chart::histogram(title, bins)
        .x_label(x_label)
        .values(values);
    if let Some((a, b)) = range {
        chart = chart.range(a, b);
    }
    chart.svg()
}

crate::display::display_fallible!(Chart, "chart", svg);

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    fn flat(svg: &Svg) -> String {
        svg.as_str().replace('\n', "")
    }

    #[test]
    fn line_chart_has_a_legend_entry_and_polyline_per_series() -> Result<()> {
        let svg = Chart::line("loss")
            .x_label("step")
            .series("train", &[0, 1, 2], &[3.0, 2.0, 1.0])
            .series("eval", &[0, 1, 2], &[3.5, 2.5, 2.0])
            .svg()?;
        let s = flat(&svg);
        assert!(
            s.contains(">train</text>") && s.contains(">eval</text>"),
            "{s}"
        );
        assert!(s.contains(">step</text>"));
        // Each series' colour: its line and its legend swatch.
        let first = Palette99::pick(0).to_rgba();
        let colour = format!(
            "stroke=\"#{:02X}{:02X}{:02X}\" stroke-width=\"2\"",
            first.0, first.1, first.2
        );
        assert_eq!(s.matches(&colour).count(), 2, "{colour} in {s}");
        Ok(())
    }

    #[test]
    fn non_finite_points_break_the_line_and_are_counted() -> Result<()> {
        let svg = Chart::line("t")
            .series("a", &[0.0, 1.0, 2.0, 3.0], &[1.0, f64::NAN, 2.0, 3.0])
            .svg()?;
        let s = flat(&svg);
        assert!(s.contains("t (1 points left out: not finite)"), "{s}");
        // Two segments: [0] and [2, 3]; plotters skips a one-point line, plus the legend.
        assert!(s.matches("<polyline").count() >= 2, "{s}");
        Ok(())
    }

    #[test]
    fn log_axis_ticks_are_powers_of_ten_and_drop_non_positive_values() -> Result<()> {
        let svg = Chart::line("d")
            .log_y()
            .series("a", &[0, 1, 2, 3], &[1e-3, 1e-2, 0.0, 1.0])
            .svg()?;
        let s = flat(&svg);
        assert!(
            s.contains(">1e-2</text>") || s.contains(">1e-1</text>"),
            "{s}"
        );
        assert!(
            s.contains("1 points left out: not finite or ≤ 0 on a log axis"),
            "{s}"
        );
        Ok(())
    }

    #[test]
    fn scatter_draws_labels_escaped() -> Result<()> {
        let svg = Chart::scatter("features")
            .series("latents", &[0.0, 1.0], &[1.0, 0.0])
            .point_labels(&["<b>", "a&b"])
            .svg()?;
        let s = flat(&svg);
        // One series: no legend, so two circles.
        assert_eq!(s.matches("<circle").count(), 2, "{s}");
        assert!(
            s.contains("&lt;b&gt;") && s.contains("a&amp;b") && !s.contains("<b>"),
            "{s}"
        );
        Ok(())
    }

    #[test]
    fn bars_and_histograms_draw_one_rect_each() -> Result<()> {
        let svg = Chart::bar("heads")
            .bars(&["L0H0", "L0H1", "L1H0"], &[0.5, -0.25, 1.0])
            .svg()?;
        let s = flat(&svg);
        assert_eq!(
            s.matches("<rect").count(),
            1 + 3,
            "background and three bars: {s}"
        );
        assert!(s.contains(">L0H1</text>"), "{s}");
        let svg = histogram_chart(
            &[0.0, 0.5, 1.0, 7.0, f64::NAN],
            2,
            Some((0.0, 1.0)),
            "h",
            "x",
        )?;
        let s = flat(&svg);
        assert_eq!(s.matches("<rect").count(), 3, "{s}");
        assert!(s.contains("h (2 points left out: not finite)"), "{s}");
        Ok(())
    }

    #[test]
    fn log_x_histogram_bins_log10_of_densities() -> Result<()> {
        let densities = [1e-5, 1e-4, 1e-4, 1e-3, 0.0];
        let svg = Chart::histogram("density", 4)
            .log_x()
            .range(1e-6, 1e-2)
            .values(&densities)
            .svg()?;
        let s = flat(&svg);
        assert!(s.contains(">1e-4</text>"), "{s}");
        assert!(s.contains("1 points left out"), "the zero density: {s}");
        Ok(())
    }

    #[test]
    fn frames_give_one_series_per_group_and_bad_names_are_errors() -> Result<()> {
        let df = df!("step" => &[0i64, 1, 0, 1], "loss" => &[1.0, 0.5, 2.0, 1.0], "run" => &["a", "a", "b", "b"])?;
        let s = flat(
            &Chart::line("runs")
                .frame_by(&df, "step", "loss", "run")
                .svg()?,
        );
        assert!(s.contains(">a</text>") && s.contains(">b</text>"), "{s}");
        let err = Chart::line("x")
            .frame(&df, "step", "los")
            .svg()
            .expect_err("typo")
            .to_string();
        assert!(err.contains("`los` is not in the DataFrame"), "{err}");
        let empty = df.head(Some(0));
        let err = Chart::line("x")
            .frame(&empty, "step", "loss")
            .svg()
            .expect_err("no rows")
            .to_string();
        assert!(err.contains("no finite point"), "{err}");
        let err = Chart::line("x")
            .frame(&df, "step", "los")
            .svg()
            .expect_err("typo")
            .to_string();
        assert!(err.contains("`los` is not in the DataFrame"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_input_is_a_named_error() {
        let err = |c: Chart| c.svg().expect_err("bad input").to_string();
        assert!(err(Chart::line("e")).contains("nothing to draw"));
        assert!(
            err(Chart::line("e").series("a", &[1.0, 2.0], &[1.0]))
                .contains("2 x values but 1 y values")
        );
        assert!(err(Chart::line("e").series("a", &[f64::NAN], &[1.0])).contains("no finite point"));
        assert!(
            err(Chart::scatter("e")
                .series("a", &[1.0], &[1.0])
                .point_labels(&["a", "b"]))
            .contains("2 point labels")
        );
        assert!(err(Chart::bar("e").bars(&["a"], &[1.0, 2.0])).contains("1 categories but 2"));
        assert!(err(Chart::histogram("e", 0).values(&[1.0])).contains("bins"));
        let empty: [f64; 0] = [];
        assert!(err(Chart::histogram("e", 3).values(&empty)).contains("finite"));
        // Shown in a Panel, a failed chart is its error, escaped, not a broken image.
        let html = crate::display::ToHtml::to_html(&Chart::line("<e>"));
        assert!(
            html.starts_with("<pre class=\"mechlens-error\">") && html.contains("&lt;e&gt;"),
            "{html}"
        );
    }
}
