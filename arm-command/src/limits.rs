//! Joint limits as plain data, and the filter every joint target passes before it reaches the
//! motors: non-finite targets are refused, each joint is clamped into `[lower_rad, upper_rad]` and
//! its change per control cycle is limited to `max_velocity_rad_s × period`, so a far-away
//! command becomes a bounded-speed move.
//!
//! The driver builds its limits from its servo map (`joints[i].min_rad`, `max_rad`,
//! `max_velocity_rad_s`), the sim from its arm model (the URDF's `<limit lower upper velocity>`);
//! for the WidowX 250 both give the same numbers (checked by a cross-crate test).

use crate::NUM_JOINTS;

/// One joint's limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JointLimit {
    /// Lower position limit, rad.
    pub lower_rad: f64,
    /// Upper position limit, rad.
    pub upper_rad: f64,
    /// Velocity limit (symmetric), rad/s.
    pub max_velocity_rad_s: f64,
}

/// The limits of the arm's joints, in chain order (waist … wrist_rotate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JointLimits {
    /// Per joint.
    pub joints: [JointLimit; NUM_JOINTS],
}

/// Why a set of limits is unusable.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum LimitsError {
    /// A position limit is not finite, or the lower limit is above the upper.
    #[error("joint {joint}: limits [{lower_rad}, {upper_rad}] rad are not finite and ordered")]
    Position {
        /// Joint index in chain order.
        joint: usize,
        /// Lower limit, rad.
        lower_rad: f64,
        /// Upper limit, rad.
        upper_rad: f64,
    },
    /// A velocity limit is not finite and positive.
    #[error("joint {joint}: velocity limit {max_velocity_rad_s} rad/s must be finite and positive")]
    Velocity {
        /// Joint index in chain order.
        joint: usize,
        /// The limit, rad/s.
        max_velocity_rad_s: f64,
    },
}

impl JointLimits {
    /// Checks that every limit is finite, ordered and (for velocities) positive.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (joint, l) in self.joints.iter().enumerate() {
            if !(l.lower_rad.is_finite() && l.upper_rad.is_finite() && l.lower_rad <= l.upper_rad) {
                return Err(LimitsError::Position { joint, lower_rad: l.lower_rad, upper_rad: l.upper_rad });
            }
            if !(l.max_velocity_rad_s.is_finite() && l.max_velocity_rad_s > 0.0) {
                return Err(LimitsError::Velocity { joint, max_velocity_rad_s: l.max_velocity_rad_s });
            }
        }
        Ok(())
    }

    /// `q_rad` with every joint clamped into its position limits.
    pub fn clamp(&self, q_rad: &[f64; NUM_JOINTS]) -> [f64; NUM_JOINTS] {
        std::array::from_fn(|i| q_rad[i].clamp(self.joints[i].lower_rad, self.joints[i].upper_rad))
    }
}

/// What filtering did to one target.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Filtered {
    /// The safe targets, rad.
    pub q_rad: [f64; NUM_JOINTS],
    /// Some joint was outside its limits and was clamped.
    pub position_clamped: bool,
    /// Some joint would have moved faster than its velocity limit and was slowed.
    pub velocity_clamped: bool,
}

/// Joint-limit and velocity clamping of joint targets, remembering the last safe target.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandFilter {
    limits: JointLimits,
    /// The last safe target, rad.
    last_rad: [f64; NUM_JOINTS],
}

impl CommandFilter {
    /// A filter with `limits`, starting from `q_rad` (clamped into the limits).
    pub fn new(limits: JointLimits, q_rad: [f64; NUM_JOINTS]) -> CommandFilter {
        CommandFilter { last_rad: limits.clamp(&q_rad), limits }
    }

    /// The limits applied.
    pub fn limits(&self) -> &JointLimits {
        &self.limits
    }

    /// Restarts from `q_rad` (after a hold, an e-stop or a move by other means), clamped into the
    /// limits; a non-finite entry keeps the previous value.
    pub fn reset(&mut self, q_rad: [f64; NUM_JOINTS]) {
        let q = std::array::from_fn(|i| if q_rad[i].is_finite() { q_rad[i] } else { self.last_rad[i] });
        self.last_rad = self.limits.clamp(&q);
    }

