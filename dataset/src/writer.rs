//! Writing LeRobot v3.0 datasets episode by episode, crash-safely.
//!
//! While an episode records, its frames are buffered and each camera streams into its own H.264
//! segment under `.staging/`. [`DatasetWriter::end_episode`] then makes the episode durable in
//! this order: every camera's segment is appended to its many-episode mp4 (remux, no re-encode,
//! atomic replace), the data parquet file is rewritten with the episode's rows (atomic replace),
//! then `meta/episodes`, `meta/tasks.parquet`, `meta/stats.json` and last `meta/info.json`.
//! A process killed at any point leaves the earlier episodes readable; `resume` removes what an
//! interrupted episode left behind (staging segments, rows past the metadata) and appends.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::durable;
#[cfg(feature = "video")]
use crate::episodes::VideoSpan;
use crate::episodes::{write_episodes, write_tasks, EpisodeMeta};
use crate::error::{DatasetError, Result};
use crate::info::{DatasetInfo, Feature};
use crate::session::{session_info, SessionSettings};
use crate::stats::{FeatureStats, ImageStats, VectorStats};
use crate::table::{write_parquet, Column, Table};
#[cfg(feature = "video")]
use crate::video::{append_segment, SegmentEncoder, VideoSettings};

mod resume;

/// Feature key of the measured robot state.
pub const STATE: &str = "observation.state";
/// Feature key of the privileged environment state (object poses), as LeRobot names it.
pub const ENV_STATE: &str = "observation.environment_state";
/// Feature key of the commanded action.
pub const ACTION: &str = "action";
/// Whether the frame's action is a proxy label (inferred by an inverse-dynamics model, written
/// by `armstack dataset label`) rather than the recorded command.
pub const PROXY: &str = "action.is_proxy";
/// Reward of the step that followed the frame.
pub const REWARD: &str = "next.reward";
/// Whether the episode ended after the frame (terminated or truncated, as LeRobot reads it).
pub const DONE: &str = "next.done";
/// Whether the episode was cut after the frame without reaching a terminal state (a time limit,
/// an operator ending the recording): the value of the state after it is not zero, and returns
/// bootstrap there. A frame with `next.done` and not `next.truncated` is a termination.
pub const TRUNCATED: &str = "next.truncated";
/// Whether the task was achieved after the frame.
pub const SUCCESS: &str = "next.success";

/// A camera stored as a video feature.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraFeature {
    /// Feature key, e.g. `observation.images.front`.
    pub key: String,
    /// Width, px (even).
    pub width: u32,
    /// Height, px (even).
    pub height: u32,
}

/// `info.json` key naming the sim scene of the recording.
pub const SCENE_KEY: &str = "armstack/scene";

/// What a new dataset holds.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// Frames per second.
    pub fps: f64,
    /// Robot type for `info.json`.
    pub robot_type: String,
    /// Names of the `observation.state` components.
    pub state_names: Vec<String>,
    /// Names of the `action` components.
    pub action_names: Vec<String>,
    /// Names of the `observation.environment_state` components (empty: no such feature).
    pub env_state_names: Vec<String>,
    /// Cameras, each one video feature.
    pub cameras: Vec<CameraFeature>,
    /// Sim scene the episodes were recorded in (`info.json` key `armstack/scene`), if any.
    pub scene: Option<String>,
}

/// One frame to append.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameRecord {
    /// Measured state.
    pub state: Vec<f32>,
    /// Commanded action.
    pub action: Vec<f32>,
    /// Environment state (empty when the dataset has none).
    pub env_state: Vec<f32>,
    /// Reward of the step after this frame.
    pub reward: f32,
    /// Episode ended after this frame (terminated or truncated).
    pub done: bool,
    /// Episode was cut after this frame without reaching a terminal state (implies `done`).
    pub truncated: bool,
    /// Task achieved after this frame.
    pub success: bool,
    /// RGB8 images, one per camera in spec order.
    pub images: Vec<Vec<u8>>,
}

/// What `end_episode` did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeSummary {
    /// Episode index.
    pub index: u64,
    /// Frames written.
    pub frames: u64,
    /// Total episodes in the dataset now.
    pub total_episodes: u64,
}

