//! The e-stop latch, and the freshness rule for commands.
//!
//! [`EstopLatch`] is fed every `estop` message a node received since its last cycle, in arrival
//! order (drain the subscriber with [`bus::Subscriber::drain`], never take only the newest):
//!
//! - Any engage latches, whatever its stamp and whatever follows it in the same cycle: a release in
//!   the same batch as an engage is refused, so a pulse (engage then release within one cycle)
//!   still stops the arm, shows `Estopped` and is counted.
//! - A lost message engages it: when the `estop` subscriber's queue discarded messages since the
//!   last cycle (a full queue drops its oldest, which could be an engage), the latch engages as if
//!   an engage stamped at the node's clock had arrived first in the batch (fail safe), and counts
//!   it (`estop_queue_overflows` on `status`).
//! - A release releases only if it is fresh and stamped after the newest engage seen while latched.
//!   An engage stamped more than the skew bound ahead is recorded as `now + max_future_ns`, so a
//!   future-stamped engage latches but cannot make the latch unreleasable.
//! - After a release the arm moves again only on a command stamped after the release took effect
//!   (after both the release's stamp and the node's clock when it obeyed it): nothing queued or
//!   playing before resumes.
//!
//! A command moves the arm only when fresh ([`Freshness`], in [`bus::command_rules`]: at most
//! 500 ms old and at most 100 ms ahead of the node's wall clock by default).
//!
//! Every transition ([`EstopTransition`]) is logged with the `source_id` and stamp of the message
//! that caused it and counted ([`EstopCounts`], on `status` as `estop_engaged`, `estop_released`,
//! `estop_release_refused`, `estop_queue_overflows`).

use std::collections::BTreeMap;

use bus::command_rules::{
    Freshness, StampFault, STATUS_ESTOP_ENGAGED, STATUS_ESTOP_QUEUE_OVERFLOWS, STATUS_ESTOP_RELEASED,
    STATUS_ESTOP_RELEASE_REFUSED,
};
use bus::Estop;

/// Why a release did not release the latch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseRefusal {
    /// An engage arrived in the same cycle; the engage wins.
    #[error("an engage arrived in the same cycle")]
    SameCycleAsEngage,
    /// The release is not fresh (a replay, or a wrong clock).
    #[error("the release is not fresh: {0}")]
    Stale(StampFault),
    /// The release is not stamped after the engage that latched.
    #[error("the release is not newer than the engage stamped {engage_stamp_ns} ns")]
    NotNewerThanEngage {
        /// Stamp of the newest engage while latched, ns since the UNIX epoch.
        engage_stamp_ns: u64,
    },
}

/// Why a command may not move the arm now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    /// The e-stop is engaged.
    #[error("the e-stop is engaged")]
    Estopped,
    /// The command is not fresh.
    #[error(transparent)]
    Stale(#[from] StampFault),
    /// The command is not stamped after the last release: a fresh command is needed.
    #[error("stamped {stamp_ns} ns, not after the e-stop release at {release_ns} ns")]
    BeforeRelease {
        /// The command's stamp, ns since the UNIX epoch.
        stamp_ns: u64,
        /// When the release took effect, ns since the UNIX epoch.
        release_ns: u64,
    },
}

/// A change of the latch, or a refused release, with the message that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EstopTransition {
    /// The latch engaged.
    Engaged {
        /// `source_id` of the engage.
        source_id: u64,
        /// Its stamp, ns since the UNIX epoch.
        stamp_ns: u64,
        /// Its reason text.
        reason: String,
    },
    /// The `estop` subscriber's queue discarded messages (a full queue drops its oldest, which
    /// could have been an engage): the latch engaged, or stayed engaged with its bar raised to
    /// now, to fail safe.
    EngagedOnQueueOverflow {
        /// Messages discarded since the previous cycle.
        dropped: u64,
    },
    /// The latch released.
    Released {
        /// `source_id` of the release.
        source_id: u64,
        /// Its stamp, ns since the UNIX epoch.
        stamp_ns: u64,
    },
    /// A release was refused; the latch stays engaged.
    ReleaseRefused {
        /// `source_id` of the release.
        source_id: u64,
        /// Its stamp, ns since the UNIX epoch.
        stamp_ns: u64,
        /// Why.
        refusal: ReleaseRefusal,
    },
}

