//! SAEs on a real model (BabyLlama): the activation store's rows are the model's activations
//! at the hook, CE/KL scores hit their closed forms (an exact SAE scores 1, a dead one 0), and
//! the feature tables list what direct computation gives.

use std::rc::Rc;

use mechlens_core::{CacheFilter, HookPoint};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_sae::eval::SpliceReport;
use mechlens_sae::features::{TopActivationOptions, logit_effects, top_activations};
use mechlens_sae::store::{ActivationStore, StoreOptions};
use mechlens_sae::train::{TrainArchitecture, TrainConfig, Trainer};
use mechlens_sae::{ActivationSource, Architecture, Sae, SaeConfig};
use tch::{Device, Kind, Tensor};

use mechlens_tests::assert_close;

const STORY: &str = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. \
One day, she saw a big red ball in the park. She ran to the ball and kicked it very far. Her friend Tom came to play too. \
They laughed and played all day long. When the sun went down, Lily and Tom went home. They were happy and tired.";

fn babyllama() -> HookedTransformer {
    mechlens_models::datasets::babyllama(LoadOptions::default()).unwrap()
}

fn options() -> StoreOptions {
    StoreOptions {
        context_size: 24,
        batch_windows: 4,
        ..StoreOptions::default()
    }
}

#[test]
fn store_rows_are_the_models_activations() {
    let model = babyllama();
    let mut store =
        ActivationStore::from_text(&model, "blocks.2.hook_resid_post", STORY, &options()).unwrap();
    // The store is a training source itself: seed 0's shuffled batches, rows of the store.
    let mut seeded = store.source(0).unwrap();
    let batch = ActivationSource::batch(&mut store, 3, 16).unwrap();
    assert!(batch.equal(&seeded.batch(3, 16).unwrap()));
    assert_eq!(ActivationSource::d_in(&store), store.activations.size()[1]);
    let windows = store.tokens.size()[0];
    assert!(windows >= 5, "{windows} windows");
    assert_eq!(store.len(), windows * 23, "BOS positions are left out");
    assert_eq!(
        store.tokens.int64_value(&[0, 0]),
        1,
        "each window starts with BOS"
    );
    let (_, cache) = model
        .run_with_cache(
            &store.tokens,
            CacheFilter::Names(vec![HookPoint::ResidPost(2)]),
        )
        .unwrap();
    let resid = cache.get(HookPoint::ResidPost(2)).unwrap();
    for row in [0, 40, store.len() - 1] {
        let (w, p) = store.origin_of(row).unwrap();
        assert_close(
            &format!("row {row}"),
            &store.activations.get(row),
            &resid.get(w).get(p),
            1e-6,
        );
    }
    // Too little text for one window; a hook the model lacks.
    let err = ActivationStore::from_text(&model, "blocks.2.hook_resid_post", "Hi.", &options())
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = ActivationStore::from_text(&model, "blocks.9.hook_resid_post", STORY, &options())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown hook point `blocks.9.hook_resid_post`"),
        "{err}"
    );
}

/// A ReLU SAE that reconstructs exactly: latents relu(x) and relu(−x), decoded back.
fn exact_sae(d: i64, hook: &str) -> Sae {
    let eye = Tensor::eye(d, (Kind::Float, Device::Cpu));
    let mut sae = Sae::init(
        SaeConfig::new(Architecture::Standard, d, 2 * d).with_hook("babyllama", hook),
        None,
        0,
    )
    .unwrap();
    sae.w_enc = Tensor::cat(&[&eye, &(-&eye)], 1);
    sae.w_dec = Tensor::cat(&[&eye, &(-&eye)], 0);
    sae.b_enc = Some(Tensor::zeros([2 * d], (Kind::Float, Device::Cpu)));
    sae.b_dec = Tensor::zeros([d], (Kind::Float, Device::Cpu));
    sae
}

/// The story in windows of 128: one character per token for this tokenizer, so two windows.
fn long_windows(model: &HookedTransformer, hook: &str) -> ActivationStore {
    let opts = StoreOptions {
        context_size: 128,
        ..options()
    };
    ActivationStore::from_text(model, hook, STORY, &opts).unwrap()
}

