//! The toy runs committed in datasets/ are what `mechlens train-toy` writes.
//!
//! The full runs take 2–17 minutes, so each test reruns the command's first steps and checks
//! them against the committed log. They cannot be compared bit for bit across machines: the
//! same libtorch sums in another order on another CPU or thread count, which moves the last
//! bits of each loss and grows slowly over training. Over these first steps the drift is far
//! below the tolerance (relative 1e-3), while a change in the data, the model, its
//! initialisation or the optimiser moves the losses by more than that within a step or two.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mechlens-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mechlens(args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_mechlens"))
        .args(args)
        .status()
        .expect("mechlens runs");
    assert!(status.success(), "mechlens {args:?} failed");
}

/// `column` of the CSV at `path`, by the value of its first column (rows with the cell empty
/// are left out).
fn column(path: &Path, name: &str) -> Vec<(usize, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header.iter().position(|h| *h == name).unwrap();
    lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let value = cells.get(at)?.parse().ok()?;
            Some((cells[0].parse().ok()?, value))
        })
        .collect()
}

fn assert_close(fresh: &[(usize, f64)], committed: &[(usize, f64)], what: &str) {
    assert!(!fresh.is_empty(), "{what}: the rerun logged nothing");
    for (step, value) in fresh {
        let Some((_, expected)) = committed.iter().find(|(s, _)| s == step) else {
            continue;
        };
        let rel = (value - expected).abs() / expected.abs().max(1e-12);
        assert!(
            rel < 1e-3,
            "{what} at step {step}: rerun {value}, committed {expected} (relative {rel:.1e})"
        );
    }
    let shared = fresh
        .iter()
        .filter(|(s, _)| committed.iter().any(|(c, _)| c == s))
        .count();
    assert!(shared >= 2, "{what}: only {shared} logged steps in common");
}