/// Transitions of a latch since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EstopCounts {
    /// Times the latch engaged.
    pub engaged: u64,
    /// Releases that released it.
    pub released: u64,
    /// Releases refused while it was engaged.
    pub release_refused: u64,
    /// Cycles in which the `estop` subscriber's queue had discarded messages (each engaged the
    /// latch, or kept it engaged).
    pub queue_overflows: u64,
}

impl EstopCounts {
    /// Sets the node's `status` counters [`STATUS_ESTOP_ENGAGED`], [`STATUS_ESTOP_RELEASED`],
    /// [`STATUS_ESTOP_RELEASE_REFUSED`] and [`STATUS_ESTOP_QUEUE_OVERFLOWS`].
    pub fn add_to_status_counters(&self, counters: &mut BTreeMap<String, u64>) {
        counters.insert(STATUS_ESTOP_ENGAGED.to_string(), self.engaged);
        counters.insert(STATUS_ESTOP_RELEASED.to_string(), self.released);
        counters.insert(STATUS_ESTOP_RELEASE_REFUSED.to_string(), self.release_refused);
        counters.insert(STATUS_ESTOP_QUEUE_OVERFLOWS.to_string(), self.queue_overflows);
    }
}

/// The engage that holds the latch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Latched {
    /// Newest engage stamp while latched (capped at the skew bound ahead), ns.
    stamp_ns: u64,
}

/// The e-stop as a safety latch, with the freshness rule for commands (see the module doc).
#[derive(Clone, Debug)]
pub struct EstopLatch {
    freshness: Freshness,
    latched: Option<Latched>,
    /// When the last release took effect, ns since the UNIX epoch.
    released_at_ns: Option<u64>,
    /// The `estop` subscriber's discarded-message count at the last cycle.
    dropped_seen: u64,
    counts: EstopCounts,
}

impl EstopLatch {
    /// A released latch that judges stamps by `freshness`.
    pub fn new(freshness: Freshness) -> EstopLatch {
        EstopLatch { freshness, latched: None, released_at_ns: None, dropped_seen: 0, counts: EstopCounts::default() }
    }

    /// The freshness bound applied to releases and commands.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// Whether the e-stop is engaged.
    pub fn is_engaged(&self) -> bool {
        self.latched.is_some()
    }

    /// The transitions so far.
    pub fn counts(&self) -> EstopCounts {
        self.counts
    }

