//! Recording sessions: what fixes the meaning of a frame, stored when a dataset is created and
//! compared when a later session appends to it.
//!
//! A frame means the same thing in two sessions only when the frame rate, the robot, the scene,
//! the cameras (names and sizes) and every feature (names, shapes) agree, and so do the
//! session settings the caller names (`armstack/<name>` keys in `info.json`, e.g. the robot kind
//! or the physics rate). [`mismatches`] lists every difference; the writer refuses to resume on
//! any (see [`crate::DatasetWriter::resume_session`]). Settings that legitimately vary from
//! episode to episode (the task, the expert's noise, the seed) are stored per episode instead.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::info::{DatasetInfo, Feature};
use crate::writer::{DatasetSpec, ACTION, DONE, ENV_STATE, REWARD, SCENE_KEY, STATE, SUCCESS, TRUNCATED};

/// Session settings beyond the features that fix what a frame means (name → value, e.g.
/// `robot` → `sim`, `physics_hz` → `500`), stored in `info.json` as `armstack/<name>`.
pub type SessionSettings = BTreeMap<String, String>;

/// Prefix of Armstack's own `info.json` keys.
pub const SETTING_PREFIX: &str = "armstack/";

/// One setting whose value in a dataset differs from a new session's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingMismatch {
    /// The setting, e.g. `fps`, `scene`, `cameras`, `observation.state`.
    pub setting: String,
    /// Its value in the dataset.
    pub dataset: String,
    /// Its value in the session.
    pub session: String,
}

/// The `info.json` a session with `spec` and `settings` writes.
pub(crate) fn session_info(spec: &DatasetSpec, settings: &SessionSettings) -> DatasetInfo {
    let names = |v: &[String]| Feature::vector(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let mut features = BTreeMap::new();
    features.insert(STATE.to_string(), names(&spec.state_names));
    features.insert(ACTION.to_string(), names(&spec.action_names));
    if !spec.env_state_names.is_empty() {
        features.insert(ENV_STATE.to_string(), names(&spec.env_state_names));
    }
    features.insert(REWARD.to_string(), Feature::scalar("float32"));
    features.insert(DONE.to_string(), Feature::scalar("bool"));
    features.insert(TRUNCATED.to_string(), Feature::scalar("bool"));
    features.insert(SUCCESS.to_string(), Feature::scalar("bool"));
    for c in &spec.cameras {
        features.insert(c.key.clone(), Feature::video(c.width, c.height, spec.fps));
    }
    let mut info = DatasetInfo::new(spec.fps, &spec.robot_type, features);
    if let Some(scene) = &spec.scene {
        info.extra.insert(SCENE_KEY.to_string(), scene.clone().into());
    }
    for (name, value) in settings {
        info.extra.insert(format!("{SETTING_PREFIX}{name}"), value.clone().into());
    }
    info
}

/// The settings of `info` that fix what a frame means, as (name, value) text.
fn frame_settings(info: &DatasetInfo) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("fps".to_string(), info.fps.to_string());
    out.insert("robot_type".to_string(), info.robot_type.clone().unwrap_or_else(|| "none".into()));
    let cameras: Vec<String> = info
        .features
        .iter()
        .filter(|(_, f)| f.is_video())
        .map(|(k, f)| {
            let (h, w) = (f.shape.first().copied().unwrap_or(0), f.shape.get(1).copied().unwrap_or(0));
            format!("{} {w}x{h}", k.strip_prefix("observation.images.").unwrap_or(k))
        })
        .collect();
    out.insert("cameras".to_string(), if cameras.is_empty() { "none".into() } else { cameras.join(", ") });
    for (key, f) in info.features.iter().filter(|(_, f)| !f.is_video()) {
        let names = match &f.names {
            Value::Null => String::new(),
            Value::Array(a) => {
                let n: Vec<String> =
                    a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
                format!(" [{}]", n.join(", "))
            }
            other => format!(" {other}"),
        };
        out.insert(key.clone(), format!("{} {:?}{names}", f.dtype, f.shape));
    }
    for (key, v) in &info.extra {
        if let Some(name) = key.strip_prefix(SETTING_PREFIX) {
            out.insert(name.to_string(), v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    out
}

/// Every setting in which `dataset` and `session` differ (a setting one of them lacks has the
/// value `none`), and the session settings the dataset predates: those `armstack/<name>` keys
/// of `session` that `dataset` lacks while agreeing on everything else are returned as the
/// second list (key, value) for the caller to adopt; they are not mismatches.
pub fn mismatches(dataset: &DatasetInfo, session: &DatasetInfo) -> (Vec<SettingMismatch>, Vec<(String, Value)>) {
    let (old, new) = (frame_settings(dataset), frame_settings(session));
    let mut found = Vec::new();
    let mut adopted = Vec::new();
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let key = format!("{SETTING_PREFIX}{name}");
        let is_setting = session.extra.contains_key(&key) || dataset.extra.contains_key(&key);
        match (old.get(name), new.get(name)) {
            (a, b) if a == b => {}
            // A dataset recorded before `next.truncated`: resuming adds the column
            // ([`DatasetWriter::resume`](crate::DatasetWriter::resume)).
            (None, Some(_)) if name == TRUNCATED => {}
            // A dataset recorded before this setting was stored: adopt the session's value.
            (None, Some(_)) if is_setting && key != SCENE_KEY => {
                if let Some(v) = session.extra.get(&key) {
                    adopted.push((key, v.clone()));
                }
            }
            (a, b) => found.push(SettingMismatch {
                setting: name.clone(),
                dataset: a.cloned().unwrap_or_else(|| "none".into()),
                session: b.cloned().unwrap_or_else(|| "none".into()),
            }),
        }
    }
    (found, adopted)
}

/// The message of a refused resume: one sentence per mismatch.
pub(crate) fn describe(path: &std::path::Path, found: &[SettingMismatch]) -> String {
    found
        .iter()
        .map(|m| {
            format!(
                "dataset {} was recorded with {} = {}; this session asks for {} = {}",
                path.display(),
                m.setting,
                m.dataset,
                m.setting,
                m.session
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