#[test]
fn the_committed_grokking_run_starts_as_the_command_does() {
    let dir = temp("grokking");
    let out = dir.join("out");
    mechlens(&[
        "train-toy",
        "grokking",
        "--epochs",
        "30",
        "--out",
        out.to_str().unwrap(),
        "--work",
        dir.join("work").to_str().unwrap(),
    ]);
    let committed = repo().join("datasets/grokking-p113/log.csv");
    assert_close(
        &column(&out.join("log.csv"), "train_loss"),
        &column(&committed, "train_loss"),
        "grokking train loss",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_sparsity_sweep_starts_as_the_command_does() {
    let dir = temp("tms");
    mechlens(&[
        "train-toy",
        "tms-sparsity",
        "--steps",
        "101",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let committed = repo().join("datasets/tms-sparsity-sweep/log.csv");
    for name in ["loss", "loss_0", "loss_29"] {
        assert_close(
            &column(&dir.join("log.csv"), name),
            &column(&committed, name),
            &format!("sweep {name}"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_induction_runs_start_as_the_command_does() {
    let dir = temp("induction");
    mechlens(&[
        "train-toy",
        "induction",
        "--steps",
        "501",
        "--out",
        dir.to_str().unwrap(),
    ]);
    for run in [
        "repeated-tokens/two-layer",
        "repeated-tokens/one-layer",
        "every-token/two-layer",
        "every-token/one-layer",
    ] {
        let committed = repo()
            .join("datasets/induction-attn-only")
            .join(run)
            .join("log.csv");
        let fresh = dir.join(run).join("log.csv");
        for name in ["loss", "repeated_loss"] {
            assert_close(
                &column(&fresh, name),
                &column(&committed, name),
                &format!("induction {run} {name}"),
            );
        }
        assert!(dir.join(run).join("model.safetensors").exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_decompositions_start_as_the_command_does() {
    // The learning-rate schedules depend on the total steps (SPD's cosine, APD's warm-up),
    // so a short rerun shares only step 0: the losses before the first update (after SPD's
    // 200-step faithfulness warm-up), on the same toy model (its 10,000 training steps rerun
    // in full).
    const SPD_LOSSES: [&str; 4] = [
        "stochastic_recon",
        "stochastic_recon_layerwise",
        "importance_minimality",
        "faithfulness",
    ];
    const APD_LOSSES: [&str; 3] = ["topk_recon", "param_match", "schatten"];
    for (toy, committed, losses, file) in [
        ("spd-tms", "datasets/spd-tms-5-2", &SPD_LOSSES[..], "spd"),
        (
            "spd-tms-identity",
            "datasets/spd-tms-5-2-identity",
            &SPD_LOSSES[..],
            "spd",
        ),
        ("apd-tms", "datasets/apd-tms-5-2", &APD_LOSSES[..], "apd"),
    ] {
        let dir = temp(toy);
        mechlens(&[
            "train-toy",
            toy,
            "--steps",
            "1",
            "--out",
            dir.to_str().unwrap(),
        ]);
        let committed = repo().join(committed).join("log.csv");
        for name in losses {
            let (fresh, old) = (column(&dir.join("log.csv"), name), column(&committed, name));
            let (Some((0, value)), Some((0, expected))) = (fresh.first(), old.first()) else {
                panic!("{toy} {name}: step 0 missing (rerun {fresh:?}, committed {old:?})");
            };
            let rel = (value - expected).abs() / expected.abs().max(1e-12);
            assert!(
                rel < 1e-3,
                "{toy} {name} at step 0: rerun {value}, committed {expected} (relative {rel:.1e})"
            );
        }
        let decomposition = dir.join(format!("{file}.safetensors"));
        assert!(decomposition.exists() && dir.join("toy.safetensors").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_committed_residual_mlp_starts_as_the_command_does() {
    // The model's first 201 of its 10,000 steps, on the full run's schedule, against the
    // committed log; the decomposition of this half-trained model is not comparable, so SPD
    // runs one step only to show the command completes (SPD's own step 0 is checked on TMS).
    let dir = temp("resid-mlp");
    mechlens(&[
        "train-toy",
        "spd-resid-mlp",
        "--model-steps",
        "201",
        "--steps",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let committed = repo().join("datasets/spd-resid-mlp/model_log.csv");
    assert_close(
        &column(&dir.join("model_log.csv"), "loss"),
        &column(&committed, "loss"),
        "residual MLP loss",
    );
    assert!(dir.join("spd.safetensors").exists() && dir.join("model.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_e2e_sweep_evaluates_on_the_same_samples() {
    // Each SAE's 800 steps are too long to rerun here; one step each shows the sweep runs
    // end to end, and the evaluation samples (BabyLlama's own, seeded) must be those the
    // committed measurements were taken on. Sampling compares probabilities, so another CPU's
    // last bits could flip a rare token: 99% must agree.
    let dir = temp("e2e-saes");
    mechlens(&[
        "train-toy",
        "e2e-saes",
        "--steps",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let read = |path: &Path| {
        let tensors = tch::Tensor::read_safetensors(path).unwrap();
        tensors.into_iter().find(|(n, _)| n == "tokens").unwrap().1
    };
    let fresh = read(&dir.join("eval_tokens.safetensors"));
    let committed = read(&repo().join("datasets/e2e-saes-babyllama/eval_tokens.safetensors"));
    assert_eq!(fresh.size(), committed.size());
    let same = fresh
        .eq_tensor(&committed)
        .to_kind(tch::Kind::Float)
        .mean(tch::Kind::Float)
        .double_value(&[]);
    assert!(same > 0.99, "only {same:.4} of the evaluation tokens agree");
    let kinds = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(
        kinds(&dir.join("metrics.csv")),
        kinds(&repo().join("datasets/e2e-saes-babyllama/metrics.csv"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_e2e_directions_run_is_what_the_command_writes() {
    // 3,200 steps per SAE are too long to rerun here; one step each shows the command runs
    // end to end and writes the SAEs (names, seeds, tensors and shapes) the notebook reads.
    let dir = temp("e2e-directions");
    mechlens(&[
        "train-toy",
        "e2e-directions",
        "--steps",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let shapes = |path: &Path| -> Vec<(String, Vec<i64>)> {
        let mut all: Vec<(String, Vec<i64>)> = tch::Tensor::read_safetensors(path)
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        all.sort();
        all
    };
    let committed = repo().join("datasets/e2e-directions-babyllama");
    assert_eq!(
        shapes(&dir.join("saes.safetensors")),
        shapes(&committed.join("saes.safetensors"))
    );
    let runs = |path: &Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(
        runs(&dir.join("metrics.csv")),
        runs(&committed.join("metrics.csv"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_named() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mechlens"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["train-toy", "nope", "--out", "x"]).contains("unknown toy \"nope\""));
    assert!(
        run(&["train-toy", "grokking", "--epochs", "0", "--out", "x"])
            .contains("--epochs must be a positive")
    );
    assert!(run(&["train-toy", "grokking"]).contains("--out DIR is required"));
    assert!(
        run(&["train-toy", "tms-sparsity", "--epochs", "3", "--out", "x"])
            .contains("tms-sparsity has no option --epochs")
    );
    // Checkpoints another set-up wrote (or one from before set-ups were recorded) are not
    // resumed: the run would continue someone else's model.
    let work = temp("grokking-other-setup");
    std::fs::create_dir_all(work.join("checkpoints/step_00000100")).unwrap();
    let w = work.to_str().unwrap();
    let resume = |more: &[&str]| {
        let mut args = vec!["train-toy", "grokking", "--out", "unused", "--work", w];
        args.extend_from_slice(more);
        run(&args)
    };
    let err = resume(&[]);
    assert!(
        err.contains("holds checkpoints of another run (set-up unrecorded)"),
        "{err}"
    );
    std::fs::write(
        work.join("setup.txt"),
        "TransformerLens { frozen_biases: true }",
    )
    .unwrap();
    let err = resume(&[]);
    assert!(
        err.contains(
            "(set-up TransformerLens { frozen_biases: true }), and this one is set-up Paper, seed 0"
        ),
        "{err}"
    );
    std::fs::write(work.join("setup.txt"), "Paper, seed 0").unwrap();
    let err = resume(&["--seed", "3"]);
    assert!(err.contains("this one is set-up Paper, seed 3"), "{err}");
    let err = run(&["train-toy", "grokking", "--out", "x", "--seed", "-1"]);
    assert!(
        err.contains("--seed must be a whole number ≥ 0, got \"-1\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
