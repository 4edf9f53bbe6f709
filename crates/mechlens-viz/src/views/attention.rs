//! Attention patterns for one prompt: a grid of small per-head maps, and the prompt's tokens,
//! where hovering a token colours every other token by how much the hovered one attends to
//! it (CircuitsVis' `attention_patterns` is the model for this view).

use std::fmt::Write as _;

use mechlens_core::{Error, Result};
use serde_json::json;
use tch::{Kind, Tensor};

use super::{STYLE, View, json_number, script_json, unique_id};
use crate::display::escape_html;
use crate::heatmap::visible;

/// Options for [`attention_patterns_with`].
#[derive(Clone, Debug, Default)]
pub struct AttentionOptions {
    /// A title above the view.
    pub title: String,
    /// One name per head (default `H0`, `H1`, ...; `L3H5` style names read well).
    pub head_names: Option<Vec<String>>,
}

/// The attention view of one prompt with default options.
///
/// # Shapes
/// - `pattern`: `[n_heads, query_pos, key_pos]` (a layer's `hook_pattern` for one prompt), or
///   `[1, n_heads, query_pos, key_pos]`, or `[query_pos, key_pos]` for one head; both
///   positions must equal `tokens.len()`.
///
/// # Errors
/// As [`attention_patterns_with`].
pub fn attention_patterns<S: AsRef<str>>(tokens: &[S], pattern: &Tensor) -> Result<View> {
    attention_patterns_with(tokens, pattern, &AttentionOptions::default())
}

