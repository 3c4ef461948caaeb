//! The servo map: which servo drives which joint, limits, profiles, the gripper and the safety
//! settings. Plain data loaded from TOML (`config/widowx250.toml` is the built-in default), so
//! another X-series arm is a new file, not new code.

use std::path::Path;

use serde::{Deserialize, Serialize};

use bus::config_error::{toml_error, toml_source, ConfigError};

use crate::control_table::{self, model_by_name, rad_to_turn_ticks, Model, OperatingMode};

mod checks;
#[cfg(test)]
mod config_error_tests;
mod registers;

pub use checks::ServoMapFault;

/// The built-in WidowX 250 6DOF map.
pub const WIDOWX250_TOML: &str = include_str!("../config/widowx250.toml");
/// The name the built-in map has in errors (in place of a file path).
pub const WIDOWX250_NAME: &str = "builtin:widowx250";

/// Number of arm joints the bus and the kinematics expect.
pub const NUM_JOINTS: usize = 6;

/// Errors of loading or checking a servo map.
#[derive(Debug, thiserror::Error)]
pub enum ServoMapError {
    /// The file could not be read.
    #[error("reading servo map {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML did not parse into a map (file, line, column, key).
    #[error(transparent)]
    Parse(ConfigError),
    /// The map parsed but a check failed: duplicate ID, unordered limits, a register value
    /// outside its documented range, … (file, line, column, key).
    #[error(transparent)]
    Invalid(ConfigError),
}

/// One arm joint and its servo(s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointServo {
    /// Joint name on the bus (`waist`, `shoulder`, …).
    pub name: String,
    /// Primary servo ID.
    pub id: u8,
    /// Shadow servo on the same joint: Secondary_ID = `id`, reversed drive mode.
    #[serde(default)]
    pub shadow_id: Option<u8>,
    /// Servo model name (`XM430-W350`, …).
    pub model: String,
    /// Lower joint limit, rad.
    pub min_rad: f64,
    /// Upper joint limit, rad.
    pub max_rad: f64,
    /// Velocity limit applied to commands, rad/s.
    #[serde(default = "default_velocity")]
    pub max_velocity_rad_s: f64,
    /// Servo profile velocity, rad/s (0: the servo's own limit).
    #[serde(default)]
    pub profile_velocity_rad_s: f64,
    /// Servo profile acceleration, rad/s² (0: unlimited).
    #[serde(default)]
    pub profile_acceleration_rad_s2: f64,
    /// Homing offset written to the primary servo, ticks (from `armstack calibrate`).
    #[serde(default)]
    pub homing_offset_ticks: i32,
    /// Homing offset written to the shadow servo, ticks.
    #[serde(default)]
    pub shadow_homing_offset_ticks: i32,
    /// Primary servo mounted reversed (drive-mode bit 0).
    #[serde(default)]
    pub reverse: bool,
}

fn default_velocity() -> f64 {
    std::f64::consts::PI
}

/// How the gripper servo is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GripperMode {
    /// Position control with Goal_Current as the force limit (`force_limit` in mA).
    CurrentPosition,
    /// PWM control: the driver closes the position loop, |PWM| ≤ `force_limit` (885 = 100 %).
    Pwm,
    /// Plain position control (no force limit).
    Position,
}

impl GripperMode {
    /// The servo operating mode.
    pub fn operating_mode(self) -> OperatingMode {
        match self {
            GripperMode::CurrentPosition => OperatingMode::CurrentPosition,
            GripperMode::Pwm => OperatingMode::Pwm,
            GripperMode::Position => OperatingMode::Position,
        }
    }
}

