//! `meta/info.json`: the dataset's schema and layout (LeRobot v3.0, and v2.1 for reading).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DatasetError, Result};

/// The codebase version Armstack writes.
pub const CODEBASE_VERSION: &str = "v3.0";
/// Data file template of v3.0.
pub const DATA_PATH_V30: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// Video file template of v3.0.
pub const VIDEO_PATH_V30: &str = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
/// Files per chunk directory (LeRobot's default).
pub const DEFAULT_CHUNKS_SIZE: u64 = 1000;
/// Episodes per data file before a new file is started, MB (LeRobot's default).
pub const DEFAULT_DATA_FILES_SIZE_MB: u64 = 100;
/// Video file size before a new file is started, MB (LeRobot's default).
pub const DEFAULT_VIDEO_FILES_SIZE_MB: u64 = 500;

/// One feature (column or video stream) of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// `float32`, `int64`, `bool`, `string`, `video`, `image` …
    pub dtype: String,
    /// Shape of one frame's value (`[1]` for scalars, `[h, w, 3]` for videos).
    pub shape: Vec<u64>,
    /// Component names (a list, or a dict for older datasets), or null.
    #[serde(default)]
    pub names: Value,
    /// Video stream details (`video.codec`, `video.fps` …) for video features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
}

impl Feature {
    /// A float32 vector with named components.
    pub fn vector(names: &[&str]) -> Feature {
        Feature { dtype: "float32".into(), shape: vec![names.len() as u64], names: names.into(), info: None }
    }

    /// A scalar (`shape [1]`, names null).
    pub fn scalar(dtype: &str) -> Feature {
        Feature { dtype: dtype.into(), shape: vec![1], names: Value::Null, info: None }
    }

    /// An H.264 video stream of `width`×`height` RGB frames.
    pub fn video(width: u32, height: u32, fps: f64) -> Feature {
        Feature {
            dtype: "video".into(),
            shape: vec![u64::from(height), u64::from(width), 3],
            names: serde_json::json!(["height", "width", "channels"]),
            info: Some(serde_json::json!({
                "video.height": height,
                "video.width": width,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": false,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": false,
            })),
        }
    }

    /// Whether frames of this feature live in video files.
    pub fn is_video(&self) -> bool {
        self.dtype == "video"
    }

    /// Number of scalar components per frame.
    pub fn len(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }

    /// Whether the feature has no components.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `meta/info.json`. Unknown keys are kept, so rewriting a user's file loses nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// `v3.0` (written) or `v2.0`/`v2.1` (read only).
    pub codebase_version: String,
    /// Robot type, e.g. `widowx250`.
    #[serde(default)]
    pub robot_type: Option<String>,
    /// Episodes.
    pub total_episodes: u64,
    /// Frames.
    pub total_frames: u64,
    /// Distinct tasks.
    pub total_tasks: u64,
    /// Files per chunk directory.
    #[serde(default = "default_chunks_size")]
    pub chunks_size: u64,
    /// Frames per second.
    pub fps: f64,
    /// Splits, e.g. `{"train": "0:50"}`.
    #[serde(default)]
    pub splits: BTreeMap<String, String>,
    /// Data file template.
    pub data_path: String,
    /// Video file template (null without videos).
    #[serde(default)]
    pub video_path: Option<String>,
    /// Features by key.
    pub features: BTreeMap<String, Feature>,
    /// Everything else (`data_files_size_in_mb`, `total_chunks`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn default_chunks_size() -> u64 {
    DEFAULT_CHUNKS_SIZE
}

/// Which on-disk layout a dataset uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// LeRobot v3.0: many episodes per file, `meta/episodes/*.parquet`.
    V30,
    /// LeRobot v2.x: one parquet and one mp4 per episode, `meta/episodes.jsonl`.
    V2,
}

impl DatasetInfo {
    /// A new v3.0 info with the default per-frame columns and `features` added.
    pub fn new(fps: f64, robot_type: &str, features: BTreeMap<String, Feature>) -> DatasetInfo {
        let mut all = features;
        all.insert("timestamp".into(), Feature::scalar("float32"));
        for k in ["frame_index", "episode_index", "index", "task_index"] {
            all.insert(k.into(), Feature::scalar("int64"));
        }
        let has_video = all.values().any(Feature::is_video);
        let mut extra = BTreeMap::new();
        extra.insert("data_files_size_in_mb".into(), DEFAULT_DATA_FILES_SIZE_MB.into());
        extra.insert("video_files_size_in_mb".into(), DEFAULT_VIDEO_FILES_SIZE_MB.into());
        DatasetInfo {
            codebase_version: CODEBASE_VERSION.into(),
            robot_type: Some(robot_type.into()),
            total_episodes: 0,
            total_frames: 0,
            total_tasks: 0,
            chunks_size: DEFAULT_CHUNKS_SIZE,
            fps,
            splits: BTreeMap::new(),
            data_path: DATA_PATH_V30.into(),
            video_path: has_video.then(|| VIDEO_PATH_V30.into()),
            features: all,
            extra,
        }
    }

