//! Path patching against closed forms on random attention-only models, where what a receiver
//! reads when only the sender is clean is known exactly: the corrupted residual stream plus
//! `(z_clean − z_corrupted) · W_O` of the sender. And against activation patching (itself
//! equal to TransformerLens'): a sender patched into every later head and the logits at once
//! is its whole effect, in a two-layer model.

use mechlens_analysis::{
    HeadInput, PatchTarget, Receiver, activation_patch, path_patch, path_patch_senders,
};
use mechlens_core::{ActivationCache, CacheFilter, Error, HookPoint, Hooks, Result};
use mechlens_models::{HookedTransformer, HookedTransformerConfig, NormType};
use tch::{Kind, Tensor};

/// A random attention-only model with layer norms (so that the receivers' inputs go through
/// a nonlinearity before the head reads them), clean and corrupted tokens, and the clean
/// run's head outputs.
fn setup(n_layers: usize, seed: u64) -> (HookedTransformer, Tensor, Tensor, ActivationCache) {
    let cfg = HookedTransformerConfig {
        n_layers,
        d_model: 16,
        n_heads: 3,
        d_head: 4,
        d_mlp: None,
        d_vocab: 11,
        n_ctx: 12,
        normalization_type: Some(NormType::LayerNorm),
        attn_only: true,
        initializer_range: 0.4,
        ..Default::default()
    };
    let model = HookedTransformer::from_config(&cfg, seed).unwrap();
    tch::manual_seed(seed as i64);
    let clean = Tensor::randint(11, [2, 7], (Kind::Int64, tch::Device::Cpu));
    let corrupted = Tensor::randint(11, [2, 7], (Kind::Int64, tch::Device::Cpu));
    let points = (0..n_layers).map(HookPoint::Z).collect();
    let (_, cache) = model
        .run_with_cache(&clean, CacheFilter::Names(points))
        .unwrap();
    (model, clean, corrupted, cache)
}

fn metric(logits: &Tensor) -> Result<Tensor> {
    let last = logits.select(1, -1);
    Ok(last.select(1, 2).mean(Kind::Float) - last.select(1, 7).mean(Kind::Float))
}

/// `(z_clean − z_corrupted) · W_O` of one head: `[batch, pos, d_model]`.
fn sender_delta(
    model: &HookedTransformer,
    clean: &ActivationCache,
    corrupt: &ActivationCache,
    (layer, head): (usize, usize),
) -> Tensor {
    let dz = clean
        .get(HookPoint::Z(layer))
        .unwrap()
        .select(2, head as i64)
        - corrupt
            .get(HookPoint::Z(layer))
            .unwrap()
            .select(2, head as i64);
    let w_o = model.w_o().unwrap().get(layer as i64).get(head as i64);
    dz.matmul(&w_o)
}

#[test]
fn a_receiver_reads_the_corrupted_stream_plus_the_senders_change_and_nothing_else() {
    let (model, _, corrupted, clean) = setup(3, 1);
    let wanted = vec![
        HookPoint::Z(0),
        HookPoint::ResidPre(1),
        HookPoint::ResidPre(2),
    ];
    let (_, corrupt) = model
        .run_with_cache(&corrupted, CacheFilter::Names(wanted))
        .unwrap();
    let sender = (0, 1);
    let delta = sender_delta(&model, &clean, &corrupt, sender);
    assert!(
        delta.abs().max().double_value(&[]) > 1e-2,
        "a visible change"
    );
    // Layer 2's query of head 0 and layer 1's key of head 2: the layer-1 heads must be frozen,
    // or layer 2 would also see the sender through them.
    let receivers = [
        Receiver::Head {
            layer: 2,
            head: 0,
            input: HeadInput::Q,
        },
        Receiver::Head {
            layer: 1,
            head: 2,
            input: HeadInput::K,
        },
    ];
    let got = path_patch(&model, &corrupted, &clean, sender, &receivers, metric).unwrap();

    let expected_input = |layer: usize| corrupt.get(HookPoint::ResidPre(layer)).unwrap() + &delta;
    let (q2, k1) = (expected_input(2), expected_input(1));
    let hooks = Hooks::new()
        .edit(HookPoint::QInput(2), move |act: &Tensor, _| {
            let out = act.copy();
            out.narrow(2, 0, 1).copy_(&q2.unsqueeze(2));
            Ok(out)
        })
        .unwrap()
        .edit(HookPoint::KInput(1), move |act: &Tensor, _| {
            let out = act.copy();
            out.narrow(2, 2, 1).copy_(&k1.unsqueeze(2));
            Ok(out)
        })
        .unwrap();
    let expected = metric(&model.run_with_hooks(&corrupted, hooks).unwrap())
        .unwrap()
        .double_value(&[]);
    let base = metric(&model.forward(&corrupted).unwrap())
        .unwrap()
        .double_value(&[]);
    eprintln!("path patch {got:.6}, closed form {expected:.6}, corrupted {base:.6}");
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    assert!((got - base).abs() > 1e-3, "the path changes the metric");

    // To the logits: the corrupted logits' final stream plus the sender's change.
    let direct = path_patch(
        &model,
        &corrupted,
        &clean,
        sender,
        &[Receiver::Logits],
        metric,
    )
    .unwrap();
    let shift = delta.shallow_clone();
    let hooks = Hooks::new()
        .edit(HookPoint::ResidPost(2), move |act: &Tensor, _| {
            Ok(act + &shift)
        })
        .unwrap();
    let expected = metric(&model.run_with_hooks(&corrupted, hooks).unwrap())
        .unwrap()
        .double_value(&[]);
    assert!((direct - expected).abs() < 1e-5, "{direct} vs {expected}");
}

