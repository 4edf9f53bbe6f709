//! Pretrained SAEs from the Hugging Face hub.
//!
//! - [`Sae::from_pretrained`]: SAELens' release names (`gpt2-small-res-jb`,
//!   `blocks.8.hook_resid_pre`), resolved to a repository and path through SAELens' own
//!   `pretrained_saes.yaml` — from `$SAE_LENS_PRETRAINED_YAML`, or the `sae-lens` package in
//!   the project's `.venv`, which setup installs. As SAELens does, it applies the release's
//!   `config_overrides` and folds a listed `norm_scaling_factor` into the weights of SAEs
//!   trained with `expected_average_only_in`.
//! - Releases in SAELens' folder format load with [`Sae::from_hub`]: `cfg.json`,
//!   `sae_weights.safetensors` (optional `sparsity.safetensors`) at `path` in a repository.
//! - Releases SAELens converts on load load with [`Sae::from_hub_converted`]: Gemma Scope
//!   (`params.npz`), Gemma Scope 2, Llama Scope (and its R1 distill), dictionary_learning /
//!   SAEBench, Qwen Scope, Goodfire, DeepSeek R1 and the GPT-2 `hook_z` SAEs, each read as its
//!   SAELens converter reads it. Transcoders and temporal SAEs are refused by name.
//!
//! The hub cache (Python's layout, shared with `HookedTransformer::from_pretrained`) is read
//! first; otherwise the files are downloaded with `hf-hub` unless `HF_HUB_OFFLINE` is set.

mod convert;
mod files;
mod releases;

use std::path::PathBuf;

use mechlens_checkpoint::Checkpoint;
use mechlens_checkpoint::Hub;
use mechlens_core::{Error, Result};
use serde_json::{Map, Value, json};
use tch::{Device, Kind};

use crate::config::{ActivationNorm, SaeConfig};
use crate::format::{CFG_FILE, SPARSITY_FILE, WEIGHTS_FILE};
use crate::sae::Sae;
use convert::Format;
pub use releases::{Release, ReleaseSae, find_release, pretrained_yaml};

/// The snapshot folder holding `required` (and those of `optional` the repository has) for
/// `repo_id`: the cache's, else a download. `what` names the thing in the error.
fn fetch(
    hub: &Hub,
    repo_id: &str,
    required: &[String],
    optional: &[String],
    what: &str,
) -> Result<PathBuf> {
    // Files are fetched in order: a snapshot with the last required one holds them all.
    let last = required.last().map_or("", String::as_str);
    if let Some(snapshot) = hub.cached_snapshot(repo_id, last) {
        return Ok(snapshot);
    }
    hub.download_files(repo_id, required, optional)
        .map_err(|why| Error::ModelNotFound {
            name: format!("{repo_id}/{what}"),
            reason: format!(
                "no copy in the Hugging Face cache ({}), and {why}",
                hub.cache.display()
            ),
        })
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
        let snapshot = fetch(
            hub,
            repo_id,
            &[file(CFG_FILE), file(WEIGHTS_FILE)],
            &[file(SPARSITY_FILE)],
            &format!("{path} (an SAELens folder)"),
        )?;
        Sae::load(snapshot.join(path), device)
    }

    /// The SAE at `path` in hub repository `repo_id`, stored in the format SAELens'
    /// converter `conversion` reads (`gemma_2`, `llama_scope`, `dictionary_learning_1` ...),
    /// converted the same way. Parameters load as float32, as SAELens' `from_pretrained`
    /// gives them by default.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for transcoders and unknown converters; [`Error::ModelNotFound`]
    /// as [`Sae::from_hub`]; [`Error::WeightFile`], [`Error::MissingWeight`],
    /// [`Error::Config`] for files that are not what the converter expects.
    pub fn from_hub_converted(
        hub: &Hub,
        conversion: &str,
        repo_id: &str,
        path: &str,
        device: Device,
    ) -> Result<Sae> {
        Self::convert(hub, conversion, repo_id, path, &Map::new(), device)
    }

    fn convert(
        hub: &Hub,
        conversion: &str,
        repo_id: &str,
        path: &str,
        overrides: &Map<String, Value>,
        device: Device,
    ) -> Result<Sae> {
        let path = path.trim_matches('/');
        let format = Format::from_name(conversion, path)?;
        let (required, optional) = format.files(path);
        let snapshot = fetch(
            hub,
            repo_id,
            &required,
            &optional,
            &format!("{path} (a {conversion} SAE)"),
        )?;
        let converted = format.convert(repo_id, path, &snapshot)?;
        let mut cfg = converted.cfg;
        cfg.extend(overrides.clone());
        cfg.insert("dtype".into(), json!("float32"));
        let origin = snapshot.join(path);
        let config = SaeConfig::from_json(
            &Value::Object(cfg),
            &format!("{} (converted by {conversion})", origin.display()),
        )?;
        let weights = Checkpoint::from_tensors(origin, converted.tensors, Kind::Float, device);
        Sae::from_weights(config, &weights)
    }

    /// SAELens' `SAE.from_pretrained(release, sae_id)`: looks the release up in SAELens'
    /// `pretrained_saes.yaml`, then [`Sae::from_release`] with the environment's hub
    /// settings.
    ///
    /// # Errors
    /// As [`Sae::from_release`], and [`pretrained_yaml`]'s when SAELens' list is not found.
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
    /// [`Error::InvalidInput`] for an unknown release or SAE id (with what exists);
    /// [`Sae::from_hub`]'s or [`Sae::from_hub_converted`]'s errors.
    pub fn from_release(
        hub: &Hub,
        yaml: &std::path::Path,
        release: &str,
        sae_id: &str,
        device: Device,
    ) -> Result<Sae> {
        let entry = find_release(yaml, release)?;
        let sae_entry = entry.sae(sae_id)?;
        let mut sae = match &entry.conversion_func {
            None => {
                let mut sae = Sae::from_hub(hub, &entry.repo_id, &sae_entry.path, device)?;
                // A v6 cfg.json keeps these under `metadata`; the overrides name them there.
                sae.cfg.metadata.extend(entry.config_overrides.clone());
                sae
            }
            Some(conversion) => Self::convert(
                hub,
                conversion,
                &entry.repo_id,
                &sae_entry.path,
                &entry.config_overrides,
                device,
            )?,
        };
        if let Some(id) = &sae_entry.neuronpedia {
            sae.cfg.metadata.insert("neuronpedia_id".into(), json!(id));
        }
        if sae.cfg.normalize_activations == ActivationNorm::ExpectedAverageOnlyIn
            && let Some(factor) = sae_entry.norm_scaling_factor
        {
            sae.fold_activation_norm_scaling_factor(factor)?;
        }
        Ok(sae)
    }

    /// Folds the constant input scale of an `expected_average_only_in` SAE into its weights
    /// (`W_enc · s`, `W_dec / s`, `b_dec / s`), so that it reads activations as they come;
    /// the config then says `none`. SAELens' `fold_activation_norm_scaling_factor`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a scale that is not finite and positive.
    pub fn fold_activation_norm_scaling_factor(&mut self, scale: f64) -> Result<()> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::invalid(
                "norm scaling factor",
                format!("expected a finite positive number, got {scale}"),
            ));
        }
        self.w_enc = self.w_enc.f_mul_scalar(scale)?;
        self.w_dec = self.w_dec.f_div_scalar(scale)?;
        self.b_dec = self.b_dec.f_div_scalar(scale)?;
        self.cfg.normalize_activations = ActivationNorm::None;
        Ok(())
    }
}
