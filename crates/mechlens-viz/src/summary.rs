//! Summaries of the big objects a notebook holds: activation caches, models and ndarray
//! arrays, as HTML tables.

use std::fmt::Write as _;

use mechlens_core::ActivationCache;
use mechlens_models::{HookedEncoder, HookedTransformer};
use tch::Tensor;

use crate::display::{NotebookDisplay, ToHtml, emit, escape_html};

/// Bytes as "1.5 MB".
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A two-column key/value table.
fn key_values(title: &str, rows: &[(&str, String)]) -> String {
    let mut html = format!(
        "<div class=\"mechlens-summary\"><b>{}</b><table><tbody>",
        escape_html(title)
    );
    for (k, v) in rows {
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape_html(k),
            escape_html(v)
        );
    }
    html.push_str("</tbody></table></div>");
    html
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.numel() * t.kind().elt_size_in_bytes()
}

// ---------------------------------------------------------------------------------------------
// ActivationCache

/// The cache as a table: one row per hook point with its shape, dtype, device and memory,
/// in the order the model ran them.
pub fn cache_html(cache: &ActivationCache) -> String {
    let mut html = format!(
        "<div class=\"mechlens-cache\"><small>ActivationCache: {} activations, {}</small>\
         <table class=\"dataframe\"><thead><tr><th>hook</th><th>shape</th><th>dtype</th>\
         <th>device</th><th>memory</th></tr></thead><tbody>",
        cache.len(),
        format_bytes(cache.size_bytes())
    );
    for (point, t) in cache.iter() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:?}</td><td>{:?}</td><td>{:?}</td><td>{}</td></tr>",
            escape_html(&point.to_string()),
            t.size(),
            t.kind(),
            t.device(),
            format_bytes(tensor_bytes(t))
        );
    }
    html.push_str("</tbody></table></div>");
    html
}

impl ToHtml for ActivationCache {
    fn to_html(&self) -> String {
        cache_html(self)
    }
}

impl NotebookDisplay for ActivationCache {
    fn evcxr_display(&self) {
        emit("text/html", &cache_html(self));
        emit("text/plain", &self.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Models

/// How many hook point names to list before eliding (a 12-layer model has ~250).
const HOOKS_SHOWN: usize = 24;

fn hook_list(points: &[mechlens_core::HookPoint]) -> String {
    let names: Vec<String> = points.iter().map(ToString::to_string).collect();
    if names.len() <= HOOKS_SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, … ({} in all; model.hook_points() lists them)",
            names[..HOOKS_SHOWN].join(", "),
            names.len()
        )
    }
}

/// A decoder's architecture, sizes, parameter count and hook points.
pub fn transformer_html(model: &HookedTransformer) -> String {
    let cfg = model.cfg();
    key_values(
        "HookedTransformer",
        &[
            ("architecture", cfg.architecture.clone()),
            (
                "parameters",
                format!("{} ({})", model.n_params(), short_count(model.n_params())),
            ),
            ("layers", cfg.n_layers.to_string()),
            ("d_model", cfg.d_model.to_string()),
            (
                "heads",
                format!(
                    "{} ({} key/value), d_head {}",
                    cfg.n_heads, cfg.n_kv_heads, cfg.d_head
                ),
            ),
            (
                "d_mlp",
                format!(
                    "{} ({:?}{})",
                    cfg.d_mlp,
                    cfg.act_fn,
                    if cfg.gated_mlp { ", gated" } else { "" }
                ),
            ),
            ("d_vocab", cfg.d_vocab.to_string()),
            ("n_ctx", cfg.n_ctx.to_string()),
            (
                "positions",
                format!("{:?}", cfg.positional).chars().take(60).collect(),
            ),
            ("normalization", format!("{:?}", cfg.normalization)),
            ("device", format!("{:?}", model.device())),
            (
                "tokenizer",
                if model.tokenizer().is_some() {
                    "yes".into()
                } else {
                    "none".into()
                },
            ),
            ("hook points", hook_list(&model.hook_points())),
        ],
    )
}

/// An encoder's sizes, parameter count and hook points.
pub fn encoder_html(model: &HookedEncoder) -> String {
    let cfg = &model.cfg;
    key_values(
        "HookedEncoder (BERT)",
        &[
            ("layers", cfg.num_hidden_layers.to_string()),
            ("d_model", cfg.hidden_size.to_string()),
            ("heads", cfg.num_attention_heads.to_string()),
            (
                "d_mlp",
                format!("{} ({})", cfg.intermediate_size, cfg.hidden_act),
            ),
            ("d_vocab", cfg.vocab_size.to_string()),
            ("n_ctx", cfg.max_position_embeddings.to_string()),
            (
                "tokenizer",
                if model.tokenizer().is_some() {
                    "yes".into()
                } else {
                    "none".into()
                },
            ),
            ("hook points", hook_list(&model.hook_points())),
        ],
    )
}

/// 1234567 as "1.23M".
fn short_count(n: i64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2}B", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        n.to_string()
    }
}

