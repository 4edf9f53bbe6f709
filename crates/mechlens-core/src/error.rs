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

    /// A chart could not be drawn.
    #[error("chart could not be drawn: {0}")]
    Chart(String),

    /// The CUDA backend was asked for but cannot be used.
    #[error("CUDA is not available: {0}")]
    CudaUnavailable(String),

    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
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