#[test]
fn ce_and_kl_scores_hit_their_closed_forms() {
    let model = babyllama();
    let store = long_windows(&model, "blocks.1.hook_resid_pre");
    let tokens = store.tokens.narrow(0, 0, 2);
    let hook = "blocks.1.hook_resid_pre";
    let exact =
        SpliceReport::measure(&model, Rc::new(exact_sae(128, hook)), None, &tokens).unwrap();
    let clean = model.loss(&tokens).unwrap().double_value(&[]);
    assert!(
        (exact.ce_clean - clean).abs() < 1e-5,
        "{exact:?} vs loss {clean}"
    );
    assert!(
        (exact.ce_with_sae - exact.ce_clean).abs() < 1e-5,
        "{exact:?}"
    );
    assert!(
        (exact.ce_loss_score - 1.0).abs() < 1e-3 && exact.kl_with_sae < 1e-8,
        "{exact:?}"
    );
    assert!(exact.ce_zero_ablated > exact.ce_clean + 0.1, "{exact:?}");

    // Decoder all zero: the SAE writes nothing, as zero-ablation does.
    let mut dead = exact_sae(128, hook);
    dead.w_dec = dead.w_dec.zeros_like();
    let dead = SpliceReport::measure(&model, Rc::new(dead), None, &tokens).unwrap();
    assert!(
        dead.ce_loss_score.abs() < 1e-6 && dead.kl_score.abs() < 1e-6,
        "{dead:?}"
    );
    assert_eq!(dead.frame().unwrap().height(), 7);
}

#[test]
fn feature_tables_list_what_direct_computation_gives() {
    let model = babyllama();
    let mut store =
        ActivationStore::from_text(&model, "blocks.3.hook_resid_post", STORY, &options()).unwrap();
    let mut cfg = TrainConfig::new(TrainArchitecture::topk(8), 128, 256)
        .batch_size(64)
        .total_steps(40);
    cfg.lr = 3e-3;
    let mut trainer = Trainer::new(cfg).unwrap();
    trainer.run(&mut store).unwrap();
    let sae = trainer.sae().unwrap();

    let latents = [3i64, 77];
    let top = top_activations(
        &model,
        &sae,
        &store,
        &latents,
        TopActivationOptions { k: 5, window: 4 },
    )
    .unwrap();
    assert_eq!(top.height(), 10);
    let acts = sae.encode(&store.activations).unwrap();
    let col = |name: &str| top.column(name).unwrap().as_materialized_series().clone();
    let (act_col, pos_col, win_col) = (col("activation"), col("pos"), col("window"));
    let activation: Vec<f64> = act_col.f64().unwrap().into_no_null_iter().collect();
    for (j, &latent) in latents.iter().enumerate() {
        let best = acts.select(1, latent).topk(5, 0, true, true).0;
        for r in 0..5 {
            assert!(
                (activation[j * 5 + r] - best.double_value(&[r as i64])).abs() < 1e-5,
                "latent {latent} rank {r}"
            );
        }
    }
    let context_col = col("context");
    let strings = context_col.str().unwrap();
    let contexts: Vec<String> = (0..strings.len())
        .map(|i| strings.get(i).unwrap_or_default().to_string())
        .collect();
    assert!(
        contexts
            .iter()
            .all(|c| c.contains("[[") && c.contains("]]")),
        "{contexts:?}"
    );
    assert!(
        pos_col.i64().unwrap().into_no_null_iter().all(|p| p >= 1),
        "BOS is never a row"
    );
    assert!(
        win_col
            .i64()
            .unwrap()
            .into_no_null_iter()
            .all(|w| w < store.tokens.size()[0])
    );

    let effects = logit_effects(&model, &sae, &latents, 3).unwrap();
    assert_eq!(effects.height(), 12);
    let direct = sae.w_dec.get(latents[0]).matmul(&model.w_u());
    let (top3, ids) = direct.topk(3, 0, true, true);
    let effect: Vec<f64> = effects
        .column("effect")
        .unwrap()
        .as_materialized_series()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let token_id: Vec<i64> = effects
        .column("token_id")
        .unwrap()
        .as_materialized_series()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    for r in 0..3 {
        assert!((effect[r] - top3.double_value(&[r as i64])).abs() < 1e-5);
        assert_eq!(token_id[r], ids.int64_value(&[r as i64]));
    }
    // Out-of-range latent; an SAE whose width is not d_model.
    assert!(
        logit_effects(&model, &sae, &[256], 3)
            .unwrap_err()
            .to_string()
            .contains("256")
    );
    let narrow = Sae::init(SaeConfig::new(Architecture::Standard, 64, 10), None, 0).unwrap();
    assert!(
        logit_effects(&model, &narrow, &[0], 3)
            .unwrap_err()
            .to_string()
            .contains("d_model = 128")
    );
}

#[test]
fn shards_from_a_model_run_equal_the_in_memory_store() {
    let model = babyllama();
    let opts = options();
    let windows = ActivationStore::windows(&model, STORY, &opts).unwrap();
    let store =
        ActivationStore::from_tokens(&model, "blocks.1.hook_mlp_out", &windows, &opts).unwrap();
    let dir = mechlens_tests::temp_dir("model-shards");
    let manifest =
        ActivationStore::write_shards(&model, "blocks.1.hook_mlp_out", &windows, &opts, &dir, 50)
            .unwrap();
    assert_eq!(manifest.hook_name, "blocks.1.hook_mlp_out");
    assert_eq!(manifest.n_rows, store.len());
    assert_eq!(manifest.metadata["context_size"], 24);
    // Read back with no model in sight.
    drop(model);
    let shards = mechlens_sae::ShardedActivations::open(&dir).unwrap();
    assert!(shards.load_all().unwrap().equal(&store.activations));
    // The same folder from the in-memory store.
    let again = mechlens_tests::temp_dir("store-shards");
    store.save_shards(&again, 50).unwrap();
    let reread = mechlens_sae::ShardedActivations::open(&again).unwrap();
    assert!(reread.load_all().unwrap().equal(&store.activations));
}