    /// The last safe target, rad.
    pub fn last(&self) -> [f64; NUM_JOINTS] {
        self.last_rad
    }

    /// Filters `desired` (rad) for a cycle of `dt_s` seconds: clamped into the limits, then moved
    /// from the last safe target by at most `max_velocity_rad_s × dt_s` per joint. `None` (and
    /// nothing changes) when any value is NaN or infinite.
    pub fn filter(&mut self, desired: &[f64; NUM_JOINTS], dt_s: f64) -> Option<Filtered> {
        if desired.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let clamped = self.limits.clamp(desired);
        let mut out = Filtered { q_rad: self.last_rad, ..Default::default() };
        for (i, limit) in self.limits.joints.iter().enumerate() {
            out.position_clamped |= clamped[i] != desired[i];
            let max_step = limit.max_velocity_rad_s * dt_s.max(0.0);
            let step = clamped[i] - self.last_rad[i];
            let limited = step.clamp(-max_step, max_step);
            out.velocity_clamped |= (limited - step).abs() > 1e-12;
            out.q_rad[i] = self.last_rad[i] + limited;
        }
        self.last_rad = out.q_rad;
        Some(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// The WidowX 250's limits (its servo map and URDF).
    pub(crate) fn widowx250() -> JointLimits {
        let j = |lower_rad, upper_rad| JointLimit { lower_rad, upper_rad, max_velocity_rad_s: PI };
        JointLimits {
            joints: [
                j(-3.14158, 3.14158),
                j(-1.885, 1.990),
                j(-2.147, 1.606),
                j(-3.14158, 3.14158),
                j(-1.745, 2.147),
                j(-3.14158, 3.14158),
            ],
        }
    }

    #[test]
    fn clamps_limits_and_speed_and_rejects_nan() {
        let mut f = CommandFilter::new(widowx250(), [0.0; NUM_JOINTS]);
        // Shoulder asked to 3 rad (limit 1.99): clamped, then limited to π rad/s × 0.01 s.
        let out = f.filter(&[0.0, 3.0, 0.0, 0.0, 0.0, 0.0], 0.01).expect("finite");
        assert!(out.position_clamped && out.velocity_clamped);
        assert!((out.q_rad[1] - PI * 0.01).abs() < 1e-12);
        // 100 cycles later it rests at the limit, not beyond.
        for _ in 0..100 {
            f.filter(&[0.0, 3.0, 0.0, 0.0, 0.0, 0.0], 0.01);
        }
        assert_eq!(f.last()[1], 1.990);
        assert!(f.filter(&[f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 0.01).is_none());
        assert!(f.filter(&[0.0, f64::INFINITY, 0.0, 0.0, 0.0, 0.0], 0.01).is_none());
        assert_eq!(f.last()[1], 1.990);
        let small = f.filter(&[0.01, 1.98, 0.0, 0.0, 0.0, 0.0], 0.01).expect("finite");
        assert!(!small.position_clamped && !small.velocity_clamped);
        assert_eq!(small.q_rad[..2], [0.01, 1.98]);
    }

    #[test]
    fn reset_clamps_and_keeps_the_last_value_of_non_finite_joints() {
        let mut f = CommandFilter::new(widowx250(), [0.0, 2.5, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(f.last()[1], 1.990, "a start outside the limits is clamped");
        f.reset([0.2, f64::NAN, -5.0, 0.0, 0.0, 0.0]);
        assert_eq!(f.last()[..3], [0.2, 1.990, -2.147]);
    }

    #[test]
    fn validate_names_the_faulty_joint() {
        let mut l = widowx250();
        assert_eq!(l.validate(), Ok(()));
        l.joints[2].lower_rad = 2.0;
        assert!(matches!(l.validate(), Err(LimitsError::Position { joint: 2, .. })));
        let mut l = widowx250();
        l.joints[4].max_velocity_rad_s = 0.0;
        assert_eq!(l.validate(), Err(LimitsError::Velocity { joint: 4, max_velocity_rad_s: 0.0 }));
    }
}
