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

use bus::config_error::ConfigError;
use serde::Deserialize;
use bus::config_error::{toml_error, toml_source};

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
    /// Malformed TOML, an unknown node kind, or a wrong / unknown / missing key (file, line,
    /// column, key).
    #[error(transparent)]
    Parse(ConfigError),
    /// Valid TOML but not a usable launch: no nodes, duplicate names (file, line, column, key).
    #[error(transparent)]
    Invalid(ConfigError),
}

/// Parses launch-file text; `file` names it in errors.
pub fn parse_launch(text: &str, file: &str) -> Result<LaunchFile, LaunchFileError> {
    let launch: LaunchFile = toml::from_str(text).map_err(|e| LaunchFileError::Parse(toml_error(file, text, &e)))?;
    let invalid =
        |key: &str, message: String| LaunchFileError::Invalid(toml_source(file, text).error_at_key(key, message));
    if launch.nodes.is_empty() {
        return Err(invalid("node", "no [[node]] entries".into()));
    }
    for (i, n) in launch.nodes.iter().enumerate() {
        if launch.nodes[..i].iter().any(|m| m.name() == n.name()) {
            let message = format!("two nodes are named `{}`; give each a unique `name`", n.name());
            return Err(invalid(&format!("node[{i}].name"), message));
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
    fn unknown_node_kind_names_file_line_column_and_key() {
        let text = "[[node]]\nkind = \"sim\"\n\n[[node]]\nkind = \"teleporter\"\n";
        let err = parse_launch(text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:5:8: node[1].kind: unknown variant `teleporter`"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let text = "[[node]]\nkind = \"sim\"\nscene = \"reach\"\nrate = 10\n";
        let err = parse_launch(text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:4:1: node[0].rate: unknown field `rate`"), "{err}");
    }

    #[test]
    fn wrong_type_names_file_line_column_and_key() {
        // Nodes are `kind`-tagged, so serde buffers each table: the span must still be found.
        let text = "robot = \"arm0\"\n\n[[node]]\nkind = \"sim\"\n\n[[node]]\nkind = \"monitor\"\nname = \"mon\"\n\n[[node]]\nkind = \"sim\"\nname = \"sim2\"\nrate_hz = \"fast\"\n";
        let err = parse_launch(text, "bad.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("bad.toml:13:11: node[2].rate_hz: invalid type: string \"fast\", expected f64"),
            "{err}"
        );
        let err = parse_launch("robot = 3\n[[node]]\nkind = \"sim\"\n", "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:1:9: robot: invalid type: integer `3`"), "{err}");
    }

    #[test]
    fn duplicate_names_name_file_line_column_and_key() {
        let text = "[[node]]\nkind = \"sim\"\n[[node]]\nkind = \"sim\"\n";
        let err = parse_launch(text, "dup.toml").unwrap_err().to_string();
        assert!(err.starts_with("dup.toml:3:1: node[1].name: two nodes are named `sim`"), "{err}");
    }
}
