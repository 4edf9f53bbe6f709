//! `mechlens train-sae` end to end: a config file in, an SAELens folder out; resume from the
//! checkpoints; bad configs rejected with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use mechlens_sae::Sae;
use tch::{Device, Kind, Tensor};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mechlens-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mechlens(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mechlens"))
        .arg("train-sae")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn trains_saves_and_resumes() {
    let d = dir("train");
    let acts = Tensor::randn([512, 16], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("activations", acts)], d.join("acts.safetensors")).unwrap();
    let config = |steps: usize, resume: bool| {
        format!(
            "out = \"final\"\nresume = {resume}\n[data]\nactivations = \"acts.safetensors\"\n[train]\n\
             sae = {{ architecture = \"topk\", k = 4, aux_loss_coefficient = 1.0 }}\nd_sae = 32\nbatch_size = 64\n\
             total_steps = {steps}\nlog_every = 5\ncheckpoint_every = 10\ncheckpoint_dir = \"{}\"\n",
            d.join("ckpt").display()
        )
    };
    std::fs::write(d.join("run.toml"), config(20, false)).unwrap();
    let out = mechlens(&d.join("run.toml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sae = Sae::load(d.join("final"), Device::Cpu).unwrap();
    assert_eq!((sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k), (16, 32, Some(4)));
    assert!(d.join("ckpt/step_00000020").is_dir());

    // Resuming a finished run with more steps continues from step 20.
    std::fs::write(d.join("more.toml"), config(30, true)).unwrap();
    let out = mechlens(&d.join("more.toml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("saved topk"));
}

#[test]
fn bad_configs_name_the_problem() {
    let d = dir("bad");
    let acts = Tensor::randn([64, 8], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("activations", acts)], d.join("acts.safetensors")).unwrap();
    let cases = [
        (
            "[data]\nactivations = \"acts.safetensors\"\n",
            "missing `out`",
        ),
        (
            "out = \"x\"\n[data]\nactivations = \"acts.safetensors\"\n[train]\nsae = { architecture = \"standard\", l1_coefficient = 1.0 }\nlearning_rate = 1\n",
            "no field `learning_rate`",
        ),
        (
            "out = \"x\"\n[data]\nactivations = \"acts.safetensors\"\n[train]\nsae = { architecture = \"relu\" }\n",
            "relu",
        ),
        (
            "out = \"x\"\n[data]\nactivations = \"missing.safetensors\"\n[train]\nsae = { architecture = \"standard\", l1_coefficient = 1.0 }\n",
            "missing.safetensors",
        ),
        (
            "out = \"x\"\n[data]\nactivations = \"acts.safetensors\"\n[train]\nsae = { architecture = \"standard\", l1_coefficient = 1.0 }\nd_in = 9\n",
            "width of the data",
        ),
        ("out = [\n", "run.toml"),
    ];
    for (text, expected) in cases {
        std::fs::write(d.join("run.toml"), text).unwrap();
        let out = mechlens(&d.join("run.toml"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn trains_from_a_shard_folder() {
    let d = dir("shards");
    let mut writer =
        mechlens_sae::ShardWriter::create(&d.join("acts"), "blocks.0.hook_resid_post", 16, 100)
            .unwrap();
    writer
        .push(&Tensor::randn([512, 16], (Kind::Float, Device::Cpu)))
        .unwrap();
    writer.finish().unwrap();
    std::fs::write(
        d.join("run.toml"),
        "out = \"final\"\n[data]\nshards = \"acts\"\nbuffer_shards = 2\n[train]\n\
         sae = { architecture = \"standard\", l1_coefficient = 1.0 }\nd_sae = 32\nbatch_size = 64\ntotal_steps = 12\n",
    )
    .unwrap();
    let out = mechlens(&d.join("run.toml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("512 activations of width 16 at blocks.0.hook_resid_post from 6 shards"),
        "{stdout}"
    );
    let sae = Sae::load(d.join("final"), Device::Cpu).unwrap();
    assert_eq!((sae.cfg.d_in, sae.cfg.d_sae), (16, 32));
}