/// The attention view of one prompt.
///
/// Click a head's map to select it; hover a token to see where it attends in that head.
/// Values are drawn on a fixed 0–1 scale (white to blue), NaN grey.
///
/// # Shapes
/// As [`attention_patterns`].
///
/// # Errors
/// [`Error::ShapeMismatch`] for a pattern of another rank, or positions that do not match
/// the tokens; [`Error::InvalidInput`] for no tokens or a head-name count that is not the
/// head count.
pub fn attention_patterns_with<S: AsRef<str>>(
    tokens: &[S],
    pattern: &Tensor,
    opts: &AttentionOptions,
) -> Result<View> {
    let n = tokens.len() as i64;
    if n == 0 {
        return Err(Error::invalid(
            "tokens",
            "the attention view needs at least one token",
        ));
    }
    let size = pattern.size();
    let pattern = match size.as_slice() {
        [1, _, _, _] => pattern.f_squeeze_dim(0)?,
        [_, _, _] => pattern.shallow_clone(),
        [_, _] => pattern.f_unsqueeze(0)?,
        _ => {
            return Err(Error::ShapeMismatch {
                what: "attention pattern".into(),
                expected: format!(
                    "[n_heads, {n}, {n}] for {n} tokens (or [1, n_heads, {n}, {n}], or [{n}, {n}])"
                ),
                got: size,
            });
        }
    };
    let s = pattern.size();
    if s[1] != n || s[2] != n {
        return Err(Error::ShapeMismatch {
            what: "attention pattern".into(),
            expected: format!("[{}, {n}, {n}] for {n} tokens", s[0]),
            got: size,
        });
    }
    let n_heads = s[0] as usize;
    let names = match &opts.head_names {
        Some(names) if names.len() != n_heads => {
            return Err(Error::invalid(
                "head names",
                format!("{} names for {n_heads} heads", names.len()),
            ));
        }
        Some(names) => names.clone(),
        None => (0..n_heads).map(|h| format!("H{h}")).collect(),
    };
    let values = Vec::<f64>::try_from(
        pattern
            .f_detach()?
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_reshape([-1])?,
    )?;
    let nu = n as usize;
    let heads: Vec<serde_json::Value> = values
        .chunks(nu * nu)
        .map(|head| {
            json!(
                head.chunks(nu)
                    .map(|row| row.iter().map(|&v| json_number(v)).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let data = json!({ "names": names, "pattern": heads });
    let id = unique_id("mlv-attn");

    let mut html = format!("<div class=\"mlv mechlens-attention\" id=\"{id}\">{STYLE}");
    if !opts.title.is_empty() {
        let _ = write!(html, "<h4>{}</h4>", escape_html(&opts.title));
    }
    html.push_str(
        "<div class=\"mlv-heads\" style=\"display:flex;flex-wrap:wrap;gap:6px;margin-bottom:6px\"></div>\
         <div class=\"mlv-info\" style=\"color:#444;font-size:12px\"></div><div class=\"mlv-tokens\">",
    );
    for (i, t) in tokens.iter().enumerate() {
        let _ = write!(
            html,
            "<span class=\"mlv-tok\" data-pos=\"{i}\" style=\"background:rgb(255,255,255)\">{}</span>",
            escape_html(&visible(t.as_ref()))
        );
    }
    html.push_str("</div>");
    let _ = write!(
        html,
        "<script>(function(){{\
var root=document.getElementById({id_json});var data={data};\
var P=data.pattern,N=data.names,head=0,query=-1;\
var toks=root.querySelectorAll('.mlv-tok'),info=root.querySelector('.mlv-info'),grid=root.querySelector('.mlv-heads');\
function color(v){{if(v===null)return 'rgb(190,190,190)';v=Math.max(0,Math.min(1,v));\
return 'rgb('+Math.round(255-222*v)+','+Math.round(255-153*v)+','+Math.round(255-83*v)+')';}}\
function text(v){{return v===null?'NaN':v.toFixed(3);}}\
var n=toks.length,cell=Math.max(2,Math.min(8,Math.floor(96/n))),canvases=[];\
P.forEach(function(h,i){{var box=document.createElement('div');box.style.textAlign='center';box.style.fontSize='11px';\
var c=document.createElement('canvas');c.width=c.height=n*cell;c.className='mlv-head';c.dataset.head=i;\
c.style.border='2px solid transparent';c.style.cursor='pointer';c.title=N[i];\
var g=c.getContext('2d');for(var q=0;q<n;q++)for(var k=0;k<n;k++){{g.fillStyle=color(h[q][k]);g.fillRect(k*cell,q*cell,cell,cell);}}\
c.addEventListener('click',function(){{select(i);}});box.appendChild(c);box.appendChild(document.createElement('br'));\
box.appendChild(document.createTextNode(N[i]));grid.appendChild(box);canvases.push(c);}});\
function paint(){{var row=query>=0?P[head][query]:null;\
toks.forEach(function(t,k){{t.style.background=row?color(row[k]):'rgb(255,255,255)';t.style.color=row&&row[k]!==null&&row[k]>0.6?'white':'black';\
t.style.outline=k===query?'2px solid #b2182b':'none';t.title=row?(N[head]+': '+text(row[k])):'';}});\
if(query<0){{info.textContent=N[head]+' selected: hover a token to see what it attends to; click a map to pick another head';}}\
else{{var best=0;for(var k=1;k<n;k++)if((row[k]||0)>(row[best]||0))best=k;\
info.textContent=N[head]+', query '+toks[query].textContent+' (pos '+query+'): most attention to '+toks[best].textContent+' (pos '+best+', '+text(row[best])+')';}}}}\
function select(i){{head=i;canvases.forEach(function(c,j){{c.style.border=j===i?'2px solid #b2182b':'2px solid transparent';}});paint();}}\
toks.forEach(function(t,k){{t.addEventListener('mouseenter',function(){{query=k;paint();}});}});\
root.querySelector('.mlv-tokens').addEventListener('mouseleave',function(){{query=-1;paint();}});\
select(0);}})();</script></div>",
        id_json = script_json(&json!(id)),
        data = script_json(&data),
    );
    Ok(View::new(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_holds_every_token_escaped_and_the_data() -> Result<()> {
        let pattern =
            Tensor::from_slice(&[1.0f32, 0.0, 0.25, 0.75, 1.0, 0.0, 0.5, 0.5]).reshape([2, 2, 2]);
        let v = attention_patterns(&["<s>", " &x"], &pattern)?;
        let s = v.as_str();
        assert!(s.contains("class=\"mlv mechlens-attention\""));
        assert!(
            s.contains(">&lt;s&gt;</span>") && s.contains(">·&amp;x</span>"),
            "{s}"
        );
        assert!(
            s.contains("\"pattern\":[[[1.0,0.0],[0.25,0.75]],[[1.0,0.0],[0.5,0.5]]]"),
            "{s}"
        );
        assert!(s.contains("\"names\":[\"H0\",\"H1\"]"));
        Ok(())
    }

    #[test]
    fn non_finite_values_become_null_and_batches_of_one_are_accepted() -> Result<()> {
        let pattern = Tensor::from_slice(&[f32::NAN, 1.0]).reshape([1, 1, 1, 2]);
        // [1, 1, 1, 2] is one prompt, one head, 1 query × 2 keys: the positions do not match.
        assert!(attention_patterns(&["a"], &pattern).is_err());
        let pattern =
            Tensor::from_slice(&[f32::NAN, 1.0, f32::INFINITY, 0.0]).reshape([1, 1, 2, 2]);
        let v = attention_patterns(&["a", "b"], &pattern)?;
        assert!(
            v.as_str().contains("[[[null,1.0],[null,0.0]]]"),
            "{}",
            v.as_str()
        );
        Ok(())
    }

    #[test]
    fn wrong_shapes_and_names_are_named_errors() {
        let p = Tensor::zeros([2, 3, 3], (Kind::Float, tch::Device::Cpu));
        let err = attention_patterns(&["a", "b"], &p)
            .expect_err("3 positions, 2 tokens")
            .to_string();
        assert!(
            err.contains("[2, 2, 2] for 2 tokens") && err.contains("[2, 3, 3]"),
            "{err}"
        );
        let err = attention_patterns(&["a"], &Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)))
            .expect_err("rank 1")
            .to_string();
        assert!(err.contains("n_heads"), "{err}");
        let empty: [&str; 0] = [];
        assert!(attention_patterns(&empty, &p).is_err());
        let opts = AttentionOptions {
            head_names: Some(vec!["x".into()]),
            ..Default::default()
        };
        let p = Tensor::zeros([2, 1, 1], (Kind::Float, tch::Device::Cpu));
        let err = attention_patterns_with(&["a"], &p, &opts)
            .expect_err("1 name, 2 heads")
            .to_string();
        assert!(err.contains("1 names for 2 heads"), "{err}");
    }
}