impl ToHtml for HookedTransformer {
    fn to_html(&self) -> String {
        transformer_html(self)
    }
}

impl ToHtml for HookedEncoder {
    fn to_html(&self) -> String {
        encoder_html(self)
    }
}

crate::display::display_as_html!(HookedTransformer, HookedEncoder);

// ---------------------------------------------------------------------------------------------
// ndarray

/// An ndarray array: its shape and, for ≤ 2-D, a table of leading values (as for tensors).
pub fn ndarray_html<A, S, D>(array: &ndarray::ArrayBase<S, D>) -> String
where
    A: Copy + Into<f64>,
    S: ndarray::Data<Elem = A>,
    D: ndarray::Dimension,
{
    let values: Vec<f64> = array.iter().map(|&v| v.into()).collect();
    let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
    let tensor = Tensor::from_slice(&values);
    let html = match tensor.f_reshape(shape.as_slice()) {
        Ok(t) => crate::display::tensor_html(&t),
        Err(e) => format!("<pre>{}</pre>", escape_html(&e.to_string())),
    };
    // Say what it is: an ndarray, not a tensor.
    html.replacen(
        &format!("Tensor {shape:?} Double cpu"),
        &format!("ndarray {:?} {}", array.shape(), std::any::type_name::<A>()),
        1,
    )
}

impl<A, S, D> NotebookDisplay for ndarray::ArrayBase<S, D>
where
    A: Copy + Into<f64>,
    S: ndarray::Data<Elem = A>,
    D: ndarray::Dimension,
{
    fn evcxr_display(&self) {
        emit("text/html", &ndarray_html(self));
    }
}

impl<A, S, D> ToHtml for ndarray::ArrayBase<S, D>
where
    A: Copy + Into<f64>,
    S: ndarray::Data<Elem = A>,
    D: ndarray::Dimension,
{
    fn to_html(&self) -> String {
        ndarray_html(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human_sized() {
        assert_eq!(format_bytes(12), "12 B");
        assert_eq!(format_bytes(1_500_000), "1.5 MB");
    }

    #[test]
    fn cache_table_lists_each_hook_with_shape_and_memory() -> mechlens_core::Result<()> {
        let mut cache = ActivationCache::new();
        let point: mechlens_core::HookPoint = "blocks.0.hook_resid_pre".parse()?;
        cache.insert(
            point,
            Tensor::zeros([2, 3, 4], (tch::Kind::Float, tch::Device::Cpu)),
        );
        let html = cache_html(&cache);
        assert!(html.contains("1 activations, 96 B"), "{html}");
        assert!(html.contains("<td>blocks.0.hook_resid_pre</td><td>[2, 3, 4]</td><td>Float</td><td>Cpu</td><td>96 B</td>"), "{html}");
        Ok(())
    }

    #[test]
    fn ndarray_shows_its_own_type_and_values() {
        let a = ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.5]]);
        let html = ndarray_html(&a);
        assert!(html.contains("ndarray [2, 2] f32"), "{html}");
        assert!(html.contains("<td>4.5</td>"), "{html}");
        let empty = ndarray::Array1::<f64>::zeros(0);
        assert!(ndarray_html(&empty).contains("ndarray [0] f64"));
    }
}