/// The gripper servo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GripperServo {
    /// Servo ID.
    pub id: u8,
    /// Servo model name.
    pub model: String,
    /// Drive mode.
    pub mode: GripperMode,
    /// Force limit: mA in `current_position`, PWM units in `pwm`; unused in `position`.
    #[serde(default = "default_force")]
    pub force_limit: u16,
    /// Servo angle of the closed gripper (opening 0), rad.
    pub closed_rad: f64,
    /// Servo angle of the open gripper (opening 1), rad.
    pub open_rad: f64,
    /// PWM mode: PWM units per rad of position error.
    #[serde(default = "default_pwm_gain")]
    pub pwm_gain_per_rad: f64,
    /// Homing offset, ticks.
    #[serde(default)]
    pub homing_offset_ticks: i32,
}

fn default_force() -> u16 {
    300
}

fn default_pwm_gain() -> f64 {
    1500.0
}

/// What the e-stop does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstopAction {
    /// Hold the present position with torque on.
    Hold,
    /// Disable torque (the arm goes limp: only where it rests safely).
    TorqueOff,
}

/// Safety settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// No valid command for this long → hold position, ms.
    #[serde(default = "default_watchdog")]
    pub watchdog_ms: u64,
    /// Commands stamped longer ago than this are stale and ignored, ms.
    #[serde(default = "default_stale")]
    pub max_command_age_ms: u64,
    /// E-stop behaviour.
    #[serde(default = "default_estop")]
    pub on_estop: EstopAction,
    /// Lowest acceptable input voltage at start, V.
    #[serde(default = "default_min_v")]
    pub min_voltage_v: f64,
    /// Highest acceptable input voltage at start, V.
    #[serde(default = "default_max_v")]
    pub max_voltage_v: f64,
    /// A shadow servo further than this from its primary is a fault, rad.
    #[serde(default = "default_shadow_tol")]
    pub shadow_tolerance_rad: f64,
    /// Consecutive failed state reads of one servo before the driver stops.
    #[serde(default = "default_read_failures")]
    pub max_read_failures: u32,
}

fn default_watchdog() -> u64 {
    250
}
fn default_stale() -> u64 {
    500
}
fn default_estop() -> EstopAction {
    EstopAction::Hold
}
fn default_min_v() -> f64 {
    10.0
}
fn default_max_v() -> f64 {
    16.0
}
fn default_shadow_tol() -> f64 {
    0.1
}
fn default_read_failures() -> u32 {
    3
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            watchdog_ms: default_watchdog(),
            max_command_age_ms: default_stale(),
            on_estop: default_estop(),
            min_voltage_v: default_min_v(),
            max_voltage_v: default_max_v(),
            shadow_tolerance_rad: default_shadow_tol(),
            max_read_failures: default_read_failures(),
        }
    }
}

/// A whole arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServoMap {
    /// Arm name (logs).
    pub name: String,
    /// Bus baud rate, bit/s.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The 6 arm joints in chain order.
    pub joints: Vec<JointServo>,
    /// The gripper.
    pub gripper: GripperServo,
    /// Safety settings.
    #[serde(default)]
    pub safety: SafetyConfig,
}

fn default_baud() -> u32 {
    1_000_000
}

/// One servo on the bus, as the driver addresses it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServoRef {
    /// ID.
    pub id: u8,
    /// Model.
    pub model: &'static Model,
    /// Operating mode to configure.
    pub mode: OperatingMode,
    /// Role, for messages: joint name, `<joint> shadow` or `gripper`.
    pub role: String,
}

impl ServoMap {
    /// The built-in WidowX 250 6DOF map.
    pub fn widowx250() -> ServoMap {
        // The built-in file is tested to parse and validate.
        Self::from_toml(WIDOWX250_TOML, WIDOWX250_NAME).unwrap_or_else(|e| panic!("built-in servo map: {e}"))
    }

    /// Parses and validates a map; `file` names it in errors, which read
    /// `FILE:LINE:COL: KEY: message`.
    pub fn from_toml(text: &str, file: &str) -> Result<ServoMap, ServoMapError> {
        let map: ServoMap = toml::from_str(text).map_err(|e| ServoMapError::Parse(toml_error(file, text, &e)))?;
        map.validate()
            .map_err(|fault| ServoMapError::Invalid(toml_source(file, text).error_at_key(&fault.key, fault.message)))?;
        Ok(map)
    }

