"""Writes notebooks/tutorials/02-logit-lens-and-patching.ipynb (run: python notebooks/tools/make_02_logit_lens_and_patching.py).

The notebook is the product; this script keeps its source reviewable as plain text."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s: cells.append(new_code_cell(s.strip()))

md("""
# Finding a circuit: logit lens, attribution and activation patching

**BabyLlama**, a 5-layer character-level Llama trained on TinyStories, can finish a name it
saw earlier:

> Ben and T**o**m went to the park. Ben gave the ball to T → **o**

Change the earlier name to *Tim* and it answers **i**. Only one character differs between
the two prompts, so the answer must be carried from position 11 (the `o` of *Tom*) to the
last position. In this notebook you will find where, and by which heads, with the tools of
TransformerLens and the ARENA exercises:

1. the **logit lens**: what the model would predict if it stopped after each layer;
2. **direct logit attribution**: which layers and heads write the answer into the logits;
3. **activation patching**: copying activations from the *Tom* run into the *Tim* run, one
   layer × position (or head) at a time, to see which ones carry the answer;
4. **attribution patching**: a gradient estimate of all those patches from one backward pass.

Every result that the story rests on is checked with `assert!`.
""")

code("""
// TransformerLens' weight processing folds the norm weights into the next matrices, so that a
// layer's direct contribution to the logits is a plain dot product (see section 2).
let model = mechlens::datasets::babyllama(LoadOptions::transformer_lens())?;
let clean_text = "Ben and Tom went to the park. Ben gave the ball to T";
let corrupt_text = "Ben and Tim went to the park. Ben gave the ball to T";
let clean = model.to_tokens(clean_text, true)?;
let corrupted = model.to_tokens(corrupt_text, true)?;
let str_tokens = model.to_str_tokens(clean_text, true)?;
let name_pos: i64 = 11;                 // the "o" of Tom (position 0 is <s>)
assert_eq!(str_tokens[name_pos as usize], "o");
assert_eq!(clean.size(), corrupted.size());
println!("{} tokens; they differ only at position {name_pos}", str_tokens.len());
""")

code("""
let o = model.to_single_token("o")?;
let i = model.to_single_token("i")?;
fn next(model: &HookedTransformer, tokens: &Tensor) -> mechlens::Result<(String, f64)> {
    let probs = model.forward(tokens)?.get(0).get(-1).softmax(-1, Kind::Float);
    let top = probs.argmax(0, false).int64_value(&[]);
    Ok((model.require_tokenizer()?.token_to_str(top)?, probs.double_value(&[top])))
}
let (clean_top, clean_p) = next(&model, &clean)?;
let (corrupt_top, corrupt_p) = next(&model, &corrupted)?;
println!("Tom run predicts {clean_top:?} (p = {clean_p:.2}); Tim run predicts {corrupt_top:?} (p = {corrupt_p:.2})");
assert!(clean_top == "o" && clean_p > 0.9);
assert_eq!(corrupt_top, "i");
""")

md("""
The **metric** throughout is the logit difference `logit(o) − logit(i)` at the last
position. Patching results are normalised so that 0 means "still the Tim run" and 1 means
"fully the Tom run".
""")
code("""
// Functions, not closures: evcxr keeps a cell's variables only if it can name their types.
fn logit_diff(logits: &Tensor, o: i64, i: i64) -> mechlens::Result<Tensor> {
    let last = logits.get(0).get(-1);
    Ok(last.get(o) - last.get(i))
}
let (clean_logits, cache) = model.run_with_cache(&clean, CacheFilter::All)?;
let clean_diff: f64 = logit_diff(&clean_logits, o, i)?.double_value(&[]);
let corrupt_diff: f64 = logit_diff(&model.forward(&corrupted)?, o, i)?.double_value(&[]);
/// The share of the answer a patched run restores: 0 = the Tim run, 1 = the Tom run.
fn restored(logits: &Tensor, o: i64, i: i64, clean: f64, corrupt: f64) -> mechlens::Result<Tensor> {
    Ok((logit_diff(logits, o, i)? - corrupt) / (clean - corrupt))
}
println!("logit(o) − logit(i): Tom run {clean_diff:.2}, Tim run {corrupt_diff:.2}");
""")

md("""
## 1. Logit lens

