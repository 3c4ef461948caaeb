//! Local discovery of bus sessions on one host.
//!
//! Scouting is off by default (nothing leaks onto a network), so sessions on one host find each
//! other through a directory: each open session writes its listen locators to
//! `<dir>/<pid>-<zid>.locator` (one locator per line, written to a temporary name and renamed,
//! so readers never see a partial file) and removes it when closed. A session that opens reads
//! the other files first and connects to those locators; files whose process is gone are
//! deleted. Opening is serialised by a lock file (`<dir>/open.lock`) so two sessions opening at
//! the same moment cannot miss each other.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::BusError;

/// Suffix of locator files.
pub const LOCATOR_SUFFIX: &str = ".locator";
/// Name of the lock file that serialises session opening.
pub const LOCK_FILE: &str = "open.lock";
/// How long [`OpenLock::acquire`] waits for another opener before going on without the lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// A lock file older than this is considered abandoned.
const LOCK_STALE: Duration = Duration::from_secs(30);

/// The default discovery directory: `$XDG_RUNTIME_DIR/armstack-bus`, else
/// `/tmp/armstack-bus-<uid>` (or `-<user>` where the uid is unknown).
pub fn default_dir() -> PathBuf {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(runtime).join("armstack-bus");
    }
    std::env::temp_dir().join(format!("armstack-bus-{}", user_tag()))
}

/// The current uid (from `/proc/self` ownership on Unix), else `$USER`, else "user".
fn user_tag() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = fs::metadata("/proc/self") {
            return meta.uid().to_string();
        }
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "user".to_string())
}

/// Whether process `pid` is alive. Uses `/proc/<pid>` where `/proc` exists; elsewhere every
/// process is assumed alive (stale files are then only removed by their owner).
pub fn pid_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// Creates the discovery directory (mode 0700 on Unix) if needed.
pub fn ensure_dir(dir: &Path) -> Result<(), BusError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| BusError::Discovery { path: dir.to_path_buf(), source })
}

/// Owner pid encoded in a discovery file name (`<pid>-…`, optionally with a leading '.').
fn owner_pid(file_name: &str) -> Option<u32> {
    let name = file_name.strip_prefix('.').unwrap_or(file_name);
    name.split_once('-')?.0.parse().ok()
}

/// Reads the locators of the other live sessions in `dir`, deleting files (and leftover
/// temporary files) whose owner process is gone. Unreadable files are skipped with a warning.
pub fn discover_peers(dir: &Path) -> Result<Vec<String>, BusError> {
    let entries = fs::read_dir(dir).map_err(|source| BusError::Discovery { path: dir.to_path_buf(), source })?;
    let mut locators = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_locator = name.ends_with(LOCATOR_SUFFIX) && !name.starts_with('.');
        let is_tmp = name.starts_with('.') && name.ends_with(".tmp");
        if !is_locator && !is_tmp {
            continue;
        }
        let Some(pid) = owner_pid(&name) else {
            tracing::warn!(file = %entry.path().display(), "ignoring discovery file with no pid in its name");
            continue;
        };
        if !pid_alive(pid) {
            tracing::debug!(file = %entry.path().display(), pid, "removing stale discovery file");
            if let Err(e) = fs::remove_file(entry.path()) {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove stale discovery file");
                }
            }
            continue;
        }
        if is_tmp {
            continue;
        }
        match fs::read_to_string(entry.path()) {
            Ok(text) => locators.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string)),
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot read discovery file")
            }
        }
    }
    locators.sort();
    locators.dedup();
    Ok(locators)
}

/// This session's locator file; removed when dropped.
#[derive(Debug)]
pub struct LocatorFile {
    path: PathBuf,
}

impl LocatorFile {
    /// Atomically writes `locators` to `<dir>/<pid>-<zid>.locator`.
    pub fn publish(dir: &Path, zid: &str, locators: &[String]) -> Result<LocatorFile, BusError> {
        let pid = std::process::id();
        let path = dir.join(format!("{pid}-{zid}{LOCATOR_SUFFIX}"));
        let tmp = dir.join(format!(".{pid}-{zid}{LOCATOR_SUFFIX}.tmp"));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BusError::Discovery { path, source }
        };
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut text = locators.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(LocatorFile { path })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocatorFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot remove locator file");
            }
        }
    }
}

/// A held `open.lock` (removed when dropped). Serialises "read peers, open, write our file".
#[derive(Debug)]
pub struct OpenLock {
    path: PathBuf,
}

impl OpenLock {
    /// Takes the lock, waiting up to 5 s for another opener; clears a lock whose owner died or
    /// that is older than 30 s. Returns `None` (after a warning) if it could not be had in time:
    /// opening then goes on unlocked, which at worst lets two simultaneous openers miss each other.
    pub fn acquire(dir: &Path) -> Option<OpenLock> {
        let path = dir.join(LOCK_FILE);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    // The pid is informative (for stale detection); a failed write is harmless.
                    let _ = write!(file, "{}", std::process::id());
                    return Some(OpenLock { path });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if Self::is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot create discovery lock; opening unlocked");
                    return None;
                }
            }
            if Instant::now() >= deadline {
                tracing::warn!(file = %path.display(), "discovery lock busy for 5 s; opening unlocked");
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn is_stale(path: &Path) -> bool {
        let owner_dead =
            fs::read_to_string(path).ok().and_then(|t| t.trim().parse::<u32>().ok()).is_some_and(|pid| !pid_alive(pid));
        let too_old = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > LOCK_STALE);
        owner_dead || too_old
    }
}

impl Drop for OpenLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_files_are_removed_and_live_ones_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dead = dir.path().join("4194999-deadbeef.locator");
        fs::write(&dead, "tcp/127.0.0.1:1\n").expect("write");
        let stale_tmp = dir.path().join(".4194999-deadbeef.locator.tmp");
        fs::write(&stale_tmp, "x").expect("write");
        let ours = LocatorFile::publish(dir.path(), "abc", &["tcp/127.0.0.1:7000".into()]).expect("publish");
        let found = discover_peers(dir.path()).expect("discover");
        assert_eq!(found, vec!["tcp/127.0.0.1:7000".to_string()]);
        assert!(!dead.exists() && !stale_tmp.exists());
        let path = ours.path().to_path_buf();
        drop(ours);
        assert!(!path.exists());
    }

    #[test]
    fn lock_is_exclusive_and_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = OpenLock::acquire(dir.path()).expect("first lock");
        assert!(dir.path().join(LOCK_FILE).exists());
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        fs::write(dir.path().join(LOCK_FILE), "4194999").expect("write dead lock");
        assert!(OpenLock::acquire(dir.path()).is_some(), "dead owner's lock is cleared");
    }
}
