//! The arm over a [`ServoBus`]: start-up checks and configuration, one-packet state reads, goal
//! writes, torque, and hardware-error reports. Joint angles in rad at the joint; the gripper as
//! the bus's opening fraction (0 closed … 1 open). Every register write goes through
//! [`Arm::write_register`] or [`Arm::write_goal`], which check the value against the control
//! table's documented range (and the servo's limit registers) before it is sent.

use std::time::Instant;

use crate::control_table::{
    self as ct, check_write, rad_to_turn_ticks, ticks_to_rad, Field, LimitRegisters, RangeError,
};
use crate::protocol::HardwareError;
use crate::servo_bus::{decode_signed, BusStats, ServoBus, ServoBusError};
use crate::servo_map::{GripperMode, ServoMap, ServoRef, NUM_JOINTS};

mod startup;

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
    /// A value outside its register's documented range was refused before it was sent.
    #[error("servo {id} ({role}): refusing to write {source}")]
    Register {
        /// Servo.
        id: u8,
        /// Role.
        role: String,
        /// The register, the value and the range.
        source: RangeError,
    },
    /// A goal was NaN or infinite (nothing was sent).
    #[error("refusing a non-finite goal: {what} = {value}")]
    NotFinite {
        /// Joint name, or `gripper opening` / `gripper angle`.
        what: String,
        /// The value.
        value: f64,
    },
    /// A write was addressed to a servo that is not in the servo map.
    #[error("servo {0} is not in the servo map")]
    UnknownServo(u8),
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
    /// Each servo's limit registers as configured (before start-up: the widest its model allows).
    limits: Vec<LimitRegisters>,
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
        let limits = servos.iter().map(|s| LimitRegisters::widest(s.model)).collect();
        Arm { bus, map, servos, primary, shadow, gripper, consecutive_failures: vec![0; n], limits }
    }

    /// The servo map.
    pub fn map(&self) -> &ServoMap {
        &self.map
    }

    /// Bus traffic counters.
    pub fn bus_stats(&self) -> BusStats {
        self.bus.stats()
    }

    /// The client, for tools (reads, diagnostics). Writes go through [`Arm::write_register`].
    pub fn bus_mut(&mut self) -> &mut ServoBus {
        &mut self.bus
    }

    fn role(&self, id: u8) -> String {
        self.servos.iter().find(|s| s.id == id).map_or_else(|| "unknown".into(), |s| s.role.clone())
    }

    /// Index of servo `id` in bus order.
    fn index(&self, id: u8) -> Result<usize, ArmError> {
        self.servos.iter().position(|s| s.id == id).ok_or(ArmError::UnknownServo(id))
    }

    /// Checks `value` for `field` on servo `servos[k]` against the documented range and the
    /// servo's limit registers.
    fn check(&self, k: usize, field: Field, value: i64) -> Result<(), ArmError> {
        let s = &self.servos[k];
        check_write(field, value, s.model, &self.limits[k]).map_err(|source| ArmError::Register {
            id: s.id,
            role: s.role.clone(),
            source,
        })
    }

    /// Checks, without sending anything, that `value` may be written to register `field` of
    /// servo `id` (what [`Arm::write_register`] checks first).
    pub fn check_register(&self, id: u8, field: Field, value: i64) -> Result<(), ArmError> {
        self.check(self.index(id)?, field, value)
    }

    /// Writes `value` to register `field` of servo `id` and waits for the acknowledgement. A value
    /// outside the register's documented range (for goals: outside the servo's limit registers)
    /// is refused with [`ArmError::Register`] and nothing is sent.
    pub fn write_register(&mut self, id: u8, field: Field, value: i64) -> Result<(), ArmError> {
        let k = self.index(id)?;
        self.check(k, field, value)?;
        self.bus.write_field(id, field, value)?;
        self.limits[k].record(field, value);
        Ok(())
    }

    /// The limit registers of servo `id` as the driver knows them (the widest its model allows
    /// until start-up has configured and read them).
    pub fn limit_registers(&self, id: u8) -> Option<LimitRegisters> {
        self.index(id).ok().map(|k| self.limits[k])
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
    ///
    /// Each target is clamped into its joint's limits before it becomes a tick (holding a joint
    /// measured just past a limit targets the limit), so a legal command always yields a goal
    /// inside the servo's position limits. Every value is still checked against the servo's
    /// limit registers: the bulk write has no reply, and the firmware silently drops a goal it
    /// would answer with a Data Range error; a goal outside is refused and nothing is sent.
    pub fn write_goal(
        &mut self,
        q_rad: &[f64; NUM_JOINTS],
        gripper_opening: f64,
        state: &ArmState,
    ) -> Result<(), ArmError> {
        let names = self.map.joints.iter().map(|j| j.name.as_str());
        let inputs = names
            .zip(q_rad.iter().copied())
            .chain([("gripper opening", gripper_opening), ("gripper angle", state.gripper_rad)]);
        if let Some((what, value)) = inputs.into_iter().find(|(_, v)| !v.is_finite()) {
            return Err(ArmError::NotFinite { what: what.to_string(), value });
        }
        let mut goals: Vec<(usize, Field, i64)> = Vec::with_capacity(NUM_JOINTS + 1);
        for (i, (j, q)) in self.map.joints.iter().zip(q_rad).enumerate() {
            let ticks = rad_to_turn_ticks(q.clamp(j.min_rad, j.max_rad));
            goals.push((self.primary[i], ct::GOAL_POSITION, i64::from(ticks)));
        }
        let g = &self.map.gripper;
        let target_rad = self.map.gripper_rad(gripper_opening);
        match g.mode {
            GripperMode::Pwm => {
                let limit = f64::from(g.force_limit);
                let pwm = (g.pwm_gain_per_rad * (target_rad - state.gripper_rad)).clamp(-limit, limit);
                goals.push((self.gripper, ct::GOAL_PWM, pwm.round() as i64));
            }
            GripperMode::CurrentPosition | GripperMode::Position => {
                goals.push((self.gripper, ct::GOAL_POSITION, i64::from(rad_to_turn_ticks(target_rad))));
            }
        }
        let mut data: Vec<(u8, u16, Vec<u8>)> = Vec::with_capacity(goals.len());
        for (k, field, value) in goals {
            self.check(k, field, value)?;
            let bytes = (value as i32).to_le_bytes()[..usize::from(field.size)].to_vec();
            data.push((self.servos[k].id, field.address, bytes));
        }
        let items: Vec<(u8, u16, &[u8])> = data.iter().map(|(id, a, d)| (*id, *a, d.as_slice())).collect();
        self.bus.bulk_write(&items)?;
        Ok(())
    }

    /// Sets every goal to the measured position, then enables torque on every servo (no jump).
    /// Retries like start-up: one corrupted reply must not refuse a healthy arm.
    pub fn enable_torque(&mut self) -> Result<ArmState, ArmError> {
        self.with_startup_retries(Self::hold_and_enable)
    }

    fn hold_and_enable(&mut self) -> Result<ArmState, ArmError> {
        let state = self.read_state()?;
        self.hold(&state)?;
        if let Some((field @ ct::GOAL_CURRENT, value)) = self.map.gripper_force_register() {
            self.write_register(self.map.gripper.id, field, value)?;
        }
        for id in self.ids() {
            self.write_register(id, ct::TORQUE_ENABLE, 1)?;
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
        self.ids().into_iter().filter(|&id| self.write_register(id, ct::TORQUE_ENABLE, 0).is_err()).collect()
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