    /// Feeds one cycle's `estop` messages, in arrival order, at the node's clock `now_ns`;
    /// returns (and logs) the transitions they caused. `queue_dropped_total` is the `estop`
    /// subscriber's count of discarded messages since it was created
    /// ([`bus::SubscriberStats::dropped`]): when it grew since the last cycle a message was lost,
    /// possibly an engage, so the latch engages first (stamped `now_ns`: only a release stamped
    /// after now releases it) and any release in this batch is refused.
    pub fn observe(
        &mut self,
        batch: impl IntoIterator<Item = Estop>,
        queue_dropped_total: u64,
        now_ns: u64,
    ) -> Vec<EstopTransition> {
        let mut engaged_in_batch = false;
        let mut transitions = Vec::new();
        if queue_dropped_total > self.dropped_seen {
            let dropped = queue_dropped_total - self.dropped_seen;
            self.dropped_seen = queue_dropped_total;
            engaged_in_batch = true;
            self.counts.queue_overflows += 1;
            match self.latched.as_mut() {
                Some(latched) => latched.stamp_ns = latched.stamp_ns.max(now_ns),
                None => {
                    self.latched = Some(Latched { stamp_ns: now_ns });
                    self.counts.engaged += 1;
                }
            }
            tracing::error!(dropped, "e-stop queue overflowed (an engage may be lost): e-stop engaged");
            transitions.push(EstopTransition::EngagedOnQueueOverflow { dropped });
        }
        for msg in batch {
            let (stamp_ns, source_id) = (msg.header.stamp_ns, msg.header.source_id);
            if msg.engaged {
                engaged_in_batch = true;
                let capped_ns = stamp_ns.min(now_ns.saturating_add(self.freshness.max_future_ns));
                match self.latched.as_mut() {
                    Some(latched) => latched.stamp_ns = latched.stamp_ns.max(capped_ns),
                    None => {
                        self.latched = Some(Latched { stamp_ns: capped_ns });
                        self.counts.engaged += 1;
                        tracing::warn!(source_id, stamp_ns, reason = %msg.reason, "e-stop engaged");
                        transitions.push(EstopTransition::Engaged { source_id, stamp_ns, reason: msg.reason });
                    }
                }
            } else if let Some(latched) = self.latched {
                match self.release_refusal(latched, stamp_ns, now_ns, engaged_in_batch) {
                    Some(refusal) => {
                        self.counts.release_refused += 1;
                        let n = self.counts.release_refused;
                        if n == 1 || n.is_multiple_of(100) {
                            tracing::warn!(source_id, stamp_ns, %refusal, occurrences = n, "e-stop release refused");
                        }
                        transitions.push(EstopTransition::ReleaseRefused { source_id, stamp_ns, refusal });
                    }
                    None => {
                        self.latched = None;
                        self.released_at_ns = Some(stamp_ns.max(now_ns));
                        self.counts.released += 1;
                        tracing::warn!(source_id, stamp_ns, "e-stop released: waiting for a fresh command");
                        transitions.push(EstopTransition::Released { source_id, stamp_ns });
                    }
                }
            }
            // A release while released changes nothing.
        }
        transitions
    }

    fn release_refusal(
        &self,
        latched: Latched,
        stamp_ns: u64,
        now_ns: u64,
        engaged_in_batch: bool,
    ) -> Option<ReleaseRefusal> {
        if engaged_in_batch {
            return Some(ReleaseRefusal::SameCycleAsEngage);
        }
        if let Err(fault) = self.freshness.check(stamp_ns, now_ns) {
            return Some(ReleaseRefusal::Stale(fault));
        }
        (stamp_ns <= latched.stamp_ns)
            .then_some(ReleaseRefusal::NotNewerThanEngage { engage_stamp_ns: latched.stamp_ns })
    }

    /// Whether a command stamped `stamp_ns` may move the arm at `now_ns`: not while engaged,
    /// only when fresh, and after a release only when stamped after it.
    pub fn check_command(&self, stamp_ns: u64, now_ns: u64) -> Result<(), CommandRefusal> {
        if self.is_engaged() {
            return Err(CommandRefusal::Estopped);
        }
        self.freshness.check(stamp_ns, now_ns)?;
        match self.released_at_ns {
            Some(release_ns) if stamp_ns <= release_ns => Err(CommandRefusal::BeforeRelease { stamp_ns, release_ns }),
            _ => Ok(()),
        }
    }

