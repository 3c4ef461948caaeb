//! One module per CLI verb.

pub mod launch;
pub mod render;
pub mod scene;
pub mod sim;
pub mod topics;
