//! Each decoder architecture fires exactly TransformerLens' hooks, in TransformerLens' order:
//! by default, with the opt-in hooks (`use_attn_result`, `use_split_qkv_input`,
//! `use_hook_mlp_in`) and with `use_attn_in`. The lists come from TransformerLens'
//! `run_with_cache` on a config of the same architecture (tests/fixtures/make_fixtures.py).

use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_tests::{fixture, fixtures};

/// Our fixture model, and the TransformerLens architecture whose hooks it must have.
const ARCHITECTURES: [(&str, &str); 7] = [
    ("gpt2", "gpt2"),
    ("gpt_neo", "gpt_neo"),
    ("gpt_neox", "gpt_neox"),
    ("gpt_neox_sequential", "gpt_neox_sequential"),
    ("llama", "llama"),
    ("llama3_scaled_tied", "llama"),
    ("qwen2", "llama"),
];

fn names(model: &HookedTransformer) -> Vec<String> {
    model
        .hook_points()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_decoder_fires_transformer_lens_hooks_in_its_order() {
    let path = fixtures()["tl_hooks"]["path"]
        .as_str()
        .expect("tl_hooks in the manifest");
    let lists: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("tl_hooks.json")).unwrap();
    let mut compared = 0;
    for (ours, theirs) in ARCHITECTURES {
        let load = || {
            HookedTransformer::from_pretrained(&fixture(ours, "model"), LoadOptions::default())
                .unwrap()
        };
        for (flags, expected) in lists[theirs].as_object().expect("flag sets") {
            let mut model = load();
            match flags.as_str() {
                "default" => {}
                "opt_in" => {
                    model.set_use_attn_result(true);
                    model.set_use_split_qkv_input(true);
                    model.set_use_hook_mlp_in(true);
                }
                "attn_in" => model.set_use_attn_in(true),
                other => panic!("unknown flag set {other}"),
            }
            let expected: Vec<String> = expected
                .as_array()
                .expect("names")
                .iter()
                .map(|n| n.as_str().expect("a name").to_string())
                .collect();
            assert_eq!(names(&model), expected, "{ours} ({flags})");
            compared += 1;
        }
    }
    // Four fixtures with three flag sets; three with grouped-query attention, which
    // TransformerLens refuses use_attn_in for, with two.
    assert_eq!(compared, 3 * 4 + 2 * 3);
}