struct EpisodeBuffer {
    task: String,
    state: Vec<f32>,
    action: Vec<f32>,
    env_state: Vec<f32>,
    reward: Vec<f32>,
    done: Vec<bool>,
    truncated: Vec<bool>,
    success: Vec<bool>,
    #[cfg(feature = "video")]
    segments: Vec<SegmentEncoder>,
    images: Vec<ImageStats>,
    frames: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct FileCursor {
    chunk: u64,
    file: u64,
    /// Frames already in the file (videos) or rows (data).
    items: u64,
}

/// Writes a LeRobot v3.0 dataset.
pub struct DatasetWriter {
    root: PathBuf,
    info: DatasetInfo,
    tasks: Vec<String>,
    episodes: Vec<EpisodeMeta>,
    data_cursor: FileCursor,
    data_table: Table,
    #[cfg_attr(not(feature = "video"), allow(dead_code))]
    video_cursors: Vec<FileCursor>,
    cameras: Vec<CameraFeature>,
    numeric: BTreeMap<String, VectorStats>,
    images: Vec<ImageStats>,
    episode: Option<EpisodeBuffer>,
    #[cfg(feature = "video")]
    video: VideoSettings,
    dims: (usize, usize, usize),
    expert_noise: Option<f64>,
    demo_quality: Option<String>,
    mistake: Option<String>,
}

const NUMERIC_SCALARS: [&str; 6] = [REWARD, "timestamp", "frame_index", "episode_index", "index", "task_index"];

impl DatasetWriter {
    /// Creates a new dataset at `root` (which must not hold one already).
    pub fn create(root: &Path, spec: &DatasetSpec) -> Result<DatasetWriter> {
        Self::create_session(root, spec, &SessionSettings::new())
    }

    /// Creates a new dataset at `root` for a recording session whose `settings` (the robot
    /// kind, the physics rate …) fix what a frame means beside `spec`; they are stored in
    /// `info.json` so that [`DatasetWriter::resume_session`] can refuse a session that differs.
    pub fn create_session(root: &Path, spec: &DatasetSpec, settings: &SessionSettings) -> Result<DatasetWriter> {
        if root.join("meta/info.json").exists() {
            return Err(DatasetError::invalid(root, "a dataset already exists here (use --resume to append)"));
        }
        if cfg!(not(feature = "video")) && !spec.cameras.is_empty() {
            return Err(DatasetError::MissingFeature { what: "recording cameras", feature: "video" });
        }
        let info = session_info(spec, settings);
        std::fs::create_dir_all(root.join("meta")).map_err(|e| DatasetError::io(root, e))?;
        durable::replace_file(&root.join("meta/info.json"), info.to_json().as_bytes())?;
        Self::from_parts(root, info, Vec::new(), Vec::new())
    }

    fn from_parts(root: &Path, info: DatasetInfo, tasks: Vec<String>, episodes: Vec<EpisodeMeta>) -> Result<Self> {
        let cameras: Vec<CameraFeature> = info
            .video_keys()
            .into_iter()
            .map(|k| {
                let f = &info.features[&k];
                CameraFeature {
                    key: k.clone(),
                    height: f.shape.first().copied().unwrap_or(0) as u32,
                    width: f.shape.get(1).copied().unwrap_or(0) as u32,
                }
            })
            .collect();
        let dim = |k: &str| info.features.get(k).map_or(0, Feature::len);
        let dims = (dim(STATE), dim(ACTION), dim(ENV_STATE));
        let mut numeric = BTreeMap::new();
        for (k, d) in [(STATE, dims.0), (ACTION, dims.1), (ENV_STATE, dims.2)] {
            if d > 0 {
                numeric.insert(k.to_string(), VectorStats::new(d));
            }
        }
        for k in NUMERIC_SCALARS {
            numeric.insert(k.to_string(), VectorStats::new(1));
        }
        let images = vec![ImageStats::default(); cameras.len()];
        Ok(DatasetWriter {
            root: root.to_path_buf(),
            info,
            tasks,
            episodes,
            data_cursor: FileCursor::default(),
            data_table: Table::default(),
            video_cursors: vec![FileCursor::default(); cameras.len()],
            cameras,
            numeric,
            images,
            episode: None,
            #[cfg(feature = "video")]
            video: VideoSettings::default(),
            dims,
            expert_noise: None,
            demo_quality: None,
            mistake: None,
        })
    }

    /// Sets the video encoder settings for new episodes.
    #[cfg(feature = "video")]
    pub fn set_video_settings(&mut self, settings: VideoSettings) {
        self.video = settings;
    }

