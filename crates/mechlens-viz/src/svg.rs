//! SVG images: what every chart is drawn into, shown inline and saved as SVG or PNG.
//!
//! SVG keeps the project free of system font libraries: the browser draws the text. PNG
//! export rasterises the same SVG with resvg and a font compiled into the binary.

use crate::display::{NotebookDisplay, ToHtml, emit};
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
        write_file(path.as_ref(), self.0.as_bytes())
    }

    /// The image as PNG bytes, at `scale` × its SVG size (2.0 for a sharp image on a
    /// high-density screen).
    ///
    /// # Errors
    /// [`Error::Chart`] when the SVG cannot be parsed or the scaled size is empty or
    /// larger than 16384 pixels a side.
    pub fn to_png(&self, scale: f32) -> Result<Vec<u8>> {
        use resvg::{tiny_skia, usvg};
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_font_data(epaint_default_fonts::UBUNTU_LIGHT.to_vec());
        // Every family a chart may name resolves to the one font we carry.
        fonts.set_sans_serif_family("Ubuntu");
        fonts.set_serif_family("Ubuntu");
        fonts.set_monospace_family("Ubuntu");
        let opts = usvg::Options {
            fontdb: std::sync::Arc::new(fonts),
            ..Default::default()
        };
        let tree = usvg::Tree::from_str(&self.0, &opts)
            .map_err(|e| Error::Chart(format!("the SVG cannot be read for PNG export: {e}")))?;
        let size = tree.size();
        let (w, h) = (
            (size.width() * scale).ceil(),
            (size.height() * scale).ceil(),
        );
        if !(scale > 0.0 && (1.0..=16384.0).contains(&w) && (1.0..=16384.0).contains(&h)) {
            return Err(Error::Chart(format!(
                "PNG size {w}x{h} at scale {scale} is outside 1..=16384 pixels a side"
            )));
        }
        let mut pixmap = tiny_skia::Pixmap::new(w as u32, h as u32)
            .ok_or_else(|| Error::Chart(format!("no {w}x{h} pixmap")))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale, scale),
            &mut pixmap.as_mut(),
        );
        pixmap
            .encode_png()
            .map_err(|e| Error::Chart(format!("PNG encoding failed: {e}")))
    }

    /// Writes the image to `path` as PNG at twice its SVG size.
    ///
    /// # Errors
    /// As [`Svg::to_png`], and [`Error::Io`] naming the file when it cannot be written.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_png(2.0)?)
    }
}

/// Writes `bytes` to `path`, naming the file in the error.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    })
}

impl NotebookDisplay for Svg {
    fn evcxr_display(&self) {
        emit("image/svg+xml", &self.0);
    }
}

impl ToHtml for Svg {
    fn to_html(&self) -> String {
        self.0.clone()
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
/// use mechlens_viz::*;
/// use plotters::prelude::*;
///
/// let svg = svg_chart(400, 300, |root| {
///     let mut chart = ChartBuilder::on(root)
///         .caption("y = x²", ("sans-serif", 20))
///         .build_cartesian_2d(-1f32..1f32, 0f32..1f32)?;
///     chart.draw_series(LineSeries::new((-10..=10).map(|i| i as f32 / 10.0).map(|x| (x, x * x)), &RED))?;
///     Ok(())
/// })?;
/// assert!(svg.as_str().starts_with("<svg"));
/// # Ok::<(), mechlens_core::Error>(())
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
    fn png_export_draws_the_chart_and_its_text() -> Result<()> {
        let with_text = Svg::new(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><text x="4" y="30" font-family="sans-serif" font-size="24">Ag</text></svg>"#,
        );
        let blank =
            Svg::new(r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"></svg>"#);
        let png = with_text.to_png(1.0)?;
        assert_eq!(&png[1..4], b"PNG");
        // The text is drawn: its PNG differs from a blank one of the same size.
        assert_ne!(png, blank.to_png(1.0)?);
        assert!(Svg::new("not svg").to_png(1.0).is_err());
        assert!(with_text.to_png(0.0).is_err());
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
