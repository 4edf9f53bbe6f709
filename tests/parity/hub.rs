//! Loading from the hub: a download from a hub we serve on loopback (the same HTTP exchange
//! `huggingface.co` has with `hf-hub`: repo info, ranged GETs with etag and commit headers),
//! then the cached copy offline, and the errors when the model is nowhere.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mechlens_models::{HookedTransformer, Hub, LoadOptions};
use mechlens_tests::{assert_close, fixture, load, temp_dir};

pub(crate) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A minimal hub serving one repository from `folder`; returns its address and a log of the
/// paths asked for.
pub(crate) fn serve_repo(
    repo_id: &'static str,
    folder: &Path,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let mut files = HashMap::new();
    collect_files(folder, "", &mut files);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer(stream, repo_id, &files, &seen);
        }
    });
    (address, log)
}

/// Every file under `dir`, keyed by its path relative to the repository root.
fn collect_files(dir: &Path, prefix: &str, files: &mut HashMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("{prefix}{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            collect_files(&path, &format!("{name}/"), files);
        } else {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
}

fn answer(
    mut stream: TcpStream,
    repo_id: &str,
    files: &HashMap<String, Vec<u8>>,
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    // `Range: bytes=START-[END]`, END inclusive.
    let mut range: (usize, Option<usize>) = (0, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
            break;
        }
        let lower = header.trim().to_ascii_lowercase();
        if let Some((start, end)) = lower
            .strip_prefix("range: bytes=")
            .and_then(|spec| spec.split_once('-'))
        {
            range = (start.parse().unwrap_or(0), end.parse().ok());
        }
    }
    log.lock().unwrap().push(path.clone());

    let info_path = format!("/api/models/{repo_id}/revision/main");
    let file_prefix = format!("/{repo_id}/resolve/main/");
    let (status, headers, body): (&str, String, Vec<u8>) = if path == info_path {
        let siblings: Vec<serde_json::Value> = files
            .keys()
            .map(|name| serde_json::json!({ "rfilename": name }))
            .collect();
        let body = serde_json::json!({ "sha": COMMIT, "siblings": siblings }).to_string();
        ("200 OK", String::new(), body.into_bytes())
    } else if let Some(bytes) = path.strip_prefix(&file_prefix).and_then(|f| files.get(f)) {
        let start = range.0.min(bytes.len());
        let end = range.1.map_or(bytes.len(), |e| (e + 1).min(bytes.len()));
        let body = bytes[start..end.max(start)].to_vec();
        // The cache names blobs by etag, so it must identify the content (the hub's is a hash).
        let etag = format!("{:016x}", fnv1a(bytes));
        let headers = format!(
            "etag: \"{etag}\"\r\nx-repo-commit: {COMMIT}\r\ncontent-range: bytes {start}-{}/{}\r\n",
            (start + body.len()).saturating_sub(1),
            bytes.len()
        );
        ("206 Partial Content", headers, body)
    } else {
        ("404 Not Found", String::new(), b"not found".to_vec())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hub(cache: PathBuf, endpoint: String, offline: bool) -> LoadOptions {
    LoadOptions {
        hub: Hub {
            cache,
            endpoint,
            offline,
        },
        ..LoadOptions::default()
    }
}

#[test]
fn a_sharded_model_downloads_into_the_cache_and_then_loads_offline() {
    // make_fixtures.py writes the sharded copy beside the single-file one.
    let folder = Path::new(&fixture("gpt2", "model")).with_file_name("model_sharded");
    let (endpoint, log) = serve_repo("mechlens-test/tiny-gpt2", &folder);
    let cache = temp_dir("hub-cache");

    let model = HookedTransformer::from_pretrained(
        "mechlens-test/tiny-gpt2",
        hub(cache.clone(), endpoint, false),
    )
    .unwrap();
    let reference = load(&fixture("gpt2", "reference"));
    let logits = model.forward(&reference["tokens"]).unwrap();
    assert_close(
        "downloaded gpt2 logits",
        &logits,
        &reference["logits"],
        1e-4,
    );

    // Python's layout: refs/main names the commit, the snapshot holds every shard.
    let repo = cache.join("models--mechlens-test--tiny-gpt2");
    let main = std::fs::read_to_string(repo.join("refs").join("main")).unwrap();
    assert_eq!(main.trim(), COMMIT);
    let snapshot = repo.join("snapshots").join(COMMIT);
    for entry in std::fs::read_dir(&folder).unwrap() {
        let name = entry.unwrap().file_name();
        if name != "generation_config.json" {
            assert!(snapshot.join(&name).is_file(), "{name:?} not downloaded");
        }
    }
    let asked = log.lock().unwrap().clone();
    assert!(
        !asked.iter().any(|p| p.ends_with("generation_config.json")),
        "fetched a file a load never reads: {asked:?}"
    );

    // Offline, with the hub gone from the settings, the cached copy loads.
    let again = HookedTransformer::from_pretrained(
        "mechlens-test/tiny-gpt2",
        hub(cache, "http://127.0.0.1:9".into(), true),
    )
    .unwrap();
    let logits = again.forward(&reference["tokens"]).unwrap();
    assert_close("cached gpt2 logits", &logits, &reference["logits"], 1e-4);
}

fn load_err(name: &str, opts: LoadOptions) -> String {
    match HookedTransformer::from_pretrained(name, opts) {
        Ok(_) => panic!("`{name}` loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_model_nowhere_is_a_clear_error() {
    let cache = temp_dir("hub-empty");
    let cache_shown = cache.display().to_string();
    // A port nobody listens on: connection refused, as offline.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };

    let unreachable = load_err(
        "org/absent-model",
        hub(cache.clone(), closed.clone(), false),
    );
    for part in ["org/absent-model", &cache_shown, &closed, "HF_HUB_OFFLINE"] {
        assert!(
            unreachable.contains(part),
            "`{part}` missing: {unreachable}"
        );
    }

    let offline = load_err("org/absent-model", hub(cache.clone(), closed.clone(), true));
    assert!(offline.contains("HF_HUB_OFFLINE is set"), "{offline}");
    assert!(offline.contains(&cache_shown), "{offline}");

    let (endpoint, _) = serve_repo(
        "mechlens-test/other",
        &PathBuf::from(fixture("gpt2", "model")),
    );
    let unknown = load_err("mechlens-test/absent", hub(cache.clone(), endpoint, false));
    assert!(
        unknown.contains("404") && unknown.contains("no public repository"),
        "{unknown}"
    );

    let path = load_err("./no/such/folder", hub(cache, closed, false));
    assert!(path.contains("not a hub repository id"), "{path}");
}
