//! Episode and task metadata: `meta/episodes/chunk-XXX/file-XXX.parquet` and `meta/tasks.parquet`
//! (v3.0), `meta/episodes.jsonl` and `meta/tasks.jsonl` (v2.x, read only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};
use crate::table::{read_parquet, write_parquet, Column, Table};

/// Where one camera's frames of an episode live.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoSpan {
    /// Video feature key, e.g. `observation.images.front`.
    pub key: String,
    /// Chunk index of the video file.
    pub chunk: u64,
    /// File index of the video file.
    pub file: u64,
    /// Start of the episode in the file, s.
    pub from_s: f64,
    /// End of the episode in the file (exclusive), s.
    pub to_s: f64,
}

/// One row of the episodes table.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeMeta {
    /// Episode index, from 0.
    pub index: u64,
    /// Tasks of the episode.
    pub tasks: Vec<String>,
    /// Frames.
    pub length: u64,
    /// Data file chunk index.
    pub data_chunk: u64,
    /// Data file index.
    pub data_file: u64,
    /// Global index of the first frame.
    pub from_index: u64,
    /// Global index one past the last frame.
    pub to_index: u64,
    /// Video location per camera.
    pub videos: Vec<VideoSpan>,
    /// Sim seed the episode was reset with (Armstack column `armstack/seed`), if known.
    pub seed: Option<u64>,
    /// Whether the task was achieved (Armstack column `armstack/success`), if known.
    pub success: Option<bool>,
    /// Noise level of the scripted expert that drove the episode (Armstack column
    /// `armstack/expert_noise`, NaN when unknown); None when a person or another device drove.
    pub expert_noise: Option<f64>,
    /// Demonstration quality of the scripted expert that drove the episode (`expert`, `mixed`,
    /// `noisy`; Armstack column `armstack/demo_quality`, empty when unknown); None when a person
    /// or another device drove.
    pub demo_quality: Option<String>,
    /// The mistake the scripted expert made in the episode (`none`, `missed_grasp`,
    /// `dropped_object_regrasped`, …; Armstack column `armstack/mistake`, empty when unknown).
    pub mistake: Option<String>,
}

/// Episodes column of the scripted expert's demonstration quality (empty: unknown).
pub const DEMO_QUALITY_COLUMN: &str = "armstack/demo_quality";
/// Episodes column of the scripted expert's mistake (empty: unknown).
pub const MISTAKE_COLUMN: &str = "armstack/mistake";

/// The episodes parquet file Armstack writes (one file; LeRobot globs all of them).
pub const EPISODES_FILE: &str = "meta/episodes/chunk-000/file-000.parquet";
/// The tasks parquet file.
pub const TASKS_FILE: &str = "meta/tasks.parquet";

