//! The X-series control table (Protocol 2.0 firmware) and the servo models the driver knows.
//! Addresses are bytes into the table; sizes in bytes; multi-byte fields are little-endian. The
//! documented value range of every writable register is in [`ranges`] (re-exported here).

mod ranges;

pub use ranges::{check_write, write_range, LimitRegisters, RangeError, ValueRange, LIMIT_REGISTERS, WRITABLE_FIELDS};

/// One control-table field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Address, bytes.
    pub address: u16,
    /// Size, bytes.
    pub size: u16,
    /// Name as in the e-Manual.
    pub name: &'static str,
}

const fn field(address: u16, size: u16, name: &'static str) -> Field {
    Field { address, size, name }
}

/// Model number (read-only, EEPROM).
pub const MODEL_NUMBER: Field = field(0, 2, "Model_Number");
/// Firmware version.
pub const FIRMWARE_VERSION: Field = field(6, 1, "Firmware_Version");
/// Servo ID.
pub const ID: Field = field(7, 1, "ID");
/// Baud rate index (3 = 1 Mbps).
pub const BAUD_RATE: Field = field(8, 1, "Baud_Rate");
/// Return delay, 2 µs units.
pub const RETURN_DELAY_TIME: Field = field(9, 1, "Return_Delay_Time");
/// Drive mode: bit 0 reverse direction, bit 2 time-based profile.
pub const DRIVE_MODE: Field = field(10, 1, "Drive_Mode");
/// Operating mode (see [`OperatingMode`]).
pub const OPERATING_MODE: Field = field(11, 1, "Operating_Mode");
/// Secondary (shadow) ID; 255 disables.
pub const SECONDARY_ID: Field = field(12, 1, "Secondary_ID");
/// Homing offset, ticks (signed): Present_Position = raw + offset.
pub const HOMING_OFFSET: Field = field(20, 4, "Homing_Offset");
/// Velocity below which the servo counts as stopped, 0.229 rev/min.
pub const MOVING_THRESHOLD: Field = field(24, 4, "Moving_Threshold");
/// Internal temperature limit, °C.
pub const TEMPERATURE_LIMIT: Field = field(31, 1, "Temperature_Limit");
/// Maximum input voltage, 0.1 V.
pub const MAX_VOLTAGE_LIMIT: Field = field(32, 2, "Max_Voltage_Limit");
/// Minimum input voltage, 0.1 V.
pub const MIN_VOLTAGE_LIMIT: Field = field(34, 2, "Min_Voltage_Limit");
/// PWM limit, 0.113 % units (885 = 100 %).
pub const PWM_LIMIT: Field = field(36, 2, "PWM_Limit");
/// Current limit, model-specific mA units.
pub const CURRENT_LIMIT: Field = field(38, 2, "Current_Limit");
/// Velocity limit, 0.229 rev/min.
pub const VELOCITY_LIMIT: Field = field(44, 4, "Velocity_Limit");
/// Maximum position limit, ticks.
pub const MAX_POSITION_LIMIT: Field = field(48, 4, "Max_Position_Limit");
/// Minimum position limit, ticks.
pub const MIN_POSITION_LIMIT: Field = field(52, 4, "Min_Position_Limit");
/// Torque enable (first RAM address; EEPROM below it is locked while torque is on).
pub const TORQUE_ENABLE: Field = field(64, 1, "Torque_Enable");
/// Hardware error bits (see `HardwareError`).
pub const HARDWARE_ERROR_STATUS: Field = field(70, 1, "Hardware_Error_Status");
/// Goal PWM (PWM mode), 0.113 % units, signed.
pub const GOAL_PWM: Field = field(100, 2, "Goal_PWM");
/// Goal current (current-based position mode), model-specific mA units, signed.
pub const GOAL_CURRENT: Field = field(102, 2, "Goal_Current");
/// Goal velocity, 0.229 rev/min, signed.
pub const GOAL_VELOCITY: Field = field(104, 4, "Goal_Velocity");
/// Profile acceleration, 214.577 rev/min².
pub const PROFILE_ACCELERATION: Field = field(108, 4, "Profile_Acceleration");
/// Profile velocity, 0.229 rev/min (0: unlimited).
pub const PROFILE_VELOCITY: Field = field(112, 4, "Profile_Velocity");
/// Goal position, ticks.
pub const GOAL_POSITION: Field = field(116, 4, "Goal_Position");
/// Present PWM, signed.
pub const PRESENT_PWM: Field = field(124, 2, "Present_PWM");
/// Present current (XL430: present load, 0.1 %), signed.
pub const PRESENT_CURRENT: Field = field(126, 2, "Present_Current");
/// Present velocity, 0.229 rev/min, signed.
pub const PRESENT_VELOCITY: Field = field(128, 4, "Present_Velocity");
/// Present position, ticks, signed.
pub const PRESENT_POSITION: Field = field(132, 4, "Present_Position");
/// Present input voltage, 0.1 V.
pub const PRESENT_INPUT_VOLTAGE: Field = field(144, 2, "Present_Input_Voltage");
/// Present temperature, °C.
pub const PRESENT_TEMPERATURE: Field = field(146, 1, "Present_Temperature");

