//! Scenes as data: loading and validating scene files, and sampling one episode's layout.
//!
//! The five built-in scenes (`reach`, `pick_cube`, `place_in_bin`, `push_to_target`, `sort`)
//! are embedded in the binary, so the simulator runs from any directory; a user's own scene
//! file is loaded with [`load_scene_file`].

pub mod color;
mod sample;
pub mod spec;

use std::path::{Path, PathBuf};

use bus::config_error::ConfigError;

use bus::config_error::{toml_error, toml_source};

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
    /// The TOML is malformed or has a wrong / unknown / missing key (file, line, column, key).
    #[error(transparent)]
    Parse(ConfigError),
    /// The TOML parsed but a value is invalid: unknown colour, bad range, dangling reference
    /// (file, line, column, key).
    #[error(transparent)]
    Invalid(ConfigError),
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
    let spec: SceneSpec = toml::from_str(text).map_err(|e| SceneError::Parse(toml_error(file, text, &e)))?;
    validate(&spec)
        .map_err(|(key, message)| SceneError::Invalid(toml_source(file, text).error_at_key(&key, message)))?;
    Ok(spec)
}

/// A failed check: the key path of the offending entry (`object[1].x_m`) and what is wrong.
type Problem = (String, String);

fn validate(spec: &SceneSpec) -> Result<(), Problem> {
    if spec.objects.is_empty() {
        return Err(("object".into(), "a scene needs at least one [[object]]".into()));
    }
    for (c, choice) in spec.choices.iter().enumerate() {
        if choice.options.is_empty() {
            return Err((format!("choice[{c}].options"), format!("choice `{}` has no options", choice.name)));
        }
        for (o, option) in choice.options.iter().enumerate() {
            if color::named_color(option).is_none() {
                let known = color::COLOR_NAMES.join(", ");
                return Err((
                    format!("choice[{c}].options[{o}]"),
                    format!("unknown colour `{option}`; known: {known}"),
                ));
            }
        }
    }
    for (i, obj) in spec.objects.iter().enumerate() {
        let key = |field: &str| format!("object[{i}].{field}");
        if spec.objects[..i].iter().any(|o| o.name == obj.name) {
            return Err((key("name"), format!("duplicate object name `{}`", obj.name)));
        }
        if let Some(choice) = obj.color.strip_prefix('$') {
            if !spec.choices.iter().any(|c| c.name == choice) {
                return Err((key("color"), format!("no [[choice]] named `{choice}`")));
            }
        } else if color::named_color(&obj.color).is_none() {
            let known = color::COLOR_NAMES.join(", ");
            return Err((key("color"), format!("unknown colour `{}`; known: {known}", obj.color)));
        }
        if !(obj.size_m > 0.0 && obj.size_m < 1.0) {
            return Err((key("size_m"), format!("object `{}`: size_m must be in (0, 1) m", obj.name)));
        }
        if obj.mass_kg.is_nan() || obj.mass_kg <= 0.0 {
            return Err((key("mass_kg"), format!("object `{}`: mass_kg must be > 0", obj.name)));
        }
        for (field, r) in [("x_m", obj.x_m), ("y_m", obj.y_m), ("z_m", obj.z_m), ("yaw_rad", obj.yaw_rad)] {
            check_range(r).map_err(|m| (key(field), format!("object `{}`: {m}", obj.name)))?;
        }
    }
    let r = &spec.randomization;
    // (key, range, smallest allowed lower bound, whether the bound itself is allowed)
    for (field, range, floor, floor_allowed) in [
        ("friction", r.friction, 0.0, true),
        ("mass_scale", r.mass_scale, 0.0, false),
        ("motor_gain_scale", r.motor_gain_scale, 0.0, false),
        ("latency_ms", r.latency_ms, 0.0, true),
        ("light_azimuth_rad", r.light_azimuth_rad, f64::NEG_INFINITY, true),
        ("light_elevation_rad", r.light_elevation_rad, f64::NEG_INFINITY, true),
        ("ambient", r.ambient, f64::NEG_INFINITY, true),
    ] {
        let key = format!("randomization.{field}");
        check_range(range).map_err(|m| (key.clone(), m))?;
        if range[0] < floor || (!floor_allowed && range[0] == floor) {
            let bound = if floor_allowed { "≥" } else { ">" };
            return Err((key, format!("{field} must be {bound} {floor}, got {}", range[0])));
        }
    }
    let object = |name: &str, key: String| -> Result<&ObjectSpec, Problem> {
        spec.objects.iter().find(|o| o.name == name).ok_or_else(|| (key, format!("no object named `{name}`")))
    };
    let kind_is = |name: &str, key: String, kind: ObjectKind| -> Result<(), Problem> {
        let o = object(name, key.clone())?;
        if o.kind != kind {
            return Err((key, format!("object `{name}` is a {:?}, expected a {kind:?}", o.kind)));
        }
        Ok(())
    };
    if spec.success.is_empty() {
        return Err(("success".into(), "a scene needs at least one [[success]] condition".into()));
    }
    for (i, cond) in spec.success.iter().enumerate() {
        let key = |field: &str| format!("success[{i}].{field}");
        match cond {
            ConditionSpec::TipNear { object: o, .. } => {
                object(o, key("object"))?;
            }
            ConditionSpec::Lifted { object: o, .. } => kind_is(o, key("object"), ObjectKind::Cube)?,
            ConditionSpec::InBin { object: o, bin } => {
                kind_is(o, key("object"), ObjectKind::Cube)?;
                kind_is(bin, key("bin"), ObjectKind::Bin)?;
            }
            ConditionSpec::NearXy { object: o, target, .. } => {
                kind_is(o, key("object"), ObjectKind::Cube)?;
                object(target, key("target"))?;
            }
        }
    }
    match &spec.expert {
        ExpertSpec::Reach { target } => {
            object(target, "expert.target".into())?;
        }
        ExpertSpec::PickPlace { object: o, bin, .. } => {
            kind_is(o, "expert.object".into(), ObjectKind::Cube)?;
            if let Some(b) = bin {
                kind_is(b, "expert.bin".into(), ObjectKind::Bin)?;
            }
        }
        ExpertSpec::Push { object: o, target } => {
            kind_is(o, "expert.object".into(), ObjectKind::Cube)?;
            object(target, "expert.target".into())?;
        }
        ExpertSpec::Sort { pairs } => {
            for (i, [o, b]) in pairs.iter().enumerate() {
                kind_is(o, format!("expert.pairs[{i}][0]"), ObjectKind::Cube)?;
                kind_is(b, format!("expert.pairs[{i}][1]"), ObjectKind::Bin)?;
            }
        }
    }
    // Every `{placeholder}` in the instruction must be a choice.
    let mut rest = spec.instruction.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        let name = &rest[start + 1..start + len];
        if !spec.choices.iter().any(|c| c.name == name) {
            return Err(("instruction".into(), format!("placeholder `{{{name}}}` has no [[choice]]")));
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

    /// `file:line:col: key: ` of `text`'s first line containing `needle`, at its first non-blank.
    fn place(text: &str, needle: &str, key: &str) -> String {
        let (i, l) = text.lines().enumerate().find(|(_, l)| l.contains(needle)).expect("needle");
        format!("bad.toml:{}:{}: {key}: ", i + 1, l.len() - l.trim_start().len() + 1)
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("min_height_m = 0.05", "min_height_m = 0.05\nheigth = 3");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with(&place(&text, "heigth", "success[0].heigth")), "{err}");
    }

    #[test]
    fn wrong_type_names_file_line_column_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("max_steps = 60", "max_steps = \"sixty\"");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:4:13: max_steps: invalid type: string \"sixty\""), "{err}");
    }

    #[test]
    fn syntax_error_names_file_line_column_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("max_steps = 60", "max_steps = 6O");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with("bad.toml:4:13: max_steps: "), "{err}");
    }

    #[test]
    fn wrong_type_inside_a_tagged_table_names_its_key() {
        // `[[success]]` and `[expert]` are `kind`-tagged: serde buffers them and loses the spans.
        let text = BUILTIN_SCENES[1].1.replace("min_height_m = 0.05", "min_height_m = \"high\"");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.contains("\"high\"")).unwrap() + 1;
        assert!(err.starts_with(&format!("bad.toml:{line}:16: success[0].min_height_m: invalid type")), "{err}");
        let text = BUILTIN_SCENES[1].1.replace("lift_m = 0.10", "lift_m = true");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.contains("lift_m = true")).unwrap() + 1;
        assert!(err.starts_with(&format!("bad.toml:{line}:10: expert.lift_m: invalid type: boolean")), "{err}");
        let text = BUILTIN_SCENES[1].1.replace("object = \"cube\"\nmin_height_m = 0.05", "object = \"cube\"");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.contains(": success[0].min_height_m: missing field `min_height_m`"), "{err}");
    }

    #[test]
    fn range_errors_name_file_line_column_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("friction = [0.7, 1.0]", "friction = [1.0, 0.7]");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with(&place(&text, "friction =", "randomization.friction")), "{err}");
        assert!(err.contains("min ≤ max"), "{err}");
        // The second object's range, not the first object's key of the same name.
        let (name, text) = BUILTIN_SCENES[2];
        assert_eq!(name, "place_in_bin");
        let text = text.replace("x_m = [0.24, 0.32]", "x_m = [0.32, 0.24]");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with(&place(&text, "[0.32, 0.24]", "object[1].x_m")), "{err}");
        let text = BUILTIN_SCENES[1].1.replace("mass_scale = [0.8, 1.2]", "mass_scale = [0.0, 1.2]");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with(&place(&text, "mass_scale =", "randomization.mass_scale")), "{err}");
    }

    #[test]
    fn unknown_colour_names_line_and_key() {
        let text = BUILTIN_SCENES[1].1.replace("\"orange\"]", "\"mauve\"]");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        let line = text.lines().position(|l| l.contains("mauve")).unwrap() + 1;
        let column = text.lines().nth(line - 1).unwrap().find("\"mauve").unwrap() + 1;
        assert!(err.starts_with(&format!("bad.toml:{line}:{column}: choice[0].options[4]: ")), "{err}");
        assert!(err.contains("unknown colour `mauve`"), "{err}");
    }

    #[test]
    fn dangling_reference_is_rejected() {
        let text = BUILTIN_SCENES[1].1.replace("object = \"cube\"\nmin_height", "object = \"ball\"\nmin_height");
        let err = parse_scene(&text, "bad.toml").unwrap_err().to_string();
        assert!(err.starts_with(&place(&text, "\"ball\"", "success[0].object")), "{err}");
        assert!(err.contains("no object named `ball`"), "{err}");
    }

    #[test]
    fn unknown_scene_lists_builtins() {
        let err = load_scene("juggle").unwrap_err().to_string();
        assert!(err.contains("unknown scene `juggle`") && err.contains("pick_cube"), "{err}");
    }
}