    /// The dataset's info as it will be written.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// Episodes written so far.
    pub fn episodes(&self) -> u64 {
        self.episodes.len() as u64
    }

    /// The metadata of every episode written so far (seeds, success, …).
    pub fn episode_meta(&self) -> &[EpisodeMeta] {
        &self.episodes
    }

    /// Sets the noise level of the scripted expert that drives the next episodes (None: a person
    /// or another device drives); stored per episode as `armstack/expert_noise`.
    pub fn set_expert_noise(&mut self, noise: Option<f64>) {
        self.expert_noise = noise;
    }

    /// Sets the demonstration quality of the scripted expert that drives the next episodes
    /// (`expert`, `mixed`, `noisy`; None: a person or another device drives); stored per episode
    /// as `armstack/demo_quality`.
    pub fn set_demo_quality(&mut self, quality: Option<&str>) {
        self.demo_quality = quality.map(str::to_string);
    }

    /// Sets the mistake the scripted expert made in the episode being recorded (`none`,
    /// `missed_grasp`, …; None: unknown); stored with the next episode ended, as
    /// `armstack/mistake`, and kept for later episodes until set again.
    pub fn set_mistake(&mut self, mistake: Option<&str>) {
        self.mistake = mistake.map(str::to_string);
    }

    /// Dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn accumulate_numeric(&mut self, t: &Table) {
        for (name, col) in &t.columns {
            if let Some(acc) = self.numeric.get_mut(name) {
                for i in 0..col.rows() {
                    let row: Vec<f32> = col.row_f64(i).iter().map(|x| *x as f32).collect();
                    acc.push(&row);
                }
            }
        }
    }

    /// Starts an episode for `task` (an instruction). A still-open episode is discarded.
    pub fn begin_episode(&mut self, task: &str) -> Result<()> {
        if self.episode.is_some() {
            tracing::warn!("begin_episode with an open episode: discarding it");
            self.discard_episode();
        }
        #[cfg(feature = "video")]
        let segments = {
            let idx = self.episodes.len();
            self.cameras
                .iter()
                .map(|c| {
                    let path = self.root.join(".staging").join(format!("{}-{idx:06}.mkv", c.key));
                    SegmentEncoder::create(&path, c.width as usize, c.height as usize, self.info.fps, &self.video)
                })
                .collect::<Result<Vec<_>>>()?
        };
        self.episode = Some(EpisodeBuffer {
            task: task.to_string(),
            state: Vec::new(),
            action: Vec::new(),
            env_state: Vec::new(),
            reward: Vec::new(),
            done: Vec::new(),
            truncated: Vec::new(),
            success: Vec::new(),
            #[cfg(feature = "video")]
            segments,
            images: vec![ImageStats::default(); self.cameras.len()],
            frames: 0,
        });
        Ok(())
    }

    /// Appends a frame to the open episode (images are encoded now).
    pub fn add_frame(&mut self, frame: &FrameRecord) -> Result<()> {
        let root = self.root.clone();
        let (ds, da, de) = self.dims;
        let cameras = self.cameras.clone();
        let ep =
            self.episode.as_mut().ok_or_else(|| DatasetError::invalid(&root, "add_frame without begin_episode"))?;
        if frame.state.len() != ds || frame.action.len() != da || frame.env_state.len() != de {
            return Err(DatasetError::invalid(
                &root,
                format!(
                    "frame has state/action/env_state of {}/{}/{} values, the dataset expects {ds}/{da}/{de}",
                    frame.state.len(),
                    frame.action.len(),
                    frame.env_state.len()
                ),
            ));
        }
        if frame.images.len() != cameras.len() {
            return Err(DatasetError::invalid(
                &root,
                format!("frame has {} images, the dataset has {} cameras", frame.images.len(), cameras.len()),
            ));
        }
        #[cfg(feature = "video")]
        for (seg, img) in ep.segments.iter_mut().zip(&frame.images) {
            seg.push(img)?;
        }
        for (s, img) in ep.images.iter_mut().zip(&frame.images) {
            s.push_rgb8(img);
        }
        ep.state.extend_from_slice(&frame.state);
        ep.action.extend_from_slice(&frame.action);
        ep.env_state.extend_from_slice(&frame.env_state);
        ep.reward.push(frame.reward);
        ep.done.push(frame.done || frame.truncated);
        ep.truncated.push(frame.truncated);
        ep.success.push(frame.success);
        ep.frames += 1;
        Ok(())
    }

