//! Checks of a verb's outputs before any work starts, so that an hour of training or evaluation
//! is not lost to a path that cannot be written, and a previous result is not overwritten by
//! accident. Every error names the path and the flag it came from.
//!
//! - [`check_output_file`]: a file written at the end (a JSON report, a PNG, an mp4).
//! - [`prepare_output_dir`]: a folder a verb fills (a training run, a frame store, a dataset).

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// What a verb may do with an output folder that already holds files.
#[derive(Clone, Copy, Debug)]
pub enum ExistingDir<'a> {
    /// Refuse it (`hint` says what to do instead, e.g. "pass --force to replace it").
    Refuse {
        /// How the user gets past the refusal.
        hint: &'a str,
    },
    /// Remove it and start afresh, but only if it is a previous output of this verb: it holds
    /// one of `markers` (paths relative to the folder). Any other folder is refused.
    ReplacePrevious {
        /// What produced the previous output, for messages ("training run", "demo").
        what: &'a str,
        /// Files one of which a previous output holds.
        markers: &'a [&'a str],
    },
    /// Keep it and write into it (continuing a run, refreshing a set of result files).
    WriteInto,
}

/// Fails unless `path` can be written as a file by `flag` at the end of a verb: its folder exists
/// and is a folder we may write in, and `path` is not a folder. An existing file is replaced
/// when the verb finishes (it must be writable).
pub fn check_output_file(path: &Path, flag: &str) -> Result<()> {
    let parent = parent_of(path);
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{flag} {}: {} is not a folder", path.display(), parent.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("{flag} {}: the folder {} does not exist", path.display(), parent.display())
        }
        Err(e) => bail!("{flag} {}: cannot read the folder {}: {e}", path.display(), parent.display()),
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{flag} {}: is a folder; give a file name", path.display()),
        Ok(_) => {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("{flag} {}: the existing file cannot be replaced", path.display()))?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => probe_writable(parent)
            .with_context(|| format!("{flag} {}: cannot create files in {}", path.display(), parent.display()))?,
        Err(e) => bail!("{flag} {}: {e}", path.display()),
    }
    Ok(())
}

/// Makes `path` an output folder of `flag` before a verb starts: creates it (and its missing
/// parents), or handles an existing non-empty folder as `existing` says. Fails if `path` or one
/// of its parents is a file.
pub fn prepare_output_dir(path: &Path, flag: &str, existing: ExistingDir<'_>) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() => bail!("{flag} {}: exists and is not a folder", path.display()),
        Ok(_) => {
            let empty = std::fs::read_dir(path)
                .with_context(|| format!("{flag} {}: cannot list the folder", path.display()))?
                .next()
                .is_none();
            if !empty {
                match existing {
                    ExistingDir::WriteInto => {}
                    ExistingDir::Refuse { hint } => {
                        bail!("{flag} {}: already exists and is not empty; {hint}", path.display())
                    }
                    ExistingDir::ReplacePrevious { what, markers } => {
                        if !markers.iter().any(|m| path.join(m).exists()) {
                            bail!(
                                "{flag} {}: exists and is not a previous {what}'s output (it holds none of {}); \
                                 choose another {flag} or remove it",
                                path.display(),
                                markers.join(", ")
                            );
                        }
                        std::fs::remove_dir_all(path)
                            .with_context(|| format!("{flag} {}: clearing the previous {what}", path.display()))?;
                    }
                }
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => bail!("{flag} {}: {e}", path.display()),
    }
    std::fs::create_dir_all(path).with_context(|| format!("{flag} {}: cannot create the folder", path.display()))?;
    probe_writable(path).with_context(|| format!("{flag} {}: cannot create files in it", path.display()))
}

/// The folder `path` is created in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Creates and removes a probe file in `dir`: permissions and read-only mounts show up now
/// rather than when the result is written.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".armstack-write-probe-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("armstack-output-path-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn output_file_needs_an_existing_folder_and_names_the_path() {
        let dir = temp_dir("file");
        assert!(check_output_file(&dir.join("report.json"), "--json").is_ok());
        let missing = dir.join("nowhere/report.json");
        let err = check_output_file(&missing, "--json").unwrap_err().to_string();
        assert!(
            err.contains("--json") && err.contains(&missing.display().to_string()) && err.contains("does not exist"),
            "{err}"
        );
        std::fs::write(dir.join("plain"), "x").unwrap();
        let err = check_output_file(&dir.join("plain/clip.mp4"), "--out").unwrap_err().to_string();
        assert!(err.contains("plain/clip.mp4") && err.contains("is not a folder"), "{err}");
        let err = check_output_file(&dir, "--out").unwrap_err().to_string();
        assert!(err.contains("is a folder"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_dir_refuses_or_replaces_only_previous_outputs() {
        let dir = temp_dir("dir");
        let run = dir.join("runs/a");
        prepare_output_dir(&run, "--out", ExistingDir::Refuse { hint: "pass --force" }).unwrap();
        assert!(run.is_dir(), "created with its parents");
        std::fs::write(run.join("policy.json"), "{}").unwrap();
        let err = prepare_output_dir(&run, "--out", ExistingDir::Refuse { hint: "pass --force" }).unwrap_err();
        assert!(err.to_string().contains("not empty; pass --force"), "{err}");
        let replace = ExistingDir::ReplacePrevious { what: "training run", markers: &["policy.json"] };
        prepare_output_dir(&run, "--out", replace).unwrap();
        assert!(run.is_dir() && !run.join("policy.json").exists(), "the previous run was cleared");
        std::fs::write(run.join("notes.txt"), "mine").unwrap();
        let err = prepare_output_dir(&run, "--out", replace).unwrap_err().to_string();
        assert!(err.contains("not a previous training run's output"), "{err}");
        assert!(run.join("notes.txt").exists(), "a folder that is not a run is never removed");
        prepare_output_dir(&run, "--out", ExistingDir::WriteInto).unwrap();
        assert!(run.join("notes.txt").exists());
        let err = prepare_output_dir(&run.join("notes.txt"), "--out", ExistingDir::WriteInto).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
