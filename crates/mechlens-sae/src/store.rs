//! [`ActivationStore`]: a model's activations at one hook point over a text or token dataset,
//! kept in memory with where each came from, as training data ([`ActivationStore::source`])
//! and for finding the contexts that make a latent fire.
//!
//! Like SAELens' `ActivationsStore`: the text is tokenized once, cut into windows of
//! `context_size` tokens (each starting with BOS when `prepend_bos`), the windows are run in
//! batches, and positions holding special tokens (BOS) are left out of the training rows.

use std::path::Path;

use mechlens_core::{Error, HookPoint, Result};
use mechlens_models::HookedTransformer;
use tch::{Kind, Tensor};

use crate::shards::{ShardManifest, ShardWriter};
use crate::source::{ActivationSource, TensorSource};

/// How to cut and run the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreOptions {
    /// Tokens per window, BOS included (SAELens `context_size`).
    pub context_size: i64,
    /// Start each window with BOS.
    pub prepend_bos: bool,
    /// Leave BOS positions out of the activation rows (SAELens excludes special tokens).
    pub exclude_special_tokens: bool,
    /// Windows per forward pass.
    pub batch_windows: i64,
    /// Stop after this many windows.
    pub max_windows: Option<i64>,
    /// Print a progress line (tokens/s, ETA) every this many batches (0: silent).
    pub progress_every: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            context_size: 128,
            prepend_bos: true,
            exclude_special_tokens: true,
            batch_windows: 16,
            max_windows: None,
            progress_every: 0,
        }
    }
}

/// Activations at one hook point, and the tokens they came from.
#[derive(Debug)]
pub struct ActivationStore {
    /// The hook point.
    pub hook: HookPoint,
    /// The token windows, `[n_windows, context_size]`.
    pub tokens: Tensor,
    /// One row per kept position, `[n_rows, d_in]` (float, on the CPU).
    pub activations: Tensor,
    /// `(window, position)` of each row, `[n_rows, 2]`.
    pub origin: Tensor,
    /// The rows in shuffled order when the store itself is the training source (seed 0).
    shuffled: Option<TensorSource>,
}

impl ActivationStore {
    /// Tokenizes `text` with the model's tokenizer and collects the activations at `hook`.
    ///
    /// # Errors
    /// [`Error::UnknownHook`] for a hook the model lacks, [`Error::InvalidInput`] when the
    /// text gives fewer tokens than one window, or the model has no tokenizer.
    pub fn from_text(
        model: &HookedTransformer,
        hook: &str,
        text: &str,
        opts: &StoreOptions,
    ) -> Result<Self> {
        let tokens = Self::windows(model, text, opts)?;
        Self::from_tokens(model, hook, &tokens, opts)
    }

    /// The token windows `from_text` runs: `[n_windows, context_size]`, each led by BOS when
    /// `prepend_bos`.
    ///
    /// # Errors
    /// As [`ActivationStore::from_text`].
    pub fn windows(model: &HookedTransformer, text: &str, opts: &StoreOptions) -> Result<Tensor> {
        let tokenizer = model.tokenizer().ok_or_else(|| {
            Error::invalid(
                "model",
                "it has no tokenizer; use ActivationStore::from_tokens",
            )
        })?;
        let ids = tokenizer.encode(text, false)?;
        let bos = tokenizer.bos_token_id;
        let body = opts.context_size - i64::from(opts.prepend_bos);
        if body < 1 {
            return Err(Error::invalid(
                "context_size",
                format!(
                    "must leave room for at least one token, got {}",
                    opts.context_size
                ),
            ));
        }
        let n = ids.len() as i64 / body;
        if n == 0 {
            return Err(Error::invalid(
                "dataset",
                format!(
                    "it is empty: {} tokens, fewer than one window of {body}",
                    ids.len()
                ),
            ));
        }
        let n = opts.max_windows.map_or(n, |m| m.min(n));
        let mut windows = Vec::with_capacity((n * opts.context_size) as usize);
        for w in 0..n as usize {
            if opts.prepend_bos {
                windows.push(bos.ok_or_else(|| {
                    Error::invalid("prepend_bos", "the tokenizer has no BOS token")
                })?);
            }
            windows.extend_from_slice(&ids[w * body as usize..(w + 1) * body as usize]);
        }
        Ok(Tensor::from_slice(&windows).f_view([n, opts.context_size])?)
    }

    /// Collects the activations at `hook` for token windows `[n_windows, pos]`.
    ///
    /// # Errors
    /// As [`ActivationStore::from_text`]; bad token ids as `forward`.
    pub fn from_tokens(
        model: &HookedTransformer,
        hook: &str,
        tokens: &Tensor,
        opts: &StoreOptions,
    ) -> Result<Self> {
        let mut rows = Vec::new();
        let mut origin = Vec::new();
        let pos = tokens.size().get(1).copied().unwrap_or(0);
        let hook = run_windows(
            model,
            hook,
            tokens,
            opts,
            |batch_rows, start, len, first| {
                rows.push(batch_rows);
                for w in start..start + len {
                    for p in first..pos {
                        origin.extend([w, p]);
                    }
                }
                Ok(())
            },
        )?;
        let activations = Tensor::f_cat(&rows, 0)?;
        let n_rows = activations.size()[0];
        Ok(Self {
            hook,
            tokens: tokens.f_to_device(tch::Device::Cpu)?,
            activations,
            origin: Tensor::from_slice(&origin).f_view([n_rows, 2])?,
            shuffled: None,
        })
    }

