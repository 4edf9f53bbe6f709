//! Several outputs from one cell. evcxr shows one block per MIME type per cell (the last
//! wins), so two charts printed from one cell would show as one; a [`Panel`] lays any number
//! of tables, charts and views out as a single HTML block.

use std::fmt::Write as _;

use crate::display::{NotebookDisplay, ToHtml, emit, escape_html};

/// How a [`Panel`] arranges its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Column,
    Row,
    Grid(usize),
}

/// Tables, charts and views shown together as one HTML block.
///
/// ```
/// use mechlens_viz::{Chart, Panel, ToHtml};
///
/// let loss = Chart::line("loss").series("train", &[0.0, 1.0, 2.0], &[3.0, 2.0, 1.5]).svg()?;
/// let lr = Chart::line("lr").series("lr", &[0.0, 1.0, 2.0], &[1e-3, 1e-3, 5e-4]).svg()?;
/// let both = Panel::row().push(&loss).push(&lr);
/// assert_eq!(both.to_html().matches("<svg").count(), 2);
/// # Ok::<(), mechlens_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Panel {
    layout: Layout,
    items: Vec<(Option<String>, String)>,
}

impl Panel {
    /// Items one under the other.
    pub fn column() -> Self {
        Self {
            layout: Layout::Column,
            items: Vec::new(),
        }
    }

    /// Items side by side, wrapping when the page is too narrow.
    pub fn row() -> Self {
        Self {
            layout: Layout::Row,
            items: Vec::new(),
        }
    }

    /// Items in a grid `columns` wide (at least 1).
    pub fn grid(columns: usize) -> Self {
        Self {
            layout: Layout::Grid(columns.max(1)),
            items: Vec::new(),
        }
    }

    /// Adds an item.
    pub fn push<T: ToHtml + ?Sized>(mut self, item: &T) -> Self {
        self.items.push((None, item.to_html()));
        self
    }

    /// Adds an item with a heading above it.
    pub fn push_titled<T: ToHtml + ?Sized>(mut self, title: &str, item: &T) -> Self {
        self.items.push((Some(title.to_string()), item.to_html()));
        self
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl ToHtml for Panel {
    fn to_html(&self) -> String {
        let style = match self.layout {
            Layout::Column => "display:flex;flex-direction:column;gap:12px".to_string(),
            Layout::Row => {
                "display:flex;flex-direction:row;flex-wrap:wrap;gap:12px;align-items:flex-start"
                    .to_string()
            }
            Layout::Grid(n) => {
                format!("display:grid;grid-template-columns:repeat({n},auto);gap:12px")
            }
        };
        let mut html = format!("<div class=\"mechlens-panel\" style=\"{style}\">");
        for (title, item) in &self.items {
            html.push_str("<div class=\"mechlens-panel-item\">");
            if let Some(t) = title {
                let _ = write!(
                    html,
                    "<div style=\"font-weight:bold;margin-bottom:4px\">{}</div>",
                    escape_html(t)
                );
            }
            html.push_str(item);
            html.push_str("</div>");
        }
        html.push_str("</div>");
        html
    }
}

impl NotebookDisplay for Panel {
    fn evcxr_display(&self) {
        emit("text/html", &self.to_html());
    }
}

impl ToHtml for String {
    fn to_html(&self) -> String {
        format!("<pre>{}</pre>", escape_html(self))
    }
}

impl ToHtml for str {
    fn to_html(&self) -> String {
        format!("<pre>{}</pre>", escape_html(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_order_titles_are_escaped() {
        let s = Panel::grid(0)
            .push_titled("a<b", &"first".to_string())
            .push("second");
        let html = s.to_html();
        assert!(
            html.contains("repeat(1,auto)"),
            "grid of at least one column: {html}"
        );
        assert!(html.contains("a&lt;b"));
        let (i, j) = (
            html.find("first").unwrap_or(0),
            html.find("second").unwrap_or(0),
        );
        assert!(0 < i && i < j, "{html}");
        assert_eq!(s.len(), 2);
        assert!(Panel::row().is_empty());
    }
}
