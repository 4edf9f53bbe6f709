"""Writes notebooks/tutorials/04-sparse-autoencoders.ipynb (run: python notebooks/tools/make_04_sparse_autoencoders.py).

The notebook is the product; this script keeps its source reviewable as plain text."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s: cells.append(new_code_cell(s.strip()))

md("""
# Sparse autoencoders: recovering features, then reading a real model's

A model has far fewer neurons than concepts it uses, so it stores features *in
superposition*: as directions that overlap. A **sparse autoencoder** (SAE) learns an
overcomplete dictionary of directions such that each activation is a sparse, non-negative
combination of a few of them:

`acts = ReLU((x − b_dec) · W_enc + b_enc)`, `x̂ = acts · W_dec + b_dec`,

trained to reconstruct `x` while keeping few latents active. mechlens' SAEs follow SAELens:
same architectures (ReLU, TopK, BatchTopK, JumpReLU, Gated), same losses and defaults, same
files.

This notebook first trains an SAE where the truth is known (the toy data of Sharkey, Braun &
Millidge, 2022) and checks that it finds the true features, then trains one on **BabyLlama**'s
residual stream over Shakespeare and reads a few of its latents.
""")


md("""
## 1. Toy data with known features

512 ground-truth features, unit vectors in 256 dimensions (so they cannot all be
orthogonal). Each sample activates about 5 of them, with coefficients in [0, 1); features
fire with exponentially decaying probability and in correlated groups. A sample is the sum of
its active features' directions, weighted by their coefficients.
""")
code("""
let toy = SparseFeatures::sharkey(0)?;
let (coefficients, acts) = toy.sample(10_000, 0)?;
let active = coefficients.gt(0.0).to_kind(Kind::Float).sum_dim_intlist(1, false, Kind::Float);
println!("features {:?}, activations {:?}, mean active features {:.2}",
    toy.directions.size(), acts.size(), active.mean(Kind::Float).double_value(&[]));
assert!((active.mean(Kind::Float).double_value(&[]) - 5.0).abs() < 0.3);
""")

md("""
## 2. Train a ReLU SAE with an L1 penalty

`TrainConfig::new(architecture, d_in, d_sae, batch_size, steps)` starts from SAELens'
defaults (Adam 3e-4, decoder rows initialised at norm 0.1, gradient clipping at 1.0); we
raise the learning rate and add a short warm-up and a final decay. The L1 penalty is on
activations weighted by their decoder row norms, as in SAELens. The trainer logs a row every
`log_every` steps into a DataFrame.
""")
code("""
let mut cfg = TrainConfig::new(TrainArchitecture::standard(0.1), 256, 1024, 1024, 1500);
cfg.lr = 1e-3;
cfg.lr_warm_up_steps = 50;
cfg.lr_decay_steps = 300;
cfg.lr_end = 1e-4;
cfg.log_every = 100;
cfg.progress_every = 500;
let mut trainer = Trainer::new(cfg)?;
trainer.run(&mut SparseFeatures::sharkey(0)?)?;
let toy_sae = trainer.sae()?;
trainer.log_frame()?
""")

md("""
**Mean Max Cosine Similarity** (MMCS): for each true feature, the best cosine similarity with
any learned decoder row, averaged. 1 means every feature was found.
""")
code("""
let per_feature = max_cosine(&toy_sae.w_dec, &toy.directions)?;   // [512]
let score = mmcs(&toy_sae.w_dec, &toy.directions)?;
println!("MMCS {score:.3}");
assert!(score > 0.9, "the SAE recovers most features (0.99 with 3000 steps)");
""")

md("""
Which features did it miss? Plot each true feature's best match against its index: firing
probability decays with the index, so the rightmost features are the rarest.
""")
code("""
let best: Vec<f64> = Vec::try_from(per_feature.to_kind(Kind::Double))?;
svg_chart(640, 300, |root| {
    let mut chart = ChartBuilder::on(root)
        .caption("best match of each true feature (rarer →)", ("sans-serif", 16))
        .margin(10).x_label_area_size(30).y_label_area_size(40)
        .build_cartesian_2d(0f64..512f64, 0f64..1.05f64)?;
    chart.configure_mesh().x_desc("feature index").y_desc("max cosine").draw()?;
    chart.draw_series(best.iter().enumerate().map(|(i, &c)| Circle::new((i as f64, c), 2, BLUE.filled())))?;
    Ok(())
})?
""")
code("""
let (early, late) = (best[..256].iter().sum::<f64>() / 256.0, best[256..].iter().sum::<f64>() / 256.0);
println!("mean best match: common half {early:.3}, rare half {late:.3}");
assert!(early >= late, "common features are found at least as well as rare ones");
""")

md("""
## 3. How the penalty and the dictionary size matter

