//! Checks that a dataset's metadata agrees with the rows and files it points at. Hand-edited or
//! half-converted metadata (a wrong `length`, a shifted `dataset_from_index`, a video span past
//! the end of its file) would otherwise shift frames from one episode to another silently; each
//! contradiction is refused with an error naming the metadata file, the episode and both values.
//!
//! [`MetadataCheck`] runs when a dataset opens (v3.0 and v2.x), in this order:
//! 1. [`MetadataCheck::episode_list`]: episode indices 0…n-1, each listed once; (v3.0)
//!    `dataset_from_index`/`dataset_to_index` contiguous from 0 and `length` apart; video spans
//!    `length / fps` long, not negative, not overlapping another episode's in the same file;
//! 2. [`MetadataCheck::data_files`]: every data file an episode points at exists;
//! 3. [`MetadataCheck::rows`], per data file: each episode has exactly `length` rows with its
//!    `episode_index`, their `index` runs from `dataset_from_index` to `dataset_to_index` and
//!    their `frame_index` from 0; no rows of episodes the metadata places elsewhere. Rows past
//!    the metadata (what a recording killed mid-episode leaves) are ignored. Only the index
//!    columns are looked at, `task_index` too: it must name a task
//!    ([`MetadataCheck::task_indices`]);
//! 4. [`MetadataCheck::totals`]: `total_episodes` and `total_frames` of `meta/info.json`;
//! 5. [`MetadataCheck::videos`]: every video file exists and lasts as long as the spans in it
//!    (read from MP4 box headers, nothing decoded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::episodes::EpisodeListing;
use crate::error::{DatasetError, Result};
use crate::info::{DatasetInfo, Layout};
use crate::table::{Column, Table};

/// The index columns of a data file's rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowIndices {
    /// `episode_index` per row.
    pub episode_index: Vec<i64>,
    /// `index` (global frame index) per row.
    pub index: Vec<i64>,
    /// `frame_index` (frame within its episode) per row, when the file has the column.
    pub frame_index: Option<Vec<i64>>,
}

impl RowIndices {
    /// The index columns of `table`, read from the data file `path`.
    pub fn from_table(table: &Table, path: &Path) -> Result<RowIndices> {
        let column = |name: &str| {
            table
                .get(name)
                .ok_or_else(|| DatasetError::parquet(path, format!("missing column {name:?}")))?
                .as_i64()
                .ok_or_else(|| DatasetError::parquet(path, format!("column {name:?} is not numeric")))
        };
        Ok(RowIndices {
            episode_index: column("episode_index")?,
            index: column("index")?,
            frame_index: table.get("frame_index").and_then(Column::as_i64),
        })
    }
}

/// A data file and the episodes the metadata places in it.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFile {
    /// The parquet file.
    pub path: PathBuf,
    /// Positions (in [`EpisodeListing::episodes`]) of its episodes.
    pub episodes: Vec<usize>,
}

/// Checks a dataset's episode metadata against its data and video files.
pub struct MetadataCheck<'a> {
    root: &'a Path,
    info: &'a DatasetInfo,
    layout: Layout,
    listing: &'a EpisodeListing,
}

/// A duration, s, as a short decimal (`1.6`, not `1.6000000000000003`).
fn secs(t_s: f64) -> f64 {
    (t_s * 1e4).round() / 1e4
}

impl<'a> MetadataCheck<'a> {
    /// A check of `listing` (read from `root` with `info`'s `layout`).
    pub fn new(root: &'a Path, info: &'a DatasetInfo, layout: Layout, listing: &'a EpisodeListing) -> Self {
        MetadataCheck { root, info, layout, listing }
    }

