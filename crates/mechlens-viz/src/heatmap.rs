//! Heatmaps of 2-D data with token labels on both axes: attention patterns, patching
//! results, logit differences by layer and position.
//!
//! Drawn as SVG directly (not through plotters) so that each cell carries its value as a
//! hover tooltip (`<title>`) and the labels are real, escaped text.

use std::fmt::Write as _;
use std::path::Path;

use mechlens_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::colors::Scale;
use crate::display::{escape_html, format_float};
use crate::svg::Svg;

/// A heatmap being described; [`Heatmap::svg`] draws it.
///
/// ```
/// use mechlens_viz::Heatmap;
/// use tch::Tensor;
///
/// let pattern = Tensor::from_slice(&[1.0f32, 0.0, 0.3, 0.7]).reshape([2, 2]);
/// let svg = Heatmap::new(&pattern)
///     .title("L0H0")
///     .x_labels(&["<s>", "Hello"])
///     .y_labels(&["<s>", "Hello"])
///     .svg()?;
/// assert!(svg.as_str().contains("&lt;s&gt;"));
/// # Ok::<(), mechlens_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Heatmap {
    rows: usize,
    cols: usize,
    values: Vec<f64>,
    title: String,
    x_label: String,
    y_label: String,
    x_labels: Vec<String>,
    y_labels: Vec<String>,
    scale: Option<Scale>,
    cell: f64,
    error: Option<String>,
}

impl Heatmap {
    /// A heatmap of a 2-D tensor: rows down, columns across.
    ///
    /// # Shapes
    /// - `values`: `[rows, cols]`, any float or integer kind, any device.
    pub fn new(values: &Tensor) -> Self {
        let read = || -> Result<(usize, usize, Vec<f64>)> {
            let size = values.size();
            if size.len() != 2 {
                return Err(Error::ShapeMismatch {
                    what: "heatmap values".into(),
                    expected: "[rows, cols] (2 dims)".into(),
                    got: size,
                });
            }
            let flat = values
                .f_detach()?
                .f_to_device(tch::Device::Cpu)?
                .f_to_kind(Kind::Double)?
                .f_reshape([-1])?;
            Ok((
                size[0] as usize,
                size[1] as usize,
                Vec::<f64>::try_from(flat)?,
            ))
        };
        match read() {
            Ok((rows, cols, values)) => Self::from_flat(rows, cols, values),
            Err(e) => Self::from_flat(0, 0, Vec::new()).fail(e.to_string()),
        }
    }