/// Writes the episodes table atomically.
pub fn write_episodes(root: &Path, episodes: &[EpisodeMeta], video_keys: &[String]) -> Result<()> {
    let col_i = |f: &dyn Fn(&EpisodeMeta) -> u64| Column::I64(episodes.iter().map(|e| f(e) as i64).collect());
    let mut t = Table::default();
    t.push("episode_index", col_i(&|e| e.index));
    t.push("tasks", Column::StrList(episodes.iter().map(|e| e.tasks.clone()).collect()));
    t.push("length", col_i(&|e| e.length));
    t.push("data/chunk_index", col_i(&|e| e.data_chunk));
    t.push("data/file_index", col_i(&|e| e.data_file));
    t.push("dataset_from_index", col_i(&|e| e.from_index));
    t.push("dataset_to_index", col_i(&|e| e.to_index));
    for key in video_keys {
        let span = |e: &EpisodeMeta| e.videos.iter().find(|v| &v.key == key).cloned();
        let get = |f: &dyn Fn(&VideoSpan) -> u64| {
            Column::I64(episodes.iter().map(|e| span(e).map_or(0, |v| f(&v) as i64)).collect())
        };
        let getf = |f: &dyn Fn(&VideoSpan) -> f64| {
            Column::F64(episodes.iter().map(|e| span(e).map_or(0.0, |v| f(&v))).collect())
        };
        t.push(&format!("videos/{key}/chunk_index"), get(&|v| v.chunk));
        t.push(&format!("videos/{key}/file_index"), get(&|v| v.file));
        t.push(&format!("videos/{key}/from_timestamp"), getf(&|v| v.from_s));
        t.push(&format!("videos/{key}/to_timestamp"), getf(&|v| v.to_s));
    }
    t.push("meta/episodes/chunk_index", Column::I64(vec![0; episodes.len()]));
    t.push("meta/episodes/file_index", Column::I64(vec![0; episodes.len()]));
    t.push("armstack/seed", Column::I64(episodes.iter().map(|e| e.seed.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1)).collect()));
    t.push("armstack/success", Column::Bool(episodes.iter().map(|e| e.success.unwrap_or(false)).collect()));
    t.push("armstack/expert_noise", Column::F64(episodes.iter().map(|e| e.expert_noise.unwrap_or(f64::NAN)).collect()));
    let col_s = |f: &dyn Fn(&EpisodeMeta) -> Option<String>| Column::Str(episodes.iter().map(|e| f(e).unwrap_or_default()).collect());
    t.push(DEMO_QUALITY_COLUMN, col_s(&|e| e.demo_quality.clone()));
    t.push(MISTAKE_COLUMN, col_s(&|e| e.mistake.clone()));
    write_parquet(&root.join(EPISODES_FILE), &t, HashMap::new())
}

fn need<'a>(t: &'a Table, path: &Path, name: &str) -> Result<&'a Column> {
    t.get(name).ok_or_else(|| DatasetError::parquet(path, format!("missing column {name:?}")))
}

fn ints(t: &Table, path: &Path, name: &str) -> Result<Vec<i64>> {
    need(t, path, name)?.as_i64().ok_or_else(|| DatasetError::parquet(path, format!("column {name:?} is not numeric")))
}

