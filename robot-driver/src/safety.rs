//! Command safety: the driver applies the rules shared with the sim node ([`arm_command`]:
//! freshness, e-stop latch, watchdog, joint-limit and velocity clamping, chunk timing), configured
//! from its servo map: every target passes through them before it can reach a servo.

use arm_command::{ArbiterConfig, JointLimit, JointLimits};
use bus::Freshness;

use crate::servo_map::{ServoMap, NUM_JOINTS};

// The driver's joints are the joints the shared arbiter commands.
const _: () = assert!(NUM_JOINTS == arm_command::NUM_JOINTS);

/// The map's joint limits: `min_rad`, `max_rad` and `max_velocity_rad_s` of each joint.
pub fn joint_limits(map: &ServoMap) -> JointLimits {
    JointLimits {
        joints: std::array::from_fn(|i| {
            // A validated map lists exactly NUM_JOINTS joints.
            let j = &map.joints[i];
            JointLimit { lower_rad: j.min_rad, upper_rad: j.max_rad, max_velocity_rad_s: j.max_velocity_rad_s }
        }),
    }
}

/// The arbiter of a driver cycling at `cycle_hz` with `map`: commands at most
/// `safety.max_command_age_ms` old (and at most 100 ms ahead), the watchdog after
/// `safety.watchdog_ms`, the map's joint limits, and chunks timed by the wall clock (back-dated
/// by their age).
pub fn arbiter_config(map: &ServoMap, cycle_hz: f64) -> ArbiterConfig {
    ArbiterConfig {
        freshness: Freshness {
            max_age_ns: map.safety.max_command_age_ms.saturating_mul(1_000_000),
            ..Freshness::default()
        },
        watchdog_timeout_ns: map.safety.watchdog_ms.saturating_mul(1_000_000),
        limits: joint_limits(map),
        control_period_ns: (1e9 / cycle_hz.max(1.0)) as u64,
        backdate_chunks: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widowx250_map_gives_its_limits_and_safety_settings() {
        let map = ServoMap::widowx250();
        let c = arbiter_config(&map, 100.0);
        assert_eq!(
            c.limits.joints[1],
            JointLimit { lower_rad: -1.885, upper_rad: 1.990, max_velocity_rad_s: std::f64::consts::PI }
        );
        assert_eq!(c.limits.joints[0].upper_rad, 3.14158);
        assert_eq!(c.watchdog_timeout_ns, 250_000_000);
        assert_eq!(c.freshness.max_age_ns, 500_000_000);
        assert_eq!(c.control_period_ns, 10_000_000);
        assert_eq!(c.limits.validate(), Ok(()));
    }
}
