//! `mechlens train-sae CONFIG.toml`.
//!
//! ```toml
//! out = "runs/topk/final"          # where the trained SAE is saved (SAELens format)
//! resume = false                   # true: continue from train.checkpoint_dir's newest checkpoint
//!
//! [data]                           # either a model run over a text ...
//! model = "path/or/hub-name"       # a Hugging Face folder or hub name, or
//! llama2c = "model.bin"            # a llama2.c checkpoint with
//! tokenizer = "tokenizer.model"    # its SentencePiece tokenizer
//! hook = "blocks.3.hook_resid_post"
//! text = "corpus.txt"
//! context_size = 128
//! max_windows = 1000
//! cache = "acts/"                 # optional: write the activations there as shards first
//!                                  # (a folder that already has them is reused, no model run)
//! # ... or saved activations: activations = "acts.safetensors" (tensor `activations`, [n, d_in])
//! # ... or a shard folder:    shards = "acts/"  (buffer_shards = 4: shards mixed at a time)
//!
//! [train]                          # any TrainConfig field; the rest keep SAELens' defaults
//! sae = { architecture = "topk", k = 32, aux_loss_coefficient = 1.0 }
//! d_sae = 4096
//! batch_size = 4096
//! total_steps = 10000
//! checkpoint_every = 1000
//! checkpoint_dir = "runs/topk"
//! ```

use std::path::{Path, PathBuf};

use mechlens_core::progress::Progress;
use mechlens_core::{Error, Result};
use mechlens_models::{HookedTransformer, LoadOptions};
use mechlens_sae::shards::{MANIFEST_FILE, ShardedActivations};
use mechlens_sae::store::{ActivationStore, StoreOptions};
use mechlens_sae::train::{
    ActivationSource, TensorSource, TrainArchitecture, TrainConfig, Trainer,
};
use serde_json::Value;

fn config_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Config {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads the file, builds the data source, trains with progress lines, saves.
pub fn run(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| config_error(path, e.to_string()))?;
    let doc = serde_json::to_value(doc).map_err(|e| config_error(path, e.to_string()))?;
    let relative = |p: &str| path.parent().unwrap_or(Path::new(".")).join(p);
    let out = doc
        .get("out")
        .and_then(Value::as_str)
        .map(relative)
        .ok_or_else(|| config_error(path, "missing `out` (the folder to save the SAE in)"))?;
    let resume = doc.get("resume").and_then(Value::as_bool).unwrap_or(false);
    let data = doc.get("data").cloned().unwrap_or(Value::Null);
    let mut source = data_source(path, &data, &relative)?;
    let train = doc.get("train").cloned().unwrap_or(Value::Null);
    let cfg = train_config(path, &train, source.d_in())?;
    let mut trainer = if resume {
        let dir = cfg
            .checkpoint_dir
            .clone()
            .ok_or_else(|| config_error(path, "`resume = true` needs [train] checkpoint_dir"))?;
        Trainer::resume(dir)?
    } else {
        Trainer::new(cfg)?
    };
    let total = trainer.config().total_steps;
    // Whole lines, one every 2 s (a redrawn bar garbles a log file or a notebook).
    let mut progress = Progress::new("steps", total as u64)
        .starting_at(trainer.step() as u64)
        .unit("steps");
    while trainer.step() < total {
        let chunk = trainer.config().log_every.max(1);
        trainer.train_steps(source.as_mut(), chunk)?;
        if let Some(row) = trainer.log().last() {
            progress.note(format!(
                "loss {:.4}  l0 {:.1}  dead {}",
                row.loss, row.l0, row.dead_latents
            ));
        }
        progress.advance(trainer.step() as u64 - progress.done());
    }
    let sae = trainer.sae()?;
    sae.save(&out)?;
    println!(
        "saved {} ({} latents) to {}",
        sae.cfg.architecture,
        sae.cfg.d_sae,
        out.display()
    );
    Ok(())
}

