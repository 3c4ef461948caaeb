//! burn modules: the image encoder, the chunked-action policy and the chunk critic.

pub mod critic;
pub mod image;
pub mod policy;

pub use critic::ChunkCritic;
pub use image::ImageEncoder;
pub use policy::{ChunkPolicy, ObsBatch};
