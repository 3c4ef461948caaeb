//! The stamp rules of commands, shared by the sim node and the arm driver so that both obey the
//! same freshness bound, and the names of the e-stop counters every node reports on `status`.
//! The e-stop latch and the command arbiter that apply them live in the `arm-command` crate.
//!
//! # Freshness
//!
//! A command's `header.stamp_ns` (ns since the UNIX epoch on the producer's wall clock) must lie
//! within `[now − max_age_ns, now + max_future_ns]` on the receiving node's wall clock
//! ([`Freshness`]). Defaults: at most 500 ms old ([`DEFAULT_MAX_AGE_NS`]) and at most 100 ms ahead
//! ([`DEFAULT_MAX_CLOCK_SKEW_NS`]). The bound ahead is the clock skew tolerated between hosts: on
//! one host it is zero; across hosts keep the clocks synchronised (NTP or PTP keep them within a few
//! ms) well inside 100 ms, or commands from the host that runs ahead are refused as from the
//! future. A stamp further ahead (a wrong clock, a replay with a forged stamp, `2^64 − 1`) is never
//! fresh.
//!
//! # E-stop queue
//!
//! Nodes subscribe to `estop` with [`ESTOP_QUEUE_CAPACITY`] and feed every message of a cycle to
//! their latch; a queue that overflowed anyway engages the latch (fail safe).

/// Default oldest acceptable command, ns (500 ms).
pub const DEFAULT_MAX_AGE_NS: u64 = 500_000_000;
/// Default clock skew tolerated ahead of the receiver's clock, ns (100 ms).
pub const DEFAULT_MAX_CLOCK_SKEW_NS: u64 = 100_000_000;
/// Queue capacity of a node's `estop` subscriber, messages: large enough that a burst within one
/// cycle is never cut (a full queue discards its oldest message, which could be the engage).
pub const ESTOP_QUEUE_CAPACITY: usize = 1024;

/// `status` counter: times the e-stop latch engaged.
pub const STATUS_ESTOP_ENGAGED: &str = "estop_engaged";
/// `status` counter: releases that released the latch.
pub const STATUS_ESTOP_RELEASED: &str = "estop_released";
/// `status` counter: releases refused (stale, from the future, older than the engage, or in the
/// same cycle as an engage).
pub const STATUS_ESTOP_RELEASE_REFUSED: &str = "estop_release_refused";
/// `status` counter: cycles in which the `estop` queue had discarded messages (the latch engaged).
pub const STATUS_ESTOP_QUEUE_OVERFLOWS: &str = "estop_queue_overflows";

/// The window around the receiver's clock in which a stamp counts as fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// Oldest acceptable stamp, ns before now.
    pub max_age_ns: u64,
    /// Newest acceptable stamp, ns after now (the clock skew tolerated between hosts).
    pub max_future_ns: u64,
}

impl Default for Freshness {
    /// [`DEFAULT_MAX_AGE_NS`] old, [`DEFAULT_MAX_CLOCK_SKEW_NS`] ahead.
    fn default() -> Self {
        Freshness { max_age_ns: DEFAULT_MAX_AGE_NS, max_future_ns: DEFAULT_MAX_CLOCK_SKEW_NS }
    }
}

/// Why a stamp is not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StampFault {
    /// Older than the bound.
    #[error("stamped {age_ns} ns ago (more than {max_age_ns} ns)")]
    TooOld {
        /// How long before now, ns.
        age_ns: u64,
        /// The bound, ns.
        max_age_ns: u64,
    },
    /// Further ahead of this clock than the skew bound.
    #[error("stamped {ahead_ns} ns in the future (more than the {max_future_ns} ns clock skew allowed)")]
    FromTheFuture {
        /// How far after now, ns.
        ahead_ns: u64,
        /// The bound, ns.
        max_future_ns: u64,
    },
}

impl Freshness {
    /// Checks `stamp_ns` against the receiver's clock `now_ns` (both ns since the UNIX epoch).
    pub fn check(&self, stamp_ns: u64, now_ns: u64) -> Result<(), StampFault> {
        if stamp_ns > now_ns {
            let ahead_ns = stamp_ns - now_ns;
            if ahead_ns > self.max_future_ns {
                return Err(StampFault::FromTheFuture { ahead_ns, max_future_ns: self.max_future_ns });
            }
        } else {
            let age_ns = now_ns - stamp_ns;
            if age_ns > self.max_age_ns {
                return Err(StampFault::TooOld { age_ns, max_age_ns: self.max_age_ns });
            }
        }
        Ok(())
    }

    /// Whether `stamp_ns` is fresh at `now_ns`.
    pub fn is_fresh(&self, stamp_ns: u64, now_ns: u64) -> bool {
        self.check(stamp_ns, now_ns).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const NOW: u64 = 1_800_000_000_000_000_000;

    #[test]
    fn freshness_bounds_both_sides_of_now() {
        let f = Freshness::default();
        assert!(f.is_fresh(NOW, NOW));
        assert!(f.is_fresh(NOW - 500 * MS, NOW));
        assert_eq!(f.check(NOW - 501 * MS, NOW), Err(StampFault::TooOld { age_ns: 501 * MS, max_age_ns: 500 * MS }));
        assert!(f.is_fresh(NOW + 100 * MS, NOW));
        assert!(matches!(f.check(NOW + 101 * MS, NOW), Err(StampFault::FromTheFuture { .. })));
        for future in [NOW + 3_600_000 * MS, NOW + 365 * 24 * 3_600_000 * MS, u64::MAX] {
            assert!(!f.is_fresh(future, NOW), "{future} counted as fresh");
        }
        assert!(!f.is_fresh(0, NOW));
    }
}