    /// `path` relative to the dataset root, for messages.
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(self.root).unwrap_or(path).display().to_string()
    }

    /// An error about the episode at position `pos`, in the file that lists it.
    fn contradiction(&self, pos: usize, reason: String) -> DatasetError {
        DatasetError::invalid(&self.listing.listed_in[pos], reason)
    }

    /// Half a frame period, s: the tolerance of span and duration comparisons.
    fn half_frame_s(&self) -> f64 {
        0.5 / self.info.fps
    }

    /// Episode indices, global index ranges and video spans of the episode list.
    pub fn episode_list(&self) -> Result<()> {
        let eps = &self.listing.episodes;
        let fps = self.info.fps;
        for (pos, e) in eps.iter().enumerate() {
            let i = e.index;
            if pos > 0 && eps[pos - 1].index == i {
                let (here, there) = (&self.listing.listed_in[pos], &self.listing.listed_in[pos - 1]);
                let also = if here == there { String::new() } else { format!(" (also in {})", self.rel(there)) };
                return Err(self.contradiction(pos, format!("episode {i} is listed twice{also}")));
            }
            if i != pos as u64 {
                let reason = match pos {
                    0 => format!("the first episode is episode {i}: episode 0 is missing"),
                    _ => format!("episode {} is followed by episode {i}: episode {pos} is missing", eps[pos - 1].index),
                };
                return Err(self.contradiction(pos, reason));
            }
            if self.layout == Layout::V30 {
                let (from, to) = (e.from_index, e.to_index);
                if pos == 0 && from != 0 {
                    return Err(self.contradiction(pos, format!("episode 0 says dataset_from_index {from}, not 0")));
                }
                if pos > 0 && from != eps[pos - 1].to_index {
                    let prev = eps[pos - 1].to_index;
                    return Err(self.contradiction(
                        pos,
                        format!(
                            "episode {i} says dataset_from_index {from} but episode {} ends at dataset_to_index {prev}",
                            i - 1
                        ),
                    ));
                }
                if to.checked_sub(from) != Some(e.length) {
                    return Err(self.contradiction(
                        pos,
                        format!("episode {i} says length {} but dataset_from_index {from} to dataset_to_index {to} is {} frames", e.length, to as i128 - from as i128),
                    ));
                }
            }
            for v in &e.videos {
                let (from_s, to_s) = (v.from_s, v.to_s);
                let want_s = e.length as f64 / fps;
                let span_ok = ((to_s - from_s) - want_s).abs() <= self.half_frame_s();
                if from_s.is_nan() || from_s < 0.0 || !span_ok {
                    return Err(self.contradiction(
                        pos,
                        format!(
                            "episode {i} says videos/{}/from_timestamp {} s and to_timestamp {} s ({} s) but length {} at {fps} fps lasts {} s",
                            v.key, secs(from_s), secs(to_s), secs(to_s - from_s), e.length, secs(want_s)
                        ),
                    ));
                }
            }
        }
        if self.layout == Layout::V30 {
            self.video_spans_disjoint()?;
        }
        Ok(())
    }

    /// No two episodes' spans overlap in one video file (a shifted span shows another
    /// episode's frames).
    fn video_spans_disjoint(&self) -> Result<()> {
        let mut by_file: BTreeMap<(&str, u64, u64), Vec<(f64, f64, usize)>> = BTreeMap::new();
        for (pos, e) in self.listing.episodes.iter().enumerate() {
            for v in &e.videos {
                by_file.entry((v.key.as_str(), v.chunk, v.file)).or_default().push((v.from_s, v.to_s, pos));
            }
        }
        for ((key, chunk, file), mut spans) in by_file {
            spans.sort_by(|a, b| a.0.total_cmp(&b.0));
            for w in spans.windows(2) {
                let ((from_a, to_a, a), (from_b, _, b)) = (w[0], w[1]);
                if from_b < to_a - self.half_frame_s() {
                    let eps = &self.listing.episodes;
                    let video = self.rel(&self.info.video_file(self.root, key, chunk, file));
                    return Err(self.contradiction(
                        b,
                        format!(
                            "episode {} says videos/{key}/from_timestamp {} s, inside episode {}'s span {} s to {} s of {video}",
                            eps[b].index, secs(from_b), eps[a].index, secs(from_a), secs(to_a)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The data files the episodes point at, in reading order; each must exist.
    pub fn data_files(&self) -> Result<Vec<DataFile>> {
        let mut files: Vec<DataFile> = Vec::new();
        let mut slot: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        for (pos, e) in self.listing.episodes.iter().enumerate() {
            let (key, path) = match self.layout {
                Layout::V30 => ((e.data_chunk, e.data_file), self.info.data_file(self.root, e.data_chunk, e.data_file)),
                Layout::V2 => ((0, e.index), self.info.v2_data_file(self.root, e.index)),
            };
            if let Some(&k) = slot.get(&key) {
                files[k].episodes.push(pos);
                continue;
            }
            if !path.is_file() {
                let reason = match self.layout {
                    Layout::V30 => format!(
                        "episode {} says data/chunk_index {} and data/file_index {} but {} does not exist",
                        e.index,
                        e.data_chunk,
                        e.data_file,
                        self.rel(&path)
                    ),
                    Layout::V2 => format!("episode {}'s data file {} does not exist", e.index, self.rel(&path)),
                };
                return Err(self.contradiction(pos, reason));
            }
            slot.insert(key, files.len());
            files.push(DataFile { path, episodes: vec![pos] });
        }
        Ok(files)
    }

    /// The rows of one data file against the episodes placed in it.
    pub fn rows(&self, file: &DataFile, rows: &RowIndices) -> Result<()> {
        let eps = &self.listing.episodes;
        let data = self.rel(&file.path);
        let mut by_episode: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (r, ep) in rows.episode_index.iter().enumerate() {
            by_episode.entry(*ep).or_default().push(r);
        }
        if let (Layout::V2, Some(&pos)) = (self.layout, file.episodes.first()) {
            // One file per episode: a row of another episode means the file is not this one's.
            let own = eps[pos].index as i64;
            if let Some((other, rs)) = by_episode.iter().find(|(ep, _)| **ep != own) {
                return Err(self.contradiction(
                    pos,
                    format!("{data} is episode {own}'s file but its row {} has episode_index {other}", rs[0]),
                ));
            }
        }
        for &pos in &file.episodes {
            let e = &eps[pos];
            let i = e.index;
            let mine = by_episode.remove(&(i as i64)).unwrap_or_default();
            if mine.len() as u64 != e.length {
                let rows_of = if self.layout == Layout::V2 { String::new() } else { format!(" of episode {i}") };
                return Err(self.contradiction(
                    pos,
                    format!("episode {i} says length {} but {data} has {} rows{rows_of}", e.length, mine.len()),
                ));
            }
            for (k, &r) in mine.iter().enumerate() {
                let want = (e.from_index + k as u64) as i64;
                if rows.index[r] != want {
                    let claim = match self.layout {
                        Layout::V30 => {
                            format!(
                                "episode {i} says dataset_from_index {} to dataset_to_index {}",
                                e.from_index, e.to_index
                            )
                        }
                        Layout::V2 => format!(
                            "the lengths of the episodes before episode {i} place it at index {} to {}",
                            e.from_index, e.to_index
                        ),
                    };
                    return Err(self.contradiction(
                        pos,
                        format!(
                            "{claim} but its frame {k} in {data} (row {r}) has index {}, not {want}",
                            rows.index[r]
                        ),
                    ));
                }
                if let Some(fi) = rows.frame_index.as_ref().map(|f| f[r]).filter(|f| *f != k as i64) {
                    return Err(DatasetError::invalid(
                        &file.path,
                        format!("row {r} is frame {k} of episode {i} but has frame_index {fi}"),
                    ));
                }
            }
        }
        let total = eps.last().map_or(0, |e| e.to_index) as i64;
        for (ep, rs) in by_episode {
            let listed = usize::try_from(ep).ok().and_then(|p| eps.get(p).map(|e| (p, e)));
            if let Some((pos, e)) = listed {
                let home = match self.layout {
                    Layout::V30 => self.info.data_file(self.root, e.data_chunk, e.data_file),
                    Layout::V2 => self.info.v2_data_file(self.root, e.index),
                };
                return Err(self.contradiction(
                    pos,
                    format!(
                        "episode {ep} says its data is in {} but {data} has {} rows of it",
                        self.rel(&home),
                        rs.len()
                    ),
                ));
            }
            let lowest = rs.iter().map(|r| rows.index[*r]).min().unwrap_or(total);
            if lowest < total {
                return Err(DatasetError::invalid(
                    &file.path,
                    format!(
                        "{} rows have episode_index {ep}, which the metadata does not list, and index from {lowest}, inside its {total} frames",
                        rs.len()
                    ),
                ));
            }
            tracing::warn!(file = %file.path.display(), episode = ep, rows = rs.len(), "ignoring rows past the metadata (an interrupted recording)");
        }
        Ok(())
    }

    /// Every row's `task_index` names a task of the tasks table (`task_count` tasks; a dataset
    /// without a tasks table is not checked), so no frame gets an empty instruction.
    pub fn task_indices(&self, file: &DataFile, task_index: &[i64], task_count: usize) -> Result<()> {
        if task_count == 0 {
            return Ok(());
        }
        let Some(r) = task_index.iter().position(|t| !usize::try_from(*t).is_ok_and(|t| t < task_count)) else {
            return Ok(());
        };
        let tasks = match self.layout {
            Layout::V30 => crate::episodes::TASKS_FILE,
            Layout::V2 => "meta/tasks.jsonl",
        };
        Err(DatasetError::invalid(
            &file.path,
            format!("row {r} has task_index {} but {tasks} has {task_count} tasks", task_index[r]),
        ))
    }

    /// Where the episode list comes from, for messages.
    fn episodes_source(&self) -> &'static str {
        match self.layout {
            Layout::V30 => "meta/episodes",
            Layout::V2 => "meta/episodes.jsonl",
        }
    }

    /// `total_episodes` and `total_frames` of `meta/info.json` against the episode list.
    pub fn totals(&self) -> Result<()> {
        let path = self.root.join("meta/info.json");
        let eps = &self.listing.episodes;
        let source = self.episodes_source();
        if self.info.total_episodes != eps.len() as u64 {
            return Err(DatasetError::invalid(
                &path,
                format!("total_episodes is {} but {source} lists {} episodes", self.info.total_episodes, eps.len()),
            ));
        }
        let frames: u64 = eps.iter().map(|e| e.length).sum();
        if self.info.total_frames != frames {
            return Err(DatasetError::invalid(
                &path,
                format!(
                    "total_frames is {} but the episode lengths in {source} add up to {frames}",
                    self.info.total_frames
                ),
            ));
        }
        Ok(())
    }

    /// Every video file exists and is at least as long as the furthest span in it (MP4 box
    /// headers only; other containers are not measured).
    pub fn videos(&self) -> Result<()> {
        // Per file: the furthest span end, s, and the episode position and key claiming it.
        let mut ends: BTreeMap<PathBuf, (f64, usize, &str)> = BTreeMap::new();
        for (pos, e) in self.listing.episodes.iter().enumerate() {
            for v in &e.videos {
                let path = match self.layout {
                    Layout::V30 => self.info.video_file(self.root, &v.key, v.chunk, v.file),
                    Layout::V2 => self.info.v2_video_file(self.root, &v.key, e.index),
                };
                let end = ends.entry(path).or_insert((v.to_s, pos, v.key.as_str()));
                if v.to_s > end.0 {
                    *end = (v.to_s, pos, v.key.as_str());
                }
            }
        }
        for (path, (to_s, pos, key)) in ends {
            let e = &self.listing.episodes[pos];
            let claim = match self.layout {
                Layout::V30 => format!("episode {} says videos/{key}/to_timestamp {} s", e.index, secs(to_s)),
                Layout::V2 => {
                    format!("episode {} says length {} ({} s at {} fps)", e.index, e.length, secs(to_s), self.info.fps)
                }
            };
            if !path.is_file() {
                return Err(self.contradiction(pos, format!("{claim} but {} does not exist", self.rel(&path))));
            }
            let Some(track) = crate::mp4::probe_video_track(&path)? else {
                tracing::debug!(file = %path.display(), "not a measurable MP4: video spans not checked");
                continue;
            };
            // The end of the last frame: what the samples' durations add up to, or the frame
            // count at the dataset's rate when the muxer gave the last frame no duration.
            let end_s = track.duration_s.max(track.frames as f64 / self.info.fps);
            if to_s > end_s + self.half_frame_s() {
                return Err(self.contradiction(
                    pos,
                    format!("{claim} but {} ends at {} s ({} frames)", self.rel(&path), secs(end_s), track.frames),
                ));
            }
        }
        Ok(())
    }
}
