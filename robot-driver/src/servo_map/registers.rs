//! What the map means in register values: the settings start-up writes to each servo and the
//! gripper's force limit, checked against the control table's documented ranges when a map is
//! loaded (so a map the servos would refuse is refused first, with the entry named).

use crate::control_table::{self as ct, check_write, rad_to_turn_ticks, Field, LimitRegisters};

use super::{GripperMode, ServoMap, ServoRef};

impl ServoMap {
    /// The registers start-up writes to servo `s` with torque off, in write order, as
    /// (register, value). Angles become single-turn ticks ([`rad_to_turn_ticks`]).
    pub fn register_settings(&self, s: &ServoRef) -> Vec<(Field, i64)> {
        let mut settings: Vec<(Field, i64)> =
            vec![(ct::RETURN_DELAY_TIME, 0), (ct::OPERATING_MODE, i64::from(s.mode.value()))];
        let joint = self.joints.iter().position(|j| j.id == s.id || j.shadow_id == Some(s.id));
        if let Some(i) = joint {
            let j = &self.joints[i];
            let is_shadow = j.shadow_id == Some(s.id);
            let reverse = j.reverse != is_shadow;
            let (lo, hi) = self.limit_ticks(i);
            let offset = if is_shadow { j.shadow_homing_offset_ticks } else { j.homing_offset_ticks };
            settings.extend([
                (ct::DRIVE_MODE, i64::from(reverse) * i64::from(ct::DRIVE_MODE_REVERSE)),
                (ct::SECONDARY_ID, if is_shadow { i64::from(j.id) } else { 255 }),
                (ct::HOMING_OFFSET, i64::from(offset)),
                (ct::MIN_POSITION_LIMIT, i64::from(lo)),
                (ct::MAX_POSITION_LIMIT, i64::from(hi)),
                (ct::PROFILE_VELOCITY, (j.profile_velocity_rad_s / ct::RAD_S_PER_VELOCITY_UNIT).round() as i64),
                (ct::PROFILE_ACCELERATION, (j.profile_acceleration_rad_s2 / ct::RAD_S2_PER_ACCEL_UNIT).round() as i64),
            ]);
        } else {
            let g = &self.gripper;
            let (a, b) = (rad_to_turn_ticks(g.closed_rad), rad_to_turn_ticks(g.open_rad));
            settings.extend([
                (ct::DRIVE_MODE, 0),
                (ct::SECONDARY_ID, 255),
                (ct::HOMING_OFFSET, i64::from(g.homing_offset_ticks)),
                (ct::MIN_POSITION_LIMIT, i64::from(a.min(b))),
                (ct::MAX_POSITION_LIMIT, i64::from(a.max(b))),
            ]);
            if g.mode == GripperMode::Pwm {
                settings.extend(self.gripper_force_register());
            }
        }
        settings
    }

    /// The register that limits the gripper's force and its value: PWM_Limit (`force_limit` PWM
    /// units) in PWM mode, written at start-up; Goal_Current (`force_limit` mA in the model's
    /// current units) in current-based position mode, written before torque is enabled; none in
    /// position mode.
    pub fn gripper_force_register(&self) -> Option<(Field, i64)> {
        let g = &self.gripper;
        match g.mode {
            GripperMode::Pwm => Some((ct::PWM_LIMIT, i64::from(g.force_limit))),
            GripperMode::CurrentPosition => {
                let unit_ma = ct::model_by_name(&g.model).and_then(|m| m.current_unit_ma).unwrap_or(1.0);
                Some((ct::GOAL_CURRENT, (f64::from(g.force_limit) / unit_ma).round() as i64))
            }
            GripperMode::Position => None,
        }
    }

    /// Checks every register value the map implies against its documented range (goals against
    /// the widest limits the model allows); the reason names the servo and the map entry.
    pub(super) fn check_register_ranges(&self) -> Result<(), String> {
        for s in self.servos() {
            let limits = LimitRegisters::widest(s.model);
            let force = if s.id == self.gripper.id { self.gripper_force_register() } else { None };
            for (field, value) in self.register_settings(&s).into_iter().chain(force) {
                check_write(field, value, s.model, &limits).map_err(|e| {
                    format!(
                        "servo {} ({}): {e}{}",
                        s.id,
                        s.role,
                        map_entry(field).map_or(String::new(), |k| format!(" (from {k})"))
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// The map entry a register's value comes from, for messages.
fn map_entry(field: Field) -> Option<&'static str> {
    match field {
        ct::HOMING_OFFSET => Some("homing_offset_ticks"),
        ct::PROFILE_VELOCITY => Some("profile_velocity_rad_s"),
        ct::PROFILE_ACCELERATION => Some("profile_acceleration_rad_s2"),
        ct::PWM_LIMIT | ct::GOAL_CURRENT => Some("force_limit"),
        _ => None,
    }
}