    /// [`EstopLatch::check_command`] as a yes/no; a refusal other than the engaged e-stop (not
    /// fresh, or from before the release) adds one to `stale_count` (the node's `commands_stale`).
    pub fn admit_command(&self, stamp_ns: u64, now_ns: u64, stale_count: &mut u64) -> bool {
        match self.check_command(stamp_ns, now_ns) {
            Ok(()) => true,
            Err(CommandRefusal::Estopped) => false,
            Err(refusal) => {
                *stale_count += 1;
                tracing::debug!(stamp_ns, %refusal, "command refused");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus::command_rules::{
        StampFault, STATUS_ESTOP_ENGAGED, STATUS_ESTOP_QUEUE_OVERFLOWS, STATUS_ESTOP_RELEASED,
        STATUS_ESTOP_RELEASE_REFUSED,
    };
    use bus::{Header, SCHEMA_VERSION};

    const MS: u64 = 1_000_000;
    const NOW: u64 = 1_800_000_000_000_000_000;

    fn estop(engaged: bool, stamp_ns: u64, source_id: u64) -> Estop {
        Estop { header: Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id }, engaged, reason: "test".into() }
    }

    fn engaged_latch() -> EstopLatch {
        let mut latch = EstopLatch::new(Freshness::default());
        latch.observe([estop(true, NOW, 1)], 0, NOW);
        latch
    }

    #[test]
    fn an_engage_and_a_release_in_one_batch_stay_latched() {
        let mut latch = EstopLatch::new(Freshness::default());
        let t = latch.observe([estop(true, NOW, 1), estop(false, NOW + MS, 1)], 0, NOW + 2 * MS);
        assert!(latch.is_engaged());
        assert_eq!(t.len(), 2);
        assert!(matches!(t[0], EstopTransition::Engaged { source_id: 1, stamp_ns: NOW, .. }));
        assert_eq!(
            t[1],
            EstopTransition::ReleaseRefused {
                source_id: 1,
                stamp_ns: NOW + MS,
                refusal: ReleaseRefusal::SameCycleAsEngage
            }
        );
        assert_eq!(latch.counts(), EstopCounts { engaged: 1, released: 0, release_refused: 1, queue_overflows: 0 });
        // A later fresh release (next cycle) releases it.
        latch.observe([estop(false, NOW + 20 * MS, 2)], 0, NOW + 21 * MS);
        assert!(!latch.is_engaged());
        assert_eq!(latch.counts(), EstopCounts { engaged: 1, released: 1, release_refused: 1, queue_overflows: 0 });
    }

    #[test]
    fn stale_replayed_old_and_future_releases_are_refused() {
        let mut latch = engaged_latch();
        let now = NOW + 10 * MS;
        let cases = [
            (0, "replayed with stamp 0"),
            (now - 600 * MS, "stale"),
            (NOW - MS, "older than the engage"),
            (NOW, "as old as the engage"),
            (now + 3_600_000 * MS, "an hour ahead"),
            (u64::MAX, "2^64 − 1"),
        ];
        for (stamp, what) in cases {
            let t = latch.observe([estop(false, stamp, 9)], 0, now);
            assert!(latch.is_engaged(), "a release {what} released the latch");
            assert!(matches!(t[..], [EstopTransition::ReleaseRefused { source_id: 9, .. }]), "{what}: {t:?}");
        }
        assert_eq!(latch.counts().release_refused, cases.len() as u64);
        assert_eq!(latch.counts().released, 0);
    }

    #[test]
    fn a_future_stamped_engage_latches_but_stays_releasable() {
        let mut latch = EstopLatch::new(Freshness::default());
        latch.observe([estop(true, u64::MAX, 1)], 0, NOW);
        assert!(latch.is_engaged());
        // Released by a fresh release stamped after the cap (now + 100 ms), once the clock gets there.
        latch.observe([estop(false, NOW + 150 * MS, 2)], 0, NOW + 100 * MS);
        assert!(!latch.is_engaged());
    }

    #[test]
    fn motion_needs_a_fresh_command_after_release() {
        let mut latch = engaged_latch();
        let mut stale = 0;
        assert_eq!(latch.check_command(NOW + MS, NOW + MS), Err(CommandRefusal::Estopped));
        assert!(!latch.admit_command(NOW + MS, NOW + MS, &mut stale));
        assert_eq!(stale, 0, "commands refused while engaged are not stale");
        let release_stamp = NOW + 10 * MS;
        latch.observe([estop(false, release_stamp, 2)], 0, NOW + 12 * MS);
        assert!(!latch.is_engaged());
        // Queued before the release (or from before the node obeyed it): refused.
        assert_eq!(
            latch.check_command(NOW + 5 * MS, NOW + 13 * MS),
            Err(CommandRefusal::BeforeRelease { stamp_ns: NOW + 5 * MS, release_ns: NOW + 12 * MS })
        );
        assert!(!latch.admit_command(NOW + 11 * MS, NOW + 13 * MS, &mut stale));
        // From the future: never the fresh command.
        assert!(matches!(
            latch.check_command(NOW + 3_600_000 * MS, NOW + 13 * MS),
            Err(CommandRefusal::Stale(StampFault::FromTheFuture { .. }))
        ));
        assert!(!latch.admit_command(u64::MAX, NOW + 13 * MS, &mut stale));
        assert_eq!(stale, 2);
        assert!(latch.admit_command(NOW + 14 * MS, NOW + 15 * MS, &mut stale));
    }

    #[test]
    fn engages_while_latched_are_not_counted_again_and_raise_the_bar_for_the_release() {
        let mut latch = engaged_latch();
        latch.observe([estop(true, NOW + 50 * MS, 3)], 0, NOW + 51 * MS);
        assert_eq!(latch.counts().engaged, 1);
        // Newer than the first engage but not the second: refused.
        latch.observe([estop(false, NOW + 40 * MS, 2)], 0, NOW + 60 * MS);
        assert!(latch.is_engaged());
        // A release, then an engage in the same batch: engaged again, both counted.
        let t = latch.observe([estop(false, NOW + 70 * MS, 2), estop(true, NOW + 71 * MS, 1)], 0, NOW + 72 * MS);
        assert!(latch.is_engaged());
        assert!(matches!(t[..], [EstopTransition::Released { .. }, EstopTransition::Engaged { .. }]), "{t:?}");
        assert_eq!(latch.counts(), EstopCounts { engaged: 2, released: 1, release_refused: 1, queue_overflows: 0 });
        let mut counters = BTreeMap::new();
        latch.counts().add_to_status_counters(&mut counters);
        assert_eq!(counters.get(STATUS_ESTOP_ENGAGED), Some(&2));
        assert_eq!(counters.get(STATUS_ESTOP_RELEASED), Some(&1));
        assert_eq!(counters.get(STATUS_ESTOP_RELEASE_REFUSED), Some(&1));
    }

    #[test]
    fn a_release_while_released_changes_nothing() {
        let mut latch = EstopLatch::new(Freshness::default());
        assert!(latch.observe([estop(false, NOW, 1)], 0, NOW).is_empty());
        assert_eq!(latch.counts(), EstopCounts::default());
        let mut stale = 0;
        assert!(latch.admit_command(NOW, NOW, &mut stale));
    }
    #[test]
    fn a_queue_overflow_engages_and_refuses_the_release_that_survived_it() {
        let mut latch = EstopLatch::new(Freshness::default());
        // The engage was discarded from a full queue; only the release behind it arrived.
        let t = latch.observe([estop(false, NOW + MS, 1)], 3, NOW + 2 * MS);
        assert!(latch.is_engaged());
        assert_eq!(t[0], EstopTransition::EngagedOnQueueOverflow { dropped: 3 });
        assert!(matches!(t[1], EstopTransition::ReleaseRefused { refusal: ReleaseRefusal::SameCycleAsEngage, .. }));
        assert_eq!(latch.counts(), EstopCounts { engaged: 1, released: 0, release_refused: 1, queue_overflows: 1 });
        // The same total next cycle is no new loss; a release stamped before the overflow is refused,
        // one stamped after it releases.
        latch.observe([estop(false, NOW + MS, 1)], 3, NOW + 10 * MS);
        assert!(latch.is_engaged());
        latch.observe([estop(false, NOW + 11 * MS, 1)], 3, NOW + 12 * MS);
        assert!(!latch.is_engaged());
        // A later loss while engaged by a message counts again but not as a second engage transition.
        latch.observe([estop(true, NOW + 20 * MS, 1)], 3, NOW + 20 * MS);
        latch.observe([], 5, NOW + 30 * MS);
        assert_eq!(latch.counts(), EstopCounts { engaged: 2, released: 1, release_refused: 2, queue_overflows: 2 });
        let mut counters = BTreeMap::new();
        latch.counts().add_to_status_counters(&mut counters);
        assert_eq!(counters.get(STATUS_ESTOP_QUEUE_OVERFLOWS), Some(&2));
    }
}