    /// Frames in the open episode.
    pub fn episode_frames(&self) -> u64 {
        self.episode.as_ref().map_or(0, |e| e.frames)
    }

    /// Drops the open episode (re-record): nothing of it reaches the dataset.
    pub fn discard_episode(&mut self) {
        if let Some(ep) = self.episode.take() {
            #[cfg(feature = "video")]
            for seg in ep.segments {
                if let Ok(p) = seg.finish() {
                    let _ = std::fs::remove_file(p);
                }
            }
            let _ = ep;
        }
    }

    /// Makes the open episode durable. `seed` and `success` go to Armstack's own episode columns.
    /// An episode without frames is discarded (returns `None`). A seed above 2^63 − 1 does not
    /// fit LeRobot's int64 episode columns: it is refused (the episode stays open) rather than
    /// stored wrapped.
    pub fn end_episode(&mut self, seed: Option<u64>, success: Option<bool>) -> Result<Option<EpisodeSummary>> {
        if let Some(seed) = seed.filter(|s| i64::try_from(*s).is_err()) {
            return Err(DatasetError::invalid(
                &self.root,
                format!("episode seed {seed} does not fit the int64 column armstack/seed (at most 2^63 - 1)"),
            ));
        }
        let Some(ep) = self.episode.take() else { return Ok(None) };
        if ep.frames == 0 {
            self.episode = Some(ep);
            self.discard_episode();
            return Ok(None);
        }
        let fps = self.info.fps;
        let index = self.episodes.len() as u64;
        // The task joins the table only with a kept episode (a discarded one leaves no trace).
        let task_index = match self.tasks.iter().position(|t| *t == ep.task) {
            Some(i) => i,
            None => {
                self.tasks.push(ep.task.clone());
                self.tasks.len() - 1
            }
        };
        let from_index = self.episodes.last().map_or(0, |e| e.to_index);
        let n = ep.frames;
        // 1. Videos.
        #[allow(unused_mut)]
        let mut videos = Vec::new();
        #[cfg(feature = "video")]
        for (ci, seg) in ep.segments.into_iter().enumerate() {
            let key = self.cameras[ci].key.clone();
            let segment = seg.finish()?;
            let mut cur = self.video_cursors[ci];
            let mut dst = self.info.video_file(&self.root, &key, cur.chunk, cur.file);
            let seg_bytes = std::fs::metadata(&segment).map(|m| m.len()).unwrap_or(0);
            let dst_bytes = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
            if cur.items > 0 && dst_bytes + seg_bytes > self.info.video_file_limit_bytes() {
                cur = next_file(cur, self.info.chunks_size);
                dst = self.info.video_file(&self.root, &key, cur.chunk, cur.file);
            }
            // Offsets from integer frame counts: no float drift across many episodes.
            append_segment(&dst, &segment, cur.items as f64 / fps, fps)?;
            videos.push(VideoSpan {
                key,
                chunk: cur.chunk,
                file: cur.file,
                from_s: cur.items as f64 / fps,
                to_s: (cur.items + n) as f64 / fps,
            });
            cur.items += n;
            self.video_cursors[ci] = cur;
        }
        // 2. Data rows.
        let mut rows = Table::default();
        rows.push(STATE, Column::F32Vec { dim: self.dims.0, values: ep.state });
        rows.push(ACTION, Column::F32Vec { dim: self.dims.1, values: ep.action });
        if self.dims.2 > 0 {
            rows.push(ENV_STATE, Column::F32Vec { dim: self.dims.2, values: ep.env_state });
        }
        rows.push(REWARD, Column::F32(ep.reward));
        rows.push(DONE, Column::Bool(ep.done));
        rows.push(TRUNCATED, Column::Bool(ep.truncated));
        rows.push(SUCCESS, Column::Bool(ep.success));
        rows.push("timestamp", Column::F32((0..n).map(|i| (i as f64 / fps) as f32).collect()));
        rows.push("frame_index", Column::I64((0..n as i64).collect()));
        rows.push("episode_index", Column::I64(vec![index as i64; n as usize]));
        rows.push("index", Column::I64((from_index as i64..(from_index + n) as i64).collect()));
        rows.push("task_index", Column::I64(vec![task_index as i64; n as usize]));
        let data_path = self.info.data_file(&self.root, self.data_cursor.chunk, self.data_cursor.file);
        let data_bytes = std::fs::metadata(&data_path).map(|m| m.len()).unwrap_or(0);
        if self.data_cursor.items > 0 && data_bytes > self.info.data_file_limit_bytes() {
            self.data_cursor = next_file(self.data_cursor, self.info.chunks_size);
            self.data_table = Table::default();
        }
        let mut table = self.data_table.clone();
        if !table.append(&rows) {
            return Err(DatasetError::invalid(&data_path, "episode columns differ from the data file's"));
        }
        let data_path = self.info.data_file(&self.root, self.data_cursor.chunk, self.data_cursor.file);
        write_parquet(&data_path, &table, hf_metadata(&self.info))?;
        self.data_table = table;
        self.data_cursor.items += n;
        // 3. Metadata, info.json last.
        self.accumulate_numeric(&rows);
        for (g, e) in self.images.iter_mut().zip(&ep.images) {
            g.merge(e);
        }
        self.episodes.push(EpisodeMeta {
            index,
            tasks: vec![ep.task.clone()],
            length: n,
            data_chunk: self.data_cursor.chunk,
            data_file: self.data_cursor.file,
            from_index,
            to_index: from_index + n,
            videos,
            seed,
            success,
            expert_noise: self.expert_noise,
            demo_quality: self.demo_quality.clone(),
            mistake: self.mistake.clone(),
        });
        self.write_metadata()?;
        tracing::info!(episode = index, frames = n, "episode written");
        Ok(Some(EpisodeSummary { index, frames: n, total_episodes: self.episodes.len() as u64 }))
    }

