//! Command safety: every target passes through here before it can reach a servo.
//!
//! [`CommandFilter`] rejects non-finite targets, clamps each joint to its limits and limits the
//! change per cycle to the joint's velocity limit, so a far-away command becomes a bounded-speed
//! move. [`Watchdog`] tells the node when commands stopped arriving.

use std::time::{Duration, Instant};

use crate::servo_map::{ServoMap, NUM_JOINTS};

/// What filtering did to one command.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Filtered {
    /// The safe targets, rad.
    pub q_rad: [f64; NUM_JOINTS],
    /// Some joint was outside its limits and was clamped.
    pub position_clamped: bool,
    /// Some joint would have moved faster than its velocity limit and was slowed.
    pub velocity_clamped: bool,
}

/// Joint-limit and velocity clamping of joint targets.
#[derive(Clone, Debug)]
pub struct CommandFilter {
    lower_rad: [f64; NUM_JOINTS],
    upper_rad: [f64; NUM_JOINTS],
    max_velocity_rad_s: [f64; NUM_JOINTS],
    /// The last target sent, rad.
    last_rad: [f64; NUM_JOINTS],
}

impl CommandFilter {
    /// A filter with the map's limits, starting from the measured position `q_rad`.
    pub fn new(map: &ServoMap, q_rad: [f64; NUM_JOINTS]) -> CommandFilter {
        let mut f = CommandFilter {
            lower_rad: std::array::from_fn(|i| map.joints[i].min_rad),
            upper_rad: std::array::from_fn(|i| map.joints[i].max_rad),
            max_velocity_rad_s: std::array::from_fn(|i| map.joints[i].max_velocity_rad_s),
            last_rad: q_rad,
        };
        f.reset(q_rad);
        f
    }

    /// Restarts from `q_rad` (after a hold or an e-stop), clamped into the limits.
    pub fn reset(&mut self, q_rad: [f64; NUM_JOINTS]) {
        self.last_rad = std::array::from_fn(|i| q_rad[i].clamp(self.lower_rad[i], self.upper_rad[i]));
    }

    /// The last safe target, rad.
    pub fn last(&self) -> [f64; NUM_JOINTS] {
        self.last_rad
    }

    /// Filters `desired` for a cycle of `dt_s` seconds; `None` (and nothing changes) when any
    /// value is NaN or infinite.
    #[allow(clippy::needless_range_loop)] // five arrays indexed by joint
    pub fn filter(&mut self, desired: &[f64; NUM_JOINTS], dt_s: f64) -> Option<Filtered> {
        if desired.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut out = Filtered { q_rad: self.last_rad, ..Default::default() };
        for i in 0..NUM_JOINTS {
            let clamped = desired[i].clamp(self.lower_rad[i], self.upper_rad[i]);
            out.position_clamped |= clamped != desired[i];
            let max_step = self.max_velocity_rad_s[i] * dt_s.max(0.0);
            let step = clamped - self.last_rad[i];
            let limited = step.clamp(-max_step, max_step);
            out.velocity_clamped |= (limited - step).abs() > 1e-12;
            out.q_rad[i] = self.last_rad[i] + limited;
        }
        self.last_rad = out.q_rad;
        Some(out)
    }
}

/// Command watchdog: expired when no valid command arrived within the timeout.
#[derive(Clone, Debug)]
pub struct Watchdog {
    timeout: Duration,
    last: Option<Instant>,
}

impl Watchdog {
    /// A watchdog that has seen no command yet.
    pub fn new(timeout: Duration) -> Watchdog {
        Watchdog { timeout, last: None }
    }

    /// A valid command arrived now.
    pub fn feed(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// Forgets the last command (after a hold, the next command starts a new motion).
    pub fn clear(&mut self) {
        self.last = None;
    }

    /// Whether commands were flowing and then stopped for longer than the timeout.
    pub fn expired(&self, now: Instant) -> bool {
        self.last.is_some_and(|t| now.duration_since(t) > self.timeout)
    }

    /// Whether any command is live.
    pub fn active(&self) -> bool {
        self.last.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_limits_and_speed_and_rejects_nan() {
        let map = ServoMap::widowx250();
        let mut f = CommandFilter::new(&map, [0.0; NUM_JOINTS]);
        // Shoulder asked to 3 rad (limit 1.99): clamped, then limited to π rad/s × 0.01 s.
        let out = f.filter(&[0.0, 3.0, 0.0, 0.0, 0.0, 0.0], 0.01).expect("finite");
        assert!(out.position_clamped && out.velocity_clamped);
        assert!((out.q_rad[1] - std::f64::consts::PI * 0.01).abs() < 1e-12);
        // 100 cycles later it rests at the limit, not beyond.
        for _ in 0..100 {
            f.filter(&[0.0, 3.0, 0.0, 0.0, 0.0, 0.0], 0.01);
        }
        assert_eq!(f.last()[1], 1.990);
        assert!(f.filter(&[f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 0.01).is_none());
        assert_eq!(f.last()[1], 1.990);
        let small = f.filter(&[0.01, 1.98, 0.0, 0.0, 0.0, 0.0], 0.01).expect("finite");
        assert!(!small.position_clamped && !small.velocity_clamped);
    }

    #[test]
    fn watchdog_expires_only_after_commands_stop() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(Duration::from_millis(250));
        assert!(!w.expired(t0 + Duration::from_secs(5)));
        w.feed(t0);
        assert!(!w.expired(t0 + Duration::from_millis(200)));
        assert!(w.expired(t0 + Duration::from_millis(251)));
    }
}
