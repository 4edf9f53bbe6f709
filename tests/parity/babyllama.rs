//! The real BabyLlama (llama2.c format) against `transformers` running our fixture script's
//! conversion to an HF Llama checkpoint, its SentencePiece tokenizer against PyPI
//! `sentencepiece`, and greedy generation from BOS.

use mechlens_core::{CacheFilter, HookPoint};
use mechlens_models::{GenerateOptions, HookedTransformer, LoadOptions, Tokenizer};
use mechlens_tests::{assert_close, fixture, fixtures, load};
use tch::Tensor;

fn model() -> HookedTransformer {
    mechlens_models::datasets::babyllama(LoadOptions::default()).unwrap()
}

#[test]
fn babyllama_logits_equal_transformers() {
    let model = model();
    let r = load(&fixture("babyllama", "reference"));
    let (logits, cache) = model
        .run_with_cache(&r["tokens"], CacheFilter::All)
        .unwrap();
    assert_close("BabyLlama logits", &logits, &r["logits"], 1e-4);
    for l in 0..5 {
        assert_close(
            &format!("resid_pre {l}"),
            cache.get(HookPoint::ResidPre(l)).unwrap(),
            &r[&format!("hidden_{l}")],
            1e-4,
        );
    }
    // Our tokenizer gives the prompt's tokens.
    let prompt = "Once upon a time, there was a little girl named Lily.";
    assert_eq!(model.to_tokens(prompt, true).unwrap(), r["tokens"]);
}

#[test]
fn babyllama_greedy_generation_equals_transformers_and_reads_as_a_story() {
    let model = model();
    let r = load(&fixture("babyllama", "reference"));
    let bos = Tensor::from_slice(&[1i64]).unsqueeze(0);
    let opts = GenerateOptions {
        max_new_tokens: 80,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let ours = model.generate(&bos, &opts).unwrap();
    assert_eq!(ours, r["greedy"], "greedy tokens (KV cache)");
    let no_cache = model
        .generate(
            &bos,
            &GenerateOptions {
                use_kv_cache: false,
                ..opts.clone()
            },
        )
        .unwrap();
    assert_eq!(no_cache, r["greedy"], "greedy tokens (no cache)");
    let text = model.tokens_to_string(&ours.narrow(1, 1, 80)).unwrap();
    assert_eq!(
        text,
        fixtures()["babyllama"]["greedy_text"].as_str().unwrap()
    );
    assert!(text.starts_with("Once upon a time"), "{text}");
}

#[test]
fn sentencepiece_encodings_equal_the_reference_library() {
    let tokenizer = Tokenizer::from_sentencepiece(
        &mechlens_models::datasets::file("babyllama-tinystories", "tokenizer.model").unwrap(),
    )
    .unwrap();
    let samples: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("babyllama", "sentencepiece")).unwrap(),
    )
    .unwrap();
    let samples = samples.as_array().unwrap();
    assert!(samples.len() > 100);
    for sample in samples {
        let text = sample["text"].as_str().unwrap();
        let expected: Vec<i64> = sample["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            tokenizer.encode(text, false).unwrap(),
            expected,
            "encoding of {text:?}"
        );
        assert_eq!(
            tokenizer.decode(&expected).unwrap(),
            sample["decoded"].as_str().unwrap(),
            "decoding of {text:?}"
        );
    }
}
