//! Residual-stream analyses against TransformerLens' `ActivationCache` methods on the
//! unprocessed GPT-2 fixture (LayerNorm with weights), and their bad inputs.

use std::collections::HashMap;

use mechlens_analysis::{CacheAnalysis, Decompose, LensOptions, Pos, ResidOptions, Scores};
use mechlens_core::{ActivationCache, CacheFilter, HookPoint};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tests::{assert_close, fixture, load};
use tch::Tensor;

fn setup() -> (HookedTransformer, ActivationCache, HashMap<String, Tensor>) {
    let model =
        HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default())
            .unwrap();
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    let (_, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let reference = load(&format!(
        "{}/analyses.safetensors",
        fixture("tl_gpt2", "dir")
    ));
    (model, cache, reference)
}

#[test]
fn accumulated_and_decomposed_resid_equal_transformer_lens() {
    let (model, cache, r) = setup();
    let ln = ResidOptions {
        apply_ln: true,
        ..ResidOptions::default()
    };
    let acc = cache.accumulated_resid(&model, ln).unwrap();
    assert_eq!(acc.labels, ["0_pre", "1_pre", "final_post"]);
    assert_close(
        "accumulated_resid(apply_ln)",
        &acc.tensor,
        &r["acc_all_ln"],
        1e-4,
    );
    let acc = cache
        .accumulated_resid(
            &model,
            ResidOptions {
                layer: Some(1),
                incl_mid: true,
                ..ln
            },
        )
        .unwrap();
    assert_eq!(acc.labels, ["0_pre", "0_mid", "1_pre"]);
    assert_close(
        "accumulated_resid(1, incl_mid)",
        &acc.tensor,
        &r["acc_l1_mid_ln"],
        1e-4,
    );
    let acc = cache
        .accumulated_resid(
            &model,
            ResidOptions {
                layer: Some(1),
                mlp_input: true,
                pos: Pos::At(-1),
                ..ln
            },
        )
        .unwrap();
    assert_close(
        "accumulated_resid(1, mlp_input)",
        &acc.tensor,
        &r["acc_l1_mlp_in_ln_last"],
        1e-4,
    );

    let dec = cache
        .decompose_resid(
            &model,
            Decompose::All,
            ResidOptions {
                pos: Pos::At(-1),
                ..ln
            },
        )
        .unwrap();
    assert_eq!(
        dec.labels,
        [
            "embed",
            "pos_embed",
            "0_attn_out",
            "0_mlp_out",
            "1_attn_out",
            "1_mlp_out"
        ]
    );
    assert_close(
        "decompose_resid(apply_ln)",
        &dec.tensor,
        &r["decomp_all_ln_last"],
        1e-4,
    );
    let dec = cache
        .decompose_resid(
            &model,
            Decompose::Attn,
            ResidOptions {
                layer: Some(1),
                ..ResidOptions::default()
            },
        )
        .unwrap();
    assert_close(
        "decompose_resid(attn)",
        &dec.tensor,
        &r["decomp_attn_l1"],
        1e-4,
    );
    let dec = cache
        .decompose_resid(
            &model,
            Decompose::All,
            ResidOptions {
                layer: Some(1),
                mlp_input: true,
                ..ln
            },
        )
        .unwrap();
    assert_close(
        "decompose_resid(mlp_input)",
        &dec.tensor,
        &r["decomp_mlp_in_ln"],
        1e-4,
    );
}

