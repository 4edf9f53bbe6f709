//! Activations on disk: a folder of safetensors shards with a `manifest.json` that records
//! the hook, width, row counts and each shard's SHA-256. Written once from a model run
//! ([`crate::store::ActivationStore::write_shards`]) and read back without the model, as training
//! data ([`ShardedActivations`], an [`ActivationSource`]).
//!
//! ```text
//! acts/
//!   manifest.json              {"format": "mechlens-activations", "version": 1, "hook_name": …,
//!                               "d_in": 64, "n_rows": 52000, "shards": [{"file", "rows", "sha256"}]}
//!   shard_00000.safetensors    "activations": [rows, d_in] F32
//!   shard_00001.safetensors
//! ```
//!
//! Every file is written to a temporary name and renamed, the manifest last: a folder with a
//! manifest is complete. A shard is checked against its checksum each time it is read.

use std::path::{Path, PathBuf};

use mechlens_core::{Error, Result, SplitMix64};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::source::ActivationSource;
use mechlens_checkpoint::{atomic, safetensors};

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT: &str = "mechlens-activations";
const TENSOR: &str = "activations";

/// `manifest.json`: what a shard folder holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    /// Always `mechlens-activations`.
    pub format: String,
    /// Layout version (1).
    pub version: u32,
    /// The hook point the activations were taken at.
    pub hook_name: String,
    /// Width of each row.
    pub d_in: i64,
    /// Rows in all shards together.
    pub n_rows: i64,
    /// Where the activations came from (model name, context size …), free-form.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The shards in order.
    pub shards: Vec<ShardEntry>,
}

/// One shard file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the folder.
    pub file: String,
    /// Rows it holds.
    pub rows: i64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// Writes rows into shards of `rows_per_shard` as they come.
pub struct ShardWriter {
    dir: PathBuf,
    rows_per_shard: i64,
    pending: Vec<Tensor>,
    pending_rows: i64,
    manifest: ShardManifest,
}

impl ShardWriter {
    /// Starts a shard folder at `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `d_in` or `rows_per_shard` below 1, or a folder that
    /// already holds a manifest (delete it first: nothing is overwritten); [`Error::Io`] when
    /// the folder cannot be created.
    pub fn create(dir: &Path, hook_name: &str, d_in: i64, rows_per_shard: i64) -> Result<Self> {
        if d_in < 1 || rows_per_shard < 1 {
            return Err(Error::invalid(
                "shard writer",
                format!(
                    "d_in and rows_per_shard must be at least 1, got {d_in} and {rows_per_shard}"
                ),
            ));
        }
        if dir.join(MANIFEST_FILE).exists() {
            return Err(Error::invalid(
                "shard folder",
                format!(
                    "{} already holds activations ({MANIFEST_FILE}); choose another folder or delete it",
                    dir.display()
                ),
            ));
        }
        atomic::create_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rows_per_shard,
            pending: Vec::new(),
            pending_rows: 0,
            manifest: ShardManifest {
                format: FORMAT.into(),
                version: 1,
                hook_name: hook_name.into(),
                d_in,
                n_rows: 0,
                metadata: serde_json::Map::new(),
                shards: Vec::new(),
            },
        })
    }

    /// Records a free-form fact in the manifest (model name, context size …).
    pub fn set_metadata(&mut self, key: &str, value: serde_json::Value) {
        self.manifest.metadata.insert(key.into(), value);
    }

    /// Appends rows, writing every shard that fills.
    ///
    /// # Shapes
    /// `rows`: `[n, d_in]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for another width, [`Error::InvalidInput`] for NaN or inf,
    /// [`Error::Io`] when a shard cannot be written.
    pub fn push(&mut self, rows: &Tensor) -> Result<()> {
        let size = rows.size();
        if size.len() != 2 || size[1] != self.manifest.d_in {
            return Err(Error::ShapeMismatch {
                what: "activation rows for the shard folder".into(),
                expected: format!("[n, {}]", self.manifest.d_in),
                got: size,
            });
        }
        if !bool::try_from(rows.f_isfinite()?.f_all()?)? {
            return Err(Error::invalid(
                "activation rows",
                "they contain NaN or inf; nothing of this batch was written",
            ));
        }
        self.pending.push(
            rows.f_to_kind(Kind::Float)?
                .f_to_device(tch::Device::Cpu)?
                .f_contiguous()?,
        );
        self.pending_rows += size[0];
        while self.pending_rows >= self.rows_per_shard {
            let all = Tensor::f_cat(&self.pending, 0)?;
            let shard = all.f_narrow(0, 0, self.rows_per_shard)?;
            let rest = all.f_narrow(
                0,
                self.rows_per_shard,
                self.pending_rows - self.rows_per_shard,
            )?;
            self.write_shard(&shard)?;
            self.pending_rows = rest.size()[0];
            self.pending = vec![rest];
        }
        Ok(())
    }

    fn write_shard(&mut self, rows: &Tensor) -> Result<()> {
        let file = format!("shard_{:05}.safetensors", self.manifest.shards.len());
        let n = rows.size()[0];
        let encoded = safetensors::encode_f32(TENSOR, rows)?;
        atomic::write(&self.dir.join(&file), &encoded)?;
        self.manifest.shards.push(ShardEntry {
            file,
            rows: n,
            sha256: mechlens_core::sha256_hex(&encoded),
        });
        self.manifest.n_rows += n;
        Ok(())
    }

    /// Writes the last, partial shard and then the manifest.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no row was pushed; [`Error::Io`] on write failures.
    pub fn finish(mut self) -> Result<ShardManifest> {
        if self.pending_rows > 0 {
            let rest = Tensor::f_cat(&self.pending, 0)?;
            self.write_shard(&rest)?;
        }
        if self.manifest.n_rows == 0 {
            return Err(Error::invalid(
                "shard folder",
                "no activation rows were written (the dataset is empty)",
            ));
        }
        let json = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        atomic::write(&self.dir.join(MANIFEST_FILE), &json)?;
        Ok(self.manifest)
    }
}

