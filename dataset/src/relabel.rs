//! A copy of a dataset with new actions: what `armstack dataset label` writes after an
//! inverse-dynamics model inferred actions for action-free episodes (SS-ORL).
//!
//! Everything but the tabular data is carried over unchanged (videos are hard-linked when the
//! file system allows, else copied; episode and task metadata are copied byte for byte). Every
//! data file is rewritten with the new `action` column and an `action.is_proxy` column that
//! marks each frame's action as recorded (`false`) or inferred (`true`). `meta/info.json` gains
//! both features and an `armstack/proxy_labels` entry describing the labelling;
//! `meta/stats.json` gets the new actions' statistics.

use std::path::Path;

use crate::durable;
use crate::error::{DatasetError, Result};
use crate::info::Feature;
use crate::reader::Dataset;
use crate::stats::VectorStats;
use crate::table::{read_parquet, write_parquet, Column};
use crate::writer::{hf_metadata, ACTION, PROXY};

/// `info.json` key describing how proxy labels were made.
pub const PROXY_LABELS_KEY: &str = "armstack/proxy_labels";

/// New actions for every frame of a dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Relabel {
    /// Names of the action components.
    pub action_names: Vec<String>,
    /// `[frames × action_names.len()]`, by global frame index.
    pub actions: Vec<f32>,
    /// Per frame: true when the action is a proxy label.
    pub proxy: Vec<bool>,
    /// Stored under `armstack/proxy_labels` in `info.json` (e.g. the model that labelled).
    pub note: serde_json::Value,
}

fn copy_tree(src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| DatasetError::io(dst, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| DatasetError::io(src, e))? {
        let entry = entry.map_err(|e| DatasetError::io(src, e))?;
        let from = entry.path();
        if skip(&from) {
            continue;
        }
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| DatasetError::io(&from, e))?;
        if kind.is_dir() {
            copy_tree(&from, &to, skip)?;
        } else if kind.is_file() && std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| DatasetError::io(&to, e))?;
        }
    }
    Ok(())
}

/// Writes `src` with `relabel`'s actions into the new folder `dst`.
pub fn write_relabelled(src: &Dataset, dst: &Path, relabel: &Relabel) -> Result<()> {
    let dim = relabel.action_names.len();
    let n = src.len();
    if dim == 0 || relabel.actions.len() != n * dim || relabel.proxy.len() != n {
        return Err(DatasetError::invalid(
            dst,
            format!(
                "{} action values and {} marks for {n} frames of {dim} components",
                relabel.actions.len(),
                relabel.proxy.len()
            ),
        ));
    }
    if dst.join("meta/info.json").exists() {
        return Err(DatasetError::invalid(dst, "a dataset already exists here"));
    }
    let root = src.root();
    if dst.canonicalize().ok().is_some_and(|d| root.canonicalize().ok() == Some(d)) {
        return Err(DatasetError::invalid(dst, "the output must differ from the input dataset"));
    }
    // Tabular data, metadata with statistics and the feature list are rewritten below.
    let rewritten = |p: &Path| {
        p.strip_prefix(root).is_ok_and(|r| {
            r.starts_with("data") || r == Path::new("meta/info.json") || r == Path::new("meta/stats.json")
        }) || p.file_name().is_some_and(|f| f == ".staging")
    };
    copy_tree(root, dst, &rewritten)?;
    let mut info = src.info().clone();
    let names: Vec<&str> = relabel.action_names.iter().map(String::as_str).collect();
    info.features.insert(ACTION.to_string(), Feature::vector(&names));
    info.features.insert(PROXY.to_string(), Feature::scalar("bool"));
    info.extra.insert(PROXY_LABELS_KEY.to_string(), relabel.note.clone());
    let metadata = hf_metadata(&info);
    let mut stats = VectorStats::new(dim);
    for path in src.data_files() {
        let mut file = read_parquet(path)?;
        let index = file
            .table
            .get("index")
            .and_then(Column::as_i64)
            .ok_or_else(|| DatasetError::parquet(path, "missing column \"index\""))?;
        let mut actions = Vec::with_capacity(index.len() * dim);
        let mut proxy = Vec::with_capacity(index.len());
        for g in &index {
            // Rows past the metadata (an interrupted recording) keep a zero action, marked proxy.
            match usize::try_from(*g).ok().filter(|g| *g < n) {
                Some(g) => {
                    let a = &relabel.actions[g * dim..(g + 1) * dim];
                    stats.push(a);
                    actions.extend_from_slice(a);
                    proxy.push(relabel.proxy[g]);
                }
                None => {
                    actions.extend(std::iter::repeat_n(0.0, dim));
                    proxy.push(true);
                }
            }
        }
        let table = &mut file.table;
        table.columns.retain(|(name, _)| name != ACTION && name != PROXY);
        table.push(ACTION, Column::F32Vec { dim, values: actions });
        table.push(PROXY, Column::Bool(proxy));
        let rel = path.strip_prefix(root).map_err(|_| DatasetError::invalid(path, "data file outside the dataset"))?;
        let out = dst.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
        }
        write_parquet(&out, table, metadata.clone())?;
    }
    let stats_path = root.join("meta/stats.json");
    let mut all: serde_json::Map<String, serde_json::Value> =
        std::fs::read_to_string(&stats_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    all.insert(ACTION.to_string(), stats.finish().to_json());
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap_or_default();
    durable::replace_file(&dst.join("meta/stats.json"), text.as_bytes())?;
    durable::replace_file(&dst.join("meta/info.json"), info.to_json().as_bytes())
}
