//! One module per CLI verb, and the range checks of their numeric flags.

pub mod arg_ranges;
pub mod calibrate;
pub mod curves;
pub mod dataset;
pub mod demo;
pub mod demo_quality;
pub mod deploy;
pub mod driver;
pub mod eval;
pub mod launch;
pub mod policy_args;
pub mod record;
pub mod render;
pub mod scene;
pub mod sim;
pub mod teleop;
pub mod topics;
pub mod train;
pub mod train_icvf;
pub mod train_idm;
pub mod train_online;
pub mod video;
#[cfg(not(feature = "video"))]
pub mod video_support;
