//! One emulated X-series servo: a control table in memory and first-order dynamics.
//!
//! Positions are tracked in "raw" ticks (the encoder before the homing offset); the control
//! table shows `Present_Position = raw + Homing_Offset`, as the firmware does. In position modes the
//! servo tracks `Goal_Position` (clamped to the position limits; held still when Min_Position_Limit
//! exceeds Max_Position_Limit) with a first-order lag bounded by
//! the profile velocity (or Velocity_Limit); in PWM mode it moves at a speed proportional to the
//! PWM and stops at the limits, like a gripper closing on its stops.

use crate::control_table::{self as ct, Field, Model, OperatingMode, TABLE_SIZE};
use crate::protocol::HardwareError;

/// Time constant of position tracking, s.
pub const TRACKING_TAU_S: f64 = 0.03;
/// Speed at 100 % PWM, ticks/s (about π rad/s).
const PWM_FULL_SPEED_TICKS_S: f64 = 2048.0;

/// A hand moving a servo whose torque is off (`armstack calibrate` against the emulator).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hand {
    /// Nobody touches the servo.
    Off,
    /// Hold the joint at this raw tick.
    Hold(f64),
    /// Sweep sinusoidally between two raw ticks with this period, s.
    Sweep {
        /// Lower raw tick.
        lo: f64,
        /// Upper raw tick.
        hi: f64,
        /// Period, s.
        period_s: f64,
    },
}

/// One emulated servo.
#[derive(Clone, Debug)]
pub struct EmulatedServo {
    /// The control table bytes.
    pub table: [u8; TABLE_SIZE],
    /// The model.
    pub model: &'static Model,
    /// Raw encoder position, ticks.
    pub raw_ticks: f64,
    /// Velocity, ticks/s.
    pub velocity_ticks_s: f64,
    /// A staged RegWrite (address, data).
    pub registered: Option<(u16, Vec<u8>)>,
    /// Whether the servo answers at all (fault injection: a cut cable).
    pub answering: bool,
    /// The hand moving the servo while torque is off.
    pub hand: Hand,
    /// Seconds since the hand started its current motion.
    pub hand_time_s: f64,
}

impl EmulatedServo {
    /// A factory-fresh servo with `id` resting at raw tick `raw_ticks`.
    pub fn new(id: u8, model: &'static Model, raw_ticks: f64) -> EmulatedServo {
        let mut s = EmulatedServo {
            table: [0; TABLE_SIZE],
            model,
            raw_ticks,
            velocity_ticks_s: 0.0,
            registered: None,
            answering: true,
            hand: Hand::Off,
            hand_time_s: 0.0,
        };
        s.set(ct::MODEL_NUMBER, model.number as i64);
        s.set(ct::FIRMWARE_VERSION, 46);
        s.set(ct::ID, id as i64);
        s.set(ct::BAUD_RATE, 3);
        s.set(ct::RETURN_DELAY_TIME, 250);
        s.set(ct::OPERATING_MODE, OperatingMode::Position.value() as i64);
        s.set(ct::SECONDARY_ID, 255);
        s.set(ct::MAX_VOLTAGE_LIMIT, model.voltage_limit_range_dv.1);
        s.set(ct::MIN_VOLTAGE_LIMIT, model.voltage_limit_range_dv.0);
        s.set(ct::PWM_LIMIT, 885);
        if let Some(limit) = model.current_limit_max {
            s.set(ct::CURRENT_LIMIT, limit);
        }
        s.set(ct::VELOCITY_LIMIT, 131);
        s.set(ct::MAX_POSITION_LIMIT, 4095);
        s.set(ct::MIN_POSITION_LIMIT, 0);
        s.set(ct::PRESENT_INPUT_VOLTAGE, 121);
        s.set(ct::PRESENT_TEMPERATURE, 34);
        s.set(ct::GOAL_POSITION, raw_ticks.round() as i64);
        s.refresh_present();
        s
    }

    /// Reads a field as a signed integer (sign-extended from its size).
    pub fn get(&self, f: Field) -> i64 {
        let a = f.address as usize;
        match f.size {
            1 => self.table[a] as i64,
            2 => i16::from_le_bytes([self.table[a], self.table[a + 1]]) as i64,
            _ => i32::from_le_bytes([self.table[a], self.table[a + 1], self.table[a + 2], self.table[a + 3]]) as i64,
        }
    }

    /// Writes a field (truncated to its size).
    pub fn set(&mut self, f: Field, v: i64) {
        let a = f.address as usize;
        let bytes = (v as i32).to_le_bytes();
        self.table[a..a + f.size as usize].copy_from_slice(&bytes[..f.size as usize]);
    }

    /// This servo's ID.
    pub fn id(&self) -> u8 {
        self.table[ct::ID.address as usize]
    }

    /// The Secondary_ID, when set (< 253).
    pub fn secondary_id(&self) -> Option<u8> {
        let s = self.table[ct::SECONDARY_ID.address as usize];
        (s < 253).then_some(s)
    }