#[test]
fn head_and_neuron_results_and_logit_attrs_equal_transformer_lens() {
    let (model, cache, r) = setup();
    let last_ln = ResidOptions {
        apply_ln: true,
        pos: Pos::At(-1),
        ..ResidOptions::default()
    };
    let heads = cache.stack_head_results(&model, last_ln).unwrap();
    assert_eq!(heads.labels.len(), 10);
    assert_eq!(heads.labels[7], "L1H2");
    assert_close(
        "stack_head_results",
        &heads.tensor,
        &r["heads_ln_last"],
        1e-4,
    );
    let neurons = cache
        .get_neuron_results(&model, 1, Some(&[0, 3, 5]), Pos::All)
        .unwrap();
    assert_close("get_neuron_results", &neurons, &r["neurons_l1"], 1e-4);

    let (answers, wrong) = (
        Tensor::from_slice(&[5i64, 17]),
        Tensor::from_slice(&[8i64, 2]),
    );
    let last = ResidOptions {
        pos: Pos::At(-1),
        ..ResidOptions::default()
    };
    let dec = cache.decompose_resid(&model, Decompose::All, last).unwrap();
    let attrs = cache
        .logit_attrs(&model, &dec.tensor, &answers, Some(&wrong), Pos::At(-1))
        .unwrap();
    assert_close(
        "logit_attrs (decomposed, vs incorrect)",
        &attrs,
        &r["logit_attrs_decomp"],
        1e-4,
    );
    let heads = cache.stack_head_results(&model, last).unwrap();
    let attrs = cache
        .logit_attrs(&model, &heads.tensor, &answers, None, Pos::At(-1))
        .unwrap();
    assert_close("logit_attrs (heads)", &attrs, &r["logit_attrs_heads"], 1e-4);
    let frame = heads.frame(&attrs, "logit_attr").unwrap();
    assert_eq!(frame.height(), 20);
    assert_eq!(frame.get_column_names().len(), 3);
}

#[test]
fn bad_inputs_name_what_was_wrong() {
    let (model, cache, _) = setup();
    let err = |r: mechlens_core::Result<mechlens_analysis::Stack>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let e = err(cache.accumulated_resid(
        &model,
        ResidOptions {
            layer: Some(3),
            ..ResidOptions::default()
        },
    ));
    assert!(
        e.contains("3 is out of range") && e.contains("2 layers"),
        "{e}"
    );
    let e = err(cache.accumulated_resid(
        &model,
        ResidOptions {
            pos: Pos::At(9),
            ..ResidOptions::default()
        },
    ));
    assert!(e.contains("9") && e.contains("9 positions"), "{e}");

    // A cache without the final norm's scale: the error says which hook and how to cache it.
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    let filter = CacheFilter::by_name(|n| n.contains("resid"));
    let (_, partial) = model.run_with_cache(&tokens, filter).unwrap();
    let e = err(partial.accumulated_resid(
        &model,
        ResidOptions {
            layer: Some(1),
            apply_ln: true,
            ..ResidOptions::default()
        },
    ));
    assert!(
        e.contains("blocks.1.ln1.hook_scale") && e.contains("run_with_cache"),
        "{e}"
    );
    assert!(!partial.contains(HookPoint::Z(0)));
    let e = err(partial.stack_head_results(&model, ResidOptions::default()));
    assert!(e.contains("blocks.0.attn.hook_z"), "{e}");

    let stack = cache
        .decompose_resid(
            &model,
            Decompose::All,
            ResidOptions {
                pos: Pos::At(-1),
                ..ResidOptions::default()
            },
        )
        .unwrap();
    let logit_err = |t: &Tensor, w: Option<&Tensor>| match cache.logit_attrs(
        &model,
        &stack.tensor,
        t,
        w,
        Pos::At(-1),
    ) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let e = logit_err(&Tensor::from_slice(&[5i64, 97]), None);
    assert!(e.contains("97") && e.contains("0..97"), "{e}");
    let e = logit_err(
        &Tensor::from_slice(&[5i64, 6]),
        Some(&Tensor::from_slice(&[1i64])),
    );
    assert!(e.contains("same shape"), "{e}");
    let e = match cache.get_neuron_results(&model, 1, Some(&[500]), Pos::All) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("500") && e.contains("neurons"), "{e}");
}