Read the residual stream after each layer through the final norm and the unembedding. At
the last position, where does the answer rank?
""")
code("""
let lens = logit_lens(&model, &cache, 0, 3, Some(o))?;
let last_pos = (str_tokens.len() - 1) as u32;
let at_last = lens.table.clone().lazy()
    .filter(col("pos").eq(lit(last_pos)).and(col("rank").eq(lit(1u32))))
    .select([col("component"), col("token"), col("prob"), col("answer_rank"), col("answer_prob")])
    .collect()?;
let ranks: Vec<u32> = at_last.column("answer_rank")?
    .u32()?.into_no_null_iter().collect();
println!("rank of \\"o\\" after each layer: {ranks:?}");
assert!(ranks[0] > 10, "the embedding alone says nothing about the name");
assert!(ranks[ranks.len() - 2] > 1 && ranks[ranks.len() - 1] == 1, "\\"o\\" reaches the top only in the last layer");
at_last
""")

md("""
"o" climbs from rank ~100 to 2 before the last layer and only then wins: the last layer
does the deciding. The next two sections say which part of it, and what feeds it.

## 2. Direct logit attribution

Each layer's output adds a vector to the residual stream; its dot product with the
unembedding direction `W_U[o] − W_U[i]` (after the final norm's scale) is its *direct* effect
on the metric. With the norm weights folded in, the direct effects of all components add up
to the logit difference exactly.
""")
code("""
let answers = Tensor::from_slice(&[o]);
let wrong = Tensor::from_slice(&[i]);
let (layers, layer_attrs, layer_table) = direct_logit_attribution(&model, &cache, DlaBy::Layer, &answers, Some(&wrong))?;
let total: f64 = layer_attrs.sum(Kind::Double).double_value(&[]);
println!("sum of direct effects {total:.4} = logit difference {clean_diff:.4}");
assert!((total - clean_diff).abs() < 1e-3);
let top = layer_attrs.squeeze_dim(1).argmax(0, false).int64_value(&[]) as usize;
println!("largest: {}", layers.labels[top]);
assert_eq!(layers.labels[top], "4_mlp_out");
layer_table
""")
code("""
let (_, head_attrs, _) = direct_logit_attribution(&model, &cache, DlaBy::Head, &answers, Some(&wrong))?;
let head_attrs = head_attrs.view([5, 8]);

Heatmap::new(&head_attrs).title("Direct effect of each head on logit(o) − logit(i)").x_label("head").y_label("layer").diverging()
""")

md("""
The heads' direct effects are small next to the last MLP's (≈5.6 of 5.4): heads do not write
the answer themselves. So what tells MLP 4 that the name was *Tom*? Activation patching
follows the information instead of its last step.

## 3. Activation patching

For every layer and position, run the *Tim* prompt but paste in the residual stream from
the *Tom* run at that one place, and measure how much of the answer comes back.
""")
code("""
// (The closure goes straight into the call: evcxr cannot keep a closure between cells.)
let resid = activation_patch(&model, &corrupted, &cache, PatchTarget::ResidPre,
    |l: &Tensor| restored(l, o, i, clean_diff, corrupt_diff))?;
println!("scores {:?} (layer × position)", resid.scores.size());
Heatmap::new(&resid.scores).title("resid_pre patching: share of the answer restored").x_labels(&str_tokens).x_label("position").y_label("layer").diverging()
""")
code("""
let s = resid.scores.shallow_clone();   // owned: evcxr keeps no borrows between cells
for layer in 0..5 {
    let row: Vec<String> = (name_pos..name_pos + 2).chain([-1]).map(|p| format!("{:.2}", s.double_value(&[layer, p]))).collect();
    println!("layer {layer}: o {}  m {}  last {}", row[0], row[1], row[2]);
}
// Layer 0, the differing position: the whole Tim run becomes the Tom run.
assert!((s.double_value(&[0, name_pos]) - 1.0).abs() < 1e-4);
// Positions before it are identical in both runs: patching them does nothing.
assert!(s.narrow(1, 0, name_pos).abs().max().double_value(&[]) < 1e-4);
// By layer 3 the name has moved to the next position (the "m"); by layer 4 to the last one.
assert!(s.double_value(&[3, name_pos + 1]) > 0.9 && s.double_value(&[3, name_pos]) < 0.1);
assert!(s.double_value(&[4, -1]) > 0.9 && s.double_value(&[4, name_pos + 1]) < 0.1);
""")

md("""
The information sits on the `o` through layer 1, is copied one position right, onto the `m`,
by the attention of layers 1–2 (half there at layer 2's input, all of it at layer 3's), and
reaches the last position only at layer 4's input: some head of layer 3 moves it. Patch
each head's output (all positions at once) to name it:
""")
code("""
let heads = activation_patch(&model, &corrupted, &cache, PatchTarget::HeadOutAllPos,
    |l: &Tensor| restored(l, o, i, clean_diff, corrupt_diff))?;
let best = heads.scores.flatten(0, -1).argmax(0, false).int64_value(&[]);
let (best_layer, best_head) = (best / 8, best % 8);
println!("head {best_layer}.{best_head} restores {:.3} of the answer on its own", heads.scores.double_value(&[best_layer, best_head]));
assert_eq!((best_layer, best_head), (3, 2));
assert!(heads.scores.double_value(&[3, 2]) > 0.9);
Heatmap::new(&heads.scores).title("Head output patching: share restored").x_label("head").y_label("layer").diverging()
""")

md("""
**Head 3.2** moves the name's vowel from the `m` to the final `T`; heads in layers 1 and 2
(1.2, 1.4, 2.0, 2.4 each restore a fifth to a quarter) copy it from the `o` onto the `m`;
and MLP 4 turns it into the logit. A three-step circuit found with four calls.

Check what head 3.2 attends to from the last position:
""")
code("""
let pattern = cache.get("blocks.3.attn.hook_pattern")?.get(0).get(2).get(-1);   // [key]
let (weights, keys) = pattern.topk(3, 0, true, true);
let keys: Vec<i64> = Vec::try_from(&keys)?;
let weights: Vec<f32> = Vec::try_from(&weights)?;
for (k, w) in keys.iter().zip(&weights) {
    println!("position {k:>2} {:?}: {w:.2}", str_tokens[*k as usize]);
}
assert_eq!(keys[0], name_pos + 1, "head 3.2 looks at the token after the vowel");
""")

md("""
## 4. Attribution patching

Activation patching costs one forward pass per patch. Attribution patching estimates all of
them at once from the gradient of the metric in the Tim run: the effect of patching an
activation is about `(clean − corrupted) · ∂metric/∂activation`. It is a linear
approximation: good where a patch changes little, poor where it changes a lot.
""")
code("""
let approx_heads = attribution_patch(&model, &corrupted, &cache, PatchTarget::HeadOutAllPos,
    |l: &Tensor| restored(l, o, i, clean_diff, corrupt_diff))?;
let approx_resid = attribution_patch(&model, &corrupted, &cache, PatchTarget::ResidPre,
    |l: &Tensor| restored(l, o, i, clean_diff, corrupt_diff))?;
let r_heads = patching_correlation(&approx_heads, &heads)?;
let r_resid = patching_correlation(&approx_resid, &resid)?;
println!("correlation with activation patching: heads {r_heads:.3}, resid_pre {r_resid:.3}");
assert!(r_heads > 0.9);
Heatmap::new(&approx_heads.scores).title("Attribution patching estimate, heads").x_label("head").y_label("layer").diverging()
""")

md("""
For head outputs the estimate agrees closely; for the residual stream less so, since pasting
a whole residual vector is a large, non-linear change. Use attribution patching to decide
where to look, and activation patching to confirm.

## Where next

- `PatchTarget` has TransformerLens' other targets (`HeadOutByPos`, `HeadQAllPos`,
  `HeadPatternAllPos`, ...); `generic_activation_patch` takes any hook point and axes.
- `cache.decompose_resid`, `cache.stack_head_results` and `cache.logit_attrs` are the pieces
  `direct_logit_attribution` is built from.
- `ablate` and `ablate_each_head` knock components out (zero, mean or resampled) instead of
  patching them in.
""")

nb = new_notebook(cells=cells)
nb.metadata = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
    "mechlens": {"expect_outputs": ["text/html", "image/svg+xml"]},
}
out = Path(__file__).resolve().parents[1] / "tutorials" / "02-logit-lens-and-patching.ipynb"
nbformat.write(nb, out)
print(out)
