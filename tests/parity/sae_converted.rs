//! Pretrained releases SAELens converts on load (Gemma Scope, Gemma Scope 2, Llama Scope,
//! dictionary_learning, Qwen Scope, Goodfire, DeepSeek R1, GPT-2 `hook_z`): synthetic files
//! in each format, placed at a real release's path, loaded by SAELens' `from_pretrained`
//! (`make_converted_saes.py`) and by ours from a hub served on loopback. Same config, same
//! latents and reconstructions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mechlens_checkpoint::torch_archive::read_torch_archive;
use mechlens_models::Hub;
use mechlens_sae::Sae;
use mechlens_sae::pretrained::pretrained_yaml;
use serde_json::Value;
use tch::{Device, Tensor};

use crate::hub::serve_repo;
use mechlens_tests::{assert_close, run_check, temp_dir};

fn online(repo_id: &str, folder: &Path) -> Hub {
    // The test hub serves one repository, named for the life of the test binary.
    let repo_id: &'static str = Box::leak(repo_id.to_string().into_boxed_str());
    let (endpoint, _log) = serve_repo(repo_id, folder);
    Hub {
        cache: temp_dir("converted-cache"),
        endpoint,
        offline: false,
    }
}

fn fixtures() -> (PathBuf, Vec<Value>, HashMap<String, Tensor>) {
    let dir = temp_dir("converted-saes");
    run_check("make_converted_saes.py", &dir);
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected = Tensor::read_safetensors(dir.join("expected.safetensors"))
        .unwrap()
        .into_iter()
        .collect();
    (dir, cases, expected)
}

#[test]
fn converted_releases_load_as_saelens_loads_them() {
    let (_dir, cases, expected) = fixtures();
    let yaml = pretrained_yaml().unwrap();
    assert_eq!(cases.len(), 17);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let s = |key: &str| case[key].as_str().unwrap();
        let hub = online(s("repo_id"), Path::new(s("repo_dir")));
        let sae = Sae::from_release(&hub, &yaml, s("release"), s("sae_id"), Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let theirs = &case["cfg"];
        let cfg = &sae.cfg;
        assert_eq!(cfg.architecture.name(), theirs["architecture"], "{name}");
        assert_eq!(
            (cfg.d_in, cfg.d_sae),
            (
                theirs["d_in"].as_i64().unwrap(),
                theirs["d_sae"].as_i64().unwrap()
            ),
            "{name}"
        );
        assert_eq!(
            cfg.apply_b_dec_to_input, theirs["apply_b_dec_to_input"],
            "{name}"
        );
        assert_eq!(
            cfg.normalize_activations.name(),
            theirs["normalize_activations"],
            "{name}"
        );
        assert_eq!(
            cfg.reshape_hook_z,
            theirs["reshape_activations"] == "hook_z",
            "{name}"
        );
        assert_eq!(cfg.k, theirs["k"].as_i64(), "{name}");
        for (key, value) in theirs["metadata"].as_object().unwrap() {
            if key.starts_with("sae_lens") {
                continue; // the version of the library that read it
            }
            assert_eq!(
                cfg.metadata.get(key),
                Some(value),
                "{name}: metadata `{key}`"
            );
        }

        let x = &expected[&format!("{name}.x")];
        let (acts, recon) = sae.encode_decode(x).unwrap();
        let reference = &expected[&format!("{name}.acts")];
        // Relative to the latents' size: Llama Scope's reach ~360, where one f32 step is 3e-5
        // and a CPU with another matmul kernel (AVX2 rather than AVX-512) rounds differently.
        let scale = reference.abs().max().double_value(&[]).max(1.0);
        assert_close(&format!("{name} latents"), &acts, reference, 1e-5 * scale);
        assert_eq!(
            acts.gt(0.0).sum(tch::Kind::Int64).int64_value(&[]),
            reference.gt(0.0).sum(tch::Kind::Int64).int64_value(&[]),
            "{name}: active latents"
        );
        let recon_ref = &expected[&format!("{name}.recon")];
        assert_eq!(recon.size(), recon_ref.size(), "{name}");
        assert_close(&format!("{name} reconstruction"), &recon, recon_ref, 1e-5);

        // Offline, the same SAE from the cache alone.
        if name == "gemma_2_res" {
            let offline = Hub {
                endpoint: "http://127.0.0.1:9".into(),
                offline: true,
                ..hub
            };
            let again =
                Sae::from_release(&offline, &yaml, s("release"), s("sae_id"), Device::Cpu).unwrap();
            assert_close("cached gemma_2", &again.encode(x).unwrap(), reference, 1e-5);
        }
    }
}

