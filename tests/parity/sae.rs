//! SAEs against SAELens (PyPI, in .venv): SAEs saved by SAELens load here and give SAELens'
//! latents and reconstructions; SAEs saved here load in SAELens and encode identically;
//! splicing into a model keeps its output with the error term and exposes SAELens' hook
//! names; bad files and shapes give errors that name the problem.

use std::rc::Rc;

use mechlens_core::{CacheFilter, HookPoint, Hooks, Intervention, SaeSite};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_sae::{Architecture, Sae, SaeConfig, SaeSplicing, SpliceOptions};
use tch::{Device, Kind, Tensor};

use mechlens_tests::{
    assert_close, fixture, load, run_check, sae_fixtures, save_for_saelens, temp_dir,
};

const TOL: f64 = 1e-5;

fn cases() -> Vec<(String, serde_json::Value)> {
    let manifest = sae_fixtures().as_object().expect("manifest object");
    manifest
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn saelens_saes_encode_and_decode_as_saelens() {
    for (name, case) in cases() {
        let sae = Sae::load(case["sae"].as_str().unwrap(), Device::Cpu).unwrap();
        assert_eq!(
            sae.cfg.architecture.name(),
            case["architecture"].as_str().unwrap(),
            "{name}"
        );
        let r = load(case["reference"].as_str().unwrap());
        let acts = sae.encode(&r["x"]).unwrap();
        assert_close(&format!("{name}: acts"), &acts, &r["acts"], TOL);
        assert_close(
            &format!("{name}: forward"),
            &sae.forward(&r["x"]).unwrap(),
            &r["forward"],
            TOL,
        );
        // SAELens' decode also undoes constant_norm_rescale with the scale its last encode
        // recorded; ours is stateless, and forward covers that case.
        // A hook_z SAE's decode returns the flat [.., n_heads·d_head] (SAELens reshapes with
        // the head count its last encode saw; forward reshapes here too).
        if name != "standard_norm_rescale" {
            let decoded = sae.decode(&acts).unwrap();
            let reference = r["decode"].reshape(decoded.size());
            assert_close(&format!("{name}: decode"), &decoded, &reference, TOL);
        }
        // The fixtures are built so that the activation function has edges to get right.
        let active = acts
            .gt(0.0)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        assert!(
            active > 0.02 && active < 0.9,
            "{name}: fraction active {active}"
        );
    }
}

#[test]
fn legacy_flat_config_reads_topk_and_hook() {
    let sae = Sae::load(fixture_sae("legacy_topk"), Device::Cpu).unwrap();
    assert_eq!(
        (sae.cfg.architecture, sae.cfg.k),
        (Architecture::TopK, Some(5))
    );
    assert_eq!(sae.cfg.hook_name(), Some("blocks.1.hook_resid_pre"));
}

fn fixture_sae(name: &str) -> String {
    sae_fixtures()[name]["sae"].as_str().unwrap().to_string()
}

#[test]
fn saes_saved_here_load_in_saelens_and_encode_identically() {
    let dir = temp_dir("sae-saved");
    for (name, case) in cases() {
        // Round trip: SAELens' files → ours → save → SAELens loads ours.
        let sae = Sae::load(case["sae"].as_str().unwrap(), Device::Cpu).unwrap();
        let r = load(case["reference"].as_str().unwrap());
        save_for_saelens(&sae, &r["x"], &dir.join(&name));
    }
    // And one trained here, never seen by SAELens.
    let cfg =
        SaeConfig::new(Architecture::TopK, 16, 48).with_hook("test", "blocks.0.hook_resid_post");
    let mut cfg = cfg;
    cfg.k = Some(4);
    let sae = Sae::init(cfg, Some(0.1), 3).unwrap();
    let x = Tensor::randn([7, 16], (Kind::Float, Device::Cpu));
    save_for_saelens(&sae, &x, &dir.join("fresh_topk"));
    let report = run_check("check_sae_saved.py", &dir);
    assert_eq!(
        report.lines().filter(|l| l.ends_with(" ok")).count(),
        cases().len() + 1,
        "{report}"
    );
}

fn gpt2() -> HookedTransformer {
    HookedTransformer::from_pretrained(&fixture("gpt2", "model"), LoadOptions::default()).unwrap()
}

/// An SAE sized for the gpt2 fixture's residual stream.
fn resid_sae(model: &HookedTransformer, seed: u64) -> Sae {
    let d_model = model.cfg().d_model as i64;
    let cfg = SaeConfig::new(Architecture::Standard, d_model, 3 * d_model)
        .with_hook("gpt2-fixture", "blocks.1.hook_resid_pre");
    Sae::init(cfg, None, seed).unwrap()
}

#[test]
fn spliced_sae_with_error_term_keeps_logits_and_exposes_saelens_hooks() {
    let model = gpt2();
    let tokens = Tensor::from_slice(&[1i64, 5, 9, 2, 7, 3]).view([1, 6]);
    let clean = model.forward(&tokens).unwrap();
    let sae = Rc::new(resid_sae(&model, 1));
    let at = model
        .add_sae(
            Rc::clone(&sae),
            SpliceOptions {
                use_error_term: true,
                ..SpliceOptions::default()
            },
        )
        .unwrap();
    assert_eq!(at, HookPoint::ResidPre(1));
    let names: Vec<String> = model
        .hook_points()
        .iter()
        .map(ToString::to_string)
        .collect();
    for site in SaeSite::ALL {
        assert!(
            names.contains(&format!("blocks.1.hook_resid_pre.{}", site.name())),
            "{names:?}"
        );
    }
    // Inside a hook (the run holds the model's hooks) the list is the same, SAE hooks too.
    let mut seen_inside = Vec::new();
    let hooks = Hooks::new()
        .read("blocks.0.hook_resid_post", |_| {
            seen_inside = model.hook_points();
            Ok(())
        })
        .unwrap();
    let _ = model.run_with_hooks(&tokens, hooks).unwrap();
    assert_eq!(seen_inside, model.hook_points());
    let (logits, cache) = model.run_with_cache(&tokens, CacheFilter::All).unwrap();
    assert_close("logits with error term", &logits, &clean, 1e-4);
    // The cache has the SAE's own activations, equal to running the SAE on the model's.
    let resid = cache.get("blocks.1.hook_resid_pre").unwrap();
    let acts = cache
        .get("blocks.1.hook_resid_pre.hook_sae_acts_post")
        .unwrap();
    assert_close("cached latents", acts, &sae.encode(resid).unwrap(), 1e-6);
    let error = cache.get("blocks.1.hook_resid_pre.hook_sae_error").unwrap();
    assert_close(
        "error term",
        error,
        &(resid - sae.forward(resid).unwrap()),
        1e-5,
    );

    // Zero-ablating every latent leaves b_dec + error at the hook point.
    let hooks = Hooks::new()
        .intervene(
            "blocks.1.hook_resid_pre.hook_sae_acts_post",
            Intervention::Zero,
        )
        .unwrap();
    let ablated = model.run_with_hooks(&tokens, hooks).unwrap();
    assert!(
        ablated.f_sub(&clean).unwrap().abs().max().double_value(&[]) > 1e-3,
        "ablation had no effect"
    );

    // Without the error term the output is the SAE's reconstruction: logits change.
    model.reset_saes().unwrap();
    model
        .add_sae(Rc::clone(&sae), SpliceOptions::default())
        .unwrap();
    let spliced = model.forward(&tokens).unwrap();
    assert!(spliced.f_sub(&clean).unwrap().abs().max().double_value(&[]) > 1e-3);
    model.reset_saes().unwrap();
    assert_close(
        "after reset_saes",
        &model.forward(&tokens).unwrap(),
        &clean,
        0.0,
    );
    assert!(
        !model
            .hook_points()
            .iter()
            .any(|p| matches!(p, HookPoint::Sae(..)))
    );
}

#[test]
fn bad_sae_inputs_name_the_problem() {
    let model = gpt2();
    // d_in not matching the hook's width.
    let wrong = Rc::new(Sae::init(SaeConfig::new(Architecture::Standard, 5, 10), None, 0).unwrap());
    let err = model
        .add_sae(
            wrong,
            SpliceOptions {
                at: Some("blocks.0.hook_resid_post".into()),
                ..SpliceOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d_in") && err.contains("blocks.0.hook_resid_post") && err.contains('5'),
        "{err}"
    );
    // No hook recorded and none given.
    let nameless =
        Rc::new(Sae::init(SaeConfig::new(Architecture::Standard, 8, 10), None, 0).unwrap());
    let err = model
        .add_sae(nameless, SpliceOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("hook_name"), "{err}");
    // Unknown hook.
    let sae = Rc::new(resid_sae(&model, 2));
    let err = model
        .add_sae(
            sae,
            SpliceOptions {
                at: Some("blocks.1.hook_resid_pr".into()),
                ..SpliceOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.1.hook_resid_pre"), "{err}");
    // Encoding the wrong width.
    let sae = resid_sae(&model, 3);
    let err = sae
        .encode(&Tensor::zeros([2, 7], (Kind::Float, Device::Cpu)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("d_in=") && err.contains("[2, 7]"), "{err}");

    // Files: missing weights, weights disagreeing with cfg, corrupt weights, bad cfg.
    let dir = temp_dir("sae-bad");
    let good = Sae::load(fixture_sae("standard"), Device::Cpu).unwrap();
    good.save(dir.join("ok")).unwrap();
    let copy = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in ["cfg.json", "sae_weights.safetensors"] {
            std::fs::copy(dir.join("ok").join(f), d.join(f)).unwrap();
        }
        d
    };
    let d = copy("no_weights");
    std::fs::remove_file(d.join("sae_weights.safetensors")).unwrap();
    let err = Sae::load(&d, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("sae_weights.safetensors") && err.contains("no such file"),
        "{err}"
    );

    let d = copy("wrong_shape");
    let cfg = std::fs::read_to_string(d.join("cfg.json"))
        .unwrap()
        .replace("\"d_sae\": 40", "\"d_sae\": 41");
    std::fs::write(d.join("cfg.json"), cfg).unwrap();
    let err = Sae::load(&d, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("W_enc") && err.contains("41"), "{err}");

    let d = copy("corrupt");
    std::fs::write(
        d.join("sae_weights.safetensors"),
        b"\x10\0\0\0\0\0\0\0{not json",
    )
    .unwrap();
    let err = Sae::load(&d, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("sae_weights.safetensors"), "{err}");

    let d = copy("bad_cfg");
    std::fs::write(d.join("cfg.json"), r#"{"architecture": "standard", "d_in": 12.5, "d_sae": 40, "metadata": {"sae_lens_version": "6.1.0"}}"#).unwrap();
    let err = Sae::load(&d, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("`d_in` must be an integer"), "{err}");

    let d = copy("bad_arch");
    std::fs::write(d.join("cfg.json"), r#"{"architecture": "matryoshka_batchtopk", "d_in": 12, "d_sae": 40, "metadata": {"sae_lens_version": "6.1.0"}}"#).unwrap();
    let err = Sae::load(&d, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("matryoshka_batchtopk") && err.contains("standard, topk, jumprelu, gated"),
        "{err}"
    );
}
