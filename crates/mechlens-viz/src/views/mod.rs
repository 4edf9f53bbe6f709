//! Self-contained HTML views: everything inline (styles, data, script), nothing fetched,
//! so they work offline, in exported notebooks, and saved to a file.
//!
//! - [`attention_patterns`]: a grid of heads and a token view where hovering a token shows
//!   its attention to the others (CircuitsVis' `attention_patterns`).
//! - [`ColoredTokens`]: per-token values as background colour, the value on hover.
//! - [`TopKTokens`]: the top-k predicted tokens at each position (the logit lens).
//! - [`FeatureDashboard`]: an SAE latent's top contexts, logit effects, activation histogram
//!   and density.

mod attention;
mod dashboard;
mod tokens;
mod top_k;

pub use attention::{AttentionOptions, attention_patterns, attention_patterns_with};
pub use dashboard::{DashboardOptions, FeatureDashboard};
pub use tokens::ColoredTokens;
pub use top_k::TopKTokens;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use mechlens_core::Result;

use crate::display::{NotebookDisplay, ToHtml, emit, escape_html};

/// A finished HTML view. The last expression of a cell shows it inline; [`View::save`]
/// writes it as a standalone page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    html: String,
}

impl View {
    pub(crate) fn new(html: String) -> Self {
        Self { html }
    }

    /// The HTML fragment.
    pub fn as_str(&self) -> &str {
        &self.html
    }

    /// Writes the view to `path` as a complete HTML page that opens in any browser, offline.
    ///
    /// # Errors
    /// [`mechlens_core::Error::Io`] naming the file when it cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let page = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>mechlens</title></head><body>{}</body></html>",
            self.html
        );
        crate::svg::write_file(path.as_ref(), page.as_bytes())
    }
}

impl ToHtml for View {
    fn to_html(&self) -> String {
        self.html.clone()
    }
}

impl NotebookDisplay for View {
    fn evcxr_display(&self) {
        emit("text/html", &self.html);
    }
}

/// An id for a view's root element that is unique in a page: each evcxr cell is a fresh
/// library (its statics start again), so a counter alone would repeat across cells; the
/// clock and the process id make it unique.
pub(crate) fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{prefix}-{:x}-{:x}-{n}", std::process::id(), nanos)
}

/// `value` as JSON that is safe inside a `<script>` element: `</` cannot close it and
/// U+2028/9 cannot end a line in older engines.
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace("</", "<\\/")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// A finite number as JSON, NaN and ±inf as `null` (JSON has no NaN), rounded to 5
/// significant digits to keep pages small.
pub(crate) fn json_number(x: f64) -> serde_json::Value {
    if x.is_finite() {
        let rounded: f64 = format!("{x:.4e}").parse().unwrap_or(x);
        serde_json::Value::from(rounded)
    } else {
        serde_json::Value::Null
    }
}

/// One token as a span coloured by `value`, its value (and `note`) on hover.
pub(crate) fn token_span(
    token: &str,
    value: f64,
    scale: crate::colors::Scale,
    note: &str,
) -> String {
    let bg = scale.color(value);
    format!(
        "<span class=\"mlv-tok\" style=\"background:{};color:{}\" title=\"{}{}\">{}</span>",
        bg.css(),
        bg.text_on().css(),
        escape_html(note),
        crate::display::format_float(value),
        escape_html(&crate::heatmap::visible(token)),
    )
}

/// Styles shared by the views, inlined into each (a page may hold one view alone).
pub(crate) const STYLE: &str = "<style>\
.mlv{font-family:sans-serif;font-size:13px;line-height:1.9}\
.mlv-tok{padding:1px 2px;margin:0 1px;border-radius:3px;white-space:pre;border:1px solid #ddd;cursor:default}\
.mlv table{border-collapse:collapse}.mlv td,.mlv th{padding:2px 6px;border:1px solid #e5e5e5;text-align:left}\
.mlv-row-label{color:#666;margin-right:8px;font-size:12px}\
.mlv h4{margin:6px 0}\
</style>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_scripts_cannot_close_them() {
        let v = serde_json::json!(["</script><script>alert(1)</script>"]);
        let s = script_json(&v);
        assert!(!s.contains("</script>"), "{s}");
        assert_eq!(json_number(f64::NAN), serde_json::Value::Null);
        assert_eq!(json_number(0.123456789), serde_json::json!(0.12346));
    }

    #[test]
    fn ids_differ() {
        assert_ne!(unique_id("a"), unique_id("a"));
    }
}
