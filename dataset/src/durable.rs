//! Durable file replacement: write to a temporary sibling, fsync, rename over the target, fsync
//! the directory. A reader sees the old file or the new one, never a torn one, even after
//! `kill -9` or a power cut.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DatasetError, Result};

/// The temporary sibling used while replacing `path` (`.name.tmp`).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Atomically replaces `path` with `bytes`.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    ensure_parent(path)?;
    let tmp = temp_sibling(path);
    {
        let mut f = File::create(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| DatasetError::io(&tmp, e))?;
        f.sync_all().map_err(|e| DatasetError::io(&tmp, e))?;
    }
    commit(&tmp, path)
}

/// Moves a fully written, synced `tmp` over `path` and syncs the directory.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(|e| DatasetError::io(path, e))?;
    sync_dir(path)
}

/// Fsyncs a file by path.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| DatasetError::io(path, e))
}

/// Creates the parent directory of `path`.
pub fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        // Directory fsync makes the rename itself durable; not every filesystem supports it.
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
