//! Scenes as data: loading and validating scene files, and sampling one episode's layout.
//!
//! The five built-in scenes (`reach`, `pick_cube`, `place_in_bin`, `push_to_target`, `sort`)
//! are embedded in the binary, so the simulator runs from any directory; a user's own scene
//! file is loaded with [`load_scene_file`].

pub mod color;
mod sample;
pub mod spec;

use std::path::{Path, PathBuf};

pub use sample::{LightSpec, PlacedObject, SceneInstance, READY_POSE_RAD};
pub use spec::{ConditionSpec, ExpertSpec, ObjectKind, ObjectSpec, RandomizationSpec, SceneSpec};

/// Built-in scenes: (name, TOML text).
pub const BUILTIN_SCENES: &[(&str, &str)] = &[
    ("reach", include_str!("../../scenes/reach.toml")),
    ("pick_cube", include_str!("../../scenes/pick_cube.toml")),
    ("place_in_bin", include_str!("../../scenes/place_in_bin.toml")),
    ("push_to_target", include_str!("../../scenes/push_to_target.toml")),
    ("sort", include_str!("../../scenes/sort.toml")),
];

/// Why a scene could not be loaded. Every variant names the file (or built-in scene).
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The scene name is neither built in nor a readable file.
    #[error("unknown scene `{name}`; built-in scenes: {}", builtin_names().join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read scene file {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has a wrong / unknown / missing key.
    #[error("{file}:{at}")]
    Parse {
        /// File path or `builtin:NAME`.
        file: String,
        /// Where and what.
        at: TomlErrorLocation,
    },
    /// The TOML parsed but a value is invalid (unknown colour, bad range, dangling reference).
    #[error("{file}:{line}: key `{key}`: {message}")]
    Invalid {
        /// File path or `builtin:NAME`.
        file: String,
        /// 1-based line of the offending key (0 when it cannot be located).
        line: usize,
        /// The key that is wrong.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Names of the built-in scenes.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SCENES.iter().map(|(n, _)| *n).collect()
}

/// Loads a scene by built-in name, or by path when `name_or_path` ends in `.toml` or names a
/// file that exists.
pub fn load_scene(name_or_path: &str) -> Result<SceneSpec, SceneError> {
    if let Some((name, text)) = BUILTIN_SCENES.iter().find(|(n, _)| *n == name_or_path) {
        return parse_scene(text, &format!("builtin:{name}"));
    }
    let path = Path::new(name_or_path);
    if name_or_path.ends_with(".toml") || path.exists() {
        return load_scene_file(path);
    }
    Err(SceneError::Unknown { name: name_or_path.to_string() })
}

/// Loads and validates a scene file.
pub fn load_scene_file(path: &Path) -> Result<SceneSpec, SceneError> {
    let text = std::fs::read_to_string(path).map_err(|source| SceneError::Io { path: path.to_path_buf(), source })?;
    parse_scene(&text, &path.display().to_string())
}

/// Parses and validates scene TOML text; `file` names it in errors.
pub fn parse_scene(text: &str, file: &str) -> Result<SceneSpec, SceneError> {
    let spec: SceneSpec = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
    validate(&spec, text, file)?;
    Ok(spec)
}

/// Where a TOML error is, as a person reads it: 1-based line and column, the text there, and
/// the message. For an unknown key the line is the key's own line (not its table's header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TomlErrorLocation {
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// The first line of text at the error.
    pub snippet: String,
    /// What is wrong; names the key.
    pub message: String,
}

impl std::fmt::Display for TomlErrorLocation {
    /// `LINE:COLUMN: MESSAGE (at `SNIPPET`)`, to follow a file name and a colon.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {} (at `{}`)", self.line, self.column, self.message, self.snippet)
    }
}

