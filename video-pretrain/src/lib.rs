//! Armstack video pre-training (DESIGN.md §5): action-free video into frame stores, value
//! pre-training on them (ICVF, V-PTR), and inverse-dynamics labels for action-free episodes
//! (SS-ORL).

pub mod error;
pub mod icvf;
pub mod idm;
pub mod image_ops;
#[cfg(feature = "video")]
pub mod ingest;
pub mod resample;
pub mod store;
