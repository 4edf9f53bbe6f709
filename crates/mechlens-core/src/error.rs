//! The error type of mechlens.
//!
//! Each variant names what was wrong and what was expected, in words a notebook user can act
//! on without reading our source.

use std::path::PathBuf;

/// Everything that can go wrong in mechlens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor had a shape other than the one an API needs.
    #[error("shape mismatch for {what}: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// What the tensor is (an argument or hook name).
        what: String,
        /// The expected shape, in words or dims (`[batch, pos, d_model]`).
        expected: String,
        /// The shape that arrived.
        got: Vec<i64>,
    },

    /// An argument was out of its valid range or otherwise unusable.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// The argument.
        what: String,
        /// Why it cannot be used, and what would be accepted.
        reason: String,
    },

    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing (`reading`, `writing`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A hook name that the model does not have.
    #[error("unknown hook point `{name}`; did you mean {}? (`model.hook_points()` lists every one)", suggestions.join(", "))]
    UnknownHook {
        /// The name as given.
        name: String,
        /// The closest valid names.
        suggestions: Vec<String>,
    },

    /// An analysis asked a cache for an activation it does not hold.
    #[error(
        "the cache holds no `{hook}`; run `run_with_cache` with a filter that includes it (or `CacheFilter::All`)"
    )]
    NotCached {
        /// The hook name.
        hook: String,
    },

    /// `from_pretrained` found the model nowhere: not a local folder, not in the hub cache,
    /// and not downloadable (offline, unknown repo, or built without the `hub` feature).
    #[error("model `{name}` not found: {reason}")]
    ModelNotFound {
        /// The name or path as given.
        name: String,
        /// Every place we looked, and why each failed.
        reason: String,
    },

    /// A checkpoint lacks a tensor the architecture needs.
    #[error("weight `{name}` is missing from {file}")]
    MissingWeight {
        /// The tensor's name in the checkpoint.
        name: String,
        /// The file (or folder) searched.
        file: String,
    },

    /// A checkpoint tensor has a shape other than the config implies.
    #[error("weight `{name}` in {file} has shape {got:?}, but the config implies {expected:?}")]
    WeightShape {
        /// The tensor's name in the checkpoint.
        name: String,
        /// The file it came from.
        file: String,
        /// The shape the config implies.
        expected: Vec<i64>,
        /// The shape in the file.
        got: Vec<i64>,
    },

    /// A weight file could not be parsed (truncated, corrupt, wrong format).
    #[error("cannot read weights from {path}: {reason}")]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A config file is malformed or inconsistent.
    #[error("bad config {path}: {reason}")]
    Config {
        /// The file (or `<config>` for one built in code).
        path: String,
        /// What is wrong, and what was expected.
        reason: String,
    },

    /// A model architecture, tokenizer type or option we do not implement.
    #[error("unsupported {what} `{name}`; supported: {}", supported.join(", "))]
    Unsupported {
        /// What kind of thing (`architecture`, `rope_type`).
        what: &'static str,
        /// Its name as given.
        name: String,
        /// What is supported instead.
        supported: Vec<String>,
    },

    /// Training stopped: a non-finite loss or input, or a checkpoint that cannot be used.
    #[error("training stopped at step {step}: {reason}")]
    Training {
        /// The step that failed (0-based; steps before it completed).
        step: usize,
        /// What went wrong, and what was kept.
        reason: String,
    },

    /// A chart could not be drawn.
    #[error("chart could not be drawn: {0}")]
    Chart(String),

    /// The CUDA backend was asked for but cannot be used.
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),

    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// A file of the repository's `datasets/` is missing, truncated or changed.
    #[error("data file {file} {problem}; {restore}")]
    Dataset {
        /// The file.
        file: String,
        /// What is wrong with it (`is missing`, `is truncated: ...`).
        problem: String,
        /// How to get it back.
        restore: String,
    },

    /// A table operation (polars) failed: a missing column, a wrong type, a bad join.
    #[error("table: {0}")]
    Table(#[from] polars_error::PolarsError),

    /// A file operation failed where no path was given (`?` on a `std::io::Error`).
    #[error("I/O: {0}")]
    IoOther(#[from] std::io::Error),

    /// JSON could not be read or written (`?` on a `serde_json::Error`).
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Text was not valid UTF-8, or a number or other value did not parse.
    #[error("parse: {0}")]
    Parse(String),

    /// An exercise's check did not pass where it must (a solution notebook, after
    /// `mechlens::exercises::check::strict(true)`).
    #[error("exercise {exercise} is not solved: {problem}")]
    Exercise {
        /// The exercise (its check's name, `layer_norm`).
        exercise: String,
        /// The check's verdict: "not done yet", or the failing case and the likely mistake.
        problem: String,
    },
}

impl From<std::num::ParseIntError> for Error {
    fn from(e: std::num::ParseIntError) -> Self {
        Self::Parse(format!("not an integer: {e}"))
    }
}

impl From<std::num::ParseFloatError> for Error {
    fn from(e: std::num::ParseFloatError) -> Self {
        Self::Parse(format!("not a number: {e}"))
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Self {
        Self::Parse(format!("not UTF-8 text: {e}"))
    }
}

/// `Result` with mechlens' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
