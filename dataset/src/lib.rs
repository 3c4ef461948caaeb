//! Armstack datasets: LeRobot v3.0 read/write (parquet + mp4), statistics, quality metrics and
//! an episode replay source.
//!
//! - [`writer::DatasetWriter`] records episodes crash-safely (see its module docs);
//! - [`reader::Dataset`] reads v3.0 and v2.x datasets for training: random access, chunk
//!   targets, n-step returns, decoded images (frame cache or keyframe seeks);
//! - [`stats`] computes `meta/stats.json`; [`quality`] the dataset measures TQ and SACo.
//!
//! Video encoding and decoding sit behind the `video` feature (FFmpeg through video-rs), so a
//! GPU build links no FFmpeg; everything tabular works without it, and so do images read from a
//! frame cache file that a `video` build wrote ([`frame_cache`]).

pub mod consistency;
#[cfg(feature = "video")]
pub mod decode;
pub mod durable;
pub mod episodes;
pub mod error;
#[cfg(feature = "video")]
pub mod export;
pub mod frame_cache;
pub mod frames;
pub mod info;
pub mod mp4;
pub mod quality;
pub mod reader;
pub mod relabel;
pub mod session;
pub mod stats;
pub mod table;
#[cfg(feature = "video")]
pub mod video;
pub mod writer;

pub use episodes::{EpisodeMeta, VideoSpan};
pub use error::{DatasetError, Result};
pub use info::{DatasetInfo, Feature, Layout};
pub use reader::{ActionWindow, Dataset, NStep};
pub use stats::FeatureStats;
pub use writer::{CameraFeature, DatasetSpec, DatasetWriter, EpisodeSummary, FrameRecord};
