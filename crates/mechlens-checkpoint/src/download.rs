//! Downloading a model from the Hugging Face hub into the shared cache, with `hf-hub`.
//!
//! We fetch only what a load reads: `config.json`, one weight format (safetensors first,
//! sharded or not, else `pytorch_model.bin`), and the tokenizer files. The files land in the
//! cache layout Python uses, so the next load (ours or theirs) finds them offline.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};

use crate::resolve::Hub;

/// Tokenizer files a load may read; each is fetched when the repository has it.
const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
];

/// Downloads `repo_id` and returns its snapshot folder.
///
/// # Errors
/// A sentence saying what failed (the hub unreachable, the repository unknown or gated, no
/// weights we can read), for [`mechlens_core::Error::ModelNotFound`].
pub(crate) fn fetch(hub: &Hub, repo_id: &str) -> Result<PathBuf, String> {
    let (repo, listed) = open_repo(hub, repo_id)?;
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    if !listed.contains(&"config.json") {
        return Err(format!("{repo_id} on {} has no config.json", hub.endpoint));
    }
    let mut wanted = vec!["config.json".to_string()];
    wanted.extend(weight_files(&repo, &listed)?);
    wanted.extend(
        TOKENIZER_FILES
            .iter()
            .filter(|f| listed.contains(f))
            .map(|f| (*f).to_string()),
    );
    let mut config = None;
    for file in &wanted {
        let path = repo
            .get(file)
            .map_err(|e| format!("downloading {file} from {} failed: {e}", hub.endpoint))?;
        if file == "config.json" {
            config = Some(path);
        }
    }
    config
        .and_then(|p| p.parent().map(PathBuf::from))
        .ok_or_else(|| "the download left no config.json".to_string())
}

/// Downloads `required` files (each must be listed) and the listed ones of `optional`;
/// returns the snapshot folder they landed in.
pub(crate) fn fetch_files(
    hub: &Hub,
    repo_id: &str,
    required: &[String],
    optional: &[String],
) -> Result<PathBuf, String> {
    let (repo, listed) = open_repo(hub, repo_id)?;
    if let Some(missing) = required.iter().find(|f| !listed.contains(f)) {
        return Err(format!("{repo_id} on {} has no {missing}", hub.endpoint));
    }
    let mut snapshot = None;
    for file in required
        .iter()
        .chain(optional.iter().filter(|f| listed.contains(f)))
    {
        let path = repo
            .get(file)
            .map_err(|e| format!("downloading {file} from {} failed: {e}", hub.endpoint))?;
        // The file sits at `snapshot/<file>`: strip as many components as it has.
        snapshot = path
            .ancestors()
            .nth(Path::new(file).components().count())
            .map(Path::to_path_buf);
    }
    snapshot.ok_or_else(|| "nothing was downloaded".to_string())
}

/// The hub client for `repo_id` and the files the repository lists.
fn open_repo(hub: &Hub, repo_id: &str) -> Result<(ApiRepo, Vec<String>), String> {
    let mut builder = ApiBuilder::new();
    // The token file under HF_HOME is read by `new`; the variable wins, as in Python.
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder
        .with_cache_dir(hub.cache.clone())
        .with_endpoint(hub.endpoint.clone())
        .with_progress(false)
        .build()
        .map_err(|e| format!("the hub client could not start: {e}"))?;
    let repo = api.model(repo_id.to_string());
    let info = repo.info().map_err(|e| {
        let e = e.to_string();
        let hint = if ["401", "403", "404"]
            .iter()
            .any(|code| e.contains(&format!("status code {code}")))
        {
            "the hub has no public repository by that name (a gated or private one needs a \
             token: HF_TOKEN or `huggingface-cli login`)"
        } else {
            "if you are offline, set HF_HUB_OFFLINE=1 and load a local folder"
        };
        format!("asking {} for {repo_id} failed ({e}); {hint}", hub.endpoint)
    })?;
    let listed = info.siblings.into_iter().map(|s| s.rfilename).collect();
    Ok((repo, listed))
}

/// The weight files to fetch, in the order `Checkpoint` prefers them.
fn weight_files(repo: &ApiRepo, listed: &[&str]) -> Result<Vec<String>, String> {
    for (single, index) in [
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ] {
        if listed.contains(&single) {
            return Ok(vec![single.to_string()]);
        }
        if listed.contains(&index) {
            let path = repo
                .get(index)
                .map_err(|e| format!("downloading {index} failed: {e}"))?;
            let mut files = vec![index.to_string()];
            files.extend(shards(&path)?);
            return Ok(files);
        }
    }
    Err(format!(
        "it has no model.safetensors, sharded safetensors or pytorch_model.bin (files: {})",
        listed.join(", ")
    ))
}

/// The distinct shard files an `index.json`'s `weight_map` names.
fn shards(index: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index)
        .map_err(|e| format!("reading {} failed: {e}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{} has no weight_map", index.display()))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}
