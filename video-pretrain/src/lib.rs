//! Armstack video pre-training (V-PTR: Bhateja et al., 2023, “Robotic Offline RL from Internet
//! Videos via Value-Function Pre-Training”): action-free video into frame stores, value
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
