"""Writes notebooks/tutorials/03-svd-weight-analysis.ipynb (run: python notebooks/tools/make_03_svd_weight_analysis.py).

The notebook is the product; this script keeps its source reviewable as plain text."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s: cells.append(new_code_cell(s.strip()))

md("""
# Reading weights: QK and OV circuits, composition, copying and SVD

Much of what an attention head can do is visible in its weights alone, before any input is
run. Following *A Mathematical Framework for Transformer Circuits* (Elhage et al., 2021),
each head is two low-rank matrices acting on the residual stream:

- the **QK circuit** `W_Q · W_Kᵀ` (`[d_model, d_model]`) decides *where* it attends;
- the **OV circuit** `W_V · W_O` (`[d_model, d_model]`) decides *what* it moves.

Both have rank at most `d_head`, so mechlens keeps them as a `FactoredMatrix` (the two
factors, as TransformerLens does) and computes SVDs and eigenvalues from the factors.

In this notebook, on **BabyLlama** (a 5-layer character-level Llama trained on TinyStories),
you will compute every head's OV copying score, find which heads compose, read the singular
directions of the weights through the unembedding (Millidge & Black, 2022), and check the
linear algebra against an explicit product and a double-precision LAPACK path.
""")

code("""
let babyllama = mechlens::datasets::path("babyllama-tinystories")?;
println!("BabyLlama: {}", babyllama.display());
""")

md("""
## Two copies of the model

Weight analyses read `W_E`, `W_U` and the head weights *directly*, skipping the norms. With
TransformerLens' weight processing (`LoadOptions::transformer_lens()`: norm weights folded
into the next matrix, writing weights centred) those direct reads account for the norm
scales; that is the model the circuit analyses use. The SVD table at the end follows the
post it reproduces and reads unprocessed weights.
""")
code("""
let model = mechlens::datasets::babyllama(LoadOptions::transformer_lens())?;
let raw = mechlens::datasets::babyllama(LoadOptions::default())?;
let cfg = model.cfg().clone();
println!("{} layers × {} heads, d_model {}, d_head {}, vocab {}", cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab);
assert_eq!((cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_vocab), (5, 8, 16, 105));
""")

md("""
## FactoredMatrix