/// Every `meta/episodes/*/*.parquet` file, sorted.
fn episode_files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("meta/episodes");
    let mut files = Vec::new();
    let chunks = std::fs::read_dir(&dir).map_err(|e| DatasetError::io(&dir, e))?;
    for chunk in chunks.flatten() {
        if let Ok(entries) = std::fs::read_dir(chunk.path()) {
            for f in entries.flatten() {
                let p = f.path();
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if name.ends_with(".parquet") && !name.starts_with('.') {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One camera's columns: key, chunk indices, file indices, from and to timestamps.
type VideoColumns = (String, Vec<i64>, Vec<i64>, Vec<f64>, Vec<f64>);

/// Episodes as their metadata lists them, each with the file that lists it (for errors).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeListing {
    /// Episodes, sorted by index.
    pub episodes: Vec<EpisodeMeta>,
    /// Per episode: the metadata file that lists it.
    pub listed_in: Vec<PathBuf>,
}

/// Reads the v3.0 episodes table (all files), sorted by episode index.
pub fn read_episodes(root: &Path, video_keys: &[String]) -> Result<Vec<EpisodeMeta>> {
    read_episode_listing(root, video_keys).map(|l| l.episodes)
}

/// A count or index column's value, refused when negative (naming the file and the episode).
fn unsigned(path: &Path, episode: i64, column: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| DatasetError::invalid(path, format!("episode {episode} says {column} {value}")))
}

/// Reads the v3.0 episodes table (all files) with the file of each episode, sorted by index.
pub fn read_episode_listing(root: &Path, video_keys: &[String]) -> Result<EpisodeListing> {
    let mut out: Vec<(EpisodeMeta, PathBuf)> = Vec::new();
    if !root.join("meta/episodes").exists() {
        return Ok(EpisodeListing::default());
    }
    for path in episode_files(root)? {
        let t = read_parquet(&path)?.table;
        let index = ints(&t, &path, "episode_index")?;
        let length = ints(&t, &path, "length").ok();
        let from = ints(&t, &path, "dataset_from_index")?;
        let to = ints(&t, &path, "dataset_to_index")?;
        let dchunk = ints(&t, &path, "data/chunk_index")?;
        let dfile = ints(&t, &path, "data/file_index")?;
        let tasks = match t.get("tasks") {
            Some(Column::StrList(v)) => v.clone(),
            Some(Column::Str(v)) => v.iter().map(|s| vec![s.clone()]).collect(),
            _ => vec![Vec::new(); index.len()],
        };
        let seeds = t.get("armstack/seed").and_then(Column::as_i64);
        let success = t.get("armstack/success").and_then(Column::as_bool);
        let noise = t.get("armstack/expert_noise").and_then(Column::as_f64);
        let labels = |name: &str| match t.get(name) {
            Some(Column::Str(v)) => Some(v.clone()),
            _ => None,
        };
        let (quality, mistake) = (labels(DEMO_QUALITY_COLUMN), labels(MISTAKE_COLUMN));
        let label = |v: &Option<Vec<String>>, i: usize| v.as_ref().and_then(|v| v.get(i)).filter(|s| !s.is_empty()).cloned();
        let mut videos: Vec<VideoColumns> = Vec::new();
        for key in video_keys {
            let c = ints(&t, &path, &format!("videos/{key}/chunk_index"))?;
            let f = ints(&t, &path, &format!("videos/{key}/file_index"))?;
            let fr = need(&t, &path, &format!("videos/{key}/from_timestamp"))?.as_f64().unwrap_or_default();
            let to_name = format!("videos/{key}/to_timestamp");
            let tt = t.get(&to_name).and_then(Column::as_f64).unwrap_or_else(|| fr.clone());
            videos.push((key.clone(), c, f, fr, tt));
        }
        for i in 0..index.len() {
            let ep = index[i];
            let u = |column: &str, value: i64| unsigned(&path, ep, column, value);
            let mut spans = Vec::with_capacity(videos.len());
            for (k, c, f, fr, tt) in &videos {
                spans.push(VideoSpan {
                    key: k.clone(),
                    chunk: u(&format!("videos/{k}/chunk_index"), c[i])?,
                    file: u(&format!("videos/{k}/file_index"), f[i])?,
                    from_s: fr.get(i).copied().unwrap_or(0.0),
                    to_s: tt.get(i).copied().unwrap_or(0.0),
                });
            }
            let meta = EpisodeMeta {
                index: u("episode_index", ep)?,
                tasks: tasks.get(i).cloned().unwrap_or_default(),
                length: u("length", length.as_ref().map_or(to[i] - from[i], |l| l[i]))?,
                data_chunk: u("data/chunk_index", dchunk[i])?,
                data_file: u("data/file_index", dfile[i])?,
                from_index: u("dataset_from_index", from[i])?,
                to_index: u("dataset_to_index", to[i])?,
                videos: spans,
                seed: seeds.as_ref().and_then(|s| u64::try_from(s[i]).ok()),
                success: success.as_ref().map(|s| s[i]),
                expert_noise: noise.as_ref().and_then(|n| n.get(i).copied()).filter(|n| !n.is_nan()),
                demo_quality: label(&quality, i),
                mistake: label(&mistake, i),
            };
            out.push((meta, path.clone()));
        }
    }
    out.sort_by_key(|(e, _)| e.index);
    let (episodes, listed_in) = out.into_iter().unzip();
    Ok(EpisodeListing { episodes, listed_in })
}

/// Writes `meta/tasks.parquet` as pandas does: `task_index` and the task string as the index
/// column `__index_level_0__`, with the `pandas` schema metadata LeRobot needs to read it back.
pub fn write_tasks(root: &Path, tasks: &[String]) -> Result<()> {
    let mut t = Table::default();
    t.push("task_index", Column::I64((0..tasks.len() as i64).collect()));
    t.push("__index_level_0__", Column::Str(tasks.to_vec()));
    let pandas = serde_json::json!({
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": null},
            {"name": null, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "armstack", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.3.3"
    });
    write_parquet(&root.join(TASKS_FILE), &t, HashMap::from([("pandas".to_string(), pandas.to_string())]))
}

/// Reads the task strings by task index (v3.0 `tasks.parquet`, or v2.x `tasks.jsonl`).
pub fn read_tasks(root: &Path) -> Result<Vec<String>> {
    let path = root.join(TASKS_FILE);
    if path.exists() {
        let f = read_parquet(&path)?;
        let index_col = f
            .metadata
            .get("pandas")
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|v| v["index_columns"][0].as_str().map(str::to_string));
        let names = [index_col.as_deref(), Some("task"), Some("__index_level_0__")];
        let text = names
            .iter()
            .flatten()
            .find_map(|n| match f.table.get(n) {
                Some(Column::Str(v)) => Some(v.clone()),
                _ => None,
            })
            .or_else(|| {
                f.table.columns.iter().find_map(|(_, c)| match c {
                    Column::Str(v) => Some(v.clone()),
                    _ => None,
                })
            })
            .ok_or_else(|| DatasetError::parquet(&path, "no task string column"))?;
        let idx =
            f.table.get("task_index").and_then(Column::as_i64).unwrap_or_else(|| (0..text.len() as i64).collect());
        let mut out = vec![String::new(); idx.iter().map(|i| *i as usize + 1).max().unwrap_or(0)];
        for (i, s) in idx.iter().zip(text) {
            out[*i as usize] = s;
        }
        return Ok(out);
    }
    let jsonl = root.join("meta/tasks.jsonl");
    if jsonl.exists() {
        let mut out = Vec::new();
        for (line_no, v) in read_jsonl(&jsonl)?.into_iter().enumerate() {
            let i = v["task_index"].as_u64().unwrap_or(line_no as u64) as usize;
            if out.len() <= i {
                out.resize(i + 1, String::new());
            }
            out[i] = v["task"].as_str().unwrap_or_default().to_string();
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// Reads a JSON-lines file; a malformed line is an error naming the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| DatasetError::Json { path: path.to_path_buf(), reason: format!("line {}: {e}", i + 1) })
        })
        .collect()
}

/// Reads v2.x `meta/episodes.jsonl` into episode rows (global indices from cumulative lengths;
/// one video file per episode starting at 0 s).
pub fn read_episodes_v2(root: &Path, video_keys: &[String], fps: f64) -> Result<EpisodeListing> {
    let path = root.join("meta/episodes.jsonl");
    let mut rows = read_jsonl(&path)?;
    rows.sort_by_key(|v| v["episode_index"].as_u64().unwrap_or(0));
    let mut out = Vec::new();
    let mut next = 0u64;
    for v in rows {
        let index = v["episode_index"].as_u64().ok_or_else(|| {
            DatasetError::invalid(&path, format!("an episode has episode_index {}, not an index", v["episode_index"]))
        })?;
        let length = v["length"].as_u64().ok_or_else(|| {
            DatasetError::invalid(&path, format!("episode {index} says length {}, not a frame count", v["length"]))
        })?;
        let tasks = v["tasks"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        out.push(EpisodeMeta {
            index,
            tasks,
            length,
            data_chunk: 0,
            data_file: index,
            from_index: next,
            to_index: next + length,
            videos: video_keys
                .iter()
                .map(|k| VideoSpan { key: k.clone(), chunk: 0, file: index, from_s: 0.0, to_s: length as f64 / fps })
                .collect(),
            seed: None,
            success: None,
            expert_noise: None,
            demo_quality: None,
            mistake: None,
        });
        next += length;
    }
    let listed_in = vec![path; out.len()];
    Ok(EpisodeListing { episodes: out, listed_in })
}