#[test]
fn converted_files_that_are_not_what_the_converter_expects_are_named_errors() {
    let (dir, cases, _) = fixtures();
    let case = |name: &str| cases.iter().find(|c| c["name"] == name).unwrap().clone();
    let err = |hub: &Hub, conversion: &str, repo: &str, path: &str| {
        Sae::from_hub_converted(hub, conversion, repo, path, Device::Cpu)
            .unwrap_err()
            .to_string()
    };

    // A truncated params.npz.
    let gemma = case("gemma_2_res");
    let (repo, path) = (
        gemma["repo_id"].as_str().unwrap(),
        gemma["path"].as_str().unwrap(),
    );
    let folder = temp_dir("bad-npz");
    let npz = folder.join(path).join("params.npz");
    std::fs::create_dir_all(npz.parent().unwrap()).unwrap();
    let bytes = std::fs::read(
        Path::new(gemma["repo_dir"].as_str().unwrap())
            .join(path)
            .join("params.npz"),
    )
    .unwrap();
    std::fs::write(&npz, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&online(repo, &folder), "gemma_2", repo, path);
    assert!(e.contains("params.npz") && e.contains("zip"), "{e}");

    // An ae.pt without its decoder: the error lists what the file has.
    let e = err(
        &online(
            "org/dl",
            &dir.join("bad/dictionary_learning_missing_decoder"),
        ),
        "dictionary_learning_1",
        "org/dl",
        "f",
    );
    assert!(
        e.contains("decoder.weight") && e.contains("ae.pt") && e.contains("encoder.weight"),
        "{e}"
    );

    // A pickled module rather than a state dict, and a truncated archive: named, nothing run.
    let module = dir.join("bad/whole_module.pt");
    let e = read_torch_archive(&module).unwrap_err().to_string();
    assert!(
        e.contains("whole_module.pt")
            && e.contains("torch.nn.modules.linear.Linear")
            && e.contains("state_dict"),
        "{e}"
    );
    let bytes = std::fs::read(&module).unwrap();
    let cut = dir.join("bad/cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_torch_archive(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.pt") && e.contains("zip"), "{e}");

    // A Gemma Scope 2 config.json naming another architecture.
    let e = err(
        &online(
            "google/gemma-scope-2-1b-pt",
            &dir.join("bad/gemma_3_wrong_architecture"),
        ),
        "gemma_3",
        "google/gemma-scope-2-1b-pt",
        "resid_post/layer_1_x",
    );
    assert!(e.contains("jump_relu") && e.contains("topk"), "{e}");

    // Llama Scope hyperparameters without the threshold.
    let llama = case("llama_scope");
    let (repo, path) = (
        llama["repo_id"].as_str().unwrap(),
        llama["path"].as_str().unwrap(),
    );
    let folder = temp_dir("bad-llama");
    copy_dir(
        &Path::new(llama["repo_dir"].as_str().unwrap()).join(path),
        &folder.join(path),
    );
    let hyper = folder.join(path).join("hyperparams.json");
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&hyper).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("jump_relu_threshold");
    std::fs::write(&hyper, value.to_string()).unwrap();
    let e = err(&online(repo, &folder), "llama_scope", repo, path);
    assert!(e.contains("missing field `jump_relu_threshold`"), "{e}");

    // A folder name the converter cannot read (no layer), a transcoder, an unknown converter.
    let folder = temp_dir("no-layer");
    let odd = folder.join("width_16k/average_l0_5");
    copy_dir(
        &Path::new(gemma["repo_dir"].as_str().unwrap()).join(gemma["path"].as_str().unwrap()),
        &odd,
    );
    let hub = online("google/gemma-scope-2b-pt-res", &folder);
    let e = err(
        &hub,
        "gemma_2",
        "google/gemma-scope-2b-pt-res",
        "width_16k/average_l0_5",
    );
    assert!(
        e.contains("layer_N") && e.contains("width_16k/average_l0_5"),
        "{e}"
    );
    let yaml = pretrained_yaml().unwrap();
    let e = Sae::from_release(
        &hub,
        &yaml,
        "gemma-scope-2b-pt-transcoders",
        "layer_0/width_16k/average_l0_76",
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("gemma_2_transcoder") && e.contains("transcoder"),
        "{e}"
    );
    let e = err(&hub, "sparsify", "org/x", "layer_0");
    assert!(e.contains("sparsify") && e.contains("gemma_3"), "{e}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