/// Locates a `toml` deserialisation error in `text`.
pub fn locate_toml_error(text: &str, e: &toml::de::Error) -> TomlErrorLocation {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return TomlErrorLocation { line: 0, column: 0, snippet: String::new(), message };
    };
    let (mut line, mut column) = line_col(text, span.start);
    let end = span.end.min(text.len()).max(span.start);
    let mut snippet: String = text[span.start..end].lines().next().unwrap_or("").chars().take(60).collect();
    // Serde reports unknown fields of tagged tables at the table header: find the key itself.
    if let Some(key) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
        let found = text.lines().enumerate().skip(line.saturating_sub(1)).find(|(_, l)| {
            let t = l.trim_start();
            t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        if let Some((i, l)) = found {
            line = i + 1;
            column = l.len() - l.trim_start().len() + 1;
            snippet = l.trim().chars().take(60).collect();
        }
    }
    TomlErrorLocation { line, column, snippet, message }
}

/// Turns a `toml` error into a [`SceneError::Parse`] with line, column and snippet.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> SceneError {
    SceneError::Parse { file: file.to_string(), at: locate_toml_error(text, e) }
}

/// 1-based (line, column) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |p| offset - p - 1) + 1;
    (line, column)
}

/// 1-based line of the first line that assigns `key` with a value containing `value`.
fn find_line(text: &str, key: &str, value: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') && l.contains(value)
        })
        .map_or(0, |i| i + 1)
}

fn validate(spec: &SceneSpec, text: &str, file: &str) -> Result<(), SceneError> {
    let invalid = |key: &str, value: &str, message: String| SceneError::Invalid {
        file: file.to_string(),
        line: find_line(text, key, value),
        key: key.to_string(),
        message,
    };
    if spec.objects.is_empty() {
        return Err(invalid("object", "", "a scene needs at least one [[object]]".into()));
    }
    for choice in &spec.choices {
        for option in &choice.options {
            if color::named_color(option).is_none() {
                return Err(invalid(
                    "options",
                    option,
                    format!("unknown colour `{option}`; known: {}", color::COLOR_NAMES.join(", ")),
                ));
            }
        }
        if choice.options.is_empty() {
            return Err(invalid("options", "", format!("choice `{}` has no options", choice.name)));
        }
    }
    for (i, obj) in spec.objects.iter().enumerate() {
        if spec.objects[..i].iter().any(|o| o.name == obj.name) {
            return Err(invalid("name", &obj.name, format!("duplicate object name `{}`", obj.name)));
        }
        if let Some(choice) = obj.color.strip_prefix('$') {
            if !spec.choices.iter().any(|c| c.name == choice) {
                return Err(invalid("color", &obj.color, format!("no [[choice]] named `{choice}`")));
            }
        } else if color::named_color(&obj.color).is_none() {
            return Err(invalid(
                "color",
                &obj.color,
                format!("unknown colour `{}`; known: {}", obj.color, color::COLOR_NAMES.join(", ")),
            ));
        }
        if !(obj.size_m > 0.0 && obj.size_m < 1.0) {
            return Err(invalid("size_m", "", format!("object `{}`: size_m must be in (0, 1) m", obj.name)));
        }
        if obj.mass_kg.is_nan() || obj.mass_kg <= 0.0 {
            return Err(invalid("mass_kg", "", format!("object `{}`: mass_kg must be > 0", obj.name)));
        }
        for (key, r) in [("x_m", obj.x_m), ("y_m", obj.y_m), ("z_m", obj.z_m), ("yaw_rad", obj.yaw_rad)] {
            check_range(r).map_err(|m| invalid(key, "", format!("object `{}`: {m}", obj.name)))?;
        }
    }
    let r = &spec.randomization;
    for (key, range) in [
        ("friction", r.friction),
        ("mass_scale", r.mass_scale),
        ("motor_gain_scale", r.motor_gain_scale),
        ("latency_ms", r.latency_ms),
        ("light_azimuth_rad", r.light_azimuth_rad),
        ("light_elevation_rad", r.light_elevation_rad),
        ("ambient", r.ambient),
    ] {
        check_range(range).map_err(|m| invalid(key, "", m))?;
    }
    if r.friction[0] < 0.0 || r.mass_scale[0] <= 0.0 || r.motor_gain_scale[0] <= 0.0 || r.latency_ms[0] < 0.0 {
        return Err(invalid("randomization", "", "friction, latency must be ≥ 0 and scales > 0".into()));
    }
    let object = |name: &str, key: &str| -> Result<&ObjectSpec, SceneError> {
        spec.objects
            .iter()
            .find(|o| o.name == name)
            .ok_or_else(|| invalid(key, name, format!("no object named `{name}`")))
    };
    let kind_is = |name: &str, key: &str, kind: ObjectKind| -> Result<(), SceneError> {
        let o = object(name, key)?;
        if o.kind != kind {
            return Err(invalid(key, name, format!("object `{name}` is a {:?}, expected a {kind:?}", o.kind)));
        }
        Ok(())
    };
    if spec.success.is_empty() {
        return Err(invalid("success", "", "a scene needs at least one [[success]] condition".into()));
    }
    for cond in &spec.success {
        match cond {
            ConditionSpec::TipNear { object: o, .. } => {
                object(o, "object")?;
            }
            ConditionSpec::Lifted { object: o, .. } => kind_is(o, "object", ObjectKind::Cube)?,
            ConditionSpec::InBin { object: o, bin } => {
                kind_is(o, "object", ObjectKind::Cube)?;
                kind_is(bin, "bin", ObjectKind::Bin)?;
            }
            ConditionSpec::NearXy { object: o, target, .. } => {
                kind_is(o, "object", ObjectKind::Cube)?;
                object(target, "target")?;
            }
        }
    }
    match &spec.expert {
        ExpertSpec::Reach { target } => {
            object(target, "target")?;
        }
        ExpertSpec::PickPlace { object: o, bin, .. } => {
            kind_is(o, "object", ObjectKind::Cube)?;
            if let Some(b) = bin {
                kind_is(b, "bin", ObjectKind::Bin)?;
            }
        }
        ExpertSpec::Push { object: o, target } => {
            kind_is(o, "object", ObjectKind::Cube)?;
            object(target, "target")?;
        }
        ExpertSpec::Sort { pairs } => {
            for [o, b] in pairs {
                kind_is(o, "pairs", ObjectKind::Cube)?;
                kind_is(b, "pairs", ObjectKind::Bin)?;
            }
        }
    }
    // Every `{placeholder}` in the instruction must be a choice.
    let mut rest = spec.instruction.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + len];
        if !spec.choices.iter().any(|c| c.name == name) {
            return Err(invalid("instruction", name, format!("placeholder `{{{name}}}` has no [[choice]]")));
        }
        rest = &rest[start + len..];
    }
    Ok(())
}

