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

use std::fmt::Display;

use crate::cmd::arg_ranges;
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
        if let Some((key, message)) = range_error(n) {
            return Err(invalid(&format!("node[{i}].{key}"), message));
        }
    }
    Ok(launch)
}

/// The first value of `node` outside its range: (its key within the node, the message). The
/// ranges and messages are those of the matching CLI flags ([`arg_ranges`]), so `rate_hz = 0`
/// in a launch file is refused like `--rate 0`.
fn range_error(node: &NodeSpec) -> Option<(String, String)> {
    /// `value` checked by a flag parser (which reads text), as an error for `key`.
    fn check<T: Display, U>(key: &str, value: T, parser: impl Fn(&str) -> Result<U, String>) -> Option<(String, String)> {
        parser(&value.to_string()).err().map(|message| (key.to_string(), message))
    }
    fn check_opt<T: Display, U>(
        key: &str,
        value: Option<T>,
        parser: impl Fn(&str) -> Result<U, String>,
    ) -> Option<(String, String)> {
        value.and_then(|v| check(key, v, parser))
    }
    match node {
        NodeSpec::Sim(s) => check("rate_hz", s.rate_hz, arg_ranges::rate_hz())
            .or_else(|| check("physics_hz", s.physics_hz, arg_ranges::rate_hz()))
            .or_else(|| check("width", s.width, arg_ranges::int_range(1u32, 4096)))
            .or_else(|| check("height", s.height, arg_ranges::int_range(1u32, 4096)))
            .or_else(|| check_opt("episodes", s.episodes, arg_ranges::at_least(1u64)))
            .or_else(|| check_opt("steps", s.steps, arg_ranges::at_least(1u64)))
            .or_else(|| check_opt("expert", s.expert, arg_ranges::unit_interval())),
        NodeSpec::Waypoints(w) => {
            if w.waypoints_rad.is_empty() {
                return Some(("waypoints_rad".into(), "needs at least one waypoint".into()));
            }
            let joint_error = w.waypoints_rad.iter().enumerate().find_map(|(i, q)| {
                q.iter().enumerate().find_map(|(j, v)| check(&format!("waypoints_rad[{i}][{j}]"), v, arg_ranges::finite()))
            });
            joint_error
                .or_else(|| {
                    w.gripper.iter().enumerate().find_map(|(i, g)| check(&format!("gripper[{i}]"), g, arg_ranges::unit_interval()))
                })
                .or_else(|| check("hold_s", w.hold_s, arg_ranges::duration_s()))
                .or_else(|| check("rate_hz", w.rate_hz, arg_ranges::rate_hz()))
        }
        NodeSpec::Monitor(m) => check("period_s", m.period_s, arg_ranges::duration_s()),
        NodeSpec::Driver(d) => check("rate_hz", d.rate_hz, arg_ranges::rate_hz())
            .or_else(|| check_opt("publish_hz", d.publish_hz, arg_ranges::rate_hz()))
            .or_else(|| check_opt("baud", d.baud, arg_ranges::at_least(1u32)))
            .or_else(|| check_opt("cycles", d.cycles, arg_ranges::at_least(1u64))),
    }
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
    fn values_out_of_range_name_file_line_column_and_key() {
        let cases = [
            ("[[node]]\nkind = \"sim\"\nrate_hz = 0\n", "bad.toml:3:1: node[0].rate_hz: must be > 0 Hz, got 0"),
            ("[[node]]\nkind = \"sim\"\n\n[[node]]\nkind = \"sim\"\nname = \"b\"\nexpert = 1.5\n", "bad.toml:7:1: node[1].expert: must be in [0, 1], got 1.5"),
            ("[[node]]\nkind = \"sim\"\nwidth = 0\n", "bad.toml:3:1: node[0].width: must be in 1..=4096, got 0"),
            ("[[node]]\nkind = \"monitor\"\nperiod_s = -1.0\n", "bad.toml:3:1: node[0].period_s: must be > 0 s, got -1"),
            (
                "[[node]]\nkind = \"waypoints\"\nwaypoints_rad = [[0, 0, 0, 0, 0, 0]]\ngripper = [2.0]\n",
                "bad.toml:4:12: node[0].gripper[0]: must be in [0, 1], got 2",
            ),
            ("[[node]]\nkind = \"driver\"\nemulate = true\ncycles = 0\n", "bad.toml:4:1: node[0].cycles: must be at least 1, got 0"),
        ];
        for (text, expected) in cases {
            let err = parse_launch(text, "bad.toml").expect_err(text).to_string();
            assert_eq!(err, expected, "{text}");
        }
    }

    #[test]
    fn duplicate_names_name_file_line_column_and_key() {
        let text = "[[node]]\nkind = \"sim\"\n[[node]]\nkind = \"sim\"\n";
        let err = parse_launch(text, "dup.toml").unwrap_err().to_string();
        assert!(err.starts_with("dup.toml:3:1: node[1].name: two nodes are named `sim`"), "{err}");
    }
}
