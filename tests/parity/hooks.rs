//! Hooks, caches, gradients, residual entry points, batching and generation, checked by
//! closed forms on the GPT-2 and Llama fixtures.

use std::cell::RefCell;

use mechlens_core::{CacheFilter, Hook, HookPoint, Hooks, Intervention};
use mechlens_models::{GenerateOptions, HookedTransformer, LoadOptions, TokenBatch};
use mechlens_tests::{assert_close, fixture, load, max_diff};
use tch::{Kind, Tensor};

fn gpt2() -> (HookedTransformer, Tensor) {
    let model =
        HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default())
            .unwrap();
    let tokens = load(&fixture("gpt2", "reference"))["tokens"].shallow_clone();
    (model, tokens)
}

#[test]
fn filtered_cache_holds_only_what_it_names() {
    let (model, tokens) = gpt2();
    let filter = CacheFilter::names(["blocks.1.attn.hook_pattern", "hook_embed"]).unwrap();
    let (_, cache) = model.run_with_cache(&tokens, filter).unwrap();
    assert_eq!(
        cache.hook_points(),
        vec![HookPoint::Embed, HookPoint::Pattern(1)]
    );
    let (_, all) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    assert!(cache.size_bytes() * 5 < all.size_bytes());
    let (_, by_name) = model
        .run_with_cache(&tokens, CacheFilter::by_name(|n| n.ends_with("hook_z")))
        .unwrap();
    assert_eq!(
        by_name.hook_points(),
        vec![HookPoint::Z(0), HookPoint::Z(1)]
    );
}

#[test]
fn patching_the_last_residual_gives_the_other_runs_logits() {
    let (model, tokens) = gpt2();
    let other = tokens.flip([1]);
    let (other_logits, other_cache) = model.run_with_cache(&other, CacheFilter::All).unwrap();
    let patched = other_cache
        .get(HookPoint::ResidPost(1))
        .unwrap()
        .shallow_clone();
    let hooks = Hooks::new()
        .intervene(HookPoint::ResidPost(1), Intervention::Replace(patched))
        .unwrap();
    let logits = model.run_with_hooks(&tokens, hooks).unwrap();
    assert_close("patched logits", &logits, &other_logits, 1e-5);
}