fn check_range(r: [f64; 2]) -> Result<(), String> {
    if !(r[0].is_finite() && r[1].is_finite()) || r[0] > r[1] {
        return Err(format!("range [{}, {}] must be finite with min ≤ max", r[0], r[1]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_scene_parses() {
        for (name, text) in BUILTIN_SCENES {
            let spec = parse_scene(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&spec.name, name);
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("min_height_m = 0.05", "min_height_m = 0.05\nheigth = 3");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.starts_with("heigth")).unwrap() + 1;
        assert!(err.starts_with(&format!("bad.toml:{line}:")), "{err}");
        assert!(err.contains("heigth"), "{err}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("max_steps = 60", "max_steps = \"sixty\"");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:4:"), "{err}");
        assert!(err.contains("sixty") || err.contains("max_steps"), "{err}");
    }

    #[test]
    fn unknown_colour_names_line_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("\"orange\"]", "\"mauve\"]");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.contains("mauve")).unwrap() + 1;
        assert!(err.starts_with(&format!("bad.toml:{line}: key `options`")), "{err}");
        assert!(err.contains("mauve"), "{err}");
    }

    #[test]
    fn dangling_reference_is_rejected() {
        let text = BUILTIN_SCENES[1].1.replace("object = \"cube\"\nmin_height", "object = \"ball\"\nmin_height");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.contains("no object named `ball`"), "{err}");
        assert!(err.contains("key `object`"), "{err}");
    }

    #[test]
    fn unknown_scene_lists_builtins() {
        let err = load_scene("juggle").unwrap_err().to_string();
        assert!(err.contains("unknown scene `juggle`") && err.contains("pick_cube"), "{err}");
    }
}
