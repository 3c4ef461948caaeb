//! The checks a servo map passes after parsing: joint count, models and modes, limits (in rad and
//! in the ticks the driver writes), velocities, the gripper, servo IDs, the baud rate and every
//! register value. Each failure names the map entry by its key path (`joints[2].max_rad`,
//! `gripper.force_limit`, `baud`), so [`ServoMap::from_toml`] can place it in the file.

use crate::control_table::{model_by_name, rad_to_turn_ticks, Model, OperatingMode};

use super::{ServoMap, NUM_JOINTS};

/// Half a turn (the single-turn range of a limit), rad, with a rounding margin.
const HALF_TURN_RAD: f64 = std::f64::consts::PI + 1e-9;
/// Highest servo ID (253 is reserved, 254 is broadcast).
const MAX_SERVO_ID: u8 = 252;

/// A failed servo-map check: the key path of the offending entry and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ServoMapFault {
    /// Key path as written in the file (`joints[2].max_rad`, `gripper.mode`, `baud`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ServoMapFault {
    /// A fault of the entry at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ServoMapFault { key: key.into(), message: message.into() }
    }
}

/// The model named `name`, or a fault at `key`.
fn known_model(key: String, name: &str) -> Result<&'static Model, ServoMapFault> {
    model_by_name(name).ok_or_else(|| ServoMapFault::new(key, format!("unknown servo model {name}")))
}

impl ServoMap {
    /// Checks IDs, models, modes, limits and register values; the fault names the offending
    /// entry's key path.
    pub fn validate(&self) -> Result<(), ServoMapFault> {
        if self.joints.len() != NUM_JOINTS {
            let message = format!("{} joints listed, the arm has {NUM_JOINTS}", self.joints.len());
            return Err(ServoMapFault::new("joints", message));
        }
        for i in 0..self.joints.len() {
            self.check_joint(i)?;
        }
        self.check_gripper()?;
        self.check_ids()?;
        if self.baud == 0 {
            return Err(ServoMapFault::new("baud", "must be positive"));
        }
        self.check_register_ranges()
    }

    /// Model, limits (ordered within ±π, and still ordered once rounded to ticks) and velocities
    /// of joint `i`.
    fn check_joint(&self, i: usize) -> Result<(), ServoMapFault> {
        let j = &self.joints[i];
        let key = |entry: &str| format!("joints[{i}].{entry}");
        let model = known_model(key("model"), &j.model)?;
        if !model.modes.contains(&OperatingMode::Position) {
            return Err(ServoMapFault::new(key("model"), format!("{} has no position mode", model.name)));
        }
        if !(j.min_rad >= -HALF_TURN_RAD && j.min_rad <= HALF_TURN_RAD) {
            return Err(ServoMapFault::new(key("min_rad"), format!("{} rad must be within ±π", j.min_rad)));
        }
        if !(j.max_rad >= -HALF_TURN_RAD && j.max_rad <= HALF_TURN_RAD) {
            return Err(ServoMapFault::new(key("max_rad"), format!("{} rad must be within ±π", j.max_rad)));
        }
        if j.min_rad >= j.max_rad {
            let message = format!("{} rad must be above min_rad {} rad", j.max_rad, j.min_rad);
            return Err(ServoMapFault::new(key("max_rad"), message));
        }
        // The servo's Min_Position_Limit must stay below its Max_Position_Limit.
        let (lo, hi) = self.limit_ticks(i);
        if lo >= hi {
            let message = format!(
                "{} rad is the same tick as min_rad {} rad (Min_Position_Limit {lo}, Max_Position_Limit {hi})",
                j.max_rad, j.min_rad
            );
            return Err(ServoMapFault::new(key("max_rad"), message));
        }
        if !(j.max_velocity_rad_s > 0.0) {
            return Err(ServoMapFault::new(
                key("max_velocity_rad_s"),
                format!("{} must be positive", j.max_velocity_rad_s),
            ));
        }
        for (entry, value) in [
            ("profile_velocity_rad_s", j.profile_velocity_rad_s),
            ("profile_acceleration_rad_s2", j.profile_acceleration_rad_s2),
        ] {
            if !(value >= 0.0) {
                return Err(ServoMapFault::new(key(entry), format!("{value} must not be negative")));
            }
        }
        Ok(())
    }

    /// Model and mode, and two distinct angles within ±π (distinct ticks too, so the gripper's
    /// position limits are ordered).
    fn check_gripper(&self) -> Result<(), ServoMapFault> {
        let g = &self.gripper;
        let model = known_model("gripper.model".into(), &g.model)?;
        if !model.modes.contains(&g.mode.operating_mode()) {
            let message = format!("the {} does not support {:?} mode", model.name, g.mode);
            return Err(ServoMapFault::new("gripper.mode", message));
        }
        for (entry, rad) in [("gripper.closed_rad", g.closed_rad), ("gripper.open_rad", g.open_rad)] {
            if !(rad.abs() <= HALF_TURN_RAD) {
                return Err(ServoMapFault::new(entry, format!("{rad} rad must be within ±π")));
            }
        }
        if (g.open_rad - g.closed_rad).abs() < 1e-3 || rad_to_turn_ticks(g.open_rad) == rad_to_turn_ticks(g.closed_rad)
        {
            let message =
                format!("{} rad must differ from closed_rad {} rad by at least a tick", g.open_rad, g.closed_rad);
            return Err(ServoMapFault::new("gripper.open_rad", message));
        }
        Ok(())
    }

    /// Every servo ID is in range and used once; a repeat is reported where it appears again.
    fn check_ids(&self) -> Result<(), ServoMapFault> {
        let mut ids: Vec<(u8, String)> = Vec::new();
        for (i, j) in self.joints.iter().enumerate() {
            ids.push((j.id, format!("joints[{i}].id")));
            ids.extend(j.shadow_id.map(|s| (s, format!("joints[{i}].shadow_id"))));
        }
        ids.push((self.gripper.id, "gripper.id".into()));
        for (k, (id, key)) in ids.iter().enumerate() {
            if let Some((_, first)) = ids[..k].iter().find(|(earlier, _)| earlier == id) {
                return Err(ServoMapFault::new(key.clone(), format!("servo ID {id} is used twice (also {first})")));
            }
            if *id > MAX_SERVO_ID {
                return Err(ServoMapFault::new(
                    key.clone(),
                    format!("servo ID {id} is out of range (0–{MAX_SERVO_ID})"),
                ));
            }
        }
        Ok(())
    }
}
