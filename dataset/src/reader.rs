//! Reading datasets for training: LeRobot v3.0 and v2.x layouts, random access to frames, chunk
//! targets (the H actions after a frame, padded and masked at episode ends), n-step returns, and
//! decoded images either from a whole-dataset frame cache (each video file decoded once,
//! sequentially, or read from a frame cache file without FFmpeg) or by keyframe seeks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::consistency::{MetadataCheck, RowIndices};
use crate::episodes::{read_episode_listing, read_episodes_v2, read_tasks, EpisodeMeta};
use crate::error::{DatasetError, Result};
use crate::info::{DatasetInfo, Layout};
use crate::table::{read_parquet, Column, Table};
use crate::writer::{ACTION, DONE, ENV_STATE, PROXY, REWARD, STATE, SUCCESS, TRUNCATED};

/// LeRobot's tolerance between a frame's timestamp and its video pts, s.
pub const TIMESTAMP_TOLERANCE_S: f64 = 1e-4;

/// The H future actions of a frame: a chunk target.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionWindow {
    /// `horizon × action_dim` values, row-major; rows past the episode end repeat its last action.
    pub values: Vec<f32>,
    /// Per row: whether it is a real action of the episode (false: padding).
    pub mask: Vec<bool>,
}

/// An n-step return from frame `i`: `discounted_reward + discount · V(s_next)`.
///
/// Inside an episode, `steps` = n rewards and `next` = `i + n` with `discount` γⁿ. A
/// termination inside the window ends the sum there, without bootstrap (`next` `None`,
/// `discount` 0). A truncation (time limit, recording stopped) bootstraps: the observation
/// after the episode's last frame L is not stored, so the sum stops before L's reward and
/// bootstraps from frame L itself (`steps` = L − i rewards, `discount` γ^(L−i)); from L itself,
/// the sum is r_L and the bootstrap γ·V(s_L) stands in for γ·V(s_{L+1}). Both are
/// approximations where the value is an action-value over chunks: the recorded action a_L
/// (inside the chunk) is valued as if the policy had chosen it at s_L, and s_{L+1} ≈ s_L (a
/// control step moves the arm a few millimetres). Where the reward at L is 0 (every truncation
/// in the sim: it rewards success only, and success terminates) the first changes nothing.
/// A `done` before the episode's last frame (some external datasets) ends the window like the
/// last frame does.
#[derive(Clone, Debug, PartialEq)]
pub struct NStep {
    /// Σ_{k<steps} γ^k r_{i+k}.
    pub discounted_reward: f64,
    /// Rewards summed (≤ n).
    pub steps: usize,
    /// Whether the window ends in a termination (then there is no bootstrap).
    pub terminal: bool,
    /// Frame to bootstrap from, unless terminal.
    pub next: Option<usize>,
    /// Weight of the bootstrap value (0 when terminal).
    pub discount: f64,
}

/// A dataset loaded for reading. Frames are addressed by their global `index` (0…len).
pub struct Dataset {
    root: PathBuf,
    info: DatasetInfo,
    tasks: Vec<String>,
    episodes: Vec<EpisodeMeta>,
    state_dim: usize,
    action_dim: usize,
    env_dim: usize,
    state: Vec<f32>,
    action: Vec<f32>,
    env_state: Vec<f32>,
    reward: Vec<f32>,
    done: Vec<bool>,
    truncated: Vec<bool>,
    success: Vec<bool>,
    task_index: Vec<i64>,
    frame_index: Vec<u32>,
    episode_pos: Vec<u32>,
    /// Per frame: the action is a proxy label (`action.is_proxy`), not a recorded one.
    proxy: Vec<bool>,
    /// The data parquet files, in reading order.
    files: Vec<PathBuf>,
    cache: HashMap<PathBuf, crate::frames::DecodedVideo>,
}

fn vector(t: &Table, path: &Path, name: &str) -> Result<(usize, Vec<f32>)> {
    match t.get(name) {
        Some(Column::F32Vec { dim, values }) => Ok((*dim, values.clone())),
        Some(Column::F32(v)) => Ok((1, v.clone())),
        Some(Column::F64(v)) => Ok((1, v.iter().map(|x| *x as f32).collect())),
        Some(_) => Err(DatasetError::parquet(path, format!("column {name:?} is not a float vector"))),
        None => Err(DatasetError::parquet(path, format!("missing column {name:?}"))),
    }
}

