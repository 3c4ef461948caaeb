//! Recording: the recorder node that turns bus traffic into a LeRobot dataset.

pub mod align;
pub mod recorder;
pub mod replay;
