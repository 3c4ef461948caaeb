//! Recording: the recorder node that turns bus traffic into a LeRobot dataset.

pub mod align;
pub mod intake;
pub mod recorder;
pub mod replay;

#[cfg(test)]
mod tests;
