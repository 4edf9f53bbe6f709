//! Pretrained SAEs: SAELens' release list read as SAELens reads it, and an SAELens folder
//! inside a hub repository downloaded from a hub we serve on loopback, then loaded offline.

use std::collections::HashMap;
use std::net::TcpListener;

use mechlens_models::Hub;
use mechlens_sae::pretrained::{find_release, pretrained_yaml};
use mechlens_sae::{Architecture, Sae, SaeConfig};
use tch::{Device, Kind, Tensor};

use crate::hub::{COMMIT, serve_repo};
use mechlens_tests::{assert_close, run_check, temp_dir};

#[test]
fn release_list_reads_as_saelens_reads_it() {
    let dir = temp_dir("pretrained");
    run_check("dump_pretrained_saes.py", &dir);
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pretrained.json")).unwrap())
            .unwrap();
    let yaml = pretrained_yaml().unwrap();
    assert_eq!(
        yaml.canonicalize().unwrap(),
        std::path::Path::new(theirs["yaml"].as_str().unwrap())
            .canonicalize()
            .unwrap()
    );
    let releases = theirs["releases"].as_object().unwrap();
    assert!(releases.len() > 100, "{} releases", releases.len());
    for (name, r) in releases {
        let ours = find_release(&yaml, name).unwrap();
        assert_eq!(ours.repo_id, r["repo_id"].as_str().unwrap(), "{name}");
        assert_eq!(
            ours.conversion_func.as_deref(),
            r["conversion_func"].as_str(),
            "{name}"
        );
        assert_eq!(
            serde_json::Value::Object(ours.config_overrides.clone()),
            r["config_overrides"],
            "{name}"
        );
        let as_map = |key: &str| -> HashMap<String, serde_json::Value> {
            r[key]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let saes: HashMap<String, serde_json::Value> = ours
            .saes
            .iter()
            .map(|s| (s.id.clone(), serde_json::json!(s.path)))
            .collect();
        assert_eq!(saes, as_map("saes"), "{name}");
        let factors: HashMap<String, serde_json::Value> = ours
            .saes
            .iter()
            .filter_map(|s| Some((s.id.clone(), serde_json::json!(s.norm_scaling_factor?))))
            .collect();
        assert_eq!(factors, as_map("norm_scaling_factor"), "{name}");
        let neuronpedia: HashMap<String, serde_json::Value> = ours
            .saes
            .iter()
            .filter_map(|s| Some((s.id.clone(), serde_json::json!(s.neuronpedia.clone()?))))
            .collect();
        assert_eq!(neuronpedia, as_map("neuronpedia"), "{name}");
    }
    let err = find_release(&yaml, "gpt2-small-res-jbx")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gpt2-small-res-jb,") || err.contains("gpt2-small-res-jb "),
        "{err}"
    );
}

fn hub(cache: std::path::PathBuf, endpoint: String, offline: bool) -> Hub {
    Hub {
        cache,
        endpoint,
        offline,
    }
}

#[test]
fn an_saelens_folder_in_a_hub_repository_downloads_and_then_loads_offline() {
    let repo_dir = temp_dir("sae-repo");
    let mut cfg =
        SaeConfig::new(Architecture::TopK, 8, 32).with_hook("gpt2", "blocks.0.hook_resid_pre");
    cfg.k = Some(4);
    let sae = Sae::init(cfg, Some(0.1), 3).unwrap();
    sae.save(repo_dir.join("blocks.0.hook_resid_pre")).unwrap();
    mechlens_sae::save_sparsity(
        repo_dir.join("blocks.0.hook_resid_pre"),
        &Tensor::zeros([32], (Kind::Float, Device::Cpu)),
    )
    .unwrap();
    let (endpoint, log) = serve_repo("mechlens-test/saes", &repo_dir);
    let cache = temp_dir("sae-hub-cache");
    let yaml = repo_dir.join("pretrained_saes.yaml");
    std::fs::write(
        &yaml,
        "test-release:\n  conversion_func: null\n  repo_id: mechlens-test/saes\n  saes:\n  \
         - id: layer0\n    path: blocks.0.hook_resid_pre\nconverted-release:\n  \
         conversion_func: gemma_2\n  repo_id: mechlens-test/saes\n  saes:\n  - id: x\n    path: x\n",
    )
    .unwrap();

    let online = hub(cache.clone(), endpoint.clone(), false);
    let got = Sae::from_release(&online, &yaml, "test-release", "layer0", Device::Cpu).unwrap();
    let x = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
    assert_close(
        "downloaded SAE",
        &got.forward(&x).unwrap(),
        &sae.forward(&x).unwrap(),
        0.0,
    );
    let snapshot = cache
        .join("models--mechlens-test--saes/snapshots")
        .join(COMMIT)
        .join("blocks.0.hook_resid_pre");
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "sparsity.safetensors",
    ] {
        assert!(snapshot.join(f).is_file(), "{f} not in the cache");
    }
    let asked = log.lock().unwrap().clone();
    assert!(
        !asked.iter().any(|p| p.ends_with("pretrained_saes.yaml")),
        "{asked:?}"
    );

    // Offline, from the cache alone.
    let offline = hub(cache.clone(), "http://127.0.0.1:9".into(), true);
    let again = Sae::from_hub(
        &offline,
        "mechlens-test/saes",
        "blocks.0.hook_resid_pre",
        Device::Cpu,
    )
    .unwrap();
    assert_close(
        "cached SAE",
        &again.forward(&x).unwrap(),
        &sae.forward(&x).unwrap(),
        0.0,
    );

    // Errors: an id the release lacks, a converted release, a folder the repository lacks,
    // nothing cached while offline, an unreachable hub.
    let err = Sae::from_release(&online, &yaml, "test-release", "layer9", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layer9") && err.contains("layer0"), "{err}");
    let err = Sae::from_release(&online, &yaml, "converted-release", "x", Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x/params.npz") && err.contains("gemma_2"),
        "{err}"
    );
    let err = Sae::from_hub(
        &online,
        "mechlens-test/saes",
        "blocks.5.hook_resid_pre",
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("blocks.5.hook_resid_pre/cfg.json"), "{err}");
    let err = Sae::from_hub(
        &hub(temp_dir("empty"), endpoint, true),
        "mechlens-test/saes",
        "blocks.0.hook_resid_pre",
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let err = Sae::from_hub(
        &hub(temp_dir("empty2"), closed.clone(), false),
        "org/none",
        "a",
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&closed) && err.contains("org/none"), "{err}");
}
