//! Errors of value pre-training and inverse-dynamics labelling.

use std::path::PathBuf;

use crate::store::StoreError;

/// What can go wrong in ICVF training, IDM training or labelling.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// The frame store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Weights or a run folder.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// A dataset.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// A bad setting or input.
    #[error("{0}")]
    Config(String),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}
