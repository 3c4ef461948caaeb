//! The documented value range of every writable register, in one place: the driver checks each
//! value against it before sending ([`check_write`]) and the emulator answers a write outside it
//! with the firmware's Data Range error. Static ranges are the X-series e-Manual's (model-specific
//! where the models differ); the goal registers are bounded by limit registers
//! ([`LimitRegisters`]), which the firmware checks them against.

use std::fmt;

use super::{
    Field, Model, OperatingMode, BAUD_RATE, CURRENT_LIMIT, DRIVE_MODE, GOAL_CURRENT, GOAL_POSITION, GOAL_PWM,
    GOAL_VELOCITY, HOMING_OFFSET, ID, MAX_POSITION_LIMIT, MAX_TURN_TICK, MAX_VOLTAGE_LIMIT, MIN_POSITION_LIMIT,
    MIN_VOLTAGE_LIMIT, MOVING_THRESHOLD, OPERATING_MODE, PROFILE_ACCELERATION, PROFILE_VELOCITY, PWM_LIMIT,
    RETURN_DELAY_TIME, SECONDARY_ID, TEMPERATURE_LIMIT, TORQUE_ENABLE, VELOCITY_LIMIT,
};

/// Highest servo ID (253 is reserved, 254 is broadcast).
const MAX_ID: i64 = 252;
/// Goal_Position range in the multi-turn modes (extended and current-based position), ticks.
const MULTI_TURN_TICKS: i64 = 1_048_575;
/// Homing_Offset range, ticks (about ±255 turns).
const HOMING_OFFSET_TICKS: i64 = 1_044_479;
/// PWM_Limit maximum (100 %).
const MAX_PWM: i64 = 885;
/// Velocity_Limit and Moving_Threshold maximum, 0.229 rev/min.
const MAX_VELOCITY: i64 = 1023;
/// Profile_Velocity and Profile_Acceleration maximum.
const MAX_PROFILE: i64 = 32_767;

/// Every register with a documented write range, in address order.
pub const WRITABLE_FIELDS: &[Field] = &[
    ID,
    BAUD_RATE,
    RETURN_DELAY_TIME,
    DRIVE_MODE,
    OPERATING_MODE,
    SECONDARY_ID,
    HOMING_OFFSET,
    MOVING_THRESHOLD,
    TEMPERATURE_LIMIT,
    MAX_VOLTAGE_LIMIT,
    MIN_VOLTAGE_LIMIT,
    PWM_LIMIT,
    CURRENT_LIMIT,
    VELOCITY_LIMIT,
    MAX_POSITION_LIMIT,
    MIN_POSITION_LIMIT,
    TORQUE_ENABLE,
    GOAL_PWM,
    GOAL_CURRENT,
    GOAL_VELOCITY,
    PROFILE_ACCELERATION,
    PROFILE_VELOCITY,
    GOAL_POSITION,
];

/// The registers [`LimitRegisters`] holds: those that bound other registers' ranges.
pub const LIMIT_REGISTERS: [Field; 6] =
    [OPERATING_MODE, MIN_POSITION_LIMIT, MAX_POSITION_LIMIT, PWM_LIMIT, CURRENT_LIMIT, VELOCITY_LIMIT];

/// The values a register accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRange {
    /// `min` to `max`, both included.
    Between {
        /// Lowest value.
        min: i64,
        /// Highest value.
        max: i64,
    },
    /// The register values of these operating modes.
    Modes(&'static [OperatingMode]),
    /// Any combination of these bits.
    Bits(u8),
}

impl ValueRange {
    /// Whether `value` is in the range.
    pub fn contains(&self, value: i64) -> bool {
        match *self {
            ValueRange::Between { min, max } => (min..=max).contains(&value),
            ValueRange::Modes(modes) => modes.iter().any(|m| i64::from(m.value()) == value),
            ValueRange::Bits(bits) => (0..=255).contains(&value) && value & !i64::from(bits) == 0,
        }
    }
}