impl Dataset {
    /// Opens the dataset at `root` (v3.0 or v2.x) and loads all tabular data into memory.
    /// Metadata that contradicts the data or video files it points at is refused (see
    /// [`crate::consistency`]): the error names the file, the episode and both values.
    pub fn open(root: &Path) -> Result<Dataset> {
        let info = DatasetInfo::load(root)?;
        let layout = info.layout().map_err(|r| DatasetError::invalid(root, r))?;
        let keys = info.video_keys();
        let tasks = read_tasks(root)?;
        let listing = match layout {
            Layout::V30 => read_episode_listing(root, &keys)?,
            Layout::V2 => read_episodes_v2(root, &keys, info.fps)?,
        };
        let check = MetadataCheck::new(root, &info, layout, &listing);
        check.episode_list()?;
        let data_files = check.data_files()?;
        let episodes = listing.episodes.clone();
        let total = episodes.last().map_or(0, |e| e.to_index) as usize;
        let mut ds = Dataset {
            root: root.to_path_buf(),
            tasks,
            state_dim: 0,
            action_dim: 0,
            env_dim: 0,
            state: Vec::new(),
            action: Vec::new(),
            env_state: Vec::new(),
            reward: vec![0.0; total],
            done: vec![false; total],
            truncated: vec![false; total],
            success: vec![false; total],
            task_index: vec![0; total],
            frame_index: vec![0; total],
            episode_pos: vec![0; total],
            proxy: vec![false; total],
            files: data_files.iter().map(|f| f.path.clone()).collect(),
            cache: HashMap::new(),
            info: info.clone(),
            episodes,
        };
        let mut filled = vec![false; total];
        for file in &data_files {
            let path = &file.path;
            let t = read_parquet(path)?.table;
            let ids = RowIndices::from_table(&t, path)?;
            // Rows are checked against the metadata before any is placed by its index.
            check.rows(file, &ids)?;
            let index = ids.index;
            let rows = t.rows();
            let (sd, s) = vector(&t, path, STATE)?;
            // Action-free datasets (videos with states, to be labelled by an inverse-dynamics
            // model) have no action column: width 0.
            let (ad, a) = if t.get(ACTION).is_some() { vector(&t, path, ACTION)? } else { (0, Vec::new()) };
            let env = if t.get(ENV_STATE).is_some() { Some(vector(&t, path, ENV_STATE)?) } else { None };
            if ds.state.is_empty() {
                ds.state_dim = sd;
                ds.action_dim = ad;
                ds.env_dim = env.as_ref().map_or(0, |e| e.0);
                ds.state = vec![0.0; total * sd];
                ds.action = vec![0.0; total * ad];
                ds.env_state = vec![0.0; total * ds.env_dim];
            }
            if sd != ds.state_dim || ad != ds.action_dim || env.as_ref().map_or(0, |e| e.0) != ds.env_dim {
                return Err(DatasetError::parquet(path, "vector sizes differ from the other data files"));
            }
            let reward = t.get(REWARD).and_then(Column::as_f64);
            let done = t.get(DONE).and_then(Column::as_bool);
            let truncated = t.get(TRUNCATED).and_then(Column::as_bool);
            let success = t.get(SUCCESS).and_then(Column::as_bool);
            let task = t.get("task_index").and_then(Column::as_i64);
            if let Some(task) = &task {
                check.task_indices(file, task, ds.tasks.len())?;
            }
            let proxy = t.get(PROXY).and_then(Column::as_bool);
            for r in 0..rows {
                let Ok(g) = usize::try_from(index[r]) else { continue };
                if g >= total {
                    // Rows past the metadata (an interrupted episode) are ignored.
                    continue;
                }
                filled[g] = true;
                ds.state[g * sd..(g + 1) * sd].copy_from_slice(&s[r * sd..(r + 1) * sd]);
                ds.action[g * ad..(g + 1) * ad].copy_from_slice(&a[r * ad..(r + 1) * ad]);
                if let Some((ed, e)) = &env {
                    ds.env_state[g * ed..(g + 1) * ed].copy_from_slice(&e[r * ed..(r + 1) * ed]);
                }
                ds.reward[g] = reward.as_ref().map_or(0.0, |v| v[r] as f32);
                ds.done[g] = done.as_ref().is_some_and(|v| v[r]);
                ds.success[g] = success.as_ref().is_some_and(|v| v[r]);
                // Without `next.truncated` (LeRobot's own datasets, Armstack's before it): an
                // episode end is a termination where the task succeeded, else a truncation.
                ds.truncated[g] = match &truncated {
                    Some(v) => v[r],
                    None => ds.done[g] && !ds.success[g],
                };
                ds.task_index[g] = task.as_ref().map_or(0, |v| v[r]);
                ds.proxy[g] = proxy.as_ref().is_some_and(|v| v[r]);
            }
        }
        // After the rows: a wrong length shows as its episode's row count, not as a wrong total.
        check.totals()?;
        check.videos()?;
        if let Some(missing) = filled.iter().position(|f| !f) {
            return Err(DatasetError::invalid(
                root,
                format!("frame index {missing} is referenced by meta/episodes but missing from the data files"),
            ));
        }
        for (pos, e) in ds.episodes.iter().enumerate() {
            for (k, g) in (e.from_index..e.to_index).enumerate() {
                ds.frame_index[g as usize] = k as u32;
                ds.episode_pos[g as usize] = pos as u32;
            }
            // Every episode ends: datasets without next.done still mark episode ends for n-step
            // targets, and an end not marked done (a recording cut short) is a truncation.
            if e.to_index > e.from_index {
                let last = e.to_index as usize - 1;
                if !ds.done[last] {
                    ds.truncated[last] = true;
                }
                ds.done[last] = true;
            }
        }
        Ok(ds)
    }