    /// Runs the model over token windows and writes the activations at `hook` straight to a
    /// shard folder (see [`crate::shards`]), `rows_per_shard` rows per file, without holding
    /// them all in memory. The manifest records the hook, the options and the architecture.
    ///
    /// # Errors
    /// As [`ActivationStore::from_tokens`], and [`ShardWriter::create`]'s for the folder.
    pub fn write_shards(
        model: &HookedTransformer,
        hook: &str,
        tokens: &Tensor,
        opts: &StoreOptions,
        dir: &Path,
        rows_per_shard: i64,
    ) -> Result<ShardManifest> {
        let point = model.hook_point(hook)?;
        let width = model.hook_width(point).ok_or_else(|| {
            Error::invalid(
                "hook",
                format!("{point} has no fixed width per position (attention patterns, LayerNorm scales); an SAE reads residual, MLP or per-head activations"),
            )
        })?;
        let mut writer = ShardWriter::create(dir, &point.to_string(), width, rows_per_shard)?;
        writer.set_metadata("architecture", model.cfg().architecture.clone().into());
        writer.set_metadata("context_size", tokens.size().get(1).copied().into());
        writer.set_metadata("prepend_bos", opts.prepend_bos.into());
        writer.set_metadata("exclude_special_tokens", opts.exclude_special_tokens.into());
        writer.set_metadata("n_windows", tokens.size().first().copied().into());
        run_windows(model, hook, tokens, opts, |rows, _, _, _| {
            writer.push(&rows)
        })?;
        writer.finish()
    }

    /// Writes this store's rows to a shard folder (see [`ActivationStore::write_shards`]).
    ///
    /// # Errors
    /// [`ShardWriter`]'s.
    pub fn save_shards(&self, dir: &Path, rows_per_shard: i64) -> Result<ShardManifest> {
        let mut writer =
            ShardWriter::create(dir, &self.hook.to_string(), self.d_in(), rows_per_shard)?;
        writer.set_metadata("context_size", self.tokens.size().get(1).copied().into());
        writer.set_metadata("n_windows", self.tokens.size().first().copied().into());
        writer.push(&self.activations)?;
        writer.finish()
    }

    /// Rows kept.
    pub fn len(&self) -> i64 {
        self.activations.size()[0]
    }

    /// Whether no rows were kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the activations.
    pub fn d_in(&self) -> i64 {
        self.activations.size()[1]
    }

    /// Shuffled training batches over the rows (a new seeded order each epoch). The store is
    /// itself a source with seed 0 (`trainer.run(&mut store)`); this gives another seed.
    ///
    /// # Errors
    /// Only for an empty store.
    pub fn source(&self, seed: u64) -> Result<TensorSource> {
        TensorSource::new(&self.activations, seed)
    }

    /// `(window, position)` of row `row`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a row out of range.
    pub fn origin_of(&self, row: i64) -> Result<(i64, i64)> {
        mechlens_core::shape::check_index("row", row, self.len() as usize, "the store")?;
        Ok((
            self.origin.f_int64_value(&[row, 0])?,
            self.origin.f_int64_value(&[row, 1])?,
        ))
    }
}

/// The store's rows as training data: shuffled, a new order each epoch, seed 0 (see
/// [`ActivationStore::source`] for another seed).
impl ActivationSource for ActivationStore {
    fn d_in(&self) -> i64 {
        ActivationStore::d_in(self)
    }

    fn batch(&mut self, step: usize, batch_size: i64) -> Result<Tensor> {
        let rows = match self.shuffled.take() {
            Some(rows) => rows,
            None => self.source(0)?,
        };
        self.shuffled.insert(rows).batch(step, batch_size)
    }
}

/// Runs `tokens` through the model in batches of windows and hands each batch's rows at
/// `hook` (`[len · kept positions, d_in]`, float, CPU) to `sink(rows, first_window, len,
/// first_position)`. Stops at the hook's block: later layers cannot change it.
fn run_windows(
    model: &HookedTransformer,
    hook: &str,
    tokens: &Tensor,
    opts: &StoreOptions,
    mut sink: impl FnMut(Tensor, i64, i64, i64) -> Result<()>,
) -> Result<HookPoint> {
    let hook = model.hook_point(hook)?;
    let shape = tokens.size();
    if shape.len() != 2 || shape[0] == 0 {
        return Err(Error::ShapeMismatch {
            what: "token windows".into(),
            expected: "[n_windows >= 1, pos]".into(),
            got: shape,
        });
    }
    let (n, pos) = (shape[0], shape[1]);
    let batch = opts.batch_windows.max(1);
    let mut progress = mechlens_core::progress::Progress::new("activations", (n * pos) as u64)
        .unit("tok")
        .every(std::time::Duration::ZERO);
    let mut unreported = 0;
    let first = i64::from(opts.exclude_special_tokens && opts.prepend_bos);
    let mut start = 0;
    let mut batches = 0;
    while start < n {
        let len = batch.min(n - start);
        let chunk = tokens.f_narrow(0, start, len)?;
        let act = model.run_to_hook(&chunk, hook)?;
        let act = act.f_flatten(2, -1)?; // hook_z and other per-head hooks: heads flattened
        let rows = act
            .f_narrow(1, first, pos - first)?
            .f_reshape([-1, act.size()[2]])?
            .f_to_kind(Kind::Float)?
            .f_to_device(tch::Device::Cpu)?;
        if !bool::try_from(rows.f_isfinite()?.f_all()?)? {
            return Err(Error::invalid(
                "activations",
                format!(
                    "the model produced NaN or inf at {hook} (windows {start}..{})",
                    start + len
                ),
            ));
        }
        sink(rows, start, len, first)?;
        start += len;
        batches += 1;
        unreported += (len * pos) as u64;
        if opts.progress_every > 0 && batches % opts.progress_every == 0 {
            progress.advance(std::mem::take(&mut unreported));
        }
    }
    Ok(hook)
}
