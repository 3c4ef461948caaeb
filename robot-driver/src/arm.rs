//! The arm over a [`ServoBus`]: start-up checks and configuration, one-packet state reads, goal
//! writes, torque, and hardware-error reports. Joint angles in rad at the joint; the gripper as
//! the bus's opening fraction (0 closed … 1 open).

use std::time::Instant;

use crate::control_table::{self as ct, model_by_number, rad_to_ticks, ticks_to_rad, Field};
use crate::protocol::HardwareError;
use crate::servo_bus::{decode_signed, BusStats, ServoBus, ServoBusConfig, ServoBusError};
use crate::servo_map::{GripperMode, ServoMap, ServoRef, NUM_JOINTS};

/// Errors of the arm layer. Every message names the servo (ID and role) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] ServoBusError),
    /// Start-up found problems; torque stays off.
    #[error("refusing to enable torque:\n  - {}", .0.join("\n  - "))]
    Startup(Vec<String>),
    /// A servo stopped answering during operation.
    #[error("servo {id} ({role}) stopped answering: {reason}")]
    Lost {
        /// Servo.
        id: u8,
        /// Role.
        role: String,
        /// Last error.
        reason: String,
    },
    /// Servos latched hardware errors.
    #[error("hardware error: {}", .0.iter().map(|(id, role, e)| format!("servo {id} ({role}): {e}")).collect::<Vec<_>>().join("; "))]
    Hardware(Vec<(u8, String, HardwareError)>),
    /// A shadow servo disagrees with its primary.
    #[error("joint {joint}: shadow servo {shadow} is {diff_rad:.3} rad from its primary")]
    Shadow {
        /// Joint name.
        joint: String,
        /// Shadow servo ID.
        shadow: u8,
        /// Disagreement, rad.
        diff_rad: f64,
    },
}

/// One measurement of the whole arm.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmState {
    /// When the read completed.
    pub stamp: Instant,
    /// Joint positions, rad.
    pub q_rad: [f64; NUM_JOINTS],
    /// Joint velocities, rad/s.
    pub dq_rad_s: [f64; NUM_JOINTS],
    /// Joint efforts estimated from current, N·m.
    pub effort_nm: [f64; NUM_JOINTS],
    /// Gripper opening, 0 closed … 1 open.
    pub gripper_opening: f64,
    /// Gripper opening rate, 1/s.
    pub gripper_rate: f64,
    /// Gripper servo angle, rad.
    pub gripper_rad: f64,
    /// Servos whose reply carried the hardware-alert bit.
    pub alerts: Vec<u8>,
}

/// What start-up found.
#[derive(Clone, Debug, PartialEq)]
pub struct StartupReport {
    /// (ID, role, model name, firmware) per servo.
    pub servos: Vec<(u8, String, &'static str, u8)>,
    /// Lowest input voltage seen, V.
    pub min_voltage_v: f64,
}

/// The arm.
pub struct Arm {
    bus: ServoBus,
    map: ServoMap,
    servos: Vec<ServoRef>,
    /// Index into `servos` of each joint's primary, shadow, and of the gripper.
    primary: [usize; NUM_JOINTS],
    shadow: [Option<usize>; NUM_JOINTS],
    gripper: usize,
    consecutive_failures: Vec<u32>,
}

impl Arm {
    /// The arm described by `map` on `bus` (no traffic yet).
    pub fn new(bus: ServoBus, map: ServoMap) -> Arm {
        let servos = map.servos();
        let index = |id: u8| servos.iter().position(|s| s.id == id).unwrap_or(0);
        let primary = std::array::from_fn(|i| index(map.joints[i].id));
        let shadow = std::array::from_fn(|i| map.joints[i].shadow_id.map(index));
        let gripper = index(map.gripper.id);
        let n = servos.len();
        Arm { bus, map, servos, primary, shadow, gripper, consecutive_failures: vec![0; n] }
    }

    /// The servo map.
    pub fn map(&self) -> &ServoMap {
        &self.map
    }

    /// Bus traffic counters.
    pub fn bus_stats(&self) -> BusStats {
        self.bus.stats()
    }

    /// The client, for tools (calibration, diagnostics).
    pub fn bus_mut(&mut self) -> &mut ServoBus {
        &mut self.bus
    }

    fn role(&self, id: u8) -> String {
        self.servos.iter().find(|s| s.id == id).map_or_else(|| "unknown".into(), |s| s.role.clone())
    }

