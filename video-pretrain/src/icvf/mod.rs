//! Intention-conditioned value functions (ICVF, the first stage of V-PTR) on action-free video.

pub mod loss;
pub mod model;
pub mod sampling;
pub mod train;