impl fmt::Display for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: Vec<String>| items.join(", ");
        match *self {
            ValueRange::Between { min, max } => write!(f, "{min}…{max}"),
            ValueRange::Modes(modes) => {
                write!(f, "one of {}", list(modes.iter().map(|m| m.value().to_string()).collect()))
            }
            ValueRange::Bits(bits) => {
                write!(
                    f,
                    "bits {} only",
                    list((0..8).filter(|b| bits & (1 << b) != 0).map(|b| b.to_string()).collect())
                )
            }
        }
    }
}

/// The limit registers of one servo, as set: the goal registers' ranges depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitRegisters {
    /// Operating_Mode value.
    pub operating_mode: u8,
    /// Min_Position_Limit, ticks.
    pub min_position_ticks: i64,
    /// Max_Position_Limit, ticks.
    pub max_position_ticks: i64,
    /// PWM_Limit, 0.113 % units.
    pub pwm_limit: i64,
    /// Current_Limit, model units (0 on a model without current sensing).
    pub current_limit: i64,
    /// Velocity_Limit, 0.229 rev/min units.
    pub velocity_limit: i64,
}

impl LimitRegisters {
    /// The loosest limits `model` allows: position mode, every limit register at its documented
    /// extreme. Before the driver knows a servo's limits, a goal within these is the best check.
    pub fn widest(model: &Model) -> LimitRegisters {
        LimitRegisters {
            operating_mode: OperatingMode::Position.value(),
            min_position_ticks: 0,
            max_position_ticks: i64::from(MAX_TURN_TICK),
            pwm_limit: MAX_PWM,
            current_limit: model.current_limit_max.unwrap_or(0),
            velocity_limit: MAX_VELOCITY,
        }
    }

    /// The limit registers of a control table, `read` giving each field's value.
    pub fn read(read: impl Fn(Field) -> i64) -> LimitRegisters {
        LimitRegisters {
            operating_mode: u8::try_from(read(OPERATING_MODE)).unwrap_or(u8::MAX),
            min_position_ticks: read(MIN_POSITION_LIMIT),
            max_position_ticks: read(MAX_POSITION_LIMIT),
            pwm_limit: read(PWM_LIMIT),
            current_limit: read(CURRENT_LIMIT),
            velocity_limit: read(VELOCITY_LIMIT),
        }
    }

    /// Records that `field` now holds `value` (no effect unless it is a limit register).
    pub fn record(&mut self, field: Field, value: i64) {
        match field {
            OPERATING_MODE => self.operating_mode = u8::try_from(value).unwrap_or(u8::MAX),
            MIN_POSITION_LIMIT => self.min_position_ticks = value,
            MAX_POSITION_LIMIT => self.max_position_ticks = value,
            PWM_LIMIT => self.pwm_limit = value,
            CURRENT_LIMIT => self.current_limit = value,
            VELOCITY_LIMIT => self.velocity_limit = value,
            _ => {}
        }
    }
}

/// Why a value may not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The value is outside the register's documented range.
    #[error("{register} = {value}: outside its documented range {range}")]
    OutOfRange {
        /// Register name.
        register: &'static str,
        /// The value refused.
        value: i64,
        /// What the register accepts.
        range: ValueRange,
    },
    /// The model has no such writable register.
    #[error("{register}: not a writable register of the {model}")]
    NotWritable {
        /// Register name.
        register: &'static str,
        /// Model name.
        model: &'static str,
    },
}