#[test]
fn logit_lens_final_layer_is_the_model_and_dla_sums_to_the_logit_difference() {
    use mechlens_analysis::{DlaBy, direct_logit_attribution, logit_lens};
    // Processed weights (TL's defaults): the final norm's weights live in W_U, so the
    // direct attributions of all components add up to the logit difference exactly.
    let model = HookedTransformer::from_pretrained(
        &fixture("gpt2", "model"),
        LoadOptions::transformer_lens(),
    )
    .unwrap();
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    let (logits, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();

    let lens = logit_lens(
        &model,
        &cache,
        LensOptions {
            batch: 1,
            top_k: 3,
            answer: Some(17),
        },
    )
    .unwrap();
    assert_eq!(lens.labels, ["0_pre", "1_pre", "final_post"]);
    let final_lp = lens.log_probs.get(2);
    assert_close(
        "lens at final_post",
        &final_lp,
        &logits.get(1).log_softmax(-1, tch::Kind::Float),
        1e-4,
    );
    assert_eq!(lens.table.height(), 3 * 9 * 3);
    // The rank-1 token at (final_post, last position) is the model's argmax there.
    let argmax = logits.get(1).get(-1).argmax(0, false).int64_value(&[]);
    let ids = lens
        .table
        .column("token_id")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    let row = (2 * 9 + 8) * 3; // component 2, pos 8, rank 1
    assert_eq!(ids.get(row), Some(argmax));
    let answer_rank = lens
        .table
        .column("answer_rank")
        .unwrap()
        .u32()
        .unwrap()
        .get(row)
        .unwrap();
    let expected_rank = logits
        .get(1)
        .get(-1)
        .gt_tensor(&logits.get(1).get(-1).get(17))
        .sum(tch::Kind::Int64)
        .int64_value(&[])
        + 1;
    assert_eq!(i64::from(answer_rank), expected_rank);

    let (answers, wrong) = (
        Tensor::from_slice(&[5i64, 17]),
        Tensor::from_slice(&[8i64, 2]),
    );
    let b_u = model.b_u().unwrap();
    for by in [DlaBy::Layer, DlaBy::Head] {
        let (stack, attrs, table) =
            direct_logit_attribution(&model, &cache, by, &answers, Some(&wrong)).unwrap();
        assert_eq!(table.height(), stack.labels.len() * 2);
        if by == DlaBy::Layer {
            for b in 0..2i64 {
                let last = logits.get(b).get(-1);
                let (a, w) = (answers.int64_value(&[b]), wrong.int64_value(&[b]));
                let diff = last.double_value(&[a]) - last.double_value(&[w]);
                let bias = b_u.double_value(&[a]) - b_u.double_value(&[w]);
                let total = attrs.select(1, b).sum(tch::Kind::Double).double_value(&[]);
                assert!(
                    (total + bias - diff).abs() < 1e-4,
                    "row {b}: Σ attrs {total} + bias {bias} vs logit diff {diff}"
                );
            }
        }
    }
    assert!(
        logit_lens(
            &model,
            &cache,
            LensOptions {
                batch: 2,
                top_k: 3,
                answer: None
            }
        )
        .is_err()
    );
    assert!(
        logit_lens(
            &model,
            &cache,
            LensOptions {
                top_k: 0,
                ..LensOptions::default()
            }
        )
        .is_err()
    );
    assert!(
        logit_lens(
            &model,
            &cache,
            LensOptions {
                answer: Some(97),
                ..LensOptions::default()
            }
        )
        .is_err()
    );
}

#[test]
fn head_detectors_equal_transformer_lens() {
    use mechlens_analysis::{
        DetectOptions, ErrorMeasure, HeadPattern, detect_head, induction_scores,
        repeated_random_tokens,
    };
    let (model, _, r) = setup();
    let tokens = &r["detect_tokens"];
    type Kind = fn() -> HeadPattern;
    let kinds: [(&str, Kind); 3] = [
        ("previous_token_head", || HeadPattern::PreviousToken),
        ("duplicate_token_head", || HeadPattern::DuplicateToken),
        ("induction_head", || HeadPattern::Induction),
    ];
    for (name, kind) in kinds {
        let mul = detect_head(&model, tokens, kind(), DetectOptions::default())
            .unwrap()
            .scores;
        assert_close(
            &format!("{name} (mul)"),
            &mul,
            &r[&format!("detect_{name}_mul")],
            1e-5,
        );
        let abs = DetectOptions {
            exclude_bos: true,
            error_measure: ErrorMeasure::Abs,
            ..DetectOptions::default()
        };
        let abs = detect_head(&model, tokens, kind(), abs).unwrap().scores;
        assert_close(
            &format!("{name} (abs)"),
            &abs,
            &r[&format!("detect_{name}_abs_nobos")],
            1.01e-3,
        );
        let no_current = DetectOptions {
            exclude_bos: true,
            exclude_current_token: true,
            ..DetectOptions::default()
        };
        let nc = detect_head(&model, tokens, kind(), no_current)
            .unwrap()
            .scores;
        assert_close(
            &format!("{name} (no current)"),
            &nc,
            &r[&format!("detect_{name}_mul_nocurrent")],
            1e-5,
        );
    }
    let Scores { scores, table } = induction_scores(&model, &r["rep_tokens"], 6).unwrap();
    assert_close("induction scores", &scores, &r["induction_scores"], 1e-5);
    assert_eq!(table.height(), 10);

    // Our own repeated tokens: BOS-or-0, then a half and the same half again.
    let rep = repeated_random_tokens(&model, 5, 2, 1).unwrap();
    assert_eq!(rep.size(), [2, 11]);
    assert!(rep.narrow(1, 1, 5).equal(&rep.narrow(1, 6, 5)));
    assert!(rep.equal(&repeated_random_tokens(&model, 5, 2, 1).unwrap()));

    // Bad inputs.
    let err = |r: mechlens_core::Result<Scores>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let e = err(detect_head(
        &model,
        &Tensor::from_slice(&[1i64]),
        HeadPattern::PreviousToken,
        DetectOptions::default(),
    ));
    assert!(e.contains("expected 2..32"), "{e}");
    let e = err(detect_head(
        &model,
        tokens,
        HeadPattern::Custom(Tensor::ones([10, 10], (tch::Kind::Float, tch::Device::Cpu))),
        DetectOptions::default(),
    ));
    assert!(e.contains("lower triangular"), "{e}");
    let e = err(detect_head(
        &model,
        tokens,
        HeadPattern::Custom(Tensor::ones([4, 4], (tch::Kind::Float, tch::Device::Cpu)).tril(0)),
        DetectOptions::default(),
    ));
    assert!(e.contains("[10, 10]"), "{e}");
    let e = induction_scores(&model, &r["rep_tokens"], 5)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("[batch, 11]"), "{e}");
}

