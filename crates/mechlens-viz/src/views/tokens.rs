//! Coloured tokens: one value per token (an activation, a loss, an attribution) drawn as the
//! token's background, the value on hover; several labelled rows share one colour scale.

use std::fmt::Write as _;

use mechlens_core::{Error, Result};

use super::{STYLE, View, token_span};
use crate::colors::Scale;
use crate::display::{escape_html, format_float};
use mechlens_tables::values::IntoValues;

/// Rows of coloured tokens being described; [`ColoredTokens::view`] renders them.
///
/// ```
/// use mechlens_viz::ColoredTokens;
///
/// let view = ColoredTokens::new("per-token loss")
///     .row("clean", &["The", " cat", " sat"], &[0.0, 3.2, 1.1])
///     .view()?;
/// assert!(view.as_str().contains("title=\"3.2\""));
/// # Ok::<(), mechlens_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ColoredTokens {
    title: String,
    rows: Vec<(String, Vec<String>, Vec<f64>)>,
    scale: Option<Scale>,
    error: Option<String>,
}

impl ColoredTokens {
    /// An empty view titled `title`.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            rows: Vec::new(),
            scale: None,
            error: None,
        }
    }

    /// Adds a row: `tokens[i]` coloured by `values[i]`.
    pub fn row<S: AsRef<str>>(
        mut self,
        label: &str,
        tokens: &[S],
        values: impl IntoValues,
    ) -> Self {
        let values = match values.into_values(&format!("values of row `{label}`")) {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e.to_string());
                return self;
            }
        };
        if values.len() != tokens.len() {
            self.error.get_or_insert(format!(
                "row `{label}` has {} tokens but {} values; give one value per token",
                tokens.len(),
                values.len()
            ));
            return self;
        }
        self.rows.push((
            label.to_string(),
            tokens.iter().map(|t| t.as_ref().to_string()).collect(),
            values,
        ));
        self
    }

    /// The colour scale (default: [`Scale::fit`] over every row's values).
    pub fn scale(mut self, scale: Scale) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Renders the rows.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no rows or a row whose token and value counts differ.
    pub fn view(&self) -> Result<View> {
        let what = || format!("coloured tokens `{}`", self.title);
        if let Some(e) = &self.error {
            return Err(Error::invalid(what(), e.clone()));
        }
        if self.rows.is_empty() {
            return Err(Error::invalid(
                what(),
                "no rows: add one with .row(label, tokens, values)",
            ));
        }
        let all: Vec<f64> = self.rows.iter().flat_map(|r| r.2.iter().copied()).collect();
        let scale = self.scale.unwrap_or_else(|| Scale::fit(&all));
        let (lo, hi) = scale.ends();
        let mut html = format!("<div class=\"mlv mechlens-tokens\">{STYLE}");
        if !self.title.is_empty() {
            let _ = write!(html, "<h4>{}</h4>", escape_html(&self.title));
        }
        let _ = write!(
            html,
            "<div style=\"font-size:11px;color:#666\">scale {} {} {}</div>",
            token_span(&format_float(lo), lo, scale, ""),
            token_span(&format_float((lo + hi) / 2.0), (lo + hi) / 2.0, scale, ""),
            token_span(&format_float(hi), hi, scale, ""),
        );
        for (label, tokens, values) in &self.rows {
            html.push_str("<div class=\"mlv-row\">");
            if !label.is_empty() {
                let _ = write!(
                    html,
                    "<span class=\"mlv-row-label\">{}</span>",
                    escape_html(label)
                );
            }
            for (t, &v) in tokens.iter().zip(values) {
                html.push_str(&token_span(
                    t,
                    v,
                    scale,
                    &format!("{}: ", crate::heatmap::visible(t)),
                ));
            }
            html.push_str("</div>");
        }
        html.push_str("</div>");
        Ok(View::new(html))
    }
}

crate::display::display_fallible!(ColoredTokens, "view", view);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_is_a_span_with_its_colour_and_value() -> Result<()> {
        let v = ColoredTokens::new("t")
            .row("a", &["<b>", " ", "\"q\""], &[1.0, -1.0, f64::NAN])
            .row("b", &["x"], &[f64::INFINITY])
            .view()?;
        let s = v.as_str();
        // 3 + 1 tokens and the 3-swatch scale.
        assert_eq!(s.matches("class=\"mlv-tok\"").count(), 7, "{s}");
        let red = Scale::Diverging { limit: 1.0 }.color(1.0).css();
        assert!(s.contains(&format!("background:{red};color:rgb(255,255,255)\" title=\"&lt;b&gt;: 1.0\">&lt;b&gt;</span>")), "{s}");
        assert!(
            s.contains("title=\"·: -1.0\">·</span>"),
            "a space is visible: {s}"
        );
        assert!(
            s.contains("background:rgb(190,190,190)") && s.contains("title=\"&quot;q&quot;: NaN\""),
            "{s}"
        );
        assert!(s.contains("title=\"x: inf\""), "{s}");
        Ok(())
    }

    #[test]
    fn mismatched_or_missing_rows_are_errors() {
        let err = ColoredTokens::new("t")
            .row("a", &["x", "y"], &[1.0])
            .view()
            .expect_err("2 vs 1")
            .to_string();
        assert!(err.contains("2 tokens but 1 values"), "{err}");
        assert!(
            ColoredTokens::new("t")
                .view()
                .expect_err("no rows")
                .to_string()
                .contains("no rows")
        );
    }
}