/// The driver's per-cycle read: Present_Current … Present_Position in one block (10 bytes).
pub const STATE_BLOCK: Field = field(126, 10, "Present_Current..Present_Position");
/// Control-table size the emulator models, bytes.
pub const TABLE_SIZE: usize = 256;

/// Ticks per revolution of an X-series encoder.
pub const TICKS_PER_REV: f64 = 4096.0;
/// The tick at 0 rad.
pub const CENTER_TICK: f64 = 2048.0;
/// The last tick of one turn: single-turn position registers (Goal_Position in position mode,
/// Min/Max_Position_Limit) hold 0…4095.
pub const MAX_TURN_TICK: i32 = 4095;
/// Radians per tick.
pub const RAD_PER_TICK: f64 = std::f64::consts::TAU / TICKS_PER_REV;
/// rad/s per velocity unit (0.229 rev/min).
pub const RAD_S_PER_VELOCITY_UNIT: f64 = 0.229 * std::f64::consts::TAU / 60.0;
/// rad/s² per profile-acceleration unit (214.577 rev/min²).
pub const RAD_S2_PER_ACCEL_UNIT: f64 = 214.577 * std::f64::consts::TAU / 3600.0;
/// Drive-mode bit 0: reverse direction.
pub const DRIVE_MODE_REVERSE: u8 = 1;

/// Operating modes (Operating_Mode values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatingMode {
    /// 0: current (torque) control.
    Current,
    /// 1: velocity control.
    Velocity,
    /// 3: position control within the position limits.
    Position,
    /// 4: multi-turn position control.
    ExtendedPosition,
    /// 5: position control with a current (force) limit.
    CurrentPosition,
    /// 16: direct PWM (voltage) control.
    Pwm,
}

impl OperatingMode {
    /// Register value.
    pub fn value(self) -> u8 {
        match self {
            OperatingMode::Current => 0,
            OperatingMode::Velocity => 1,
            OperatingMode::Position => 3,
            OperatingMode::ExtendedPosition => 4,
            OperatingMode::CurrentPosition => 5,
            OperatingMode::Pwm => 16,
        }
    }

    /// From a register value.
    pub fn from_value(v: u8) -> Option<OperatingMode> {
        [Self::Current, Self::Velocity, Self::Position, Self::ExtendedPosition, Self::CurrentPosition, Self::Pwm]
            .into_iter()
            .find(|m| m.value() == v)
    }
}

/// What the driver needs to know about a servo model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Name, e.g. `XM430-W350`.
    pub name: &'static str,
    /// Model_Number register value.
    pub number: u16,
    /// Operating modes the model supports.
    pub modes: &'static [OperatingMode],
    /// Present_Current unit, mA (None: the register is Present_Load in 0.1 % of stall torque).
    pub current_unit_ma: Option<f64>,
    /// Stall torque at 12 V, N·m (effort estimate).
    pub stall_torque_nm: f64,
    /// Stall current at 12 V, A (effort estimate).
    pub stall_current_a: f64,
    /// Documented range of Min/Max_Voltage_Limit, 0.1 V.
    pub voltage_limit_range_dv: (i64, i64),
    /// Documented maximum of Current_Limit, model units (None: the model has no current
    /// sensing, hence no Current_Limit or Goal_Current).
    pub current_limit_max: Option<i64>,
    /// Drive_Mode bits the model has (bit 0 reverse, 1 dual joint on X540, 2 time-based
    /// profile, 3 torque on by goal update).
    pub drive_mode_bits: u8,
}