A small sweep on a smaller toy (64 features in 32 dimensions): too little L1 and the
latents stay dense mixtures; too much and features die. A dictionary larger than the number
of true features helps. `mmcs_sweep` trains one SAE per pair and returns the table as a
DataFrame (with each run's last logged L0 and dead latents): filter, pivot or plot it.
""")
code("""
use mechlens::viz::values::IntoValues;
let small = SparseFeaturesOptions { n_features: 64, d: 32, mean_active: 3.0, seed: 1, ..SparseFeaturesOptions::default() };
// Every run: 600 steps of 256 samples at lr 3e-3; the sweep sets the L1 coefficient and the width.
let mut template = TrainConfig::new(TrainArchitecture::standard(0.0), 32, 64, 256, 600);
template.lr = 3e-3;
template.log_every = 100;
let sweep = mmcs_sweep(&small, &template, &[0.01, 0.1, 1.0], &[1, 2, 4])?;
let scores = mechlens::viz::values::column(&sweep, "mmcs")?.into_values("mmcs")?;
let top = scores.iter().cloned().fold(0.0, f64::max);
println!("best MMCS in the sweep {top:.3}");
assert_eq!(sweep.height(), 9);
assert!(top > 0.9);
sweep
""")

md("""
## 4. An SAE on a real model

Now BabyLlama (5 layers, d_model 128, characters as tokens). `ActivationStore::from_text`
cuts the text into windows of `context_size` tokens, each starting with BOS, runs the model
and keeps the residual stream after block 3 at every non-BOS position, remembering where
each row came from.
""")
code("""
let model = mechlens::datasets::babyllama(LoadOptions::default())?;
let text = mechlens::datasets::read_text("tinyshakespeare")?;
let opts = StoreOptions { context_size: 128, max_windows: Some(96), batch_windows: 16, ..StoreOptions::default() };
let store = ActivationStore::from_text(&model, "blocks.3.hook_resid_post", &text, &opts)?;
println!("{} activations of width {} from {} windows", store.len(), store.d_in(), store.tokens.size()[0]);
assert_eq!(store.len(), 96 * 127);
""")

md("""
A TopK SAE keeps exactly `k` latents per token, so there is no penalty to tune; an
auxiliary loss (AuxK) lets dead latents learn from what the live ones miss.
""")
code("""
let mut cfg = TrainConfig::new(TrainArchitecture::topk(16), 128, 1024, 512, 400);
cfg.lr = 2e-3;
cfg.log_every = 50;
cfg.dead_feature_window = 100;
cfg.model_name = Some("babyllama-tinystories".into());
cfg.hook_name = Some("blocks.3.hook_resid_post".into());
let mut trainer = Trainer::new(cfg)?;
trainer.run(&mut store.source(0)?)?;
let sae = trainer.sae()?;
trainer.log_frame()?
""")

md("""
How good is it? `SaeReport` measures everything SAELens' evals do, in one table: how well the
SAE reconstructs the residual stream (L0, explained variance, cosine, the L2 ratio that shows
shrinkage) on these windows' tokens (BOS left out), and what it costs the model when its
reconstruction replaces the residual stream: the next-token loss clean, with the SAE, and
with the residual stream zeroed. The CE loss score is 1 when nothing is lost, 0 when the SAE
is as bad as zeroing.
""")
code("""
let sae = Rc::new(sae);
let report = SaeReport::measure(&model, Rc::clone(&sae), None, &store.tokens.narrow(0, 0, 16))?;
let ce_loss_score = report.splice.as_ref().map_or(f64::NAN, |s| s.ce_loss_score);
println!("L0 {:.1}, explained variance {:.3}, CE loss score {:.3}, dead latents {}",
    report.sparsity.l0, report.sparsity.explained_variance, ce_loss_score, report.sparsity.dead_latents);
assert!((report.sparsity.l0 - 16.0).abs() < 1e-6 && report.sparsity.explained_variance > 0.7);
assert!(ce_loss_score > 0.5 && ce_loss_score <= 1.0);
report.frame()?
""")
md("""
The feature-density histogram is the first picture SAE people look at: how often each latent
fires, on a log scale. A healthy SAE has a hump of latents firing on a small fraction of
tokens; a spike at −10 would be dead latents, and latents near 0 fire on almost everything.
""")
code("""
let densities: Vec<f64> = Vec::try_from(&report.sparsity.log10_density.to_kind(Kind::Double))?;
let bins = report.density_histogram(20)?;
assert_eq!(bins.height(), 20);
assert_eq!(densities.len() as i64, sae.cfg.d_sae);
histogram_chart(&densities, 40, Some((-10.0, 0.0)), "feature density", "log10 firing rate")?
""")

md("""
## 5. Reading latents

Which latents fire often? Pick a few of the busiest and look at the contexts where they fire
hardest (the firing character is in `[[ ]]`) and at the tokens their decoder direction
promotes through the unembedding.
""")
code("""
let density = report.sparsity.log10_density.shallow_clone();
let (_, busiest) = density.topk(3, 0, true, true);
let latents: Vec<i64> = Vec::try_from(busiest)?;
println!("latents {latents:?}");
top_activations(&model, &sae, &store, &latents, 6, 12)?
""")
code("""
logit_effects(&model, &sae, &latents, 5)?
""")
md("""
How strongly does the busiest latent fire when it fires? Its activation histogram, over every
token of the store:
""")
code("""
let fired: Vec<f64> = Vec::try_from(&latent_activations(&sae, &store, latents[0])?.to_kind(Kind::Double))?;
assert!(!fired.is_empty() && fired.iter().all(|&a| a > 0.0));
histogram_chart(&fired, 30, None, &format!("latent {} activations", latents[0]), "activation")?
""")

md("""
## 6. The SAE inside the model

`add_sae` splices the SAE in at its hook point. With the error term kept, the model's output
is unchanged, and the SAE's own hook points (`…hook_sae_acts_post` and friends, SAELens'
names) can be cached and patched like any other: here we zero one latent and see how much
the next-token loss moves.
""")
code("""
let tokens = store.tokens.narrow(0, 0, 8);
let clean = model.loss(&tokens)?.double_value(&[]);
model.add_sae(Rc::clone(&sae), None, true)?;
let with_error_term = model.loss(&tokens)?.double_value(&[]);
println!("loss clean {clean:.4}, with the SAE and its error term {with_error_term:.4}");
assert!((clean - with_error_term).abs() < 1e-4);
let hook = "blocks.3.hook_resid_post.hook_sae_acts_post";
let latent = latents[0];
let hooks = Hooks::new().edit(hook, move |acts, _| {
    let mut a = acts.copy();
    let _ = a.narrow(-1, latent, 1).fill_(0.0);
    Ok(a)
})?;
let logits = model.run_with_hooks(&tokens, hooks)?;
model.reset_saes()?;
let logp = logits.narrow(1, 0, 127).log_softmax(-1, Kind::Float);
let ablated = -logp.gather(-1, &tokens.narrow(1, 1, 127).unsqueeze(-1), false).mean(Kind::Float).double_value(&[]);
println!("loss with latent {latent} zeroed: {ablated:.4} ({:+.4})", ablated - clean);
""")

md("""
## 7. Saving in SAELens' format

`save` writes `cfg.json` (SAELens 6 layout, with the model and hook in `metadata`) and
`sae_weights.safetensors`; `SAE.load_from_disk` in SAELens reads the folder, and
`Sae::load` reads SAELens' folders back (the test suite checks both directions).
""")
code("""
let dir = std::env::temp_dir().join("mechlens-notebook-04-sae");
sae.save(&dir)?;
let back = Sae::load(&dir, Device::Cpu)?;
assert_eq!(back.cfg.hook_name(), Some("blocks.3.hook_resid_post"));
println!("{}", std::fs::read_to_string(dir.join("cfg.json"))?);
""")

nb = new_notebook(cells=cells)
nb.metadata = {
    "kernelspec": {"display_name": "Rust · mechlens", "language": "rust", "name": "mechlens"},
    "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
    "mechlens": {"expect_outputs": ["text/html", "image/svg+xml"]},
}
out = Path(__file__).resolve().parents[1] / "tutorials" / "04-sparse-autoencoders.ipynb"
nbformat.write(nb, out)
print(f"wrote {out}")
