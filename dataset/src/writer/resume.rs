//! Appending to an existing dataset: [`DatasetWriter::resume_session`] (refuses a session whose
//! frames mean something else) and [`DatasetWriter::resume`] (cleans up what an interrupted
//! episode left behind, then continues in the last data file and in new video files).

use std::path::Path;

#[cfg(feature = "video")]
use super::next_file;
use super::{hf_metadata, DatasetWriter, FileCursor};
use crate::consistency::{MetadataCheck, RowIndices};
use crate::episodes::{read_episode_listing, read_tasks};
use crate::error::{DatasetError, Result};
use crate::info::{DatasetInfo, Feature};
use crate::session::{mismatches, session_info, SessionSettings};
use crate::table::{read_parquet, write_parquet, Column, Table};
use crate::writer::{DONE, SUCCESS, TRUNCATED};
use crate::DatasetSpec;

impl DatasetWriter {
    /// Opens the dataset at `root` to append the episodes of a session recorded with `spec` and
    /// `settings`. Refuses ([`DatasetError::Mismatch`], naming every differing setting with both
    /// values) when the frame rate, robot type, scene, cameras, a feature or a session setting
    /// differs, before touching any file; a session setting the dataset predates is adopted.
    pub fn resume_session(root: &Path, spec: &DatasetSpec, settings: &SessionSettings) -> Result<DatasetWriter> {
        if !root.join("meta/info.json").exists() {
            return Err(DatasetError::invalid(root, "no dataset to append to here (no meta/info.json)"));
        }
        let (found, adopted) = mismatches(&DatasetInfo::load(root)?, &session_info(spec, settings));
        if !found.is_empty() {
            return Err(DatasetError::Mismatch { path: root.to_path_buf(), mismatches: found });
        }
        let mut w = Self::resume(root)?;
        for (key, value) in adopted {
            tracing::warn!(%key, %value, "the dataset predates this setting: storing this session's value");
            w.info.extra.insert(key, value);
        }
        Ok(w)
    }

    /// Opens an existing Armstack-written v3.0 dataset to append episodes. Leftovers of an
    /// interrupted episode (staging segments, temporary files, data rows the metadata does not
    /// reference) are removed; new video frames go to new video files.
    pub fn resume(root: &Path) -> Result<DatasetWriter> {
        let info = DatasetInfo::load(root)?;
        if info.layout().ok() != Some(crate::info::Layout::V30) {
            return Err(DatasetError::invalid(root, "only v3.0 datasets can be appended to"));
        }
        let _ = std::fs::remove_dir_all(root.join(".staging"));
        let tasks = read_tasks(root)?;
        let listing = read_episode_listing(root, &info.video_keys())?;
        // Metadata that contradicts the rows would make the truncation below drop recorded rows:
        // refuse it as the reader does. The totals in info.json are not compared: a recording
        // killed before it rewrote info.json leaves them an episode behind; the next episode fixes them.
        let listed_info = info.clone();
        let check = MetadataCheck::new(root, &listed_info, crate::info::Layout::V30, &listing);
        check.episode_list()?;
        let data_files = check.data_files()?;
        let mut w = Self::from_parts(root, info, tasks, listing.episodes.clone())?;
        // A dataset recorded before `next.truncated` existed gets the column, from the rule the
        // reader applies to such datasets (an end without success is a truncation), in every
        // data file and in info.json, so that old and new episodes share one schema.
        let backfill = !w.info.features.contains_key(TRUNCATED);
        if backfill {
            w.info.features.insert(TRUNCATED.to_string(), Feature::scalar("bool"));
        }
        // Data: continue in the last data file, truncated to the rows the metadata references.
        let mut all = Table::default();
        for data in &data_files {
            let path = &data.path;
            let mut t = read_parquet(path)?.table;
            check.rows(data, &RowIndices::from_table(&t, path)?)?;
            let keep: u64 = data.episodes.iter().map(|pos| w.episodes[*pos].length).sum();
            if t.rows() as u64 > keep {
                tracing::warn!(file = %path.display(), rows = t.rows(), keep, "dropping rows of an interrupted episode");
                t = truncate(&t, keep as usize);
                write_parquet(path, &t, hf_metadata(&w.info))?;
            }
            if backfill && t.get(TRUNCATED).is_none() {
                let flags = |name: &str| match t.get(name) {
                    Some(Column::Bool(v)) => v.clone(),
                    _ => vec![false; t.rows()],
                };
                let (done, success) = (flags(DONE), flags(SUCCESS));
                t.push(TRUNCATED, Column::Bool(done.iter().zip(&success).map(|(d, s)| *d && !*s).collect()));
                write_parquet(path, &t, hf_metadata(&w.info))?;
            }
            all.append(&t);
            let first = &w.episodes[data.episodes[0]];
            w.data_cursor = FileCursor { chunk: first.data_chunk, file: first.data_file, items: t.rows() as u64 };
            w.data_table = t;
        }
        w.accumulate_numeric(&all);
        if backfill {
            crate::durable::replace_file(&root.join("meta/info.json"), w.info.to_json().as_bytes())?;
            tracing::warn!(root = %root.display(), "the dataset predates next.truncated: added (an end without success is a truncation)");
        }
        // Videos: recompute image statistics from the files, then start new files.
        #[cfg(feature = "video")]
        for (ci, cam) in w.cameras.clone().iter().enumerate() {
            let mut last = (0, 0);
            let mut seen = std::collections::BTreeSet::new();
            for e in &w.episodes {
                if let Some(v) = e.videos.iter().find(|v| v.key == cam.key) {
                    last = last.max((v.chunk, v.file));
                    if seen.insert((v.chunk, v.file)) {
                        let decoded = crate::video::decode_all(&w.info.video_file(root, &cam.key, v.chunk, v.file))?;
                        for i in 0..decoded.len() {
                            w.images[ci].push_rgb8(decoded.frame(i));
                        }
                    }
                }
            }
            if !w.episodes.is_empty() {
                w.video_cursors[ci] =
                    next_file(FileCursor { chunk: last.0, file: last.1, items: 0 }, w.info.chunks_size);
            }
        }
        tracing::info!(root = %root.display(), episodes = w.episodes.len(), "resuming dataset");
        Ok(w)
    }
}

fn truncate(t: &Table, rows: usize) -> Table {
    let mut out = Table::default();
    for (name, col) in &t.columns {
        let c = match col {
            Column::F32Vec { dim, values } => Column::F32Vec { dim: *dim, values: values[..rows * dim].to_vec() },
            Column::F32(v) => Column::F32(v[..rows].to_vec()),
            Column::F64(v) => Column::F64(v[..rows].to_vec()),
            Column::I64(v) => Column::I64(v[..rows].to_vec()),
            Column::Bool(v) => Column::Bool(v[..rows].to_vec()),
            Column::Str(v) => Column::Str(v[..rows].to_vec()),
            Column::StrList(v) => Column::StrList(v[..rows].to_vec()),
        };
        out.push(name, c);
    }
    out
}