use OperatingMode as M;
const FULL: &[OperatingMode] = &[M::Current, M::Velocity, M::Position, M::ExtendedPosition, M::CurrentPosition, M::Pwm];
const NO_CURRENT: &[OperatingMode] = &[M::Velocity, M::Position, M::ExtendedPosition, M::Pwm];
/// Voltage-limit range of the 12 V models (XM, XH), 0.1 V.
const HIGH_VOLTAGE: (i64, i64) = (95, 160);
/// Voltage-limit range of the XL430 and XC430, 0.1 V.
const LOW_VOLTAGE: (i64, i64) = (60, 140);
/// Drive_Mode bits of the X430 series: reverse, time-based profile, torque on by goal update.
const X430_DRIVE_BITS: u8 = 0b1101;
/// Drive_Mode bits of the X540 series: the X430's and dual joint (bit 1).
const X540_DRIVE_BITS: u8 = 0b1111;

/// The X-series models the driver recognises.
pub const MODELS: &[Model] = &[
    Model {
        name: "XM430-W350",
        number: 1020,
        modes: FULL,
        current_unit_ma: Some(2.69),
        stall_torque_nm: 4.1,
        stall_current_a: 2.3,
        voltage_limit_range_dv: HIGH_VOLTAGE,
        current_limit_max: Some(1193),
        drive_mode_bits: X430_DRIVE_BITS,
    },
    Model {
        name: "XM430-W210",
        number: 1030,
        modes: FULL,
        current_unit_ma: Some(2.69),
        stall_torque_nm: 3.0,
        stall_current_a: 2.3,
        voltage_limit_range_dv: HIGH_VOLTAGE,
        current_limit_max: Some(1193),
        drive_mode_bits: X430_DRIVE_BITS,
    },
    Model {
        name: "XH430-W350",
        number: 1010,
        modes: FULL,
        current_unit_ma: Some(1.34),
        stall_torque_nm: 3.4,
        stall_current_a: 1.3,
        voltage_limit_range_dv: HIGH_VOLTAGE,
        current_limit_max: Some(648),
        drive_mode_bits: X430_DRIVE_BITS,
    },
    Model {
        name: "XM540-W270",
        number: 1120,
        modes: FULL,
        current_unit_ma: Some(2.69),
        stall_torque_nm: 10.6,
        stall_current_a: 4.4,
        voltage_limit_range_dv: HIGH_VOLTAGE,
        current_limit_max: Some(2047),
        drive_mode_bits: X540_DRIVE_BITS,
    },
    Model {
        name: "XM540-W150",
        number: 1130,
        modes: FULL,
        current_unit_ma: Some(2.69),
        stall_torque_nm: 7.3,
        stall_current_a: 4.4,
        voltage_limit_range_dv: HIGH_VOLTAGE,
        current_limit_max: Some(2047),
        drive_mode_bits: X540_DRIVE_BITS,
    },
    Model {
        name: "XL430-W250",
        number: 1060,
        modes: NO_CURRENT,
        current_unit_ma: None,
        stall_torque_nm: 1.5,
        stall_current_a: 1.4,
        voltage_limit_range_dv: LOW_VOLTAGE,
        current_limit_max: None,
        drive_mode_bits: X430_DRIVE_BITS,
    },
    Model {
        name: "XC430-W150",
        number: 1070,
        modes: NO_CURRENT,
        current_unit_ma: None,
        stall_torque_nm: 1.6,
        stall_current_a: 1.4,
        voltage_limit_range_dv: LOW_VOLTAGE,
        current_limit_max: None,
        drive_mode_bits: X430_DRIVE_BITS,
    },
];

/// The model with this name (case-insensitive).
pub fn model_by_name(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// The model with this Model_Number.
pub fn model_by_number(number: u16) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.number == number)
}

