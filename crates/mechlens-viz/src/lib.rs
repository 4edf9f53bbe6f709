//! Notebook rendering for mechlens: how tables, tensors, charts and views appear inline in
//! JupyterLab (through evcxr), and how they are saved as files.
//!
//! - [`NotebookDisplay`]: the display trait a cell's last expression goes through; implemented
//!   for polars DataFrames, tch tensors, ndarray arrays, the activation cache, models, SAE
//!   reports, charts and views, and for std values (numbers, strings, `Vec`, `Option`...) as
//!   their `Debug` text, so that evcxr never compiles a cell twice. [`ToHtml`] gives the same
//!   as an HTML fragment.
//! - [`Panel`]: several outputs from one cell, as one HTML block (evcxr shows one block per
//!   MIME type per cell).
//! - [`Chart`]: line, scatter, bar and histogram charts (plotters, SVG), with legends and log
//!   axes, from slices, tensors or DataFrame columns; [`Heatmap`] with token labels and a
//!   diverging scale centred at 0. Both save as SVG and PNG.
//! - [`views`]: self-contained HTML + JS views: attention patterns, coloured tokens, top-k
//!   tokens per position, SAE feature dashboards. Nothing is fetched from a network.
//! - [`cell_guard`]: the kernel's relay that reports a cell's `?` error or panic to Jupyter as
//!   an error (installed by the kernel's prelude).
//!
//! Text in SVG is drawn by the browser, so no system font library is needed; PNG export
//! uses resvg with a font compiled in.

pub mod cell_guard;
pub mod chart;
pub mod colors;
pub mod display;
pub mod heatmap;
mod panel;
mod plain;
pub mod summary;
pub mod svg;
pub mod views;

pub use chart::Chart;
pub use colors::Scale;
pub use display::{NotebookDisplay, ToHtml, emit, escape_html};
pub use heatmap::Heatmap;
pub use panel::Panel;
pub use svg::{Svg, SvgArea, svg_chart};
pub use views::{
    AttentionOptions, ColoredTokens, DashboardOptions, FeatureDashboard, TopKTokens, View,
    attention_patterns, attention_patterns_with,
};
