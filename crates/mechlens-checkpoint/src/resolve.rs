//! Where `from_pretrained(name_or_path)` finds a model, in TransformerLens' order: a local
//! folder; else the Hugging Face hub cache in the layout the Python `huggingface_hub` and the
//! Rust `hf-hub` crate share (`$HF_HUB_CACHE` or `$HF_HOME/hub` or `~/.cache/huggingface/hub`,
//! `models--{org}--{name}/snapshots/{revision}/`); else a download into that cache with
//! `hf-hub` (feature `hub`, on by default), unless `HF_HUB_OFFLINE` is set.

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};

/// Where the hub cache is, where to download from, and whether we may.
///
/// [`Hub::from_env`] reads the same variables as Python's `huggingface_hub`; build one by hand
/// to point at another cache or mirror without touching the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hub {
    /// The hub cache folder (the one holding `models--*`).
    pub cache: PathBuf,
    /// The hub's address (`$HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// Never download (`$HF_HUB_OFFLINE` set to anything but `0`/`false`/empty).
    pub offline: bool,
}

impl Hub {
    /// Settings from `HF_HUB_CACHE`, `HF_HOME`, `HF_ENDPOINT` and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                !matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "" | "0" | "false" | "no"
                )
            })
            .unwrap_or(false);
        Self {
            cache: hub_cache_dir(),
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".to_string()),
            offline,
        }
    }

    /// The folder holding `name_or_path`'s `config.json`, downloading it if need be.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a folder without `config.json`; [`Error::ModelNotFound`]
    /// saying every place we looked, when the model is nowhere and cannot be downloaded.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
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
        if let Some(found) = self.cached(name_or_path) {
            return Ok(found);
        }
        let not_here = format!(
            "it is neither a folder with config.json nor in the Hugging Face cache ({})",
            self.cache.display()
        );
        let not_found = |why: String| Error::ModelNotFound {
            name: name_or_path.to_string(),
            reason: format!("{not_here}, and {why}"),
        };
        if !looks_like_repo_id(name_or_path) {
            return Err(not_found(
                "it is not a hub repository id (`org/name` or `name`) to download".into(),
            ));
        }
        if self.offline {
            return Err(not_found(
                "HF_HUB_OFFLINE is set, so it was not downloaded; download it where you are online \
                 (e.g. `huggingface-cli download NAME`) or pass a local folder"
                    .into(),
            ));
        }
        self.download(name_or_path).map_err(not_found)
    }

    /// The cached snapshot of `repo_id` that has a `config.json`: `refs/main`'s, else any.
    fn cached(&self, repo_id: &str) -> Option<PathBuf> {
        self.cached_snapshot(repo_id, "config.json")
    }

    /// The cached snapshot folder of `repo_id` that holds the file `relative` (a path inside
    /// the repository): `refs/main`'s revision, else any.
    pub fn cached_snapshot(&self, repo_id: &str, relative: &str) -> Option<PathBuf> {
        let repo = self
            .cache
            .join(format!("models--{}", repo_id.replace('/', "--")));
        let snapshots = repo.join("snapshots");
        let mut candidates: Vec<PathBuf> =
            match std::fs::read_to_string(repo.join("refs").join("main")) {
                Ok(rev) => vec![snapshots.join(rev.trim())],
                Err(_) => std::fs::read_dir(&snapshots)
                    .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default(),
            };
        candidates.sort();
        candidates
            .into_iter()
            .find(|dir| dir.join(relative).is_file())
    }

    /// Downloads files of `repo_id` into the cache: every one of `required` (an error names
    /// one the repository lacks), and those of `optional` it has. Returns the snapshot folder.
    ///
    /// # Errors
    /// A sentence saying what failed (offline setting, hub unreachable, repository unknown,
    /// a required file missing), for the caller's not-found error.
    pub fn download_files(
        &self,
        repo_id: &str,
        required: &[String],
        optional: &[String],
    ) -> std::result::Result<PathBuf, String> {
        if self.offline {
            return Err("HF_HUB_OFFLINE is set, so it was not downloaded".into());
        }
        self.fetch_files(repo_id, required, optional)
    }

    #[cfg(feature = "hub")]
    fn fetch_files(
        &self,
        repo_id: &str,
        required: &[String],
        optional: &[String],
    ) -> std::result::Result<PathBuf, String> {
        crate::download::fetch_files(self, repo_id, required, optional)
    }

    #[cfg(not(feature = "hub"))]
    fn fetch_files(
        &self,
        _repo_id: &str,
        _required: &[String],
        _optional: &[String],
    ) -> std::result::Result<PathBuf, String> {
        Err("mechlens-models was built without its `hub` feature, so it cannot download".into())
    }

    #[cfg(feature = "hub")]
    fn download(&self, repo_id: &str) -> std::result::Result<PathBuf, String> {
        crate::download::fetch(self, repo_id)
    }

    #[cfg(not(feature = "hub"))]
    fn download(&self, _repo_id: &str) -> std::result::Result<PathBuf, String> {
        Err("mechlens-models was built without its `hub` feature, so it cannot download".into())
    }
}

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

/// `name` or `org/name`, each part of letters, digits, `-`, `_`, `.` (not starting with `.`):
/// anything else is a path the user meant, and a download would only confuse the error.
fn looks_like_repo_id(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::looks_like_repo_id;

    #[test]
    fn repo_ids_and_paths_are_told_apart() {
        for id in [
            "gpt2",
            "EleutherAI/pythia-70m",
            "roneneldan/TinyStories-1M",
            "a.b_c",
        ] {
            assert!(looks_like_repo_id(id), "{id}");
        }
        for path in [
            "./gpt2",
            "/tmp/model",
            "a/b/c",
            "",
            "~/m",
            "org/",
            "../x",
            "a b",
        ] {
            assert!(!looks_like_repo_id(path), "{path}");
        }
    }
}
