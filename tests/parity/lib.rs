//! Helpers for the parity tests: the reference fixtures (generated on first use by
//! `tests/fixtures/make_fixtures.py` in the project's .venv), tensor comparison, temp folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tch::{Kind, Tensor};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The fixture manifest, generating the fixtures when absent or older than the script.
pub fn fixtures() -> &'static serde_json::Value {
    static MANIFEST: OnceLock<serde_json::Value> = OnceLock::new();
    MANIFEST.get_or_init(|| generated("make_fixtures.py", "fixtures"))
}

/// The SAE fixture manifest (SAELens-saved SAEs and their outputs), generated likewise by
/// `tests/fixtures/make_sae_fixtures.py`.
pub fn sae_fixtures() -> &'static serde_json::Value {
    static MANIFEST: OnceLock<serde_json::Value> = OnceLock::new();
    MANIFEST.get_or_init(|| generated("make_sae_fixtures.py", "sae_fixtures"))
}

/// Runs `tests/fixtures/SCRIPT target/DIR` in the project's .venv unless its manifest is
/// newer than the script, and reads the manifest.
///
/// # Panics
/// When the generator fails: the tests cannot run without their references.
#[allow(clippy::panic, clippy::expect_used)]
fn generated(script: &str, dir: &str) -> serde_json::Value {
    let root = root();
    let out = root.join("target").join(dir);
    let script = root.join("tests").join("fixtures").join(script);
    let manifest = out.join("manifest.json");
    let stale = match (std::fs::metadata(&manifest), std::fs::metadata(&script)) {
        (Ok(m), Ok(s)) => m.modified().ok() < s.modified().ok(),
        _ => true,
    };
    if stale {
        let status = python()
            .arg(&script)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run the .venv python ({e}); run `make setup` first")
            });
        assert!(status.success(), "{} failed ({status})", script.display());
    }
    let text =
        std::fs::read_to_string(&manifest).expect("manifest.json written by the fixture script");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// A command running the project's .venv python.
pub fn python() -> Command {
    Command::new(root().join(".venv").join("bin").join("python"))
}

/// A string entry of the manifest (`fixture("gpt2", "model")`).
#[allow(clippy::expect_used)]
pub fn fixture(name: &str, key: &str) -> String {
    fixtures()[name][key]
        .as_str()
        .map(String::from)
        .expect("manifest entry")
}

/// Every tensor of a safetensors file, by name.
#[allow(clippy::expect_used)]
pub fn load(path: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .expect("reference safetensors")
        .into_iter()
        .collect()
}

/// Largest absolute difference; panics naming `what` when the shapes differ.
#[allow(clippy::panic)]
pub fn max_diff(what: &str, ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(ours.size(), reference.size(), "{what}: shape");
    let ours = ours.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    let reference = reference.to_kind(Kind::Double);
    // Masked attention scores are -inf on both sides: equal, not NaN apart.
    let same = ours.eq_tensor(&reference);
    (ours - reference)
        .abs()
        .masked_fill(&same, 0.0)
        .max()
        .double_value(&[])
}

/// Asserts `max |ours - reference| <= tol`.
pub fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, tol: f64) {
    let d = max_diff(what, ours, reference);
    assert!(d <= tol, "{what}: max |Δ| = {d:e} > {tol:e}");
}

/// A fresh empty folder under the system temp dir.
#[allow(clippy::expect_used)]
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mechlens-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `tests/fixtures/SCRIPT DIR` in the .venv, prints its report and asserts it succeeded.
///
/// # Panics
/// When the script cannot run or exits non-zero (its report and stderr are in the message).
#[allow(clippy::panic, clippy::expect_used)]
pub fn run_check(script: &str, dir: &Path) -> String {
    let output = python()
        .arg(root().join("tests").join("fixtures").join(script))
        .arg(dir)
        .output()
        .expect("the .venv python runs");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{report}");
    assert!(
        output.status.success(),
        "{script} reports a difference:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// Saves `sae` into `dir/sae` and, beside it, `ours.safetensors` with `x` and our encode and
/// forward of it: what `check_sae_saved.py` compares SAELens against.
///
/// # Panics
/// When our SAE cannot save or run on `x`.
#[allow(clippy::expect_used)]
pub fn save_for_saelens(sae: &mechlens_sae::Sae, x: &Tensor, dir: &Path) {
    sae.save(dir.join("sae")).expect("save");
    let tensors = [
        ("x", x.shallow_clone()),
        ("acts", sae.encode(x).expect("encode")),
        ("forward", sae.forward(x).expect("forward")),
    ];
    Tensor::write_safetensors(&tensors, dir.join("ours.safetensors")).expect("write");
}
