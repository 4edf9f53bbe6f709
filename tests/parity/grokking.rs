//! The grokking run's set-ups (mechlens-toys): the paper's, checked against its code in plain
//! PyTorch (tests/fixtures/check_grokking_paper.py), and TransformerLens' with its biases
//! frozen; the committed model's clustering measured apart from mechlens.

use mechlens_models::HookedTransformer;
use mechlens_toys::{GrokkingOptions, GrokkingSetup, clustered_neuron_share};
use mechlens_train::FullBatch;
use tch::Tensor;

use mechlens_tests::{run_check, temp_dir};

#[test]
fn the_papers_grokking_setup_is_the_papers_code() {
    // 12 epochs: through the 10-step warm-up and two steps at the full rate.
    let opts = GrokkingOptions {
        epochs: 12,
        ..Default::default()
    };
    assert_eq!(opts.setup, GrokkingSetup::Paper);
    let dir = temp_dir("grokking-paper");
    let data = opts.data().unwrap();
    Tensor::write_safetensors(
        &[("tokens", &data.train.tokens)],
        dir.join("train_tokens.safetensors"),
    )
    .unwrap();
    let (start, _) = opts.initial_model().unwrap();
    start.save(&dir.join("start")).unwrap();
    let mut trainer = opts.trainer(&data).unwrap();
    trainer.run(&mut FullBatch(data.train.share())).unwrap();
    trainer.model().save(&dir.join("trained")).unwrap();
    let log = trainer.log_frame().unwrap();
    let column = |name: &str| -> Vec<f64> {
        let c = log.column(name).unwrap();
        let c = c.cast(&polars::prelude::DataType::Float64).unwrap();
        c.f64().unwrap().into_no_null_iter().collect()
    };
    let losses: serde_json::Map<String, serde_json::Value> = column("step")
        .iter()
        .zip(column("loss"))
        .map(|(step, loss)| ((*step as usize).to_string(), serde_json::json!(loss)))
        .collect();
    assert!(losses.len() >= 2, "{losses:?}");
    let run = serde_json::json!({"seed": opts.model_seed, "epochs": opts.epochs, "losses": losses});
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    run_check("check_grokking_paper.py", &dir);
}

#[test]
fn the_grokking_trainer_can_keep_its_biases_at_zero() {
    let opts = GrokkingOptions {
        epochs: 3,
        setup: GrokkingSetup::TransformerLens {
            frozen_biases: true,
        },
        ..Default::default()
    };
    let data = opts.data().unwrap();
    let mut trainer = opts.trainer(&data).unwrap();
    trainer.run(&mut FullBatch(data.train.share())).unwrap();
    let mut biases = 0;
    for (name, t) in trainer.model().named_parameters() {
        let largest = t.abs().max().double_value(&[]);
        if name.rsplit('.').next().unwrap().starts_with("b_") {
            biases += 1;
            assert_eq!(largest, 0.0, "{name} stayed at zero");
        } else {
            assert!(largest > 0.0, "{name} is a trained weight");
        }
    }
    // b_q, b_k, b_v, b_o, b_in, b_out, b_u
    assert_eq!(biases, 7);
}

#[test]
fn the_committed_grokking_models_clustered_neurons_match_the_papers_measure() {
    let run = mechlens_models::datasets::path("grokking-p113").unwrap();
    let model =
        HookedTransformer::from_pretrained(&run.to_string_lossy(), Default::default()).unwrap();
    // The committed run trained on the paper's split.
    let data = GrokkingOptions::default().data().unwrap();
    let share = clustered_neuron_share(&model, &data).unwrap();
    // 459 of 512: these weights put into the paper's model as its code writes it in plain
    // PyTorch (scripts/grokking_in_plain_pytorch.py: its forward, and its own float64 Fourier
    // measure of the neurons at the `=` position), on 2026-12-05; that measure also gave the
    // earlier TransformerLens-initialised checkpoint 348, as TransformerLens did.
    assert_eq!((share * 512.0).round(), 459.0);
}
