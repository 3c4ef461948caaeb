//! Topic names and key expressions: `armstack/<robot>/<topic>`.

use crate::error::BusError;

/// Robot name used when none is configured.
pub const DEFAULT_ROBOT: &str = "arm0";
/// First segment of every key expression.
pub const PREFIX: &str = "armstack";

/// Measured joint state ([`crate::JointState`]).
pub const JOINT_STATE: &str = "joint_state";
/// Camera frames ([`crate::CameraFrame`]); the key is `camera/<name>`.
pub const CAMERA: &str = "camera";
/// Absolute joint command ([`crate::JointCommand`]).
pub const COMMAND_JOINT: &str = "command/joint";
/// End-effector delta command ([`crate::EeDeltaCommand`]).
pub const COMMAND_EE_DELTA: &str = "command/ee_delta";
/// Action chunk ([`crate::ActionChunk`]).
pub const COMMAND_CHUNK: &str = "command/chunk";
/// Node status ([`crate::Status`]).
pub const STATUS: &str = "status";
/// Emergency stop ([`crate::Estop`]).
pub const ESTOP: &str = "estop";
/// Episode events ([`crate::EpisodeEvent`]).
pub const EPISODE: &str = "episode";
/// Task instruction ([`crate::Task`]).
pub const TASK: &str = "task";
/// Episode-control requests ([`crate::EpisodeControl`]).
pub const COMMAND_EPISODE: &str = "command/episode";
/// Privileged scene state from the sim ([`crate::SceneState`]).
pub const SCENE_STATE: &str = "scene_state";

const TOPICS: &[&str] = &[
    JOINT_STATE,
    CAMERA,
    COMMAND_JOINT,
    COMMAND_EE_DELTA,
    COMMAND_CHUNK,
    COMMAND_EPISODE,
    STATUS,
    ESTOP,
    EPISODE,
    TASK,
    SCENE_STATE,
];

/// The fixed topics (cameras appear as `camera`; their keys are `camera/<name>`).
pub fn topic_names() -> &'static [&'static str] {
    TOPICS
}

/// Key expression of `topic` for `robot`: `armstack/<robot>/<topic>`. Does not validate; see
/// [`validate_robot_name`] and [`validate_topic`].
pub fn key(robot: &str, topic: &str) -> String {
    format!("{PREFIX}/{robot}/{topic}")
}

/// Key of camera `name`'s frames: `camera/<name>` (topic part only).
pub fn camera_topic(name: &str) -> String {
    format!("{CAMERA}/{name}")
}

/// Why `segment` cannot be one key-expression segment, if it cannot.
fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        return Some("it is empty");
    }
    for c in segment.chars() {
        match c {
            '/' => return Some("it contains '/'"),
            '*' => return Some("it contains the wildcard '*'"),
            '$' => return Some("it contains '$'"),
            '#' => return Some("it contains '#'"),
            '?' => return Some("it contains '?'"),
            c if c.is_whitespace() => return Some("it contains whitespace"),
            c if c.is_control() => return Some("it contains a control character"),
            _ => {}
        }
    }
    None
}

/// Checks that `name` can be a robot name (one key segment: non-empty, no '/', '*', '$', '#',
/// '?' or whitespace).
pub fn validate_robot_name(name: &str) -> Result<(), BusError> {
    match segment_problem(name) {
        Some(reason) => Err(BusError::InvalidRobotName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// Checks a camera name (same rules as a robot name).
pub fn validate_camera_name(name: &str) -> Result<(), BusError> {
    match segment_problem(name) {
        Some(reason) => {
            Err(BusError::InvalidTopic { topic: camera_topic(name), reason: format!("camera name {name:?}: {reason}") })
        }
        None => Ok(()),
    }
}

/// Checks a concrete topic for publishing: '/'-separated segments, each valid as in
/// [`validate_robot_name`] (no wildcards).
pub fn validate_topic(topic: &str) -> Result<(), BusError> {
    for (i, segment) in topic.split('/').enumerate() {
        if let Some(reason) = segment_problem(segment) {
            return Err(BusError::InvalidTopic {
                topic: topic.to_string(),
                reason: format!("segment {} {segment:?}: {reason}", i + 1),
            });
        }
    }
    Ok(())
}

/// Checks a topic pattern for subscribing: like [`validate_topic`] but segments may be the
/// wildcards `*` (one segment) or `**` (any number of segments).
pub fn validate_topic_pattern(topic: &str) -> Result<(), BusError> {
    for (i, segment) in topic.split('/').enumerate() {
        if segment == "*" || segment == "**" {
            continue;
        }
        if let Some(reason) = segment_problem(segment) {
            return Err(BusError::InvalidTopic {
                topic: topic.to_string(),
                reason: format!("segment {} {segment:?}: {reason}", i + 1),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names() {
        assert_eq!(key("arm0", "joint_state"), "armstack/arm0/joint_state");
        assert!(topic_names().contains(&"command/chunk"));
        assert!(validate_topic("camera/front").is_ok());
        assert!(validate_topic("camera//front").is_err());
        assert!(validate_topic("camera/*").is_err());
        assert!(validate_topic_pattern("camera/*").is_ok());
        assert!(validate_topic_pattern("**").is_ok());
    }

    #[test]
    fn robot_names() {
        assert!(validate_robot_name("arm0").is_ok());
        for bad in ["", "a/b", "a*", "a$", "a#", "a?", "a b", "a\tb"] {
            let err = validate_robot_name(bad).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains("invalid robot name"), "{text}");
        }
        let text = validate_robot_name("my arm").expect_err("space").to_string();
        assert!(text.contains("whitespace") && text.contains("\"my arm\""), "{text}");
    }
}