fn data_source(
    path: &Path,
    data: &Value,
    relative: &dyn Fn(&str) -> PathBuf,
) -> Result<Box<dyn ActivationSource>> {
    let get = |key: &str| data.get(key).and_then(Value::as_str);
    let seed = data.get("seed").and_then(Value::as_u64).unwrap_or(0);
    if let Some(file) = get("activations") {
        let file = relative(file);
        let acts = mechlens_checkpoint::safetensors::read_one(&file, "activations")?;
        return Ok(Box::new(TensorSource::new(&acts, seed)?));
    }
    let buffer_shards = data
        .get("buffer_shards")
        .and_then(Value::as_u64)
        .unwrap_or(4) as usize;
    let open_shards = |dir: &Path| -> Result<Box<dyn ActivationSource>> {
        let shards = ShardedActivations::open(dir)?.with_mixing(buffer_shards, seed);
        let m = shards.manifest();
        println!(
            "{} activations of width {} at {} from {} shards in {}",
            m.n_rows,
            m.d_in,
            m.hook_name,
            m.shards.len(),
            dir.display()
        );
        Ok(Box::new(shards))
    };
    if let Some(dir) = get("shards") {
        return open_shards(&relative(dir));
    }
    let cache = get("cache").map(relative);
    if let Some(dir) = &cache
        && dir.join(MANIFEST_FILE).is_file()
    {
        return open_shards(dir);
    }
    let model = match (get("model"), get("llama2c")) {
        (Some(name), _) => HookedTransformer::from_pretrained(name, LoadOptions::default())?,
        (None, Some(bin)) => {
            let tokenizer = get("tokenizer").map(relative);
            HookedTransformer::from_llama2c(
                &relative(bin),
                tokenizer.as_deref(),
                LoadOptions::default(),
            )?
        }
        (None, None) => {
            return Err(config_error(
                path,
                "[data] needs `activations`, `shards`, `model` or `llama2c`",
            ));
        }
    };
    let hook = get("hook").ok_or_else(|| config_error(path, "[data] needs `hook`"))?;
    let text_path = get("text")
        .map(relative)
        .ok_or_else(|| config_error(path, "[data] needs `text`"))?;
    let text = std::fs::read_to_string(&text_path).map_err(|source| Error::Io {
        action: "reading",
        path: text_path,
        source,
    })?;
    let mut opts = StoreOptions {
        progress_every: 10,
        ..StoreOptions::default()
    };
    if let Some(c) = data.get("context_size").and_then(Value::as_i64) {
        opts.context_size = c;
    }
    opts.max_windows = data.get("max_windows").and_then(Value::as_i64);
    if let Some(dir) = &cache {
        let windows = ActivationStore::windows(&model, &text, &opts)?;
        let rows_per_shard = data
            .get("rows_per_shard")
            .and_then(Value::as_i64)
            .unwrap_or(65_536);
        ActivationStore::write_shards(&model, hook, &windows, &opts, dir, rows_per_shard)?;
        return open_shards(dir);
    }
    let store = ActivationStore::from_text(&model, hook, &text, &opts)?;
    println!(
        "{} activations of width {} at {hook}",
        store.len(),
        store.d_in()
    );
    Ok(Box::new(store.source(seed)?))
}

/// `[train]` over the defaults of `TrainConfig::new` (SAELens').
fn train_config(path: &Path, train: &Value, d_in: i64) -> Result<TrainConfig> {
    let arch: TrainArchitecture = match train.get("sae") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| config_error(path, format!("[train] sae: {e}")))?,
        None => {
            return Err(config_error(
                path,
                "[train] needs `sae`, e.g. { architecture = \"topk\", k = 32, aux_loss_coefficient = 1.0 }",
            ));
        }
    };
    let defaults = TrainConfig::new(arch, d_in, 8 * d_in)
        .batch_size(4096)
        .total_steps(1000);
    let mut merged =
        serde_json::to_value(&defaults).map_err(|e| config_error(path, e.to_string()))?;
    if let (Some(base), Some(user)) = (merged.as_object_mut(), train.as_object()) {
        for (key, value) in user {
            if !base.contains_key(key) {
                let known: Vec<&String> = base.keys().collect();
                return Err(config_error(
                    path,
                    format!("[train] has no field `{key}`; fields: {known:?}"),
                ));
            }
            base.insert(key.clone(), value.clone());
        }
    }
    let cfg: TrainConfig =
        serde_json::from_value(merged).map_err(|e| config_error(path, format!("[train]: {e}")))?;
    if cfg.d_in != d_in {
        return Err(Error::ShapeMismatch {
            what: "[train] d_in".into(),
            expected: format!("{d_in} (the width of the data)"),
            got: vec![cfg.d_in],
        });
    }
    Ok(cfg)
}