    /// Dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `meta/info.json`.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }
    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.info.fps
    }
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.reward.len()
    }
    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.reward.is_empty()
    }
    /// Episodes, by index.
    pub fn episodes(&self) -> &[EpisodeMeta] {
        &self.episodes
    }
    /// The sim scene the dataset was recorded in (`armstack/scene` in `info.json`), if known.
    pub fn scene(&self) -> Option<&str> {
        self.info.extra.get(crate::writer::SCENE_KEY).and_then(|v| v.as_str())
    }

    /// Task strings, by task index.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }
    /// Components of `observation.state`.
    pub fn state_dim(&self) -> usize {
        self.state_dim
    }
    /// Components of `action`.
    pub fn action_dim(&self) -> usize {
        self.action_dim
    }
    /// Components of `observation.environment_state` (0 when absent).
    pub fn env_state_dim(&self) -> usize {
        self.env_dim
    }
    /// Video feature keys.
    pub fn camera_keys(&self) -> Vec<String> {
        self.info.video_keys()
    }
    /// `observation.state` of frame `i`.
    pub fn state(&self, i: usize) -> &[f32] {
        &self.state[i * self.state_dim..(i + 1) * self.state_dim]
    }
    /// True when the dataset has actions (an action-free one has width 0).
    pub fn has_actions(&self) -> bool {
        self.action_dim > 0
    }
    /// True when frame `i`'s action is a proxy label (written by `dataset label`), not recorded.
    pub fn is_proxy(&self, i: usize) -> bool {
        self.proxy[i]
    }
    /// The data parquet files, in reading order.
    pub fn data_files(&self) -> &[PathBuf] {
        &self.files
    }
    /// `action` of frame `i` (empty for an action-free dataset).
    pub fn action(&self, i: usize) -> &[f32] {
        &self.action[i * self.action_dim..(i + 1) * self.action_dim]
    }
    /// `observation.environment_state` of frame `i` (empty when absent).
    pub fn env_state(&self, i: usize) -> &[f32] {
        &self.env_state[i * self.env_dim..(i + 1) * self.env_dim]
    }
    /// `next.reward` of frame `i` (0 when the dataset has none).
    pub fn reward(&self, i: usize) -> f32 {
        self.reward[i]
    }
    /// Whether the episode ends after frame `i` (terminated or truncated).
    pub fn done(&self, i: usize) -> bool {
        self.done[i]
    }
    /// Whether the episode was cut after frame `i` without reaching a terminal state (`next.truncated`;
    /// see [`crate::writer::TRUNCATED`] for datasets without the column).
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }
    /// Whether the episode terminated after frame `i`: done and not truncated (the value after it is 0).
    pub fn terminal(&self, i: usize) -> bool {
        self.done[i] && !self.truncated[i]
    }
    /// `next.success` of frame `i`.
    pub fn success(&self, i: usize) -> bool {
        self.success[i]
    }
    /// Frame index within its episode.
    pub fn frame_index(&self, i: usize) -> usize {
        self.frame_index[i] as usize
    }
    /// The episode of frame `i`.
    pub fn episode_of(&self, i: usize) -> &EpisodeMeta {
        &self.episodes[self.episode_pos[i] as usize]
    }
    /// The instruction of frame `i`.
    pub fn task(&self, i: usize) -> &str {
        self.tasks.get(self.task_index[i] as usize).map_or("", String::as_str)
    }
    /// Task index of frame `i`.
    pub fn task_index(&self, i: usize) -> i64 {
        self.task_index[i]
    }

    /// The `horizon` actions starting at frame `i` (the chunk target), padded with the episode's
    /// last action and masked past its end.
    pub fn action_window(&self, i: usize, horizon: usize) -> ActionWindow {
        let end = self.episode_of(i).to_index as usize;
        let d = self.action_dim;
        let mut values = Vec::with_capacity(horizon * d);
        let mut mask = Vec::with_capacity(horizon);
        for k in 0..horizon {
            let j = (i + k).min(end - 1);
            values.extend_from_slice(self.action(j));
            mask.push(i + k < end);
        }
        ActionWindow { values, mask }
    }

    /// The n-step return from frame `i` and its bootstrap (see [`NStep`]).
    pub fn n_step(&self, i: usize, n: usize, gamma: f64) -> NStep {
        let episode_end = self.episode_of(i).to_index as usize;
        // The first episode end at or after i within reach (the reader marks every episode's
        // last frame done); a window that reaches none never meets `last`.
        let last = (i..(i + n).min(episode_end)).find(|&k| self.done[k]).unwrap_or(episode_end - 1);
        let end = last + 1;
        // Rewards of frames i .. i+steps; a truncated end stops before the last frame's reward
        // (the bootstrap from it covers that reward) unless i is the last frame.
        let reach = (i + n).min(end);
        let mut sum = 0.0;
        let mut discount = 1.0;
        for k in i..reach {
            if k == last && reach == end && k > i && !self.terminal(k) {
                return NStep { discounted_reward: sum, steps: k - i, terminal: false, next: Some(last), discount };
            }
            sum += discount * f64::from(self.reward[k]);
            discount *= gamma;
            if self.terminal(k) {
                return NStep { discounted_reward: sum, steps: k + 1 - i, terminal: true, next: None, discount: 0.0 };
            }
        }
        // A full window inside the episode bootstraps from i + n; the last frame of a truncated
        // episode from itself.
        let next = if reach < end { reach } else { last };
        NStep { discounted_reward: sum, steps: reach - i, terminal: false, next: Some(next), discount }
    }

    /// Path of the video file and the timestamp in it of camera `key` at frame `i`.
    pub fn video_location(&self, i: usize, key: &str) -> Result<(PathBuf, f64)> {
        let e = self.episode_of(i);
        let span = e
            .videos
            .iter()
            .find(|v| v.key == key)
            .ok_or_else(|| DatasetError::invalid(&self.root, format!("no video feature {key:?}")))?;
        let path = match self.info.layout() {
            Ok(Layout::V2) => self.info.v2_video_file(&self.root, key, e.index),
            _ => self.info.video_file(&self.root, key, span.chunk, span.file),
        };
        Ok((path, span.from_s + self.frame_index(i) as f64 / self.info.fps))
    }

    /// The video files the cameras' frames are read from, each once, sorted.
    pub fn video_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = std::collections::BTreeSet::new();
        for i in self.episodes.iter().map(|e| e.from_index as usize).filter(|i| *i < self.len()) {
            for key in self.camera_keys() {
                files.insert(self.video_location(i, &key)?.0);
            }
        }
        Ok(files.into_iter().collect())
    }

    /// Fills the frame cache from a frame cache file ([`crate::frame_cache`], written by
    /// [`Dataset::write_frame_cache_file`]) with plain file reads: no FFmpeg, any build. A file
    /// written for other video files, or before they changed, is refused.
    pub fn load_frame_cache_file(&mut self, path: &Path) -> Result<()> {
        let files = self.video_files()?;
        let decoded = crate::frame_cache::read(path, &self.root, self.info.fps, &self.camera_keys(), &files)?;
        self.cache.extend(decoded);
        Ok(())
    }

    /// Decodes every video file (on `threads` threads, what is not in the frame cache yet) and
    /// writes the frames to the frame cache file `path` for builds without FFmpeg.
    #[cfg(feature = "video")]
    pub fn write_frame_cache_file(
        &mut self,
        path: &Path,
        threads: usize,
    ) -> Result<crate::frame_cache::FrameCacheSummary> {
        self.load_frame_cache(threads)?;
        let files = self.video_files()?;
        let mut videos = Vec::with_capacity(files.len());
        for f in &files {
            let video = self.cache.get(f).ok_or_else(|| DatasetError::video(f, "not in the frame cache"))?;
            videos.push((f.as_path(), video));
        }
        crate::frame_cache::write(path, &self.root, self.info.fps, &self.camera_keys(), &videos)
    }

    /// Decodes every video file once into memory (files in parallel on `threads` threads).
    #[cfg(feature = "video")]
    pub fn load_frame_cache(&mut self, threads: usize) -> Result<()> {
        let files: Vec<PathBuf> = self.video_files()?.into_iter().filter(|f| !self.cache.contains_key(f)).collect();
        let threads = threads.max(1);
        let decoded: Vec<Result<(PathBuf, crate::video::DecodedVideo)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let files = &files;
                    s.spawn(move || {
                        files
                            .iter()
                            .skip(t)
                            .step_by(threads)
                            .map(|f| crate::video::decode_all(f).map(|d| (f.clone(), d)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        for d in decoded {
            let (path, video) = d?;
            self.cache.insert(path, video);
        }
        Ok(())
    }

    /// Camera `key` at frame `i` as RGB8 from the frame cache ([`Dataset::load_frame_cache`]).
    pub fn image(&self, i: usize, key: &str) -> Result<&[u8]> {
        let (path, t) = self.video_location(i, key)?;
        let video = self.cache.get(&path).ok_or_else(|| {
            DatasetError::video(&path, "not in the frame cache (load_frame_cache or load_frame_cache_file)")
        })?;
        // LeRobot's tolerance, widened to a quarter frame for files whose time base rounds.
        let tol = TIMESTAMP_TOLERANCE_S.max(0.25 / self.info.fps);
        let j = video
            .index_at(t, tol)
            .ok_or_else(|| DatasetError::video(&path, format!("no frame at {t:.4} s (frame {i})")))?;
        Ok(video.frame(j))
    }

    /// A keyframe-seeking image reader for this dataset (no cache; memory stays small).
    #[cfg(feature = "video")]
    pub fn seeker(&self) -> ImageSeeker {
        ImageSeeker { open: HashMap::new() }
    }
}

/// Reads images by seeking to the keyframe before each frame.
#[cfg(feature = "video")]
pub struct ImageSeeker {
    open: HashMap<PathBuf, crate::video::KeyframeSeeker>,
}

#[cfg(feature = "video")]
impl ImageSeeker {
    /// Camera `key` at frame `i` of `ds`, RGB8.
    pub fn image(&mut self, ds: &Dataset, i: usize, key: &str) -> Result<Vec<u8>> {
        let (path, t) = ds.video_location(i, key)?;
        if !self.open.contains_key(&path) {
            let s = crate::video::KeyframeSeeker::open(&path, ds.fps())?;
            self.open.insert(path.clone(), s);
        }
        match self.open.get_mut(&path) {
            Some(s) => s.frame_at(t),
            None => Err(DatasetError::video(&path, "seeker missing")),
        }
    }
}

/// Size on disk of everything under `root`, bytes.
pub fn disk_usage(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
    }
    total
}
