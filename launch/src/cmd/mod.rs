//! One module per CLI verb.

pub mod dataset;
pub mod launch;
pub mod record;
pub mod render;
pub mod scene;
pub mod sim;
pub mod teleop;
pub mod topics;
