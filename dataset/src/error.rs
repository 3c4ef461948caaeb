//! Dataset errors: every variant names the file (or directory) it is about.

use std::path::PathBuf;

/// Errors of dataset reading and writing.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Filesystem error on a path.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A JSON metadata file is malformed or truncated.
    #[error("{path}: malformed JSON: {reason}")]
    Json {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A parquet file is malformed, truncated or lacks a column.
    #[error("{path}: {reason}")]
    Parquet {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A video file cannot be opened, decoded or written.
    #[error("{path}: video: {reason}")]
    Video {
        /// File.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The dataset's content contradicts itself or the request (bad index, shape mismatch…).
    #[error("{path}: {reason}")]
    Invalid {
        /// Dataset directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A recording session would append frames that mean something else than the dataset's
    /// (another frame rate, robot, scene, camera set or feature): every differing setting.
    #[error("{}", crate::session::describe(path, mismatches))]
    Mismatch {
        /// Dataset directory.
        path: PathBuf,
        /// The settings that differ.
        mismatches: Vec<crate::session::SettingMismatch>,
    },
    /// An operation needs a cargo feature this build lacks.
    #[error("{what} needs armstack built with the `{feature}` feature")]
    MissingFeature {
        /// What was asked.
        what: &'static str,
        /// The cargo feature.
        feature: &'static str,
    },
}

impl DatasetError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> DatasetError {
        DatasetError::Io { path: path.into(), source }
    }

    /// A parquet problem in `path`.
    pub fn parquet(path: impl Into<PathBuf>, reason: impl ToString) -> DatasetError {
        DatasetError::Parquet { path: path.into(), reason: reason.to_string() }
    }

    /// An inconsistency in `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl ToString) -> DatasetError {
        DatasetError::Invalid { path: path.into(), reason: reason.to_string() }
    }

    /// A video problem in `path`.
    pub fn video(path: impl Into<PathBuf>, reason: impl ToString) -> DatasetError {
        DatasetError::Video { path: path.into(), reason: reason.to_string() }
    }
}

/// Result with [`DatasetError`].
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