    /// Whether torque is on.
    pub fn torque_on(&self) -> bool {
        self.table[ct::TORQUE_ENABLE.address as usize] != 0
    }

    /// The latched hardware error bits.
    pub fn hardware_error(&self) -> HardwareError {
        HardwareError(self.table[ct::HARDWARE_ERROR_STATUS.address as usize])
    }

    /// Latches hardware error bits and drops torque, as the firmware's shutdown does.
    pub fn raise_hardware_error(&mut self, bits: u8) {
        let a = ct::HARDWARE_ERROR_STATUS.address as usize;
        self.table[a] |= bits;
        self.table[ct::TORQUE_ENABLE.address as usize] = 0;
    }

    /// Clears errors and torque, as a reboot does.
    pub fn reboot(&mut self) {
        self.table[ct::HARDWARE_ERROR_STATUS.address as usize] = 0;
        self.table[ct::TORQUE_ENABLE.address as usize] = 0;
        self.registered = None;
        self.velocity_ticks_s = 0.0;
    }

    fn offset(&self) -> f64 {
        self.get(ct::HOMING_OFFSET) as f64
    }

    /// Present position as the control table shows it, ticks.
    pub fn present_ticks(&self) -> f64 {
        self.raw_ticks + self.offset()
    }

    /// Advances the dynamics by `dt_s` seconds.
    pub fn step(&mut self, dt_s: f64) {
        if dt_s <= 0.0 {
            return;
        }
        let before = self.raw_ticks;
        let lo = self.get(ct::MIN_POSITION_LIMIT) as f64 - self.offset();
        let hi = self.get(ct::MAX_POSITION_LIMIT) as f64 - self.offset();
        // The firmware checks each limit register alone, so a client can store Min_Position_Limit
        // above Max_Position_Limit: then no position is within the limits, every goal is refused
        // and the servo holds where it is.
        let limits = (lo <= hi).then_some((lo, hi));
        let mode = OperatingMode::from_value(self.get(ct::OPERATING_MODE) as u8).unwrap_or(OperatingMode::Position);
        if self.torque_on() {
            match mode {
                OperatingMode::Pwm => {
                    let limit = (self.get(ct::PWM_LIMIT) as f64).max(0.0);
                    let pwm = (self.get(ct::GOAL_PWM) as f64).clamp(-limit, limit);
                    if let Some((lo, hi)) = limits {
                        self.raw_ticks = (self.raw_ticks + pwm / 885.0 * PWM_FULL_SPEED_TICKS_S * dt_s).clamp(lo, hi);
                    }
                }
                OperatingMode::Velocity | OperatingMode::Current => {}
                _ => {
                    let mut target = self.get(ct::GOAL_POSITION) as f64 - self.offset();
                    if mode != OperatingMode::ExtendedPosition {
                        target = limits.map_or(self.raw_ticks, |(lo, hi)| target.clamp(lo, hi));
                    }
                    let profile = self.get(ct::PROFILE_VELOCITY);
                    let limit = if profile > 0 { profile } else { self.get(ct::VELOCITY_LIMIT).max(1) };
                    let max_step = limit as f64 * ct::RAD_S_PER_VELOCITY_UNIT / ct::RAD_PER_TICK * dt_s;
                    let step = (target - self.raw_ticks) * (1.0 - (-dt_s / TRACKING_TAU_S).exp());
                    self.raw_ticks += step.clamp(-max_step, max_step);
                }
            }
        } else {
            self.hand_time_s += dt_s;
            match self.hand {
                Hand::Off => {}
                Hand::Hold(t) => self.raw_ticks = t,
                Hand::Sweep { lo, hi, period_s } => {
                    let phase = std::f64::consts::TAU * self.hand_time_s / period_s.max(0.1);
                    self.raw_ticks = lo + (hi - lo) * 0.5 * (1.0 - phase.cos());
                }
            }
        }
        self.velocity_ticks_s = (self.raw_ticks - before) / dt_s;
        self.refresh_present();
    }

    /// Writes Present_* fields from the dynamic state.
    pub fn refresh_present(&mut self) {
        let present = self.present_ticks().round() as i64;
        self.set(ct::PRESENT_POSITION, present);
        let vel_units = self.velocity_ticks_s * ct::RAD_PER_TICK / ct::RAD_S_PER_VELOCITY_UNIT;
        self.set(ct::PRESENT_VELOCITY, vel_units.round() as i64);
        // Current grows with the tracking error (a stiff P loop), limited by Current_Limit (a
        // model without current sensing reports load, at most 100.0 %).
        let err = self.get(ct::GOAL_POSITION) as f64 - present as f64;
        let limit =
            if self.model.current_limit_max.is_some() { (self.get(ct::CURRENT_LIMIT) as f64).max(0.0) } else { 1000.0 };
        let current = if self.torque_on() { (err * 2.0).clamp(-limit, limit) } else { 0.0 };
        self.set(ct::PRESENT_CURRENT, current.round() as i64);
    }
}