`model.ov()` holds every head's OV circuit: a `[5, 8, 128, 128]` matrix stored as
`[5, 8, 128, 16]` times `[5, 8, 16, 128]`. Index it like a tensor's leading dims.
""")
code("""
let ov = model.ov()?;
let head = ov.index(&[4, 7])?;          // layer 4, head 7
println!("{:?}  (all heads: {:?})", head, ov.shape());
head.s()?.size()
""")

md("""
Its SVD never forms the `128 × 128` product: it takes the SVDs of the two thin factors and
of a small `16 × 16` middle matrix. Check it against the SVD of the explicit product, and
against the same factored algorithm in f64 with LAPACK (`svd_f64`, via `ndarray-linalg`):
""")
code("""
let s_factored = head.s()?;
let (_, s_explicit, _) = head.ab()?.svd(true, true);
let diff: f64 = (&s_factored - s_explicit.narrow(0, 0, 16)).abs().max().double_value(&[]);
// The f64 path returns ndarray arrays (mechlens::weights::ndarray); kept inside a block here
// because evcxr needs a written type for every variable a cell leaves behind.
let (top, diff64): (f64, f64) = {
    let (_, s64, _) = head.svd_f64()?;
    let ours = Vec::<f64>::try_from(s_factored.to_kind(Kind::Double))?;
    (s64[0], s64.iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
};
println!("largest singular value {top:.5}; factored vs explicit: {diff:.1e}; f32 vs f64 LAPACK: {:.1e} relative", diff64 / top);
assert!(diff / top < 1e-5 && diff64 / top < 1e-5);
""")

md("""
## Which heads copy?

A head *copies* when attending to a token raises that same token's logit. Its **full OV
circuit** `W_E · W_V · W_O · W_U` (`[d_vocab, d_vocab]`) then has mostly positive eigenvalues.
The copying score is `Σλ / Σ|λ|`: 1 for a perfect copier, −1 for a head that suppresses
what it attends to. The vocabulary here has only 105 tokens, so we can use all of them
(for GPT-2 you would pass a subset: mechlens never forms the full `vocab × vocab` matrix).
""")
code("""
let vocab: Vec<i64> = (0..cfg.d_vocab as i64).collect();
let copying = model.copying_scores(&vocab)?;          // [layer, head]

Heatmap::new(&copying).title("OV copying score (red +1 copies, blue −1 suppresses)").x_label("head").y_label("layer").scale(Scale::Diverging { limit: 1.0 })
""")
code("""
let table = long_frame(&copying, &["layer", "head"], "copying")?;
let best = table.sort(["copying"], polars::prelude::SortMultipleOptions::default().with_order_descending(true))
    ?;
let suppressors = Vec::<f64>::try_from(copying.flatten(0, -1).to_kind(Kind::Double))?.iter().filter(|&&x| x < -0.5).count();
println!("{suppressors} of 40 heads score below −0.5");
best.head(Some(5))
""")

md("""
Two things stand out. A few heads copy (the strongest, in the last layer, scores above
0.8), but **most heads are strong suppressors**: in a character-level model of English,
the character a head attends to is usually *not* the next one (you rarely type the same
letter twice), so pushing it down is useful.
""")
code("""
assert!(copying.double_value(&[4, 7]) > 0.8, "head 4.7 is the strongest copier");
assert!(suppressors >= 20, "most heads suppress what they attend to");
""")

md("""
## Composition between heads

A later head can read what an earlier head wrote, through its queries (Q-composition), keys
(K) or values (V). The composition score `‖OV₁ · M₂‖ / (‖OV₁‖ ‖M₂‖)` measures how much of the
earlier head's output lands in the later head's input subspace; random matrices of this size
score about `1/√d_head`-ish small. Induction heads, for instance, K-compose with
previous-token heads.
""")
code("""
let k_comp = model.composition_scores(Composition::K)?;     // [L1, H1, L2, H2], zero unless L1 < L2
println!("shape {:?}", k_comp.size());
let pairs = model.composition_frame(Composition::K)?
    .sort(["score"], polars::prelude::SortMultipleOptions::default().with_order_descending(true))
    ?;
assert_eq!(pairs.height(), 10 * 64);    // (5 choose 2) layer pairs × 8 × 8 heads
// Read columns in the cell that made the frame: see the note at the end of this notebook.
let scores: Vec<f64> = pairs.column("score")?
    .f64()?.into_no_null_iter().collect();
let median = scores[scores.len() / 2];
println!("strongest K-composition {:.3}, median {:.3}", scores[0], median);
assert!(scores[0] > 2.0 * median, "a few pairs compose far more than the typical pair");
pairs.head(Some(8))
""")
code("""
// Layer 0 → layer 1 K-composition, one cell per (earlier head, later head).
Heatmap::new(&k_comp.get(0).select(1, 1)).title("K-composition: layer-0 head (row) → layer-1 head (column)").x_label("layer-1 head").y_label("layer-0 head").scale(Scale::Diverging { limit: 1.0 })
""")
md("""
## Spectra and effective rank

How many of its 16 dimensions does a head really use? The *effective rank*
(`exp` of the entropy of the normalised singular values) is 16 for a flat spectrum and
smaller when a few directions dominate.
""")
code("""
let spectra = model.spectra_frame(Circuit::Ov)?;
let ranks = spectra.clone().lazy()
    .filter(col("index").eq(lit(0u32)))
    .select([col("layer"), col("head"), col("singular_value"), col("effective_rank")])
    .collect()?;
let eff: Vec<f64> = ranks.column("effective_rank")?
    .f64()?.into_no_null_iter().collect();
assert!(eff.iter().all(|&r| r > 1.0 && r <= 16.0 + 1e-9));
ranks.head(Some(8))
""")

md("""
## Singular directions, read through the unembedding

Millidge & Black (2022) found that the top singular directions of OV circuits and MLP
weights, projected through `W_U`, often promote coherent groups of tokens. `svd_interpretation`
builds their table for every head and MLP: one row per (direction, token), with `rank` 1..k
for the tokens a direction promotes most and −1..−k for those it suppresses most. The
defaults are the post's (30 directions, 15 tokens at each end, unprocessed weights).
""")
code("""
let svd_table = svd_interpretation(&raw, &SvdOptions::default())?;
// Heads have rank 16, MLP matrices (128 × 344) rank 128 ≥ 30: 5 × (8·16 + 30 + 30) directions, 30 tokens each.
assert_eq!(svd_table.height(), 5 * (8 * 16 + 30 + 30) * 30);
// The first three directions of head 4.7's OV circuit: which characters each promotes.
for direction in 0..3u32 {
    let rows = svd_table.clone().lazy()
        .filter(col("layer").eq(lit(4u32)).and(col("component").eq(lit("OV"))).and(col("head").eq(lit(7u32)))
            .and(col("sv_index").eq(lit(direction))).and(col("rank").gt(lit(0i32))))
        .collect()?;
    let column = rows.column("token")?
        .str()?.clone();
    let tokens: Vec<String> = (0..column.len()).filter_map(|i| column.get(i)).map(|t| format!("{t:?}")).collect();
    assert_eq!(tokens.len(), 15);
    println!("direction {direction}: {}", tokens.join(" "));
}
svd_table.head(Some(6))
""")
md("""
Direction 0 of head 4.7 promotes mostly lower-case consonants; directions 1 and 2 gather
rare symbols, the kind of uninterpretable direction the post also reports. Filter the table
by `component` and `layer` to browse the MLPs the same way.
""")

md("""
## Where next

- `model.qk()`, `model.full_qk_circuit(&tokens)` and `model.full_ov_circuit(&tokens)` give the
  other circuits as factored matrices; `.eigenvalues()`, `.norm()`, `.make_even()` and
  `.get_corner(k)` work on any of them.
- `mechlens::weights::exact` has the f64 LAPACK calls for matrices of your own.
- Notebook 01 shows how to check a weight-based story on activations with hooks.

*A note on tables across cells.* A DataFrame that went through a lazy query or a sort in one
cell can fail to find its columns by name in a later cell (`not found: "score"`), while it
still displays. Each cell is compiled into its own library, apparently with its own hashing
seeds for polars' name lookups. Until mechlens fixes that, read columns in the cell that
built the frame, as this notebook does.
""")

nb = new_notebook(cells=cells)
nb.metadata = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
    "mechlens": {"expect_outputs": ["text/html", "image/svg+xml"]},
}
out = Path(__file__).resolve().parents[1] / "tutorials" / "03-svd-weight-analysis.ipynb"
nbformat.write(nb, out)
print(out)