    /// A heatmap of rows of equal length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Self {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
            let message = format!("row {i} has {} values but row 0 has {cols}", r.len());
            return Self::from_flat(0, 0, Vec::new()).fail(message);
        }
        Self::from_flat(rows.len(), cols, rows.concat())
    }

    fn from_flat(rows: usize, cols: usize, values: Vec<f64>) -> Self {
        Self {
            rows,
            cols,
            values,
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            x_labels: Vec::new(),
            y_labels: Vec::new(),
            scale: None,
            cell: 22.0,
            error: None,
        }
    }

    fn fail(mut self, message: String) -> Self {
        self.error.get_or_insert(message);
        self
    }

    /// The title above the map.
    pub fn title(mut self, title: &str) -> Self {
        self.title = title.to_string();
        self
    }

    /// The name of the column axis (drawn below it).
    pub fn x_label(mut self, label: &str) -> Self {
        self.x_label = label.to_string();
        self
    }

    /// The name of the row axis.
    pub fn y_label(mut self, label: &str) -> Self {
        self.y_label = label.to_string();
        self
    }

    /// One label per column (tokens, say).
    pub fn x_labels<S: AsRef<str>>(mut self, labels: &[S]) -> Self {
        self.x_labels = labels.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// One label per row.
    pub fn y_labels<S: AsRef<str>>(mut self, labels: &[S]) -> Self {
        self.y_labels = labels.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// The colour scale (default: [`Scale::fit`] of the values: diverging around 0 when they
    /// have both signs).
    pub fn scale(mut self, scale: Scale) -> Self {
        self.scale = Some(scale);
        self
    }

    /// A diverging scale centred at 0, whatever the signs of the values.
    pub fn diverging(mut self) -> Self {
        self.scale = Some(Scale::diverging(&self.values));
        self
    }

    /// The side of one cell in pixels (default 22).
    pub fn cell_size(mut self, pixels: f64) -> Self {
        self.cell = pixels.clamp(2.0, 200.0);
        self
    }

    /// Draws the heatmap.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty map, label counts that do not match the rows or
    /// columns, or a problem met while building (a tensor that is not 2-D).
    pub fn svg(&self) -> Result<Svg> {
        let what = || {
            if self.title.is_empty() {
                "heatmap".to_string()
            } else {
                format!("heatmap `{}`", self.title)
            }
        };
        if let Some(e) = &self.error {
            return Err(Error::invalid(what(), e.clone()));
        }
        if self.rows == 0 || self.cols == 0 {
            return Err(Error::invalid(
                what(),
                format!("it is empty ({} × {})", self.rows, self.cols),
            ));
        }
        for (labels, n, axis) in [
            (&self.x_labels, self.cols, "column"),
            (&self.y_labels, self.rows, "row"),
        ] {
            if !labels.is_empty() && labels.len() != n {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "{} {axis} labels for {n} {axis}s; give one per {axis} or none",
                        labels.len()
                    ),
                ));
            }
        }
        Ok(Svg::new(self.draw()))
    }

    fn draw(&self) -> String {
        let scale = self.scale.unwrap_or_else(|| Scale::fit(&self.values));
        let c = self.cell;
        let font = (c * 0.55).clamp(8.0, 13.0);
        // Room for the labels: ~0.6 em per character, capped.
        let widest = |labels: &[String]| {
            labels
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
                .min(24) as f64
        };
        let left = 8.0
            + widest(&self.y_labels).max(2.0) * font * 0.6
            + if self.y_label.is_empty() { 0.0 } else { 18.0 };
        let top = if self.title.is_empty() { 8.0 } else { 28.0 };
        let bottom = 8.0
            + widest(&self.x_labels).max(2.0) * font * 0.6
            + if self.x_label.is_empty() { 0.0 } else { 18.0 };
        let legend_w = 100.0;
        let (w, h) = (
            left + c * self.cols as f64 + legend_w,
            top + c * self.rows as f64 + bottom,
        );
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"mechlens-heatmap\" width=\"{w:.0}\" height=\"{h:.0}\" \
             viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        );
        if !self.title.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{left:.1}\" y=\"18\" font-size=\"15\">{}</text>",
                escape_html(&self.title)
            );
        }
        let label = |v: &[String], i: usize| v.get(i).map_or_else(|| i.to_string(), |l| visible(l));
        for r in 0..self.rows {
            for col in 0..self.cols {
                let v = self.values[r * self.cols + col];
                let (x, y) = (left + c * col as f64, top + c * r as f64);
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{c:.1}\" height=\"{c:.1}\" fill=\"{}\"><title>{} → {}: {}</title></rect>",
                    scale.color(v).css(),
                    escape_html(&label(&self.y_labels, r)),
                    escape_html(&label(&self.x_labels, col)),
                    format_float(v)
                );
            }
        }
        for r in 0..self.rows {
            let y = top + c * (r as f64 + 0.5) + font * 0.35;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"{font:.0}\" text-anchor=\"end\">{}</text>",
                left - 4.0,
                escape_html(&clip(&label(&self.y_labels, r)))
            );
        }
        let base = top + c * self.rows as f64 + 4.0;
        for col in 0..self.cols {
            let x = left + c * (col as f64 + 0.5) + font * 0.35;
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{base:.1}\" font-size=\"{font:.0}\" text-anchor=\"end\" transform=\"rotate(-90 {x:.1} {base:.1})\">{}</text>",
                escape_html(&clip(&label(&self.x_labels, col)))
            );
        }
        if !self.x_label.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\">{}</text>",
                left + c * self.cols as f64 / 2.0,
                h - 6.0,
                escape_html(&self.x_label)
            );
        }
        if !self.y_label.is_empty() {
            let (x, y) = (14.0, top + c * self.rows as f64 / 2.0);
            let _ = write!(
                s,
                "<text x=\"{x}\" y=\"{y:.1}\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 {x} {y:.1})\">{}</text>",
                escape_html(&self.y_label)
            );
        }
        self.legend(&mut s, scale, left + c * self.cols as f64 + 12.0, top);
        s.push_str("</svg>");
        s
    }

    /// A vertical colour bar with the scale's ends and middle written beside it.
    fn legend(&self, s: &mut String, scale: Scale, x: f64, top: f64) {
        let height = (self.cell * self.rows as f64).clamp(60.0, 240.0);
        let (lo, hi) = scale.ends();
        let steps = 24;
        for i in 0..steps {
            let t = 1.0 - (i as f64 + 0.5) / steps as f64;
            let v = lo + (hi - lo) * t;
            let _ = write!(
                s,
                "<rect class=\"legend\" x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"{:.2}\" fill=\"{}\"/>",
                top + height * i as f64 / steps as f64,
                height / steps as f64 + 0.3,
                scale.color(v).css()
            );
        }
        for (v, y) in [
            (hi, top + 8.0),
            ((lo + hi) / 2.0, top + height / 2.0 + 4.0),
            (lo, top + height),
        ] {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"10\">{}</text>",
                x + 15.0,
                // Four significant digits are enough to read a scale.
                format_float(format!("{v:.3e}").parse().unwrap_or(v))
            );
        }
    }
}

