//! SAELens' release list, `pretrained_saes.yaml`: which hub repository and folder each
//! `(release, sae_id)` names, which converter reads it, and the per-release config overrides
//! and per-SAE norm scaling factors that `SAE.from_pretrained` applies.

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result};
use serde_json::{Map, Value};

/// A release's entry in `pretrained_saes.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    /// The release name.
    pub name: String,
    /// The hub repository.
    pub repo_id: String,
    /// SAELens' converter for releases not in its folder format (`gemma_2`, `llama_scope` ...).
    pub conversion_func: Option<String>,
    /// `config_overrides`: config fields SAELens sets over what the files say.
    pub config_overrides: Map<String, Value>,
    /// The SAEs, in the file's order.
    pub saes: Vec<ReleaseSae>,
}

/// One SAE of a release.
#[derive(Clone, Debug, PartialEq)]
pub struct ReleaseSae {
    /// The id users pass (`blocks.8.hook_resid_pre`).
    pub id: String,
    /// Its path in the repository (a folder, or a file for some converters).
    pub path: String,
    /// Scale folded into the weights when the config says `expected_average_only_in`.
    pub norm_scaling_factor: Option<f64>,
    /// Its Neuronpedia id, kept as metadata.
    pub neuronpedia: Option<String>,
}

impl Release {
    /// The SAE called `sae_id`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming a few ids the release has.
    pub fn sae(&self, sae_id: &str) -> Result<&ReleaseSae> {
        self.saes.iter().find(|s| s.id == sae_id).ok_or_else(|| {
            let ids: Vec<&str> = self.saes.iter().take(8).map(|s| s.id.as_str()).collect();
            Error::invalid(
                "SAE id",
                format!(
                    "`{sae_id}` is not in release {}; it has {} SAEs, e.g. {}",
                    self.name,
                    self.saes.len(),
                    ids.join(", ")
                ),
            )
        })
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

/// Which part of a release the parser is in.
#[derive(PartialEq)]
enum Block {
    Other,
    Overrides,
    Saes,
}

/// The releases of a `pretrained_saes.yaml`. Only SAELens' layout is read: top-level release
/// keys; at indent 2 `repo_id`, `conversion_func`, `config_overrides` (scalars, or one nested
/// level) and `saes`, whose items start with `- ` at indent 2 and keep `id`, `path`,
/// `norm_scaling_factor` and `neuronpedia` at indent 4.
fn parse_releases(text: &str) -> Vec<Release> {
    let mut out: Vec<Release> = Vec::new();
    let mut block = Block::Other;
    // The override key a deeper (indent 6) line belongs to.
    let mut nested_key: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            if let Some(name) = line.trim_end().strip_suffix(':') {
                out.push(Release {
                    name: unquote(name).to_string(),
                    repo_id: String::new(),
                    conversion_func: None,
                    config_overrides: Map::new(),
                    saes: Vec::new(),
                });
                block = Block::Other;
            }
            continue;
        }
        let Some(release) = out.last_mut() else {
            continue;
        };
        if indent == 2 {
            if let Some(item) = trimmed.strip_prefix("- ") {
                release.saes.push(ReleaseSae {
                    id: String::new(),
                    path: String::new(),
                    norm_scaling_factor: None,
                    neuronpedia: None,
                });
                block = Block::Saes;
                set_sae_field(release, item);
                continue;
            }
            let Some((key, value)) = key_value(trimmed) else {
                continue;
            };
            block = match key {
                "config_overrides" => Block::Overrides,
                "saes" => Block::Saes,
                _ => Block::Other,
            };
            match key {
                "repo_id" => release.repo_id = value.to_string(),
                "conversion_func" => {
                    release.conversion_func =
                        (!value.is_empty() && value != "null").then(|| value.to_string());
                }
                _ => {}
            }
            continue;
        }
        match block {
            Block::Saes if indent == 4 => set_sae_field(release, trimmed),
            Block::Overrides if indent == 4 => {
                if let Some((key, value)) = key_value(trimmed) {
                    let v = if value.is_empty() {
                        Value::Object(Map::new())
                    } else {
                        scalar(value)
                    };
                    release.config_overrides.insert(key.to_string(), v);
                    nested_key = Some(key.to_string());
                }
            }
            Block::Overrides if indent == 6 => {
                let parent = nested_key
                    .as_ref()
                    .and_then(|k| release.config_overrides.get_mut(k))
                    .and_then(Value::as_object_mut);
                if let (Some(parent), Some((key, value))) = (parent, key_value(trimmed)) {
                    parent.insert(key.to_string(), scalar(value));
                }
            }
            _ => {}
        }
    }
    out
}

/// Sets an `id`, `path`, `norm_scaling_factor` or `neuronpedia` line of the last SAE item.
fn set_sae_field(release: &mut Release, text: &str) {
    let (Some(sae), Some((key, value))) = (release.saes.last_mut(), key_value(text)) else {
        return;
    };
    match key {
        "id" => sae.id = value.to_string(),
        "path" => sae.path = value.to_string(),
        "norm_scaling_factor" => sae.norm_scaling_factor = value.parse().ok(),
        "neuronpedia" => sae.neuronpedia = Some(value.to_string()),
        _ => {}
    }
}

/// `key: value` with the value unquoted (empty for a block start).
fn key_value(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once(':')?;
    Some((key.trim(), unquote(value.trim())))
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '\'' || c == '"')
}

/// A YAML scalar as JSON: numbers, booleans and null as such, anything else a string.
fn scalar(value: &str) -> Value {
    match value {
        "null" | "~" => Value::Null,
        "true" | "True" => Value::Bool(true),
        "false" | "False" => Value::Bool(false),
        _ => serde_json::from_str::<serde_json::Number>(value)
            .map_or_else(|_| Value::String(value.to_string()), Value::Number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_from_saelens_layout() {
        let text = "\
gpt2-small-res-jb:
  config_overrides:
    dataset_path: Skylion007/openwebtext
    model_from_pretrained_kwargs:
      center_writing_weights: true
  conversion_func: null
  links:
    model: https://example.org
  model: gpt2-small
  repo_id: jbloom/GPT2-Small-SAEs-Reformatted
  saes:
  - id: blocks.0.hook_resid_pre
    path: blocks.0.hook_resid_pre
    l0: 13.0
    norm_scaling_factor: 1.25
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
        let jb = &releases[0];
        assert_eq!(jb.repo_id, "jbloom/GPT2-Small-SAEs-Reformatted");
        assert_eq!(jb.conversion_func, None);
        assert_eq!(
            Value::Object(jb.config_overrides.clone()),
            serde_json::json!({"dataset_path": "Skylion007/openwebtext",
                "model_from_pretrained_kwargs": {"center_writing_weights": true}})
        );
        let ids: Vec<(&str, &str)> = jb
            .saes
            .iter()
            .map(|s| (s.id.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("blocks.0.hook_resid_pre", "blocks.0.hook_resid_pre"),
                ("blocks.1.hook_resid_pre", "blocks.1.hook_resid_pre")
            ]
        );
        assert_eq!(jb.saes[0].norm_scaling_factor, Some(1.25));
        assert_eq!(
            jb.saes[1].neuronpedia.as_deref(),
            Some("gpt2-small/1-res-jb")
        );
        assert_eq!(releases[1].conversion_func.as_deref(), Some("gemma_2"));
        assert_eq!(releases[1].saes.len(), 1);
        let err = releases[1].sae("layer_9").unwrap_err().to_string();
        assert!(
            err.contains("layer_9") && err.contains("layer_0/width_16k"),
            "{err}"
        );
    }
}
