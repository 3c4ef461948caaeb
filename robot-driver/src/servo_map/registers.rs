//! What the map means in register values: the settings start-up writes to each servo and the
//! gripper's force limit, checked against the control table's documented ranges when a map is
//! loaded (so a map the servos would refuse is refused first, with the entry's key path).

use crate::control_table::{self as ct, check_write, rad_to_turn_ticks, Field, LimitRegisters};

use super::{GripperMode, ServoMap, ServoMapFault, ServoRef};

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
    /// the widest limits the model allows); the fault names the map entry the value comes from.
    pub(super) fn check_register_ranges(&self) -> Result<(), ServoMapFault> {
        for s in self.servos() {
            let limits = LimitRegisters::widest(s.model);
            let force = if s.id == self.gripper.id { self.gripper_force_register() } else { None };
            for (field, value) in self.register_settings(&s).into_iter().chain(force) {
                check_write(field, value, s.model, &limits).map_err(|e| {
                    ServoMapFault::new(self.map_key(&s, field), format!("servo {} ({}): {e}", s.id, s.role))
                })?;
            }
        }
        Ok(())
    }

    /// Key path of the map entry that register `field` of servo `s` is written from.
    fn map_key(&self, s: &ServoRef, field: Field) -> String {
        if let Some(i) = self.joints.iter().position(|j| j.id == s.id || j.shadow_id == Some(s.id)) {
            let shadow = self.joints[i].shadow_id == Some(s.id);
            let entry = match field {
                ct::HOMING_OFFSET if shadow => "shadow_homing_offset_ticks",
                ct::HOMING_OFFSET => "homing_offset_ticks",
                ct::MIN_POSITION_LIMIT => "min_rad",
                ct::MAX_POSITION_LIMIT => "max_rad",
                ct::PROFILE_VELOCITY => "profile_velocity_rad_s",
                ct::PROFILE_ACCELERATION => "profile_acceleration_rad_s2",
                ct::DRIVE_MODE => "reverse",
                ct::OPERATING_MODE => "model",
                _ if shadow => "shadow_id",
                _ => "id",
            };
            return format!("joints[{i}].{entry}");
        }
        let g = &self.gripper;
        // register_settings writes the lower of the two angles' ticks as Min_Position_Limit.
        let closed_is_min = rad_to_turn_ticks(g.closed_rad) <= rad_to_turn_ticks(g.open_rad);
        let entry = match field {
            ct::HOMING_OFFSET => "homing_offset_ticks",
            ct::MIN_POSITION_LIMIT | ct::MAX_POSITION_LIMIT => {
                if (field == ct::MIN_POSITION_LIMIT) == closed_is_min {
                    "closed_rad"
                } else {
                    "open_rad"
                }
            }
            ct::PWM_LIMIT | ct::GOAL_CURRENT => "force_limit",
            ct::OPERATING_MODE => "mode",
            _ => "id",
        };
        format!("gripper.{entry}")
    }
}
