//! Training hooked transformers from scratch, as TransformerLens' `train` and ARENA's
//! training loops do, with state a checkpoint holds:
//!
//! - [`ModelTrainer`] (`trainer`): the loop — batches from [`TrainData`], cross-entropy over
//!   scored positions, AdamW, clipping, a log table with any metric every N steps, progress
//!   lines, NaN stops.
//! - [`AdamW`] (`adamw`) and [`Schedule`] (`schedule`): the optimiser and the learning rate.
//! - [`Batch`], [`TrainData`], [`FullBatch`], [`MiniBatches`] (`data`): what a step reads.
//! - `checkpoint`: atomic `step_NNNNNNNN/` folders and bit-identical resume.
//!
//! ```no_run
//! use mechlens_models::{HookedTransformer, HookedTransformerConfig};
//! use mechlens_train::{Batch, FullBatch, Schedule, ModelTrainConfig, ModelTrainer};
//! let cfg = HookedTransformerConfig { n_layers: 2, d_model: 64, n_heads: 4, d_vocab: 64, n_ctx: 32, attn_only: true, ..Default::default() };
//! let model = HookedTransformer::from_config(&cfg, 0)?;
//! let tokens = tch::Tensor::randint(64, [16, 32], (tch::Kind::Int64, tch::Device::Cpu));
//! let mut trainer = ModelTrainer::new(model, ModelTrainConfig::new(100, Schedule::constant(1e-3)))?;
//! trainer.run(&mut FullBatch(Batch::next_token(&tokens)?))?;
//! println!("{}", trainer.log_frame()?);
//! # Ok::<(), mechlens_core::Error>(())
//! ```

pub mod adamw;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod log;
pub mod losses;
pub mod schedule;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig};
pub use config::ModelTrainConfig;
pub use data::{Batch, FullBatch, IGNORE, MiniBatches, TrainData};
pub use log::{LogRow, log_table};
pub use losses::kl_divergence;
pub use schedule::{Decay, Schedule, log_due};
pub use trainer::{ModelTrainer, cross_entropy};
