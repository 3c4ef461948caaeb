//! The command watchdog: when commands were flowing and then stop for longer than the timeout,
//! the node holds position. Time is the node's control clock, ns (the wall clock on the arm and in
//! the real-time sim; simulated time in the lockstep and as-fast-as-possible sim).

/// Default timeout, ns (250 ms, the driver's `safety.watchdog_ms` default).
pub const DEFAULT_WATCHDOG_TIMEOUT_NS: u64 = 250_000_000;

/// Expires when no command arrived within the timeout since the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watchdog {
    timeout_ns: u64,
    /// Control-clock instant of the last command, ns; `None` when no command is live.
    last_ns: Option<u64>,
}

impl Watchdog {
    /// A watchdog with `timeout_ns` (control-clock ns) that has seen no command yet.
    pub fn new(timeout_ns: u64) -> Watchdog {
        Watchdog { timeout_ns, last_ns: None }
    }

    /// The timeout, ns.
    pub fn timeout_ns(&self) -> u64 {
        self.timeout_ns
    }

    /// A command arrived (or a chunk row was due) at control-clock `control_ns`.
    pub fn feed(&mut self, control_ns: u64) {
        self.last_ns = Some(control_ns);
    }

    /// Forgets the last command (after a hold, the next command starts a new motion).
    pub fn clear(&mut self) {
        self.last_ns = None;
    }

    /// Whether commands were flowing and then stopped for longer than the timeout at `control_ns`.
    pub fn expired(&self, control_ns: u64) -> bool {
        self.last_ns.is_some_and(|t| control_ns.saturating_sub(t) > self.timeout_ns)
    }

    /// Whether a command is live (fed and not cleared since).
    pub fn active(&self) -> bool {
        self.last_ns.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn expires_only_after_commands_stop_for_longer_than_the_timeout() {
        let mut w = Watchdog::new(250 * MS);
        assert!(!w.expired(5_000 * MS), "never fed: nothing to time out");
        assert!(!w.active());
        w.feed(1_000 * MS);
        assert!(w.active());
        assert!(!w.expired(1_200 * MS));
        assert!(!w.expired(1_250 * MS), "exactly the timeout is still in time");
        assert!(w.expired(1_251 * MS));
        w.feed(1_300 * MS);
        assert!(!w.expired(1_400 * MS));
        w.clear();
        assert!(!w.expired(9_000 * MS));
        assert!(!w.active());
    }
}
