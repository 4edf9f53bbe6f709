//! Pretrained SAEs from the Hugging Face hub.
//!
//! - [`Sae::from_hub`]: an SAELens folder (`cfg.json`, `sae_weights.safetensors`, optional
//!   `sparsity.safetensors`) at `path` inside a hub repository. The hub cache (Python's
//!   layout, shared with `HookedTransformer::from_pretrained`) is read first; otherwise the
//!   files are downloaded with `hf-hub` unless `HF_HUB_OFFLINE` is set.
//! - [`Sae::from_pretrained`]: SAELens' release names (`gpt2-small-res-jb`,
//!   `blocks.8.hook_resid_pre`), resolved to a repository and path through SAELens' own
//!   `pretrained_saes.yaml` — from `$SAE_LENS_PRETRAINED_YAML`, or the `sae-lens` package in
//!   the project's `.venv`, which setup installs. Releases stored in SAELens' folder format
//!   load; those SAELens converts on load (Gemma Scope's `params.npz`, Llama Scope, …) are
//!   refused by name.

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};
use mechlens_models::Hub;
use tch::Device;

use crate::format::{CFG_FILE, SPARSITY_FILE, WEIGHTS_FILE};
use crate::sae::Sae;

/// A release's entry in `pretrained_saes.yaml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The release name.
    pub name: String,
    /// The hub repository.
    pub repo_id: String,
    /// SAELens' converter for releases not in its folder format.
    pub conversion_func: Option<String>,
    /// `(sae_id, path in the repository)`.
    pub saes: Vec<(String, String)>,
}

impl Sae {
    /// The SAELens folder at `path` in hub repository `repo_id`, from the cache or
    /// downloaded (see the module docs). `hub` is usually `Hub::from_env()`.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`] saying where we looked and why nothing was downloaded
    /// (offline, unreachable, no such repository or folder); [`Sae::load`]'s errors.
    pub fn from_hub(hub: &Hub, repo_id: &str, path: &str, device: Device) -> Result<Sae> {
        let path = path.trim_matches('/');
        let file = |name: &str| format!("{path}/{name}");
        // The weights are fetched after cfg.json: a snapshot with them holds both.
        let snapshot = match hub.cached_snapshot(repo_id, &file(WEIGHTS_FILE)) {
            Some(snapshot) => snapshot,
            None => hub
                .download_files(
                    repo_id,
                    &[file(CFG_FILE), file(WEIGHTS_FILE)],
                    &[file(SPARSITY_FILE)],
                )
                .map_err(|why| Error::ModelNotFound {
                    name: format!("{repo_id}/{path}"),
                    reason: format!(
                        "no SAELens folder for it in the Hugging Face cache ({}), and {why}",
                        hub.cache.display()
                    ),
                })?,
        };
        Sae::load(snapshot.join(path), device)
    }

    /// SAELens' `SAE.from_pretrained(release, sae_id)`: looks the release up in SAELens'
    /// `pretrained_saes.yaml`, then [`Sae::from_hub`] with the environment's hub settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown release or SAE id (with what exists),
    /// [`Error::Unsupported`] for a release SAELens converts from another format; the
    /// errors of [`find_release`] and [`Sae::from_hub`].
    pub fn from_pretrained(release: &str, sae_id: &str, device: Device) -> Result<Sae> {
        Self::from_release(
            &Hub::from_env(),
            &pretrained_yaml()?,
            release,
            sae_id,
            device,
        )
    }

    /// [`Sae::from_pretrained`] with explicit hub settings and release list.
    ///
    /// # Errors
    /// As [`Sae::from_pretrained`].
    pub fn from_release(
        hub: &Hub,
        yaml: &Path,
        release: &str,
        sae_id: &str,
        device: Device,
    ) -> Result<Sae> {
        let entry = find_release(yaml, release)?;
        if let Some(conversion) = &entry.conversion_func {
            return Err(Error::Unsupported {
                what: "SAELens conversion",
                name: format!("{conversion} (release {release} is not stored as SAELens folders)"),
                supported: vec!["releases stored as SAELens folders (no conversion_func)".into()],
            });
        }
        let Some((_, path)) = entry.saes.iter().find(|(id, _)| id == sae_id) else {
            let ids: Vec<&str> = entry
                .saes
                .iter()
                .take(8)
                .map(|(id, _)| id.as_str())
                .collect();
            return Err(Error::invalid(
                "SAE id",
                format!(
                    "`{sae_id}` is not in release {release}; it has {} SAEs, e.g. {}",
                    entry.saes.len(),
                    ids.join(", ")
                ),
            ));
        };
        Sae::from_hub(hub, &entry.repo_id, path, device)
    }
}

