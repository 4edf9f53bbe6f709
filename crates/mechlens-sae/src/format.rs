//! SAELens' folder format: `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`,
//! the log10 firing rate of each latent under the key `sparsity`).
//!
//! Files are written to a temporary name and renamed into place, so an interrupted save
//! never leaves a half-written SAE where a good one was.

use std::path::Path;

use mechlens_checkpoint::Checkpoint as Weights;
use mechlens_checkpoint::{atomic, safetensors};
use mechlens_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::config::{Architecture, SaeConfig};
use crate::sae::Sae;

/// `cfg.json`.
pub const CFG_FILE: &str = "cfg.json";
/// `sae_weights.safetensors`.
pub const WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// `sparsity.safetensors`.
pub const SPARSITY_FILE: &str = "sparsity.safetensors";

fn kind_of(dtype: &str, path: &Path) -> Result<Kind> {
    Ok(match dtype.trim_start_matches("torch.") {
        "float32" => Kind::Float,
        "float64" => Kind::Double,
        "float16" => Kind::Half,
        "bfloat16" => Kind::BFloat16,
        other => {
            return Err(Error::Config {
                path: path.display().to_string(),
                reason: format!(
                    "unknown dtype `{other}`; expected float32, float64, float16 or bfloat16"
                ),
            });
        }
    })
}

impl Sae {
    /// Loads an SAE saved by SAELens (`SAE.save_model`, `save_inference_model`) or by
    /// [`Sae::save`]: a folder with `cfg.json` and `sae_weights.safetensors`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Config`] for a missing or malformed `cfg.json`,
    /// [`Error::WeightFile`] for a missing or corrupt weights file, [`Error::MissingWeight`]
    /// or [`Error::WeightShape`] when the weights disagree with the config.
    pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = SaeConfig::from_file(&dir.join(CFG_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            return Err(Error::WeightFile {
                path: weights_path,
                reason:
                    "no such file (an SAELens folder holds cfg.json and sae_weights.safetensors)"
                        .into(),
            });
        }
        let kind = kind_of(&cfg.dtype, &dir.join(CFG_FILE))?;
        let w = Weights::from_safetensors(&[weights_path], kind, device)?;
        Self::from_weights(cfg, &w)
    }

    /// An SAE of `cfg` from a weight store holding SAELens' state-dict names.
    ///
    /// # Errors
    /// [`Error::MissingWeight`] or [`Error::WeightShape`] when the weights disagree with the
    /// config.
    pub(crate) fn from_weights(cfg: SaeConfig, w: &Weights) -> Result<Self> {
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let vector = |name: &str| w.get(name, &[d_sae]);
        let arch = cfg.architecture;
        let threshold = match arch {
            // Older JumpReLU SAEs stored log(threshold).
            Architecture::JumpRelu if !w.contains("threshold") && w.contains("log_threshold") => {
                Some(w.get("log_threshold", &[d_sae])?.f_exp()?)
            }
            Architecture::JumpRelu => Some(vector("threshold")?),
            _ => None,
        };
        let gated = arch == Architecture::Gated;
        Ok(Self {
            w_enc: w.get("W_enc", &[d_in, d_sae])?,
            w_dec: w.get("W_dec", &[d_sae, d_in])?,
            b_enc: if gated { None } else { Some(vector("b_enc")?) },
            b_dec: w.get("b_dec", &[d_in])?,
            threshold,
            b_gate: if gated { Some(vector("b_gate")?) } else { None },
            b_mag: if gated { Some(vector("b_mag")?) } else { None },
            r_mag: if gated { Some(vector("r_mag")?) } else { None },
            cfg,
        })
    }

    /// Saves in SAELens' format (`cfg.json` in the 6.x layout, `sae_weights.safetensors`),
    /// creating `dir` if needed; SAELens' `SAE.load_from_disk` reads it back.
    ///
    /// # Errors
    /// [`Error::Io`] when the folder or a file cannot be written (nothing already there is
    /// replaced until the new file is complete).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        atomic::create_dir(dir)?;
        let tensors: Vec<(&str, Tensor)> = self
            .named_parameters()
            .into_iter()
            .map(|(n, t)| Ok((n, t.f_to_device(Device::Cpu)?.f_contiguous()?)))
            .collect::<Result<_>>()?;
        safetensors::write(&tensors, &dir.join(WEIGHTS_FILE))?;
        let text = serde_json::to_string_pretty(&self.cfg.to_json())
            .map_err(|e| Error::invalid("cfg", e.to_string()))?;
        atomic::write(&dir.join(CFG_FILE), text.as_bytes())
    }
}

/// Reads `sparsity.safetensors` (log10 feature density, `[d_sae]`).
///
/// # Errors
/// [`Error::WeightFile`] when absent or corrupt, [`Error::MissingWeight`] without `sparsity`.
pub fn load_sparsity(dir: impl AsRef<Path>) -> Result<Tensor> {
    let path = dir.as_ref().join(SPARSITY_FILE);
    if !path.is_file() {
        return Err(Error::WeightFile {
            path,
            reason: "no such file".into(),
        });
    }
    safetensors::read_one(&path, "sparsity")
}

/// Writes `sparsity.safetensors` (log10 feature density, `[d_sae]`).
///
/// # Errors
/// [`Error::Io`] when it cannot be written.
pub fn save_sparsity(dir: impl AsRef<Path>, log10_density: &Tensor) -> Result<()> {
    let dir = dir.as_ref();
    atomic::create_dir(dir)?;
    let t = log10_density
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?;
    safetensors::write(&[("sparsity", t)], &dir.join(SPARSITY_FILE))
}