    /// Pings every servo, checks models, turns torque off, writes the map's settings, reads them
    /// back, and checks voltage, hardware errors, joint positions and shadow agreement. Torque
    /// stays off; on any problem the error lists every servo at fault and why.
    pub fn start(&mut self) -> Result<StartupReport, ArmError> {
        // Start-up is not time-critical: retry harder so a noisy line does not refuse a healthy arm.
        let loop_config = self.bus.config();
        self.bus.set_config(ServoBusConfig { retries: loop_config.retries.max(10), ..loop_config });
        let result = self.start_checks();
        self.bus.set_config(loop_config);
        result
    }

    /// Pings every servo and checks its model against the map; torque is not touched. Returns
    /// (ID, role, model, firmware) per servo, or every problem found.
    pub fn check_servos(&mut self) -> Result<Vec<(u8, String, &'static str, u8)>, ArmError> {
        let mut problems = Vec::new();
        let mut found = Vec::new();
        for s in self.servos.clone() {
            match self.bus.ping(s.id) {
                Ok((number, fw)) if number == s.model.number => found.push((s.id, s.role.clone(), s.model.name, fw)),
                Ok((number, _)) => problems.push(format!(
                    "servo {} ({}) is a {} (model {number}); the servo map says {}",
                    s.id,
                    s.role,
                    model_by_number(number).map_or("unknown model", |m| m.name),
                    s.model.name
                )),
                Err(e) => problems.push(format!("servo {} ({}) did not answer a ping: {e}", s.id, s.role)),
            }
        }
        if problems.is_empty() {
            Ok(found)
        } else {
            Err(ArmError::Startup(problems))
        }
    }