    /// Current statistics of every feature.
    pub fn stats(&self) -> BTreeMap<String, FeatureStats> {
        let mut out: BTreeMap<String, FeatureStats> =
            self.numeric.iter().filter(|(_, s)| s.count() > 0).map(|(k, s)| (k.clone(), s.finish())).collect();
        for (c, s) in self.cameras.iter().zip(&self.images) {
            if s.count() > 0 {
                out.insert(c.key.clone(), s.finish());
            }
        }
        out
    }

    fn write_metadata(&mut self) -> Result<()> {
        write_episodes(&self.root, &self.episodes, &self.info.video_keys())?;
        write_tasks(&self.root, &self.tasks)?;
        let stats: serde_json::Map<String, serde_json::Value> =
            self.stats().into_iter().map(|(k, v)| (k, v.to_json())).collect();
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(stats)).unwrap_or_default();
        durable::replace_file(&self.root.join("meta/stats.json"), text.as_bytes())?;
        self.info.total_episodes = self.episodes.len() as u64;
        self.info.total_frames = self.episodes.last().map_or(0, |e| e.to_index);
        self.info.total_tasks = self.tasks.len() as u64;
        self.info.splits = BTreeMap::from([("train".to_string(), format!("0:{}", self.episodes.len()))]);
        durable::replace_file(&self.root.join("meta/info.json"), self.info.to_json().as_bytes())
    }

    /// Discards any open episode and removes the staging directory.
    pub fn finish(mut self) -> Result<u64> {
        self.discard_episode();
        let _ = std::fs::remove_dir_all(self.root.join(".staging"));
        Ok(self.episodes.len() as u64)
    }
}

fn next_file(c: FileCursor, chunks_size: u64) -> FileCursor {
    if c.file + 1 >= chunks_size.max(1) {
        FileCursor { chunk: c.chunk + 1, file: 0, items: 0 }
    } else {
        FileCursor { chunk: c.chunk, file: c.file + 1, items: 0 }
    }
}

/// The `huggingface` schema metadata (datasets' `Sequence` form, readable by datasets 3 and 4).
pub(crate) fn hf_metadata(info: &DatasetInfo) -> HashMap<String, String> {
    let mut features = serde_json::Map::new();
    for (k, f) in &info.features {
        if f.is_video() {
            continue;
        }
        let value = serde_json::json!({"dtype": f.dtype, "_type": "Value"});
        let v = if f.shape == [1] && f.names.is_null() || f.dtype == "bool" || k == REWARD {
            value
        } else {
            serde_json::json!({"feature": {"dtype": f.dtype, "_type": "Value"}, "length": f.len(), "_type": "Sequence"})
        };
        features.insert(k.clone(), v);
    }
    let meta = serde_json::json!({"info": {"features": features}});
    HashMap::from([("huggingface".to_string(), meta.to_string())])
}