    /// Reads `DIR/meta/info.json`.
    pub fn load(root: &Path) -> Result<DatasetInfo> {
        let path = root.join("meta/info.json");
        let text = std::fs::read_to_string(&path).map_err(|e| DatasetError::io(&path, e))?;
        let info: DatasetInfo = serde_json::from_str(&text)
            .map_err(|e| DatasetError::Json { path: path.clone(), reason: e.to_string() })?;
        if info.fps <= 0.0 || !info.fps.is_finite() {
            return Err(DatasetError::invalid(&path, format!("fps must be positive, got {}", info.fps)));
        }
        info.layout().map_err(|reason| DatasetError::invalid(&path, reason))?;
        Ok(info)
    }

    /// The JSON text of this info (pretty, as LeRobot writes it).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The layout, from `codebase_version`.
    pub fn layout(&self) -> std::result::Result<Layout, String> {
        match self.codebase_version.as_str() {
            "v3.0" => Ok(Layout::V30),
            "v2.0" | "v2.1" => Ok(Layout::V2),
            other => Err(format!("unsupported codebase_version {other:?} (reads v2.0, v2.1, v3.0)")),
        }
    }

    /// Keys of video features, sorted.
    pub fn video_keys(&self) -> Vec<String> {
        self.features.iter().filter(|(_, f)| f.is_video()).map(|(k, _)| k.clone()).collect()
    }

    /// Data file size limit, bytes.
    pub fn data_file_limit_bytes(&self) -> u64 {
        self.extra.get("data_files_size_in_mb").and_then(Value::as_u64).unwrap_or(DEFAULT_DATA_FILES_SIZE_MB) << 20
    }

    /// Video file size limit, bytes.
    pub fn video_file_limit_bytes(&self) -> u64 {
        self.extra.get("video_files_size_in_mb").and_then(Value::as_u64).unwrap_or(DEFAULT_VIDEO_FILES_SIZE_MB) << 20
    }

    /// Path of a v3.0 data file.
    pub fn data_file(&self, root: &Path, chunk: u64, file: u64) -> PathBuf {
        root.join(fill(&self.data_path, &[("chunk_index", chunk), ("file_index", file)], None))
    }

    /// Path of a v3.0 video file.
    pub fn video_file(&self, root: &Path, key: &str, chunk: u64, file: u64) -> PathBuf {
        let template = self.video_path.as_deref().unwrap_or(VIDEO_PATH_V30);
        root.join(fill(template, &[("chunk_index", chunk), ("file_index", file)], Some(key)))
    }

    /// Path of a v2.x episode data file.
    pub fn v2_data_file(&self, root: &Path, episode: u64) -> PathBuf {
        let chunk = episode / self.chunks_size.max(1);
        root.join(fill(&self.data_path, &[("episode_chunk", chunk), ("episode_index", episode)], None))
    }

    /// Path of a v2.x episode video file.
    pub fn v2_video_file(&self, root: &Path, key: &str, episode: u64) -> PathBuf {
        let chunk = episode / self.chunks_size.max(1);
        let template = self
            .video_path
            .as_deref()
            .unwrap_or("videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4");
        root.join(fill(template, &[("episode_chunk", chunk), ("episode_index", episode)], Some(key)))
    }
}

/// Fills a Python format template: `{name:0Nd}` and `{name}` integer fields, `{video_key}`.
pub fn fill(template: &str, ints: &[(&str, u64)], video_key: Option<&str>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let field = &rest[open + 1..open + close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        if name == "video_key" {
            out.push_str(video_key.unwrap_or(""));
        } else if let Some((_, v)) = ints.iter().find(|(n, _)| *n == name) {
            let width: usize = spec.trim_start_matches('0').trim_end_matches('d').parse().unwrap_or(0);
            out.push_str(&format!("{v:0width$}"));
        } else {
            out.push_str(&rest[open..open + close + 1]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_like_python_format() {
        assert_eq!(
            fill(DATA_PATH_V30, &[("chunk_index", 0), ("file_index", 12)], None),
            "data/chunk-000/file-012.parquet"
        );
        assert_eq!(
            fill(VIDEO_PATH_V30, &[("chunk_index", 1), ("file_index", 2)], Some("observation.images.front")),
            "videos/observation.images.front/chunk-001/file-002.mp4"
        );
        assert_eq!(
            fill(
                "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                &[("episode_chunk", 0), ("episode_index", 42)],
                None
            ),
            "data/chunk-000/episode_000042.parquet"
        );
    }
}