#[test]
fn run_to_hook_stops_early_with_the_full_runs_values() {
    let model = babyllama();
    let tokens = Tensor::from_slice(&[1i64, 40, 9, 71, 26, 93]).unsqueeze(0);
    let (_, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    for point in [
        HookPoint::ResidPost(0),
        HookPoint::MlpOut(2),
        HookPoint::Z(3),
        HookPoint::ResidPost(model.cfg().n_layers - 1),
        HookPoint::LnFinalNormalized,
    ] {
        let ours = model.run_to_hook(&tokens, point).unwrap();
        // A full cache takes the explicit attention path; the fused one differs by rounding.
        assert_close(&point.to_string(), &ours, cache.get(point).unwrap(), 1e-5);
    }
    let err = model
        .run_to_hook(&tokens, HookPoint::ResidPost(99))
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.99.hook_resid_post"), "{err}");
}

#[test]
fn one_report_holds_sparsity_and_splice_measures_and_histograms() {
    let model = babyllama();
    let hook = "blocks.1.hook_resid_pre";
    let store = long_windows(&model, hook);
    let tokens = store.tokens.narrow(0, 0, 2);
    let sae = Rc::new(exact_sae(128, hook));
    let report =
        mechlens_sae::eval::SaeReport::measure(&model, Rc::clone(&sae), None, &tokens).unwrap();
    // The same measures taken one by one: sparsity on the non-BOS rows of those windows.
    let rows = store.activations.narrow(0, 0, 2 * 127);
    let direct = mechlens_sae::metrics::SparsityReport::measure(&sae, &rows, 4096).unwrap();
    assert_eq!(report.sparsity.tokens, 254, "BOS positions left out");
    assert!(
        (report.sparsity.l0 - direct.l0).abs() < 1e-9,
        "{report:?} vs {direct:?}"
    );
    assert!(
        (report.sparsity.explained_variance - 1.0).abs() < 1e-5,
        "{report:?}"
    );
    let splice = report.splice.as_ref().unwrap();
    assert!((splice.ce_loss_score - 1.0).abs() < 1e-3, "{splice:?}");
    let frame = report.frame().unwrap();
    assert_eq!(frame.height(), 17);
    let metric_col = frame
        .column("metric")
        .unwrap()
        .as_materialized_series()
        .clone();
    let names = metric_col.str().unwrap();
    let metrics: Vec<String> = (0..names.len())
        .map(|i| names.get(i).unwrap_or_default().to_string())
        .collect();
    for m in [
        "l0",
        "explained_variance",
        "ce_loss_score",
        "kl_score",
        "dead_latents",
        "mean_log10_density",
    ] {
        assert!(
            metrics.iter().any(|x| x == m),
            "{m} missing from {metrics:?}"
        );
    }
    let total = |df: &polars::prelude::DataFrame| -> i64 {
        let col = df.column("count").unwrap().as_materialized_series().clone();
        col.i64().unwrap().into_no_null_iter().sum()
    };
    // Density histogram: every latent lands in one bin over [-10, 0].
    let density = report.density_histogram(20).unwrap();
    let counts = total(&density);
    assert_eq!(counts, 256);
    // A latent's activation histogram counts exactly its positive activations.
    let latent = 5;
    let acts = sae.encode(&store.activations).unwrap().select(1, latent);
    let positive = acts.gt(0.0).sum(Kind::Int64).int64_value(&[]);
    let values = mechlens_sae::features::latent_activations(&sae, &store, latent).unwrap();
    assert_eq!(values.numel() as i64, positive);
    let hist = mechlens_sae::features::activation_histogram(&sae, &store, latent, 10).unwrap();
    let counts = total(&hist);
    assert_eq!(counts, positive);
    let ends = hist
        .column("bin_end")
        .unwrap()
        .as_materialized_series()
        .clone();
    let top = ends.f64().unwrap().get(9).unwrap();
    assert!((top - acts.max().double_value(&[])).abs() < 1e-5);
    // A latent that never fires has nothing to histogram.
    let mut silent = exact_sae(128, hook);
    silent.b_enc = Some(Tensor::full([256], -1e6, (Kind::Float, Device::Cpu)));
    let err = mechlens_sae::features::activation_histogram(&silent, &store, 0, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("never fires"), "{err}");
}