    fn start_checks(&mut self) -> Result<StartupReport, ArmError> {
        let servos = self.check_servos()?;
        let mut problems = Vec::new();
        let mut report = StartupReport { servos, min_voltage_v: f64::INFINITY };
        for s in self.servos.clone() {
            if let Err(e) = self.configure(&s) {
                problems.push(format!("servo {} ({}): {e}", s.id, s.role));
            }
        }
        if !problems.is_empty() {
            return Err(ArmError::Startup(problems));
        }
        for s in self.servos.clone() {
            let hw = HardwareError(self.bus.read_field(s.id, ct::HARDWARE_ERROR_STATUS)? as u8);
            if !hw.is_empty() {
                problems.push(format!(
                    "servo {} ({}) has a latched hardware error: {hw} (reboot or power-cycle it)",
                    s.id, s.role
                ));
            }
            let v = self.bus.read_field(s.id, ct::PRESENT_INPUT_VOLTAGE)? as f64 / 10.0;
            report.min_voltage_v = report.min_voltage_v.min(v);
            let safety = &self.map.safety;
            if v < safety.min_voltage_v || v > safety.max_voltage_v {
                problems.push(format!(
                    "servo {} ({}) sees {v:.1} V, outside {:.1}–{:.1} V",
                    s.id, s.role, safety.min_voltage_v, safety.max_voltage_v
                ));
            }
        }
        match self.read_state() {
            Ok(state) => {
                for (i, j) in self.map.joints.iter().enumerate() {
                    let q = state.q_rad[i];
                    if q < j.min_rad - 0.02 || q > j.max_rad + 0.02 {
                        problems.push(format!(
                            "joint {} is at {q:.3} rad, outside its limits [{}, {}]: move it inside by hand (torque is off)",
                            j.name, j.min_rad, j.max_rad
                        ));
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        if problems.is_empty() {
            Ok(report)
        } else {
            Err(ArmError::Startup(problems))
        }
    }

    /// Writes one servo's settings with torque off and verifies them.
    fn configure(&mut self, s: &ServoRef) -> Result<(), String> {
        let id = s.id;
        self.bus.write_field(id, ct::TORQUE_ENABLE, 0).map_err(|e| e.to_string())?;
        let mut settings: Vec<(Field, i64)> =
            vec![(ct::RETURN_DELAY_TIME, 0), (ct::OPERATING_MODE, s.mode.value() as i64)];
        let joint = self.map.joints.iter().position(|j| j.id == id || j.shadow_id == Some(id));
        if let Some(i) = joint {
            let j = &self.map.joints[i];
            let is_shadow = j.shadow_id == Some(id);
            let reverse = j.reverse != is_shadow;
            let (lo, hi) = self.map.limit_ticks(i);
            let offset = if is_shadow { j.shadow_homing_offset_ticks } else { j.homing_offset_ticks };
            settings.extend([
                (ct::DRIVE_MODE, i64::from(reverse) * ct::DRIVE_MODE_REVERSE as i64),
                (ct::SECONDARY_ID, if is_shadow { j.id as i64 } else { 255 }),
                (ct::HOMING_OFFSET, offset as i64),
                (ct::MIN_POSITION_LIMIT, lo as i64),
                (ct::MAX_POSITION_LIMIT, hi as i64),
                (ct::PROFILE_VELOCITY, (j.profile_velocity_rad_s / ct::RAD_S_PER_VELOCITY_UNIT).round() as i64),
                (ct::PROFILE_ACCELERATION, (j.profile_acceleration_rad_s2 / ct::RAD_S2_PER_ACCEL_UNIT).round() as i64),
            ]);
        } else {
            let g = &self.map.gripper;
            let (a, b) = (rad_to_ticks(g.closed_rad), rad_to_ticks(g.open_rad));
            settings.extend([
                (ct::DRIVE_MODE, 0),
                (ct::SECONDARY_ID, 255),
                (ct::HOMING_OFFSET, g.homing_offset_ticks as i64),
                (ct::MIN_POSITION_LIMIT, a.min(b) as i64),
                (ct::MAX_POSITION_LIMIT, a.max(b) as i64),
            ]);
            if g.mode == GripperMode::Pwm {
                settings.push((ct::PWM_LIMIT, g.force_limit.min(885) as i64));
            }
        }
        for &(f, v) in &settings {
            self.bus.write_field(id, f, v).map_err(|e| format!("writing {}: {e}", f.name))?;
        }
        for &(f, v) in &settings {
            let got = self.bus.read_field(id, f).map_err(|e| format!("reading back {}: {e}", f.name))?;
            // 1-byte fields read back unsigned.
            let want = if f.size == 1 { v & 0xFF } else { v };
            if got != want {
                return Err(format!("{} reads back {got} after writing {want}", f.name));
            }
        }
        Ok(())
    }

    /// Reads position, velocity and current of every servo in one sync read. A servo that
    /// fails `max_read_failures` cycles in a row is reported as lost; a hardware alert on any
    /// reply is reported with the decoded bits.
    pub fn read_state(&mut self) -> Result<ArmState, ArmError> {
        let ids: Vec<u8> = self.servos.iter().map(|s| s.id).collect();
        let replies = self.bus.sync_read(ct::STATE_BLOCK.address, ct::STATE_BLOCK.size, &ids)?;
        let stamp = Instant::now();
        let mut raw = vec![(0i64, 0i64, 0i64); ids.len()];
        let mut alerts = Vec::new();
        let mut lost = None;
        let mut transient = None;
        // Every servo's failure count is updated before deciding; a lost servo beats a transient error.
        for (k, r) in replies.into_iter().enumerate() {
            match r {
                Ok(reply) => {
                    self.consecutive_failures[k] = 0;
                    let d = &reply.data;
                    raw[k] = (decode_signed(&d[6..10]), decode_signed(&d[2..6]), decode_signed(&d[0..2]));
                    if reply.alert {
                        alerts.push(ids[k]);
                    }
                }
                Err(e) => {
                    self.consecutive_failures[k] += 1;
                    if self.consecutive_failures[k] >= self.map.safety.max_read_failures {
                        lost.get_or_insert(ArmError::Lost {
                            id: ids[k],
                            role: self.servos[k].role.clone(),
                            reason: e.to_string(),
                        });
                    } else {
                        transient.get_or_insert(ArmError::Bus(e));
                    }
                }
            }
        }
        if let Some(e) = lost.or(transient) {
            return Err(e);
        }
        let pos = |k: usize| ticks_to_rad(raw[k].0 as i32);
        let vel = |k: usize| raw[k].1 as f64 * ct::RAD_S_PER_VELOCITY_UNIT;
        let q_rad = std::array::from_fn(|i| pos(self.primary[i]));
        for (i, shadow) in self.shadow.iter().enumerate() {
            if let Some(s) = *shadow {
                let diff = (pos(s) - q_rad[i]).abs();
                if diff > self.map.safety.shadow_tolerance_rad {
                    return Err(ArmError::Shadow {
                        joint: self.map.joints[i].name.clone(),
                        shadow: ids[s],
                        diff_rad: diff,
                    });
                }
            }
        }
        let g = self.gripper;
        let span = self.map.gripper.open_rad - self.map.gripper.closed_rad;
        Ok(ArmState {
            stamp,
            q_rad,
            dq_rad_s: std::array::from_fn(|i| vel(self.primary[i])),
            effort_nm: std::array::from_fn(|i| {
                let k = self.primary[i];
                self.servos[k].model.effort_nm(raw[k].2 as i16)
            }),
            gripper_opening: self.map.gripper_opening(pos(g)),
            gripper_rate: vel(g) / span,
            gripper_rad: pos(g),
            alerts,
        })
    }

    /// Reads `Hardware_Error_Status` of `ids`; returns those with bits set.
    pub fn hardware_errors(&mut self, ids: &[u8]) -> Vec<(u8, String, HardwareError)> {
        ids.iter()
            .filter_map(|&id| {
                let bits = self.bus.read_field(id, ct::HARDWARE_ERROR_STATUS).ok()? as u8;
                (bits != 0).then(|| (id, self.role(id), HardwareError(bits)))
            })
            .collect()
    }

    /// Sends joint targets (already filtered by the safety layer) and the gripper target in one
    /// bulk write. Shadows follow their primary through the Secondary ID. In PWM mode the
    /// gripper's position loop runs here: PWM = gain × error, limited to the force limit.
    pub fn write_goal(
        &mut self,
        q_rad: &[f64; NUM_JOINTS],
        gripper_opening: f64,
        state: &ArmState,
    ) -> Result<(), ArmError> {
        let mut data: Vec<(u8, u16, Vec<u8>)> = Vec::with_capacity(NUM_JOINTS + 1);
        for (j, q) in self.map.joints.iter().zip(q_rad) {
            data.push((j.id, ct::GOAL_POSITION.address, rad_to_ticks(*q).to_le_bytes().to_vec()));
        }
        let g = &self.map.gripper;
        let target_rad = self.map.gripper_rad(gripper_opening);
        match g.mode {
            GripperMode::Pwm => {
                let limit = g.force_limit.min(885) as f64;
                let pwm = (g.pwm_gain_per_rad * (target_rad - state.gripper_rad)).clamp(-limit, limit);
                data.push((g.id, ct::GOAL_PWM.address, (pwm.round() as i16).to_le_bytes().to_vec()));
            }
            GripperMode::CurrentPosition | GripperMode::Position => {
                data.push((g.id, ct::GOAL_POSITION.address, rad_to_ticks(target_rad).to_le_bytes().to_vec()));
            }
        }
        let items: Vec<(u8, u16, &[u8])> = data.iter().map(|(id, a, d)| (*id, *a, d.as_slice())).collect();
        self.bus.bulk_write(&items)?;
        Ok(())
    }

    /// Sets every goal to the measured position, then enables torque on every servo (no jump).
    pub fn enable_torque(&mut self) -> Result<ArmState, ArmError> {
        let state = self.read_state()?;
        self.hold(&state)?;
        if self.map.gripper.mode == GripperMode::CurrentPosition {
            self.bus.write_field(self.map.gripper.id, ct::GOAL_CURRENT, self.map.gripper.force_limit as i64)?;
        }
        for s in self.servos.clone() {
            self.bus.write_field(s.id, ct::TORQUE_ENABLE, 1)?;
        }
        Ok(state)
    }

    /// Holds the arm where `state` measured it (gripper PWM to zero).
    pub fn hold(&mut self, state: &ArmState) -> Result<(), ArmError> {
        let opening = self.map.gripper_opening(state.gripper_rad);
        self.write_goal(&state.q_rad, opening, state)
    }

    /// Disables torque on every servo that answers; returns the servos that did not.
    pub fn disable_torque(&mut self) -> Vec<u8> {
        self.servos
            .clone()
            .iter()
            .filter(|s| self.bus.write_field(s.id, ct::TORQUE_ENABLE, 0).is_err())
            .map(|s| s.id)
            .collect()
    }

    /// Every servo, in bus order.
    pub fn servos(&self) -> &[ServoRef] {
        &self.servos
    }

    /// IDs of every servo, in bus order.
    pub fn ids(&self) -> Vec<u8> {
        self.servos.iter().map(|s| s.id).collect()
    }
}
