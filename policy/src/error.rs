//! Errors of the policy crate.

use std::path::PathBuf;

/// Anything that can go wrong building, training, loading or running a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// The simulator failed.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] bus::BusError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A checkpoint is missing, malformed or does not match its config.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Inputs do not fit the model (dimensions, cameras, action kind).
    #[error("{0}")]
    Mismatch(String),
    /// A setting is invalid.
    #[error("invalid config: {0}")]
    Config(String),
    /// Training diverged or was interrupted.
    #[error("training: {0}")]
    Training(String),
}

impl PolicyError {
    /// A checkpoint error for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> PolicyError {
        PolicyError::Checkpoint { path: path.into(), reason: reason.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> PolicyError {
        PolicyError::Io { path: path.into(), source }
    }
}

/// Result with [`PolicyError`].
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;