#[test]
fn activation_patching_equals_transformer_lens() {
    use mechlens_analysis::{PatchTarget, activation_patch};
    let (model, cache, r) = setup();
    let corrupted = &r["patch_corrupted"];
    let metric = |logits: &Tensor| -> mechlens_core::Result<Tensor> {
        let last = logits.select(1, -1);
        Ok(last.select(1, 5).mean(tch::Kind::Float) - last.select(1, 8).mean(tch::Kind::Float))
    };
    for (target, key, dims) in [
        (PatchTarget::ResidPre, "patch_resid_pre", vec![2, 9]),
        (PatchTarget::ResidMid, "patch_resid_mid", vec![2, 9]),
        (PatchTarget::AttnOut, "patch_attn_out", vec![2, 9]),
        (PatchTarget::MlpOut, "patch_mlp_out", vec![2, 9]),
        (
            PatchTarget::HeadOutAllPos,
            "patch_attn_head_out_all_pos",
            vec![2, 5],
        ),
        (
            PatchTarget::HeadOutByPos,
            "patch_attn_head_out_by_pos",
            vec![2, 9, 5],
        ),
        (
            PatchTarget::HeadQAllPos,
            "patch_attn_head_q_all_pos",
            vec![2, 5],
        ),
        (
            PatchTarget::HeadVByPos,
            "patch_attn_head_v_by_pos",
            vec![2, 9, 5],
        ),
        (
            PatchTarget::HeadPatternAllPos,
            "patch_attn_head_pattern_all_pos",
            vec![2, 5],
        ),
    ] {
        let result = activation_patch(&model, corrupted, &cache, target, metric).unwrap();
        assert_eq!(result.scores.size(), dims, "{target:?}");
        assert_close(&format!("{target:?}"), &result.scores, &r[key], 1e-4);
        assert_eq!(result.table.height() as i64, dims.iter().product::<i64>());
    }
    // Positions 0 and 1 hold the same tokens in both prompts, and nothing before them differs:
    // patching them at layer 0 changes nothing, so the metric stays the corrupted run's.
    let corrupted_metric = metric(&model.forward(corrupted).unwrap())
        .unwrap()
        .double_value(&[]);
    let resid = activation_patch(&model, corrupted, &cache, PatchTarget::ResidPre, metric).unwrap();
    for pos in [0, 1] {
        let patched = resid.scores.double_value(&[0, pos]);
        assert!(
            (patched - corrupted_metric).abs() < 1e-5,
            "pos {pos}: {patched} vs {corrupted_metric}"
        );
    }

    // Bad inputs: a metric that is not a scalar, prompts of different shapes, a cache without
    // the activation.
    let e = activation_patch(
        &model,
        corrupted,
        &cache,
        PatchTarget::ResidPre,
        |l: &Tensor| Ok(l.select(1, -1)),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("scalar"), "{e}");
    let e = activation_patch(
        &model,
        &corrupted.narrow(1, 0, 5),
        &cache,
        PatchTarget::ResidPre,
        metric,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("same shape"), "{e}");
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    let (_, partial) = model
        .run_with_cache(&tokens, CacheFilter::by_name(|n| n.contains("resid_pre")))
        .unwrap();
    let e = activation_patch(&model, corrupted, &partial, PatchTarget::MlpOut, metric)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("blocks.0.hook_mlp_out"), "{e}");
}

