//! burn modules: the image encoder, the chunked-action policy, the chunk critic, and the pieces
//! of online fine-tuning (the flow head and edit policy of EXPO, H2O's discriminators).

pub mod critic;
pub mod discriminator;
#[cfg(feature = "libtorch")]
pub mod dropout_mask;
pub mod edit;
pub mod flow;
#[cfg(feature = "libtorch")]
pub mod fused_libtorch;
pub mod image;
pub mod mlp;
pub mod policy;

pub use critic::ChunkCritic;
pub use discriminator::Discriminators;
pub use edit::EditPolicy;
pub use flow::{FlowHead, FlowPolicy};
pub use image::ImageEncoder;
pub use policy::{ChunkPolicy, ObsBatch};
