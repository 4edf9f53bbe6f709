//! Where `from_pretrained(name_or_path)` finds a model: a local folder, else the Hugging Face
//! hub cache in the layout the Python `huggingface_hub` and the Rust `hf-hub` crate share
//! (`$HF_HUB_CACHE` or `$HF_HOME/hub` or `~/.cache/huggingface/hub`,
//! `models--{org}--{name}/snapshots/{revision}/`).

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};

/// The hub cache folder.
pub fn hub_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("huggingface").join("hub")
}

/// The folder holding `name_or_path`'s `config.json`.
///
/// # Errors
/// [`Error::InvalidInput`] saying where we looked, when neither a folder nor a cached
/// snapshot exists.
pub fn resolve(name_or_path: &str) -> Result<PathBuf> {
    let local = Path::new(name_or_path);
    if local.join("config.json").is_file() {
        return Ok(local.to_path_buf());
    }
    if local.is_dir() {
        return Err(Error::invalid(
            "model folder",
            format!("{} has no config.json", local.display()),
        ));
    }
    let cache = hub_cache_dir();
    let repo = cache.join(format!("models--{}", name_or_path.replace('/', "--")));
    let revision = std::fs::read_to_string(repo.join("refs").join("main")).ok();
    let snapshots = repo.join("snapshots");
    let mut candidates: Vec<PathBuf> = match revision {
        Some(rev) => vec![snapshots.join(rev.trim())],
        None => std::fs::read_dir(&snapshots)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default(),
    };
    candidates.sort();
    if let Some(found) = candidates
        .into_iter()
        .find(|dir| dir.join("config.json").is_file())
    {
        return Ok(found);
    }
    Err(Error::invalid(
        "model",
        format!(
            "`{name_or_path}` is neither a folder with config.json nor in the Hugging Face cache ({}); \
             download it first (e.g. `huggingface-cli download {name_or_path}`) — mechlens does not download models itself yet",
            cache.display()
        ),
    ))
}