/// Whitespace tokens made visible: a space as `·`, a newline as `↵`, a tab as `→`, and an
/// empty token as `∅`.
pub fn visible(token: &str) -> String {
    if token.is_empty() {
        return "∅".to_string();
    }
    token
        .chars()
        .map(|c| match c {
            ' ' => '·',
            '\n' => '↵',
            '\t' => '→',
            '\r' => '␍',
            c if c.is_control() => '�',
            c => c,
        })
        .collect()
}

fn clip(label: &str) -> String {
    if label.chars().count() > 24 {
        label.chars().take(23).chain(std::iter::once('…')).collect()
    } else {
        label.to_string()
    }
}

impl Heatmap {
    /// Writes the heatmap to an SVG file.
    ///
    /// # Errors
    /// As [`Heatmap::svg`] and [`Svg::save`].
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        self.svg()?.save(path)
    }

    /// Writes the heatmap to a PNG file.
    ///
    /// # Errors
    /// As [`Heatmap::svg`] and [`Svg::save_png`].
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        self.svg()?.save_png(path)
    }
}

crate::display::display_fallible!(Heatmap, "heatmap", svg);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cell_per_value_with_its_value_on_hover() -> Result<()> {
        let t = Tensor::from_slice(&[0.5f64, -1.0, f64::NAN, 2.0]).reshape([2, 2]);
        let s = Heatmap::new(&t)
            .x_labels(&["a", "b"])
            .y_labels(&["p", "q"])
            .svg()?;
        let s = s.as_str();
        assert_eq!(s.matches("<title>").count(), 4, "{s}");
        assert!(s.contains("<title>p → b: -1.0</title>"), "{s}");
        assert!(s.contains("<title>q → a: NaN</title>"), "{s}");
        // NaN is grey; 0 would be white: the scale is diverging (both signs present).
        assert!(s.contains("fill=\"rgb(190,190,190)\"><title>q → a"), "{s}");
        assert!(s.contains(&format!(
            "fill=\"{}\"><title>q → b",
            Scale::Diverging { limit: 2.0 }.color(2.0).css()
        )));
        Ok(())
    }

    #[test]
    fn tokens_are_escaped_and_whitespace_made_visible() -> Result<()> {
        let t = Tensor::ones([1, 4], (Kind::Float, tch::Device::Cpu));
        let s = Heatmap::new(&t)
            .x_labels(&["<b>", "&", " \"q\"", "\n"])
            .svg()?;
        let s = s.as_str();
        assert!(
            s.contains(">&lt;b&gt;</text>") && s.contains(">&amp;</text>"),
            "{s}"
        );
        assert!(
            s.contains(">·&quot;q&quot;</text>") && s.contains(">↵</text>"),
            "{s}"
        );
        assert!(!s.contains("<b>"));
        Ok(())
    }

    #[test]
    fn bad_shapes_and_labels_are_named_errors() {
        let err = |h: Heatmap| h.svg().expect_err("bad input").to_string();
        let cube = Tensor::zeros([2, 2, 2], (Kind::Float, tch::Device::Cpu));
        assert!(err(Heatmap::new(&cube)).contains("[rows, cols]"));
        let empty = Tensor::zeros([0, 3], (Kind::Float, tch::Device::Cpu));
        assert!(err(Heatmap::new(&empty)).contains("empty (0 × 3)"));
        let t = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        assert!(err(Heatmap::new(&t).x_labels(&["a"])).contains("1 column labels for 3 columns"));
        assert!(
            err(Heatmap::from_rows(&[vec![1.0], vec![1.0, 2.0]])).contains("row 1 has 2 values")
        );
    }
}