/// A shard folder read back: training batches through a mixing buffer, or all rows at once.
///
/// Batches are addressed by step (as every [`ActivationSource`]): each epoch visits the
/// shards in a seeded order, `buffer_shards` at a time; the rows of those shards are mixed
/// (a seeded permutation) and handed out in turn. Only one buffer is in memory.
pub struct ShardedActivations {
    dir: PathBuf,
    manifest: ShardManifest,
    buffer_shards: usize,
    seed: u64,
    /// `(epoch, buffer index, mixed rows)` of the buffer in memory.
    loaded: Option<(u64, usize, Tensor)>,
}

impl ShardedActivations {
    /// Opens a folder written by [`ShardWriter`]; mixes 4 shards at a time, seed 0.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing or malformed manifest (or one of another format),
    /// [`Error::WeightFile`] for a shard file that is missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let config = |reason: String| Error::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            config(format!(
                "cannot read it ({e}); a shard folder is written by ActivationStore::write_shards"
            ))
        })?;
        let manifest: ShardManifest =
            serde_json::from_str(&text).map_err(|e| config(e.to_string()))?;
        if manifest.format != FORMAT || manifest.version != 1 {
            return Err(config(format!(
                "format `{}` version {}, expected `{FORMAT}` version 1",
                manifest.format, manifest.version
            )));
        }
        let total: i64 = manifest.shards.iter().map(|s| s.rows).sum();
        if manifest.shards.is_empty() || total != manifest.n_rows || manifest.d_in < 1 {
            return Err(config(format!(
                "n_rows {} but the shards hold {total} rows in {} files (d_in {})",
                manifest.n_rows,
                manifest.shards.len(),
                manifest.d_in
            )));
        }
        for shard in &manifest.shards {
            let file = dir.join(&shard.file);
            if !file.is_file() {
                return Err(Error::WeightFile {
                    path: file,
                    reason: "the manifest lists this shard, but the file is missing".into(),
                });
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            buffer_shards: 4,
            seed: 0,
            loaded: None,
        })
    }

    /// Mixes `buffer_shards` shards at a time (at least 1), in orders seeded by `seed`.
    pub fn with_mixing(mut self, buffer_shards: usize, seed: u64) -> Self {
        self.buffer_shards = buffer_shards.max(1);
        self.seed = seed;
        self.loaded = None;
        self
    }

    /// The manifest.
    pub fn manifest(&self) -> &ShardManifest {
        &self.manifest
    }

    /// Rows in all shards.
    pub fn len(&self) -> i64 {
        self.manifest.n_rows
    }

    /// Whether there are no rows (never true for an opened folder).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shard `i`, checked against its checksum and the manifest.
    ///
    /// # Shapes
    /// Returns `[rows_i, d_in]` float.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `i` out of range; [`Error::WeightFile`] when the file
    /// cannot be read, its SHA-256 differs from the manifest's, or its tensor is not
    /// `activations [rows_i, d_in]` F32.
    pub fn shard(&self, i: usize) -> Result<Tensor> {
        mechlens_core::shape::check_index(
            "shard",
            i as i64,
            self.manifest.shards.len(),
            "the manifest",
        )?;
        let entry = &self.manifest.shards[i];
        let path = self.dir.join(&entry.file);
        let bad = |reason: String| Error::WeightFile {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let digest = mechlens_core::sha256_hex(&bytes);
        if digest != entry.sha256 {
            return Err(bad(format!(
                "checksum mismatch: the manifest says sha256 {}, the file hashes to {digest}; \
                 it was changed or damaged after writing (write the folder again)",
                entry.sha256
            )));
        }
        safetensors::decode_f32(&bytes, TENSOR, &[entry.rows, self.manifest.d_in]).map_err(|e| {
            bad(format!(
                "{e} (the manifest implies [{}, {}])",
                entry.rows, self.manifest.d_in
            ))
        })
    }

    /// Every row in shard order, `[n_rows, d_in]`.
    ///
    /// # Errors
    /// As [`ShardedActivations::shard`].
    pub fn load_all(&self) -> Result<Tensor> {
        let shards = (0..self.manifest.shards.len())
            .map(|i| self.shard(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::f_cat(&shards, 0)?)
    }

    /// Shard indices in epoch `epoch`'s visiting order.
    fn shard_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.manifest.shards.len()).collect();
        let mut rng = SplitMix64::new(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        order
    }

    /// The mixed rows of buffer `b` of epoch `epoch`.
    fn buffer(&mut self, epoch: u64, b: usize) -> Result<Tensor> {
        if let Some((e, i, rows)) = &self.loaded
            && *e == epoch
            && *i == b
        {
            return Ok(rows.shallow_clone());
        }
        let order = self.shard_order(epoch);
        let members = order.chunks(self.buffer_shards).nth(b).unwrap_or(&[]);
        let rows = Tensor::f_cat(
            &members
                .iter()
                .map(|&i| self.shard(i))
                .collect::<Result<Vec<_>>>()?,
            0,
        )?;
        let n = rows.size()[0] as usize;
        let mut rng = SplitMix64::new(
            self.seed
                ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (b as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        );
        let mut perm: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            perm.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mixed = rows.f_index_select(0, &Tensor::from_slice(&perm))?;
        self.loaded = Some((epoch, b, mixed.shallow_clone()));
        Ok(mixed)
    }
}

impl ActivationSource for ShardedActivations {
    fn d_in(&self) -> i64 {
        self.manifest.d_in
    }

    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        let n = self.len();
        let mut at = step as i64 * batch_size;
        let end = at + batch_size;
        let mut parts = Vec::new();
        while at < end {
            let (epoch, mut offset) = ((at / n) as u64, at % n);
            // Find the buffer holding `offset` in this epoch's order.
            let order = self.shard_order(epoch);
            let mut b = 0;
            for members in order.chunks(self.buffer_shards) {
                let rows: i64 = members.iter().map(|&i| self.manifest.shards[i].rows).sum();
                if offset < rows {
                    break;
                }
                offset -= rows;
                b += 1;
            }
            let buffer = self.buffer(epoch, b)?;
            let take = (buffer.size()[0] - offset).min(end - at);
            parts.push(buffer.f_narrow(0, offset, take)?);
            at += take;
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    }
}
