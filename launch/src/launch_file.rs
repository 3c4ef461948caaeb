//! Launch files: TOML files listing the nodes to start.
//!
//! ```toml
//! robot = "arm0"            # optional: default robot name for every node
//!
//! [[node]]
//! kind = "sim"              # sim | waypoints | monitor | driver
//! scene = "pick_cube"
//! rate_hz = 10
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sim::scene::TomlErrorLocation;

use crate::nodes::NodeSpec;

/// A parsed launch file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchFile {
    /// Default robot name for the nodes (overrides the CLI's).
    #[serde(default)]
    pub robot: Option<String>,
    /// The nodes, in start order.
    #[serde(rename = "node")]
    pub nodes: Vec<NodeSpec>,
}

/// Why a launch file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LaunchFileError {
    /// The file could not be read.
    #[error("cannot read launch file {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown node kind, or a wrong / unknown / missing key.
    #[error("{file}:{at}")]
    Parse {
        /// File path.
        file: String,
        /// Where and what.
        at: TomlErrorLocation,
    },
    /// Valid TOML but not a usable launch (no nodes, duplicate names).
    #[error("{file}: {message}")]
    Invalid {
        /// File path.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses launch-file text; `file` names it in errors.
pub fn parse_launch(text: &str, file: &str) -> Result<LaunchFile, LaunchFileError> {
    let launch: LaunchFile = toml::from_str(text).map_err(|e| {
        let mut at = sim::scene::locate_toml_error(text, &e);
        if at.message.contains("unknown variant") {
            at.message = format!("key `kind`: unknown node kind: {}", at.message);
        }
        LaunchFileError::Parse { file: file.to_string(), at }
    })?;
    if launch.nodes.is_empty() {
        return Err(LaunchFileError::Invalid { file: file.into(), message: "no [[node]] entries".into() });
    }
    for (i, n) in launch.nodes.iter().enumerate() {
        if launch.nodes[..i].iter().any(|m| m.name() == n.name()) {
            return Err(LaunchFileError::Invalid {
                file: file.into(),
                message: format!("two nodes are named `{}`; give each a unique `name`", n.name()),
            });
        }
    }
    Ok(launch)
}

/// Reads and parses a launch file.
pub fn load_launch(path: &Path) -> Result<LaunchFile, LaunchFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| LaunchFileError::Io { path: path.to_path_buf(), source })?;
    parse_launch(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load_launch(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 2, "expected example launch files in {}", dir.display());
    }

    #[test]
    fn unknown_node_kind_names_file_line_and_key() {
        let text = "[[node]]\nkind = \"sim\"\n\n[[node]]\nkind = \"teleporter\"\n";
        let err = parse_launch(text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:"), "{err}");
        assert!(err.contains("kind") && err.contains("teleporter"), "{err}");
        let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
        assert!((4..=5).contains(&line), "{err}");
    }

    #[test]
    fn unknown_key_names_the_key() {
        let text = "[[node]]\nkind = \"sim\"\nscene = \"reach\"\nrate = 10\n";
        let err = parse_launch(text, "bad.toml").unwrap_err().to_string();
        assert!(err.contains("rate"), "{err}");
        assert!(err.starts_with("bad.toml:"), "{err}");
    }

    #[test]
    fn duplicate_names_rejected() {
        let text = "[[node]]\nkind = \"sim\"\n[[node]]\nkind = \"sim\"\n";
        let err = parse_launch(text, "dup.toml").unwrap_err().to_string();
        assert!(err.contains("two nodes are named `sim`"), "{err}");
    }
}