/// SAELens' `pretrained_saes.yaml`: `$SAE_LENS_PRETRAINED_YAML`, else the `sae-lens`
/// package in a `.venv` of the current folder or one above it.
///
/// # Errors
/// [`Error::InvalidInput`] saying where we looked, when there is none.
pub fn pretrained_yaml() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SAE_LENS_PRETRAINED_YAML") {
        return Ok(PathBuf::from(p));
    }
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in start.ancestors() {
        let Ok(libs) = std::fs::read_dir(dir.join(".venv").join("lib")) else {
            continue;
        };
        for lib in libs.flatten() {
            let yaml = lib
                .path()
                .join("site-packages/sae_lens/pretrained_saes.yaml");
            if yaml.is_file() {
                return Ok(yaml);
            }
        }
    }
    Err(Error::invalid(
        "SAELens release list",
        format!(
            "no pretrained_saes.yaml: set SAE_LENS_PRETRAINED_YAML, or run from the project \
             (its .venv has sae-lens; looked in .venv/lib/*/site-packages/sae_lens above {}); \
             or load by repository and path with Sae::from_hub",
            start.display()
        ),
    ))
}

/// The release `name` in a `pretrained_saes.yaml` file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::InvalidInput`] for a release it does
/// not list (with close names).
pub fn find_release(yaml: &Path, name: &str) -> Result<Release> {
    let text = std::fs::read_to_string(yaml).map_err(|source| Error::Io {
        action: "reading",
        path: yaml.to_path_buf(),
        source,
    })?;
    let releases = parse_releases(&text);
    if let Some(r) = releases.iter().find(|r| r.name == name) {
        return Ok(r.clone());
    }
    let stem = name.split('-').next().unwrap_or(name);
    let close: Vec<&str> = releases
        .iter()
        .map(|r| r.name.as_str())
        .filter(|r| r.contains(stem))
        .take(8)
        .collect();
    Err(Error::invalid(
        "SAE release",
        format!(
            "`{name}` is not among the {} releases in {}; similar: {}",
            releases.len(),
            yaml.display(),
            if close.is_empty() {
                "none".into()
            } else {
                close.join(", ")
            }
        ),
    ))
}

/// The releases of a `pretrained_saes.yaml`: top-level keys, their `repo_id` and
/// `conversion_func`, and each `saes` item's `id` and `path`. Only this layout is read.
fn parse_releases(text: &str) -> Vec<Release> {
    let value = |line: &str, key: &str| -> Option<String> {
        let rest = line
            .trim_start()
            .strip_prefix("- ")
            .unwrap_or(line.trim_start());
        rest.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    };
    let mut out: Vec<Release> = Vec::new();
    let mut pending_id: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && !line.starts_with('-') {
            if let Some(name) = line.trim_end().strip_suffix(':') {
                out.push(Release {
                    name: name.trim_matches(|c| c == '\'' || c == '"').to_string(),
                    repo_id: String::new(),
                    conversion_func: None,
                    saes: Vec::new(),
                });
                pending_id = None;
            }
            continue;
        }
        let Some(release) = out.last_mut() else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        if indent <= 2 && !line.trim_start().starts_with('-') {
            if let Some(v) = value(line, "repo_id") {
                release.repo_id = v;
            } else if let Some(v) = value(line, "conversion_func") {
                release.conversion_func = (!v.is_empty() && v != "null").then_some(v);
            }
            continue;
        }
        if let Some(id) = value(line, "id").filter(|_| line.trim_start().starts_with("- ")) {
            pending_id = Some(id);
        } else if let (Some(path), Some(id)) = (value(line, "path"), pending_id.as_ref()) {
            release.saes.push((id.clone(), path));
            pending_id = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_from_saelens_layout() {
        let text = "\
gpt2-small-res-jb:
  conversion_func: null
  links:
    model: https://example.org
  model: gpt2-small
  repo_id: jbloom/GPT2-Small-SAEs-Reformatted
  saes:
  - id: blocks.0.hook_resid_pre
    path: blocks.0.hook_resid_pre
    l0: 13.0
  - id: 'blocks.1.hook_resid_pre'
    neuronpedia: gpt2-small/1-res-jb
    path: blocks.1.hook_resid_pre
gemma-scope-2b-pt-res:
  conversion_func: gemma_2
  repo_id: google/gemma-scope-2b-pt-res
  saes:
  - id: layer_0/width_16k/average_l0_105
    path: layer_0/width_16k/average_l0_105
";
        let releases = parse_releases(text);
        assert_eq!(releases.len(), 2);
        assert_eq!(releases[0].repo_id, "jbloom/GPT2-Small-SAEs-Reformatted");
        assert_eq!(releases[0].conversion_func, None);
        assert_eq!(
            releases[0].saes,
            [
                (
                    "blocks.0.hook_resid_pre".into(),
                    "blocks.0.hook_resid_pre".into()
                ),
                (
                    "blocks.1.hook_resid_pre".into(),
                    "blocks.1.hook_resid_pre".into()
                )
            ]
        );
        assert_eq!(releases[1].conversion_func.as_deref(), Some("gemma_2"));
        assert_eq!(releases[1].saes.len(), 1);
    }
}