/// The documented range of `field` on `model` given its limit registers (`None`: not a writable
/// register of the model). Goal_Position is bounded by the position limits in position mode and
/// by ±1,048,575 in the multi-turn modes; Goal_PWM, Goal_Current and Goal_Velocity by ± their
/// limit registers.
pub fn write_range(field: Field, model: &Model, limits: &LimitRegisters) -> Option<ValueRange> {
    let between = |min: i64, max: i64| Some(ValueRange::Between { min, max });
    let symmetric = |limit: i64| between(-limit, limit);
    match field {
        ID => between(0, MAX_ID),
        BAUD_RATE => between(0, 7),
        RETURN_DELAY_TIME => between(0, 254),
        DRIVE_MODE => Some(ValueRange::Bits(model.drive_mode_bits)),
        OPERATING_MODE => Some(ValueRange::Modes(model.modes)),
        // 253…255 switch the secondary ID off (255 is the factory value).
        SECONDARY_ID => between(0, 255),
        HOMING_OFFSET => symmetric(HOMING_OFFSET_TICKS),
        MOVING_THRESHOLD => between(0, MAX_VELOCITY),
        TEMPERATURE_LIMIT => between(0, 100),
        MAX_VOLTAGE_LIMIT | MIN_VOLTAGE_LIMIT => {
            between(model.voltage_limit_range_dv.0, model.voltage_limit_range_dv.1)
        }
        PWM_LIMIT => between(0, MAX_PWM),
        CURRENT_LIMIT => model.current_limit_max.and_then(|max| between(0, max)),
        VELOCITY_LIMIT => between(0, MAX_VELOCITY),
        MAX_POSITION_LIMIT | MIN_POSITION_LIMIT => between(0, i64::from(MAX_TURN_TICK)),
        TORQUE_ENABLE => between(0, 1),
        GOAL_PWM => symmetric(limits.pwm_limit),
        GOAL_CURRENT => model.current_limit_max.and_then(|_| symmetric(limits.current_limit)),
        GOAL_VELOCITY => symmetric(limits.velocity_limit),
        PROFILE_ACCELERATION | PROFILE_VELOCITY => between(0, MAX_PROFILE),
        GOAL_POSITION => match OperatingMode::from_value(limits.operating_mode) {
            Some(OperatingMode::ExtendedPosition | OperatingMode::CurrentPosition) => symmetric(MULTI_TURN_TICKS),
            _ => between(limits.min_position_ticks, limits.max_position_ticks),
        },
        _ => None,
    }
}

