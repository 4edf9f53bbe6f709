//! Rich display of values in a notebook.
//!
//! evcxr shows a cell's last expression by calling its `evcxr_display(&self)` method when it
//! has one. Any trait in scope that provides the method counts, so [`NotebookDisplay`] (in the
//! prelude) works for foreign types such as `polars::DataFrame` and `tch::Tensor` too.
//! Content goes to JupyterLab through evcxr's stdout protocol:
//! `EVCXR_BEGIN_CONTENT <mime>` ... `EVCXR_END_CONTENT`. The last block of each MIME type in a
//! cell wins.

use polars::prelude::{AnyValue, DataFrame};
use std::fmt::Write as _;
use std::io::Write as _;
use tch::{Kind, Tensor};

/// How a value shows itself as a notebook cell's result.
pub trait NotebookDisplay {
    /// Writes the value's rich representation to stdout in evcxr's content protocol.
    fn evcxr_display(&self);
}

/// A reference displays as its value, so that a cell can end with `&model` and keep `model`.
impl<T: NotebookDisplay + ?Sized> NotebookDisplay for &T {
    fn evcxr_display(&self) {
        (**self).evcxr_display();
    }
}

/// A value as one self-contained HTML fragment: what [`crate::Panel`] puts side by side or
/// one under the other, and what a view writes to an `.html` file.
pub trait ToHtml {
    /// The HTML fragment (no `<html>` or `<body>`; scripts and styles inline).
    fn to_html(&self) -> String;
}

/// Sends one block of `mime` content to the notebook, in a single write so that it is not
/// interleaved with other output.
pub fn emit(mime: &str, content: &str) {
    let block = format!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n");
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to display to; there is no one to report the error to.
    let _ = out.write_all(block.as_bytes());
    let _ = out.flush();
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// DataFrame

/// Rows shown at each end of a long DataFrame.
const DF_EDGE_ROWS: usize = 5;

/// Formats one cell: strings without quotes, floats with up to 6 significant digits.
fn format_cell(value: &AnyValue<'_>) -> String {
    match value {
        AnyValue::Null => "null".to_string(),
        AnyValue::String(s) => (*s).to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float32(x) => format_float(f64::from(*x)),
        AnyValue::Float64(x) => format_float(*x),
        other => other.to_string(),
    }
}

/// Up to 6 significant digits, scientific notation for very large or small magnitudes.
pub fn format_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let magnitude = x.abs();
    if magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        return format!("{x:.5e}");
    }
    let decimals = if magnitude == 0.0 {
        1
    } else {
        // Digits after the point that keep 6 significant digits, at least one.
        (5 - magnitude.log10().floor() as i32).clamp(1, 9) as usize
    };
    let text = format!("{x:.decimals$}");
    // Trim trailing zeros but keep one digit after the point.
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// The rows of `df` to show: all when short, else the first and last [`DF_EDGE_ROWS`], with
/// `None` marking the gap.
fn shown_rows(height: usize) -> Vec<Option<usize>> {
    if height <= 2 * DF_EDGE_ROWS {
        (0..height).map(Some).collect()
    } else {
        (0..DF_EDGE_ROWS)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((height - DF_EDGE_ROWS..height).map(Some))
            .collect()
    }
}