    /// Loads a map file, or the built-in map for `None`.
    pub fn load(path: Option<&Path>) -> Result<ServoMap, ServoMapError> {
        match path {
            None => Ok(Self::widowx250()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ServoMapError::Io { path: p.display().to_string(), source })?;
                Self::from_toml(&text, &p.display().to_string())
            }
        }
    }

    /// The map as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Every servo in bus order (joint primaries and shadows, then the gripper).
    pub fn servos(&self) -> Vec<ServoRef> {
        let mut out = Vec::new();
        for j in &self.joints {
            let model = model_by_name(&j.model).unwrap_or(&control_table::MODELS[0]);
            out.push(ServoRef { id: j.id, model, mode: OperatingMode::Position, role: j.name.clone() });
            if let Some(s) = j.shadow_id {
                let role = format!("{} shadow", j.name);
                out.push(ServoRef { id: s, model, mode: OperatingMode::Position, role });
            }
        }
        let g = &self.gripper;
        let model = model_by_name(&g.model).unwrap_or(&control_table::MODELS[0]);
        out.push(ServoRef { id: g.id, model, mode: g.mode.operating_mode(), role: "gripper".into() });
        out
    }

    /// Joint names in chain order, then `gripper` (the `joint_state` names).
    pub fn state_names(&self) -> Vec<String> {
        self.joints.iter().map(|j| j.name.clone()).chain(std::iter::once("gripper".to_string())).collect()
    }

    /// Gripper servo angle (rad) for an opening fraction (clamped to 0…1).
    pub fn gripper_rad(&self, opening: f64) -> f64 {
        let g = &self.gripper;
        g.closed_rad + opening.clamp(0.0, 1.0) * (g.open_rad - g.closed_rad)
    }

    /// Opening fraction for a gripper servo angle (not clamped: outside 0…1 means past a stop).
    pub fn gripper_opening(&self, rad: f64) -> f64 {
        let g = &self.gripper;
        (rad - g.closed_rad) / (g.open_rad - g.closed_rad)
    }

    /// Position limits of joint `i` in ticks (Min_Position_Limit, Max_Position_Limit): within
    /// 0…4095, a limit at ±π being the end of the turn ([`rad_to_turn_ticks`]).
    pub fn limit_ticks(&self, i: usize) -> (i32, i32) {
        let j = &self.joints[i];
        (rad_to_turn_ticks(j.min_rad), rad_to_turn_ticks(j.max_rad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_map_matches_design_table() {
        let m = ServoMap::widowx250();
        assert_eq!(m.baud, 1_000_000);
        let ids: Vec<u8> = m.servos().iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(m.joints[1].shadow_id, Some(3));
        assert_eq!(m.joints[2].min_rad, -2.147);
        assert_eq!(m.state_names().last().map(String::as_str), Some("gripper"));
        assert!((m.gripper_opening(m.gripper_rad(0.3)) - 0.3).abs() < 1e-12);
        let back = ServoMap::from_toml(&m.to_toml(), "round trip").expect("re-parses");
        assert_eq!(back, m);
    }

    #[test]
    fn invalid_maps_name_the_problem() {
        let dup = WIDOWX250_TOML.replace("shadow_id = 5", "shadow_id = 3");
        let e = ServoMap::from_toml(&dup, "t").expect_err("duplicate");
        assert!(e.to_string().contains("servo ID 3 is used twice"), "{e}");
        let mode = WIDOWX250_TOML.replace("mode = \"pwm\"", "mode = \"current_position\"");
        let e = ServoMap::from_toml(&mode, "t").expect_err("XL430 has no current mode");
        assert!(e.to_string().contains("XL430-W250 does not support CurrentPosition"), "{e}");
        let typo = WIDOWX250_TOML.replace("min_rad = -1.885", "min_radians = -1.885");
        assert!(ServoMap::from_toml(&typo, "t").is_err());
    }

    #[test]
    fn limits_at_half_a_turn_are_the_ends_of_the_tick_range() {
        let m = ServoMap::widowx250();
        // The built-in ±3.14158 rad joints (waist, forearm roll, wrist rotate).
        for i in [0, 3, 5] {
            assert_eq!(m.limit_ticks(i), (0, 4095), "joint {}", m.joints[i].name);
        }
        let exact = WIDOWX250_TOML.replace("3.14158", &std::f64::consts::PI.to_string());
        let m = ServoMap::from_toml(&exact, "±π").expect("±π limits are valid");
        assert_eq!((m.joints[0].min_rad, m.joints[0].max_rad), (-std::f64::consts::PI, std::f64::consts::PI));
        assert_eq!(m.limit_ticks(0), (0, 4095));
        assert_eq!(m.limit_ticks(2), (rad_to_turn_ticks(-2.147), rad_to_turn_ticks(1.606)));
    }

    #[test]
    fn register_values_outside_their_documented_range_are_refused() {
        let with = |entry: &str| {
            let text = WIDOWX250_TOML.replacen("min_rad = -1.885", &format!("min_rad = -1.885\n{entry}"), 1);
            ServoMap::from_toml(&text, "t").map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(with("homing_offset_ticks = 1044479"), Ok(()));
        let e = with("homing_offset_ticks = 1044480").expect_err("one past the range");
        assert!(
            e.contains("joints[1].homing_offset_ticks: servo 2 (shoulder): Homing_Offset = 1044480: outside its documented range -1044479…1044479"),
            "{e}"
        );
        let e = with("shadow_homing_offset_ticks = -2000000").expect_err("shadow too");
        assert!(e.contains("servo 3 (shoulder shadow): Homing_Offset = -2000000"), "{e}");
        let e = with("profile_velocity_rad_s = 1000.0").expect_err("profile velocity");
        assert!(e.contains("Profile_Velocity = 41700: outside its documented range 0…32767"), "{e}");
        let pwm = WIDOWX250_TOML.replace("force_limit = 350", "force_limit = 886");
        let e = ServoMap::from_toml(&pwm, "t").expect_err("PWM above 100 %");
        assert!(e.to_string().contains("servo 9 (gripper): PWM_Limit = 886"), "{e}");
        let angle = WIDOWX250_TOML.replace("open_rad = 0.85", "open_rad = 3.5");
        let e = ServoMap::from_toml(&angle, "t").expect_err("gripper beyond half a turn");
        assert!(e.to_string().contains("must be within ±π"), "{e}");
    }

    #[test]
    fn the_gripper_force_limit_is_in_the_models_current_units() {
        // An XM430-W350 gripper in current-based position mode: 300 mA is 112 units of 2.69 mA.
        let text = WIDOWX250_TOML
            .replace("mode = \"pwm\"", "mode = \"current_position\"")
            .replace("force_limit = 350", "force_limit = 300");
        let text = text
            .rsplit_once("model = \"XL430-W250\"")
            .map(|(a, b)| format!("{a}model = \"XM430-W350\"{b}"))
            .expect("gripper model");
        let m = ServoMap::from_toml(&text, "t").expect("valid");
        assert_eq!(m.gripper_force_register(), Some((control_table::GOAL_CURRENT, 112)));
        // 4 A is beyond the XM430-W350's Current_Limit range (1193 units, 3.2 A).
        let strong = text.replace("force_limit = 300", "force_limit = 4000");
        let e = ServoMap::from_toml(&strong, "t").expect_err("too much current");
        assert!(e.to_string().contains("Goal_Current = 1487: outside its documented range -1193…1193"), "{e}");
    }
}