impl Model {
    /// Joint effort, N·m, from a raw Present_Current (or Present_Load) value.
    pub fn effort_nm(&self, raw: i16) -> f64 {
        match self.current_unit_ma {
            Some(unit) => raw as f64 * unit / 1000.0 * self.stall_torque_nm / self.stall_current_a,
            None => raw as f64 / 1000.0 * self.stall_torque_nm,
        }
    }
}

/// Ticks → radians about the joint (2048 = 0 rad).
pub fn ticks_to_rad(ticks: i32) -> f64 {
    (ticks as f64 - CENTER_TICK) * RAD_PER_TICK
}

/// Radians → the nearest tick, unbounded (raw encoder positions, multi-turn values).
pub fn rad_to_ticks(rad: f64) -> i32 {
    (rad / RAD_PER_TICK + CENTER_TICK).round() as i32
}

/// Radians → the tick a single-turn position register holds (Goal_Position in position mode,
/// Min/Max_Position_Limit): the nearest tick, clamped into 0…[`MAX_TURN_TICK`].
///
/// The turn's 4096 ticks cover [−π, π): −π is tick 0 and 0 rad tick 2048. +π would be tick 4096,
/// the same angle as tick 0 one turn on, which no single-turn register holds; it becomes 4095,
/// 1.5 mrad short of π. So a joint limit at ±π means "the whole turn", and a goal the safety filter
/// clamped to such a limit lands on the limit's own tick.
pub fn rad_to_turn_ticks(rad: f64) -> i32 {
    rad_to_ticks(rad).clamp(0, MAX_TURN_TICK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_conversion() {
        assert_eq!(rad_to_ticks(0.0), 2048);
        assert_eq!(rad_to_ticks(std::f64::consts::PI), 4096);
        assert_eq!(rad_to_ticks(-std::f64::consts::FRAC_PI_2), 1024);
        assert!((ticks_to_rad(3072) - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        assert!((RAD_S_PER_VELOCITY_UNIT - 0.023_980).abs() < 1e-6);
    }

    #[test]
    fn turn_ticks_at_the_ends_of_the_range() {
        use std::f64::consts::PI;
        // −π is the first tick, +π (and the built-in map's 3.14158) the last one.
        assert_eq!(rad_to_turn_ticks(-PI), 0);
        assert_eq!(rad_to_turn_ticks(PI), MAX_TURN_TICK);
        assert_eq!(rad_to_turn_ticks(3.14158), MAX_TURN_TICK);
        assert_eq!(rad_to_turn_ticks(-3.14158), 0);
        // The last tick is π less one tick; the tick before −π would be −1.
        assert!((ticks_to_rad(MAX_TURN_TICK) - (PI - RAD_PER_TICK)).abs() < 1e-12);
        assert!((ticks_to_rad(0) + PI).abs() < 1e-12);
        assert_eq!(rad_to_turn_ticks(-PI - RAD_PER_TICK), 0);
        assert_eq!(rad_to_turn_ticks(PI - RAD_PER_TICK), MAX_TURN_TICK);
        assert_eq!(rad_to_turn_ticks(f64::NAN), 0);
        // Inside the turn the two conversions agree and round-trip.
        for t in [1, 1024, 2047, 2048, 3072, 4094] {
            assert_eq!(rad_to_turn_ticks(ticks_to_rad(t)), t);
            assert_eq!(rad_to_ticks(ticks_to_rad(t)), t);
        }
    }

    #[test]
    fn modes_and_models() {
        assert_eq!(OperatingMode::from_value(16), Some(OperatingMode::Pwm));
        assert_eq!(OperatingMode::from_value(2), None);
        assert_eq!(model_by_number(1020).map(|m| m.name), Some("XM430-W350"));
        let xl = model_by_name("xl430-w250").expect("known");
        assert!(!xl.modes.contains(&OperatingMode::CurrentPosition));
        // 1 A on an XM430-W350 ≈ 1.78 N·m.
        let xm = model_by_name("XM430-W350").expect("known");
        assert!((xm.effort_nm(372) - 1.784).abs() < 0.01);
    }
}
