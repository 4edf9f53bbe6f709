//! Checkpoints and files of tensors, read and written in one place.
//!
//! - [`Checkpoint`]: the tensors of a model folder (safetensors, single or sharded;
//!   `pytorch_model.bin`), by name with the shape checked; [`CheckpointPath`] walks its key
//!   tree (`vb.pp("h").pp(0).get("ln_1.weight", ...)`).
//! - [`safetensors`]: the one reader and the one writer of safetensors files (written through
//!   a temporary file and a rename, so a crash never leaves half a file), and
//!   [`atomic`]: the same for any bytes and for whole folders.
//! - [`npz`], [`torch_archive`]: NumPy archives and PyTorch's zip archives (`torch.save`),
//!   read without Python.
//! - [`Hub`]: where a model or SAE folder is found (a local folder, the Hugging Face cache) and,
//!   with the `hub` feature, downloaded.
//!
//! Models, SAEs, activation shards, the trainer's checkpoints and the CLI all read and write
//! through this crate.

pub mod atomic;
#[cfg(feature = "hub")]
mod download;
pub mod npz;
mod resolve;
pub mod safetensors;
mod store;
pub mod torch_archive;
mod zip_file;

pub use resolve::Hub;
pub use store::{Checkpoint, CheckpointPath};