/// Checks `value` for `field` on `model` with the servo's limit registers `limits`.
pub fn check_write(field: Field, value: i64, model: &Model, limits: &LimitRegisters) -> Result<(), RangeError> {
    let range =
        write_range(field, model, limits).ok_or(RangeError::NotWritable { register: field.name, model: model.name })?;
    if range.contains(value) {
        Ok(())
    } else {
        Err(RangeError::OutOfRange { register: field.name, value, range })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_table::{model_by_name, MODELS, PRESENT_POSITION};

    fn xm() -> &'static Model {
        model_by_name("XM430-W350").expect("known")
    }

    #[test]
    fn static_ranges_end_where_the_manual_says() {
        let wide = LimitRegisters::widest(xm());
        for (field, lowest, highest) in [
            (ID, 0, 252),
            (BAUD_RATE, 0, 7),
            (RETURN_DELAY_TIME, 0, 254),
            (SECONDARY_ID, 0, 255),
            (HOMING_OFFSET, -1_044_479, 1_044_479),
            (MOVING_THRESHOLD, 0, 1023),
            (TEMPERATURE_LIMIT, 0, 100),
            (MAX_VOLTAGE_LIMIT, 95, 160),
            (PWM_LIMIT, 0, 885),
            (CURRENT_LIMIT, 0, 1193),
            (VELOCITY_LIMIT, 0, 1023),
            (MAX_POSITION_LIMIT, 0, 4095),
            (MIN_POSITION_LIMIT, 0, 4095),
            (TORQUE_ENABLE, 0, 1),
            (PROFILE_ACCELERATION, 0, 32_767),
            (PROFILE_VELOCITY, 0, 32_767),
        ] {
            assert!(check_write(field, lowest, xm(), &wide).is_ok(), "{} {lowest}", field.name);
            assert!(check_write(field, highest, xm(), &wide).is_ok(), "{} {highest}", field.name);
            assert!(check_write(field, lowest - 1, xm(), &wide).is_err(), "{} {}", field.name, lowest - 1);
            assert!(check_write(field, highest + 1, xm(), &wide).is_err(), "{} {}", field.name, highest + 1);
        }
        let e = check_write(MAX_POSITION_LIMIT, 4096, xm(), &wide).expect_err("one past the turn");
        assert_eq!(e.to_string(), "Max_Position_Limit = 4096: outside its documented range 0…4095");
        assert!(check_write(PRESENT_POSITION, 0, xm(), &wide).is_err(), "read-only");
    }

    #[test]
    fn model_specific_ranges() {
        let xl = model_by_name("XL430-W250").expect("known");
        let wide = LimitRegisters::widest(xl);
        assert!(check_write(MAX_VOLTAGE_LIMIT, 140, xl, &wide).is_ok());
        assert!(check_write(MAX_VOLTAGE_LIMIT, 160, xl, &wide).is_err());
        assert!(check_write(MIN_VOLTAGE_LIMIT, 60, xl, &wide).is_ok());
        assert!(check_write(MIN_VOLTAGE_LIMIT, 60, xm(), &LimitRegisters::widest(xm())).is_err());
        // No current sensing: neither Current_Limit nor Goal_Current exists; no current modes.
        assert!(matches!(check_write(GOAL_CURRENT, 0, xl, &wide), Err(RangeError::NotWritable { .. })));
        assert!(check_write(CURRENT_LIMIT, 0, xl, &wide).is_err());
        assert!(check_write(OPERATING_MODE, 5, xl, &wide).is_err());
        assert!(check_write(OPERATING_MODE, 16, xl, &wide).is_ok());
        let e = check_write(OPERATING_MODE, 2, xm(), &wide).expect_err("no mode 2");
        assert!(e.to_string().ends_with("one of 0, 1, 3, 4, 5, 16"), "{e}");
        // Drive mode: bits 0, 2, 3 on the X430; bit 1 (dual joint) only on the X540.
        for ok in [0, 1, 4, 5, 8, 13] {
            assert!(check_write(DRIVE_MODE, ok, xl, &wide).is_ok(), "{ok}");
        }
        for bad in [2, 3, 14, 16, -1] {
            assert!(check_write(DRIVE_MODE, bad, xl, &wide).is_err(), "{bad}");
        }
        let x540 = model_by_name("XM540-W270").expect("known");
        assert!(check_write(DRIVE_MODE, 2, x540, &LimitRegisters::widest(x540)).is_ok());
        assert!(check_write(CURRENT_LIMIT, 2047, x540, &LimitRegisters::widest(x540)).is_ok());
        for m in MODELS {
            assert_eq!(m.current_unit_ma.is_some(), m.current_limit_max.is_some(), "{}", m.name);
        }
    }

    #[test]
    fn goals_are_bounded_by_the_limit_registers() {
        let mut limits = LimitRegisters::widest(xm());
        limits.record(MIN_POSITION_LIMIT, 1000);
        limits.record(MAX_POSITION_LIMIT, 3000);
        limits.record(PWM_LIMIT, 350);
        limits.record(CURRENT_LIMIT, 500);
        limits.record(VELOCITY_LIMIT, 200);
        assert!(check_write(GOAL_POSITION, 1000, xm(), &limits).is_ok());
        assert!(check_write(GOAL_POSITION, 3000, xm(), &limits).is_ok());
        assert!(check_write(GOAL_POSITION, 999, xm(), &limits).is_err());
        assert!(check_write(GOAL_POSITION, 3001, xm(), &limits).is_err());
        assert!(check_write(GOAL_PWM, -350, xm(), &limits).is_ok());
        assert!(check_write(GOAL_PWM, 351, xm(), &limits).is_err());
        assert!(check_write(GOAL_CURRENT, 500, xm(), &limits).is_ok());
        assert!(check_write(GOAL_CURRENT, -501, xm(), &limits).is_err());
        assert!(check_write(GOAL_VELOCITY, -200, xm(), &limits).is_ok());
        assert!(check_write(GOAL_VELOCITY, 201, xm(), &limits).is_err());
        // The multi-turn modes ignore the position limits.
        limits.record(OPERATING_MODE, i64::from(OperatingMode::ExtendedPosition.value()));
        assert!(check_write(GOAL_POSITION, -1_048_575, xm(), &limits).is_ok());
        assert!(check_write(GOAL_POSITION, 1_048_576, xm(), &limits).is_err());
        limits.record(OPERATING_MODE, i64::from(OperatingMode::CurrentPosition.value()));
        assert!(check_write(GOAL_POSITION, 5000, xm(), &limits).is_ok());
    }
}