#[test]
fn closures_read_and_edit_activations() {
    let (model, tokens) = gpt2();
    let seen = RefCell::new(Vec::new());
    let hooks = Hooks::new()
        .read("blocks.0.attn.hook_pattern", |p| {
            seen.borrow_mut().push(p.size());
            Ok(())
        })
        .unwrap()
        .edit("blocks.0.hook_resid_pre", |x, _| Ok(x * 2.0))
        .unwrap();
    let logits = model.run_with_hooks(&tokens, hooks).unwrap();
    assert_eq!(seen.borrow().as_slice(), &[vec![2, 5, 9, 9]]);
    let (_, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let doubled = cache.get(HookPoint::ResidPre(0)).unwrap() * 2.0;
    let expected = model.forward_from_layer(&doubled, 0).unwrap();
    assert_close("doubled embedding", &logits, &expected, 1e-5);
}

#[test]
fn residual_entry_and_exit_points_compose() {
    let (model, tokens) = gpt2();
    let (logits, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let resid = model.forward_to_layer(&tokens, 1).unwrap();
    assert_close(
        "stop_at_layer",
        &resid,
        cache.get(HookPoint::ResidPre(1)).unwrap(),
        1e-6,
    );
    assert_close(
        "start_at_layer",
        &model.forward_from_layer(&resid, 1).unwrap(),
        &logits,
        1e-5,
    );
}

#[test]
fn steering_vector_adds_to_the_residual() {
    let (model, tokens) = gpt2();
    let v = Tensor::randn([30], (Kind::Float, tch::Device::Cpu));
    let hooks = Hooks::new()
        .intervene(
            "blocks.0.hook_resid_pre",
            Intervention::Add(v.shallow_clone()),
        )
        .unwrap();
    let steered = model.run_with_hooks(&tokens, hooks).unwrap();
    let (_, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let expected = model
        .forward_from_layer(&(cache.get(HookPoint::ResidPre(0)).unwrap() + &v), 0)
        .unwrap();
    assert_close("steered", &steered, &expected, 1e-5);
}

#[test]
fn persistent_hooks_stay_until_reset() {
    let (model, tokens) = gpt2();
    let clean = model.forward(&tokens).unwrap();
    let zeroed = model
        .run_with_hooks(
            &tokens,
            Hooks::new()
                .intervene(HookPoint::AttnOut(0), Intervention::Zero)
                .unwrap(),
        )
        .unwrap();
    model
        .add_hook(HookPoint::AttnOut(0), Hook::Intervene(Intervention::Zero))
        .unwrap();
    assert_close("persistent", &model.forward(&tokens).unwrap(), &zeroed, 0.0);
    assert!(max_diff("zeroed vs clean", &zeroed, &clean) > 1e-3);
    model.reset_hooks().unwrap();
    assert_close("after reset", &model.forward(&tokens).unwrap(), &clean, 0.0);
}

#[test]
fn persistent_hooks_take_the_same_builder_as_a_run() {
    let (model, tokens) = gpt2();
    let once = || {
        Hooks::new()
            .intervene(HookPoint::AttnOut(0), Intervention::Zero)
            .unwrap()
    };
    let zeroed = model.run_with_hooks(&tokens, once()).unwrap();
    model.add_hooks(once()).unwrap();
    assert_close("kept", &model.forward(&tokens).unwrap(), &zeroed, 0.0);
    model.reset_hooks().unwrap();
    // A bad name adds nothing.
    let bad = Hooks::new()
        .intervene(HookPoint::AttnOut(0), Intervention::Zero)
        .unwrap()
        .intervene(HookPoint::AttnOut(99), Intervention::Zero)
        .unwrap();
    let err = model.add_hooks(bad).unwrap_err().to_string();
    assert!(err.contains("blocks.99.hook_attn_out"), "{err}");
    let clean = model.forward(&tokens).unwrap();
    assert!(max_diff("nothing added", &clean, &zeroed) > 1e-3);
}

#[test]
fn mean_ablation_replaces_by_the_batch_mean() {
    let (model, tokens) = gpt2();
    let point = HookPoint::MlpOut(0);
    let (_, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    let mean = cache.get(point).unwrap().mean_dim(0, true, Kind::Float);
    let a = model
        .run_with_hooks(
            &tokens,
            Hooks::new()
                .intervene(point, Intervention::MeanAblate)
                .unwrap(),
        )
        .unwrap();
    let b = model
        .run_with_hooks(
            &tokens,
            Hooks::new()
                .intervene(point, Intervention::Mean(mean))
                .unwrap(),
        )
        .unwrap();
    assert_close("mean ablation", &a, &b, 1e-6);
}

#[test]
fn gradient_at_unembed_input_is_the_unembedding_column() {
    let (model, tokens) = gpt2();
    let target = 5;
    let filter = CacheFilter::names([
        "unembed.hook_in",
        "blocks.0.hook_resid_pre",
        "blocks.1.attn.hook_pattern",
    ])
    .unwrap();
    let (value, grads) = model
        .gradients(&tokens, filter, |logits| {
            Ok(logits.get(0).get(-1).get(target))
        })
        .unwrap();
    let logits = model.forward(&tokens).unwrap();
    assert!((value - logits.get(0).get(-1).get(target).double_value(&[])).abs() < 1e-5);
    // d logit / d x = W_U[:, target] at that position, zero elsewhere.
    let g = grads.get(HookPoint::UnembedIn).unwrap();
    let expected = Tensor::zeros([2, 9, 30], (Kind::Float, tch::Device::Cpu));
    expected.get(0).get(8).copy_(&model.w_u().select(1, target));
    assert_close("grad unembed.hook_in", g, &expected, 1e-6);
    // Earlier activations get nonzero gradients of their own shapes.
    assert_eq!(
        grads.get(HookPoint::Pattern(1)).unwrap().size(),
        vec![2, 5, 9, 9]
    );
    assert!(
        grads
            .get(HookPoint::ResidPre(0))
            .unwrap()
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            > 0.0
    );
}

#[test]
fn padded_batches_match_single_runs_left_and_right() {
    let (model, tokens) = gpt2();
    let short = tokens.get(1).narrow(0, 0, 6);
    let alone = model.forward(&short).unwrap().get(0);
    for left in [true, false] {
        let pad = Tensor::zeros([3], (Kind::Int64, tch::Device::Cpu));
        let (row, mask) = if left {
            (
                Tensor::cat(&[&pad, &short], 0),
                Tensor::cat(&[pad.zeros_like(), short.ones_like()], 0),
            )
        } else {
            (
                Tensor::cat(&[&short, &pad], 0),
                Tensor::cat(&[short.ones_like(), pad.zeros_like()], 0),
            )
        };
        let batch = TokenBatch {
            tokens: Tensor::stack(&[tokens.get(0), row], 0),
            attention_mask: Tensor::stack(&[tokens.get(0).ones_like(), mask], 0),
        };
        let logits = model.forward(&batch).unwrap();
        let real = if left {
            logits.get(1).narrow(0, 3, 6)
        } else {
            logits.get(1).narrow(0, 0, 6)
        };
        assert_close(&format!("padded (left = {left})"), &real, &alone, 1e-4);
        assert_close(
            "unpadded row",
            &logits.get(0),
            &model.forward(tokens.get(0)).unwrap().get(0),
            1e-4,
        );
    }
}

#[test]
fn loss_equals_cross_entropy_of_reference_logits() {
    let (model, tokens) = gpt2();
    let reference = load(&fixture("gpt2", "reference"))["logits"].shallow_clone();
    let logp = reference.narrow(1, 0, 8).log_softmax(-1, Kind::Float);
    let expected = -logp
        .gather(-1, &tokens.narrow(1, 1, 8).unsqueeze(-1), false)
        .squeeze_dim(-1);
    assert_close(
        "per-token loss",
        &model.per_token_loss(&tokens).unwrap(),
        &expected,
        1e-4,
    );
    assert_close(
        "loss",
        &model.loss(&tokens).unwrap(),
        &expected.mean(Kind::Float),
        1e-4,
    );
}

#[test]
fn kv_cache_generation_equals_full_recompute_and_steering_changes_it() {
    for name in ["gpt2", "llama"] {
        let model =
            HookedTransformer::from_pretrained(&fixture(name, "model"), LoadOptions::default())
                .unwrap();
        let prompt = load(&fixture(name, "reference"))["tokens"].narrow(1, 0, 4);
        let opts = GenerateOptions {
            max_new_tokens: 12,
            stop_at_eos: false,
            ..GenerateOptions::default()
        };
        let cached = model.generate(&prompt, &opts).unwrap();
        let full = model
            .generate(
                &prompt,
                &GenerateOptions {
                    use_kv_cache: false,
                    ..opts.clone()
                },
            )
            .unwrap();
        assert_eq!(cached, full, "{name}: KV cache changes greedy tokens");
        assert_eq!(cached.size(), vec![2, 16]);
        let sampled = |seed| {
            let o = GenerateOptions {
                temperature: 1.0,
                top_k: Some(10),
                top_p: Some(0.9),
                seed: Some(seed),
                ..opts.clone()
            };
            model.generate(&prompt, &o).unwrap()
        };
        assert_eq!(
            sampled(3),
            sampled(3),
            "{name}: seeded sampling is reproducible"
        );
        // Sampling among the top 1 token, or a nucleus smaller than any probability, is greedy.
        let top1 = GenerateOptions {
            temperature: 1.0,
            top_k: Some(1),
            seed: Some(1),
            ..opts.clone()
        };
        assert_eq!(
            model.generate(&prompt, &top1).unwrap(),
            cached,
            "{name}: top-k 1"
        );
        let tiny_p = GenerateOptions {
            temperature: 1.0,
            top_p: Some(1e-9),
            seed: Some(1),
            ..opts.clone()
        };
        assert_eq!(
            model.generate(&prompt, &tiny_p).unwrap(),
            cached,
            "{name}: top-p ~0"
        );
        let d = model.cfg().d_model as i64;
        // Random, not constant: LayerNorm would remove a constant shift.
        let steer = Tensor::randn([d], (Kind::Float, tch::Device::Cpu)) * 5.0;
        let hooks = Hooks::new()
            .intervene(HookPoint::ResidPre(1), Intervention::Add(steer))
            .unwrap();
        let steered = model.generate_with_hooks(&prompt, &opts, hooks).unwrap();
        assert_ne!(steered, cached, "{name}: steering changed nothing");
    }
}

#[test]
fn stacked_weights_have_transformer_lens_layout() {
    let model =
        HookedTransformer::from_pretrained(&fixture("llama", "model"), LoadOptions::default())
            .unwrap();
    assert_eq!(model.w_q().unwrap().size(), vec![2, 6, 36, 6]);
    assert_eq!(model.w_k().unwrap().size(), vec![2, 6, 36, 6]);
    assert_eq!(model.w_o().unwrap().size(), vec![2, 6, 6, 36]);
    assert_eq!(model.w_in().unwrap().size(), vec![2, 36, 50]);
    assert_eq!(model.w_out().unwrap().size(), vec![2, 50, 36]);
    assert_eq!(model.w_u().size(), vec![36, 97]);
    // Query heads 0..3 share key head 0 (GQA ratio 3).
    let w_k = model.w_k().unwrap();
    assert_close(
        "GQA key sharing",
        &w_k.get(0).get(2),
        &w_k.get(0).get(0),
        0.0,
    );
}

#[test]
fn generation_stops_at_eos() {
    let model =
        HookedTransformer::from_pretrained(&fixture("llama", "model"), LoadOptions::default())
            .unwrap();
    let eos = model.cfg().eos_token_id.unwrap();
    let prompt = load(&fixture("llama", "reference"))["tokens"].narrow(1, 0, 4);
    // Make EOS overwhelmingly likely by editing the logits through their hook.
    let push = Tensor::zeros([97], (Kind::Float, tch::Device::Cpu));
    let _ = push.get(eos).fill_(1e4);
    let hooks = || {
        Hooks::new()
            .intervene(
                HookPoint::UnembedOut,
                Intervention::Add(push.shallow_clone()),
            )
            .unwrap()
    };
    let opts = GenerateOptions {
        max_new_tokens: 12,
        ..GenerateOptions::default()
    };
    let stopped = model.generate_with_hooks(&prompt, &opts, hooks()).unwrap();
    assert_eq!(stopped.size(), vec![2, 5]);
    assert_eq!(
        stopped.narrow(1, 4, 1),
        Tensor::from_slice(&[eos, eos]).unsqueeze(1)
    );
    let running = model
        .generate_with_hooks(
            &prompt,
            &GenerateOptions {
                stop_at_eos: false,
                ..opts
            },
            hooks(),
        )
        .unwrap();
    assert_eq!(running.size(), vec![2, 16]);
}

#[test]
fn a_metric_may_run_the_model_again() {
    let (model, tokens) = gpt2();
    let baseline = model.forward(&tokens).unwrap();
    let (_, grads) = model
        .gradients(
            &tokens,
            CacheFilter::names(["unembed.hook_in"]).unwrap(),
            |logits| {
                // e.g. a KL divergence against a clean run computed inside the metric
                let clean = model.forward(&tokens)?;
                Ok((logits - clean).pow_tensor_scalar(2).sum(Kind::Float))
            },
        )
        .unwrap();
    assert_eq!(grads.len(), 1);
    assert_eq!(baseline.size(), vec![2, 9, 97]);
}