#[test]
fn attribution_patching_tracks_activation_patching() {
    use mechlens_analysis::{
        PatchTarget, activation_patch, attribution_patch, patching_correlation,
    };
    let (model, cache, r) = setup();
    let corrupted = &r["patch_corrupted"];
    let metric = |logits: &Tensor| -> mechlens_core::Result<Tensor> {
        let last = logits.select(1, -1);
        Ok(last.select(1, 5).mean(tch::Kind::Float) - last.select(1, 8).mean(tch::Kind::Float))
    };
    let base = metric(&model.forward(corrupted).unwrap())
        .unwrap()
        .double_value(&[]);
    // Measured on this fixture: attn_out r = 0.993, head outputs by position 0.996, mlp_out
    // 0.71, resid_pre −0.36 overall. The linear estimate fails where a patch is large and
    // non-linear in its effect: swapping the embedding at the position the metric reads (the
    // last). Without that position resid_pre correlates too (checked below).
    for (target, floor) in [
        (PatchTarget::ResidPre, -1.0),
        (PatchTarget::AttnOut, 0.95),
        (PatchTarget::MlpOut, 0.5),
        (PatchTarget::HeadOutByPos, 0.95),
    ] {
        let exact = activation_patch(&model, corrupted, &cache, target, metric).unwrap();
        let approx = attribution_patch(&model, corrupted, &cache, target, metric).unwrap();
        assert_eq!(approx.scores.size(), exact.scores.size());
        let corr = patching_correlation(&approx, &exact).unwrap();
        eprintln!("attribution vs activation patching, {target:?}: r = {corr:.3}");
        assert!(corr > floor, "{target:?}: correlation {corr}");
        // Where the clean and corrupted activations are equal the estimate is exactly 0, as is
        // the true effect: resid_pre at layer 0, positions 0 and 1.
        if target == PatchTarget::ResidPre {
            let (x, y) = (
                approx.scores.narrow(1, 0, 8).flatten(0, -1),
                exact.scores.narrow(1, 0, 8).flatten(0, -1),
            );
            let (x, y) = (&x - x.mean(tch::Kind::Float), &y - y.mean(tch::Kind::Float));
            let r_early = (&x * &y).sum(tch::Kind::Double).double_value(&[])
                / (x.norm().double_value(&[]) * y.norm().double_value(&[]));
            eprintln!("resid_pre without the last position: r = {r_early:.3}");
            assert!(
                r_early > 0.9,
                "resid_pre before the last position: {r_early}"
            );
            for pos in [0, 1] {
                assert_eq!(approx.scores.double_value(&[0, pos]), 0.0);
                assert!((exact.scores.double_value(&[0, pos]) - base).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn ablations_replace_exactly_what_they_name() {
    use mechlens_analysis::{Ablation, Component, ablate, ablate_each_head, ablation_hooks};
    let (model, clean, _) = setup();
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    let cached = |components: &[Component], ablation: Ablation, positions: Option<&[i64]>| {
        let hooks = ablation_hooks(&model, &tokens, components, ablation, positions).unwrap();
        model
            .run_with_hooks_and_cache(&tokens, hooks, CacheFilter::All, None)
            .unwrap()
            .1
    };
    // Zero-ablating every head of layer 1 leaves only the output bias in attn_out.
    let heads: Vec<Component> = (0..5)
        .map(|head| Component::Head { layer: 1, head })
        .collect();
    let c = cached(&heads, Ablation::Zero, None);
    let b_o = model.b_o().unwrap().get(1);
    assert_close(
        "attn_out = b_O",
        c.get(HookPoint::AttnOut(1)).unwrap(),
        &b_o.expand([2, 9, 30], false),
        1e-6,
    );

    // Mean ablation of head 1.2 at positions 3 and 4: the batch mean there, untouched elsewhere.
    let c = cached(
        &[Component::Head { layer: 1, head: 2 }],
        Ablation::Mean,
        Some(&[3, 4]),
    );
    let z = c.get(HookPoint::Z(1)).unwrap();
    let z_clean = clean.get(HookPoint::Z(1)).unwrap();
    let mean = z_clean
        .narrow(1, 3, 2)
        .select(2, 2)
        .mean_dim(0, true, tch::Kind::Float);
    assert_close(
        "mean-ablated",
        &z.narrow(1, 3, 2).select(2, 2),
        &mean.expand([2, 2, 6], false),
        1e-6,
    );
    assert_close("other heads", &z.select(2, 1), &z_clean.select(2, 1), 1e-6);
    assert_close(
        "other positions",
        &z.narrow(1, 0, 3),
        &z_clean.narrow(1, 0, 3),
        1e-6,
    );

    // Resample with a batch of two: each prompt takes the other's activation.
    let c = cached(
        &[Component::Head { layer: 0, head: 4 }],
        Ablation::Resample { seed: 3 },
        None,
    );
    let z = c.get(HookPoint::Z(0)).unwrap().select(2, 4);
    let z_clean = clean.get(HookPoint::Z(0)).unwrap().select(2, 4);
    assert_close("resampled 0←1", &z.get(0), &z_clean.get(1), 1e-6);
    assert_close("resampled 1←0", &z.get(1), &z_clean.get(0), 1e-6);

    // A neuron, and a whole MLP.
    let c = cached(
        &[
            Component::Neuron {
                layer: 0,
                neuron: 7,
            },
            Component::Mlp { layer: 1 },
        ],
        Ablation::Zero,
        None,
    );
    assert_eq!(
        c.get(HookPoint::MlpPost(0))
            .unwrap()
            .select(2, 7)
            .abs()
            .sum(tch::Kind::Double)
            .double_value(&[]),
        0.0
    );
    assert!(
        c.get(HookPoint::MlpPost(0))
            .unwrap()
            .select(2, 6)
            .abs()
            .sum(tch::Kind::Double)
            .double_value(&[])
            > 0.0
    );
    assert_eq!(
        c.get(HookPoint::MlpOut(1))
            .unwrap()
            .abs()
            .sum(tch::Kind::Double)
            .double_value(&[]),
        0.0
    );

    // The per-head sweep equals ablating each head on its own.
    let metric = |logits: &Tensor| -> mechlens_core::Result<Tensor> {
        Ok(logits.select(1, -1).select(1, 5).mean(tch::Kind::Float))
    };
    let Scores { scores, table } =
        ablate_each_head(&model, &tokens, Ablation::Zero, metric).unwrap();
    assert_eq!(table.height(), 10);
    let one = metric(
        &ablate(
            &model,
            &tokens,
            &[Component::Head { layer: 1, head: 3 }],
            Ablation::Zero,
            None,
        )
        .unwrap(),
    )
    .unwrap();
    assert!((scores.double_value(&[1, 3]) - one.double_value(&[])).abs() < 1e-6);

    // Bad inputs.
    let err = |components: &[Component],
               ablation: Ablation,
               positions: Option<&[i64]>,
               tokens: &Tensor| {
        ablation_hooks(&model, tokens, components, ablation, positions)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err(
        &[Component::Head { layer: 2, head: 0 }],
        Ablation::Zero,
        None,
        &tokens,
    );
    assert!(e.contains("2 layers"), "{e}");
    let e = err(
        &[Component::Head { layer: 0, head: 5 }],
        Ablation::Zero,
        None,
        &tokens,
    );
    assert!(e.contains("5 heads"), "{e}");
    let e = err(
        &[Component::Neuron {
            layer: 0,
            neuron: 120,
        }],
        Ablation::Zero,
        None,
        &tokens,
    );
    assert!(e.contains("120") && e.contains("neurons"), "{e}");
    let e = err(
        &[Component::Attn { layer: 0 }],
        Ablation::Zero,
        Some(&[9]),
        &tokens,
    );
    assert!(e.contains("9 positions"), "{e}");
    let e = err(
        &[Component::Attn { layer: 0 }],
        Ablation::Resample { seed: 0 },
        None,
        &tokens.narrow(0, 0, 1),
    );
    assert!(e.contains("at least 2"), "{e}");
}