/// Renders a DataFrame as an HTML table: a shape line, column names with their dtypes, and
/// the head and tail rows when it is long.
pub fn dataframe_html(df: &DataFrame) -> String {
    let (height, width) = df.shape();
    let columns = df.columns();
    let mut html = String::from("<div class=\"mechlens-df\">");
    let _ = write!(
        html,
        "<small>shape: ({height}, {width})</small><table class=\"dataframe\"><thead><tr>"
    );
    for c in columns {
        let _ = write!(html, "<th>{}</th>", escape_html(c.name()));
    }
    html.push_str("</tr><tr>");
    for c in columns {
        let _ = write!(
            html,
            "<td><i>{}</i></td>",
            escape_html(&c.dtype().to_string())
        );
    }
    html.push_str("</tr></thead><tbody>");
    for row in shown_rows(height) {
        html.push_str("<tr>");
        for c in columns {
            let cell = match row {
                Some(i) => c
                    .get(i)
                    .map_or_else(|e| format!("<{e}>"), |v| format_cell(&v)),
                None => "…".to_string(),
            };
            let _ = write!(html, "<td>{}</td>", escape_html(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table></div>");
    html
}

impl NotebookDisplay for DataFrame {
    fn evcxr_display(&self) {
        emit("text/html", &dataframe_html(self));
        emit("text/plain", &self.to_string());
    }
}

impl ToHtml for DataFrame {
    fn to_html(&self) -> String {
        dataframe_html(self)
    }
}

// ---------------------------------------------------------------------------------------------
// SAE reports: their (metric, value) tables.

fn frame_html(frame: mechlens_core::Result<DataFrame>) -> String {
    match frame {
        Ok(df) => dataframe_html(&df),
        Err(e) => format!(
            "<pre>(report not shown: {})</pre>",
            escape_html(&e.to_string())
        ),
    }
}

/// Displays a type through its [`ToHtml`] (and its `Debug` as the plain-text fallback).
macro_rules! display_as_html {
    ($($t:ty),* $(,)?) => {$(
        impl NotebookDisplay for $t {
            fn evcxr_display(&self) {
                emit("text/html", &self.to_html());
            }
        }
    )*};
}
pub(crate) use display_as_html;

/// Displays a builder whose rendering can fail (a chart, a view): `$render` gives a value
/// that displays itself; its error is shown as text instead of a broken picture.
macro_rules! display_fallible {
    ($t:ty, $what:literal, $render:ident) => {
        impl $crate::display::ToHtml for $t {
            fn to_html(&self) -> String {
                match self.$render() {
                    Ok(v) => $crate::display::ToHtml::to_html(&v),
                    Err(e) => format!(
                        "<pre class=\"mechlens-error\">{}</pre>",
                        $crate::display::escape_html(&e.to_string())
                    ),
                }
            }
        }

        impl $crate::display::NotebookDisplay for $t {
            fn evcxr_display(&self) {
                match self.$render() {
                    Ok(v) => $crate::display::NotebookDisplay::evcxr_display(&v),
                    // A display that fails fails its cell, as an exception would in Python.
                    Err(e) => $crate::cell_guard::report_cell_error(
                        "DisplayError",
                        &format!("{} not drawn: {e}", $what),
                    ),
                }
            }
        }
    };
}
pub(crate) use display_fallible;

impl ToHtml for mechlens_sae::eval::SaeReport {
    fn to_html(&self) -> String {
        frame_html(self.frame())
    }
}

impl ToHtml for mechlens_sae::eval::SpliceReport {
    fn to_html(&self) -> String {
        frame_html(self.frame())
    }
}

impl ToHtml for mechlens_sae::metrics::SparsityReport {
    fn to_html(&self) -> String {
        frame_html(self.frame())
    }
}

display_as_html!(
    mechlens_sae::eval::SaeReport,
    mechlens_sae::eval::SpliceReport,
    mechlens_sae::metrics::SparsityReport,
);

// ---------------------------------------------------------------------------------------------
// Tensor

/// Values shown along each of the last two dims of a tensor summary.
const TENSOR_EDGE: i64 = 6;

/// A one-line header and a few values: what a user needs to recognise a tensor at a glance.
///
/// # Shapes
/// - `tensor`: any shape, any device; values are copied to the CPU only for the few shown.
pub fn tensor_summary(tensor: &Tensor) -> String {
    if !tensor.defined() {
        return "Tensor (undefined)".to_string();
    }
    let shape = tensor.size();
    let grad = if tensor.requires_grad() {
        ", requires_grad"
    } else {
        ""
    };
    let mut text = format!(
        "Tensor {shape:?} {:?} {}{grad}",
        tensor.kind(),
        device_name(tensor.device())
    );
    match tensor_values(tensor, &shape) {
        Ok(values) if !values.is_empty() => {
            text.push('\n');
            text.push_str(&values);
        }
        Ok(_) => {}
        Err(e) => {
            let _ = write!(text, "\n(values not shown: {e})");
        }
    }
    text
}

fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The first few values: a grid for ≤ 2-D tensors, the first values in memory order beyond.
fn tensor_values(tensor: &Tensor, shape: &[i64]) -> Result<String, tch::TchError> {
    if shape.iter().product::<i64>() == 0 {
        return Ok("(empty)".to_string());
    }
    let t = tensor.f_detach()?.f_to_kind(Kind::Double)?;
    let fmt_row = |row: &Tensor, len: i64| -> Result<String, tch::TchError> {
        let n = len.min(TENSOR_EDGE);
        let vals = Vec::<f64>::try_from(row.f_narrow(0, 0, n)?.f_to_device(tch::Device::Cpu)?)?;
        let mut cells: Vec<String> = vals.into_iter().map(format_float).collect();
        if len > n {
            cells.push("…".into());
        }
        Ok(format!("[{}]", cells.join(", ")))
    };
    match shape.len() {
        0 => Ok(format_float(t.f_double_value(&[])?)),
        1 => fmt_row(&t, shape[0]),
        2 => {
            let rows = shape[0].min(TENSOR_EDGE);
            let mut lines = Vec::new();
            for r in 0..rows {
                lines.push(fmt_row(&t.f_get(r)?, shape[1])?);
            }
            if shape[0] > rows {
                lines.push("…".into());
            }
            Ok(format!("[{}]", lines.join(",\n ")))
        }
        _ => {
            let flat = t.f_reshape([-1])?;
            let total = flat.size()[0];
            Ok(format!("first values: {}", fmt_row(&flat, total)?))
        }
    }
}

/// A tensor as HTML: the summary line and, for ≤ 2-D, a table of its leading values
/// (rows and columns beyond [`TENSOR_EDGE`] elided).
pub fn tensor_html(tensor: &Tensor) -> String {
    let summary = tensor_summary(tensor);
    let header = summary.lines().next().unwrap_or_default();
    let mut html = format!(
        "<div class=\"mechlens-tensor\"><small>{}</small>",
        escape_html(header)
    );
    match tensor_grid(tensor) {
        Ok(Some(grid)) => html.push_str(&grid),
        Ok(None) => {
            let rest: Vec<&str> = summary.lines().skip(1).collect();
            if !rest.is_empty() {
                let _ = write!(html, "<pre>{}</pre>", escape_html(&rest.join("\n")));
            }
        }
        Err(e) => {
            let _ = write!(
                html,
                "<pre>(values not shown: {})</pre>",
                escape_html(&e.to_string())
            );
        }
    }
    html.push_str("</div>");
    html
}

/// The values table of a non-empty ≤ 2-D tensor; `None` for other tensors.
fn tensor_grid(tensor: &Tensor) -> Result<Option<String>, tch::TchError> {
    if !tensor.defined() || tensor.numel() == 0 || tensor.dim() > 2 {
        return Ok(None);
    }
    let t = tensor
        .f_detach()?
        .f_to_kind(Kind::Double)?
        .f_to_device(tch::Device::Cpu)?;
    let t = if t.dim() < 2 {
        t.f_reshape([1, -1])?
    } else {
        t
    };
    let (rows, cols) = (t.size()[0], t.size()[1]);
    let shown = |n: i64| -> Vec<Option<i64>> {
        if n <= TENSOR_EDGE {
            (0..n).map(Some).collect()
        } else {
            (0..TENSOR_EDGE - 1)
                .map(Some)
                .chain([None, Some(n - 1)])
                .collect()
        }
    };
    let mut html = String::from("<table class=\"mechlens-values\"><tbody>");
    for r in shown(rows) {
        html.push_str("<tr>");
        for c in shown(cols) {
            let cell = match (r, c) {
                (Some(r), Some(c)) => format_float(t.f_double_value(&[r, c])?),
                _ => "…".to_string(),
            };
            let _ = write!(html, "<td>{}</td>", escape_html(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    Ok(Some(html))
}

impl NotebookDisplay for Tensor {
    fn evcxr_display(&self) {
        emit("text/html", &tensor_html(self));
        emit("text/plain", &tensor_summary(self));
    }
}

impl ToHtml for Tensor {
    fn to_html(&self) -> String {
        tensor_html(self)
    }
}

#[cfg(test)]
mod tests;
