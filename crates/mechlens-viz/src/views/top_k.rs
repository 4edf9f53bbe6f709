//! The top-k predicted tokens at each position, as a table coloured by probability: the
//! logit lens' view of what the model (or one of its layers) expects next. The token that
//! actually comes next is outlined.

use std::fmt::Write as _;

use mechlens_core::{Error, Result};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use super::{STYLE, View};
use crate::colors::Scale;
use crate::display::{escape_html, format_float};
use crate::heatmap::visible;

/// A top-k table being described; [`TopKTokens::view`] renders it.
#[derive(Clone, Debug)]
pub struct TopKTokens {
    title: String,
    positions: Vec<String>,
    entries: Vec<Vec<(String, f64)>>,
    next: Vec<Option<String>>,
}

impl TopKTokens {
    /// A table from ready-made entries: for each position (labelled by its token), the
    /// predicted tokens with their probabilities, most likely first.
    pub fn new<S: AsRef<str>>(
        title: &str,
        positions: &[S],
        entries: Vec<Vec<(String, f64)>>,
    ) -> Self {
        Self {
            title: title.to_string(),
            positions: positions.iter().map(|s| s.as_ref().to_string()).collect(),
            entries,
            next: Vec::new(),
        }
    }

    /// The `k` most likely next tokens at each position of `tokens` under `logits`
    /// (softmax over the vocabulary), named with `model`'s tokenizer. The token that comes
    /// next in `tokens` is outlined where it appears.
    ///
    /// # Shapes
    /// - `tokens`: `[pos]` or `[1, pos]` token ids.
    /// - `logits`: `[pos, d_vocab]` or `[1, pos, d_vocab]` (a model's output, or a layer's
    ///   residual stream through `apply_ln_final` and `W_U` for the logit lens).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes disagree; [`Error::InvalidInput`] for `k` of
    /// 0 or above the vocabulary, or a model without a tokenizer.
    pub fn from_logits(
        model: &HookedTransformer,
        title: &str,
        tokens: &Tensor,
        logits: &Tensor,
        k: usize,
    ) -> Result<Self> {
        let tokenizer = model.require_tokenizer()?;
        let ids = Vec::<i64>::try_from(
            tokens
                .f_reshape([-1])?
                .f_to_device(tch::Device::Cpu)?
                .f_to_kind(Kind::Int64)?,
        )?;
        let logits = if logits.dim() == 3 && logits.size()[0] == 1 {
            logits.f_squeeze_dim(0)?
        } else {
            logits.shallow_clone()
        };
        let size = logits.size();
        if size.len() != 2 || size[0] != ids.len() as i64 {
            return Err(Error::ShapeMismatch {
                what: "logits for the top-k table".into(),
                expected: format!("[{}, d_vocab] (one row per token)", ids.len()),
                got: logits.size(),
            });
        }
        if k == 0 || k as i64 > size[1] {
            return Err(Error::invalid(
                "k",
                format!(
                    "{k}; it must be between 1 and the vocabulary size {}",
                    size[1]
                ),
            ));
        }
        let probs = logits
            .f_to_kind(Kind::Float)?
            .f_softmax(-1, Kind::Float)?
            .f_to_device(tch::Device::Cpu)?;
        let (values, indices) = probs.f_topk(k as i64, -1, true, true)?;
        let mut entries = Vec::with_capacity(ids.len());
        for p in 0..ids.len() as i64 {
            let v = Vec::<f64>::try_from(values.f_get(p)?.f_to_kind(Kind::Double)?)?;
            let i = Vec::<i64>::try_from(indices.f_get(p)?)?;
            let row = i
                .iter()
                .zip(v)
                .map(|(&id, v)| Ok((tokenizer.token_to_str(id)?, v)))
                .collect::<Result<Vec<_>>>()?;
            entries.push(row);
        }
        let positions = ids
            .iter()
            .map(|&id| tokenizer.token_to_str(id))
            .collect::<Result<Vec<_>>>()?;
        let mut next: Vec<Option<String>> = positions.iter().skip(1).cloned().map(Some).collect();
        next.push(None);
        Ok(Self {
            title: title.to_string(),
            positions,
            entries,
            next,
        })
    }

    /// Outlines, at each position, the token given (usually the one that comes next).
    pub fn next_tokens<S: AsRef<str>>(mut self, next: &[Option<S>]) -> Self {
        self.next = next
            .iter()
            .map(|s| s.as_ref().map(|s| s.as_ref().to_string()))
            .collect();
        self
    }

    /// Renders the table: one row per position, one column per rank.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for no positions, or entry and position counts that differ.
    pub fn view(&self) -> Result<View> {
        let what = || format!("top-k table `{}`", self.title);
        if self.positions.is_empty() {
            return Err(Error::invalid(what(), "no positions"));
        }
        if self.entries.len() != self.positions.len() {
            return Err(Error::invalid(
                what(),
                format!(
                    "{} positions but {} rows of entries",
                    self.positions.len(),
                    self.entries.len()
                ),
            ));
        }
        let k = self.entries.iter().map(Vec::len).max().unwrap_or(0);
        let scale = Scale::Sequential { min: 0.0, max: 1.0 };
        let mut html = format!("<div class=\"mlv mechlens-topk\">{STYLE}");
        if !self.title.is_empty() {
            let _ = write!(html, "<h4>{}</h4>", escape_html(&self.title));
        }
        html.push_str("<table><thead><tr><th>pos</th><th>token</th>");
        for r in 1..=k {
            let _ = write!(html, "<th>#{r}</th>");
        }
        html.push_str("</tr></thead><tbody>");
        for (p, (token, row)) in self.positions.iter().zip(&self.entries).enumerate() {
            let _ = write!(
                html,
                "<tr><td>{p}</td><td><b>{}</b></td>",
                escape_html(&visible(token))
            );
            let next = self.next.get(p).and_then(Option::as_ref);
            for (t, v) in row {
                let bg = scale.color(*v);
                let outline = if next == Some(t) {
                    "outline:2px solid #b2182b;"
                } else {
                    ""
                };
                let _ = write!(
                    html,
                    "<td class=\"mlv-cell\" style=\"background:{};color:{};{outline}\" title=\"{}\">{} <small>{}</small></td>",
                    bg.css(),
                    bg.text_on().css(),
                    format_float(*v),
                    escape_html(&visible(t)),
                    format_float((v * 1000.0).round() / 1000.0),
                );
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table></div>");
        Ok(View::new(html))
    }
}

crate::display::display_fallible!(TopKTokens, "view", view);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_per_position_and_the_next_token_outlined() -> Result<()> {
        let t = TopKTokens::new(
            "lens",
            &["The", " cat"],
            vec![
                vec![(" cat".into(), 0.5), (" dog".into(), 0.25)],
                vec![(" sat".into(), 0.9), ("<".into(), 0.1)],
            ],
        )
        .next_tokens(&[Some(" cat"), None]);
        let s = t.view()?;
        let s = s.as_str();
        assert_eq!(s.matches("class=\"mlv-cell\"").count(), 4);
        assert!(
            s.contains("outline:2px solid #b2182b;\" title=\"0.5\">·cat <small>0.5</small>"),
            "{s}"
        );
        assert_eq!(s.matches("outline:2px").count(), 1, "{s}");
        assert!(s.contains(">&lt; <small>"), "{s}");
        let err = TopKTokens::new("x", &["a"], vec![])
            .view()
            .expect_err("no entries")
            .to_string();
        assert!(err.contains("1 positions but 0 rows"), "{err}");
        Ok(())
    }
}