#[test]
fn every_path_from_a_head_at_once_is_patching_the_head() {
    let (model, _, corrupted, clean) = setup(2, 2);
    let mut receivers = vec![Receiver::Logits];
    for input in [HeadInput::Q, HeadInput::K, HeadInput::V] {
        receivers.extend(Receiver::layer(&model, 1, input));
    }
    let paths = path_patch_senders(&model, &corrupted, &clean, &receivers, metric).unwrap();
    let heads = activation_patch(
        &model,
        &corrupted,
        &clean,
        PatchTarget::HeadOutAllPos,
        metric,
    )
    .unwrap();
    assert_eq!(paths.scores.size(), [1, 3]);
    let diff = (&paths.scores - heads.scores.narrow(0, 0, 1))
        .abs()
        .max()
        .double_value(&[]);
    eprintln!("all paths vs the head's activation patch: max diff {diff:.1e}");
    assert!(diff < 1e-5);
    // And the paths split it: Q, K and V alone each differ from the whole.
    let q_only = path_patch_senders(
        &model,
        &corrupted,
        &clean,
        &Receiver::layer(&model, 1, HeadInput::Q),
        metric,
    )
    .unwrap();
    let gap = (&q_only.scores - &paths.scores)
        .abs()
        .max()
        .double_value(&[]);
    assert!(gap > 1e-3, "queries alone are not every path ({gap})");
    assert_eq!(
        q_only.table.get_column_names_owned(),
        ["layer", "head", "metric"]
    );
}

#[test]
fn bad_receivers_and_senders_say_what_is_wrong() {
    let (model, _, corrupted, clean) = setup(2, 3);
    let q = |layer, head| Receiver::Head {
        layer,
        head,
        input: HeadInput::Q,
    };
    let message = |e: &Error| e.to_string();
    let e = path_patch(&model, &corrupted, &clean, (1, 0), &[q(1, 0)], metric).unwrap_err();
    assert!(message(&e).contains("not after the sender's layer 1"));
    let e = path_patch(&model, &corrupted, &clean, (0, 0), &[], metric).unwrap_err();
    assert!(message(&e).contains("none given"));
    let e = path_patch(&model, &corrupted, &clean, (0, 5), &[q(1, 0)], metric).unwrap_err();
    assert!(message(&e).contains("sender head"), "{e}");
    let e = path_patch(&model, &corrupted, &clean, (0, 0), &[q(1, 3)], metric).unwrap_err();
    assert!(message(&e).contains("receiver head"), "{e}");
    let e = path_patch(&model, &corrupted, &clean, (0, 0), &[q(2, 0)], metric).unwrap_err();
    assert!(message(&e).contains("receiver layer"), "{e}");
    let Err(e) = path_patch_senders(&model, &corrupted, &clean, &[q(0, 0)], metric) else {
        panic!("receivers in layer 0 have no senders")
    };
    assert!(message(&e).contains("layer 0"), "{e}");
    let e = path_patch(
        &model,
        &corrupted,
        &clean,
        (0, 0),
        &[q(1, 0)],
        |l: &Tensor| Ok(l.shallow_clone()),
    )
    .unwrap_err();
    assert!(message(&e).contains("scalar"), "{e}");
    let empty = ActivationCache::default();
    let e = path_patch(&model, &corrupted, &empty, (0, 0), &[q(1, 0)], metric).unwrap_err();
    assert!(message(&e).contains("blocks.0.attn.hook_z"), "{e}");
    let short = corrupted.narrow(1, 0, 5);
    let e = path_patch(&model, &short, &clean, (0, 0), &[q(1, 0)], metric).unwrap_err();
    assert!(message(&e).contains("same shape"), "{e}");
}
