//! The rules a node applies before a command may move an arm, shared by the sim node and the arm
//! driver so that both obey the same e-stop and the same freshness bound.
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
//! # E-stop latch
//!
//! [`EstopLatch`] is fed every `estop` message a node received since its last cycle, in arrival
//! order (drain the subscriber with [`crate::Subscriber::drain`], never take only the newest):
//!
//! - Any engage latches, whatever its stamp and whatever follows it in the same cycle: a release in
//!   the same batch as an engage is refused, so a pulse (engage then release within one cycle)
//!   still stops the arm, shows `Estopped` and is counted.
//! - A release releases only if it is fresh and stamped after the newest engage seen while latched.
//!   An engage stamped more than the skew bound ahead is recorded as `now + max_future_ns`, so a
//!   future-stamped engage latches but cannot make the latch unreleasable.
//! - After a release the arm moves again only on a command stamped after the release took effect
//!   (after both the release's stamp and the node's clock when it obeyed it): nothing queued or
//!   playing before resumes.
//!
//! Every transition ([`EstopTransition`]) is logged with the `source_id` and stamp of the message
//! that caused it and counted ([`EstopCounts`], on `status` as `estop_engaged`, `estop_released`,
//! `estop_release_refused`). Nodes clear their queued and playing chunks when the latch engages.

use std::collections::BTreeMap;

use crate::messages::Estop;

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
}

impl EstopCounts {
    /// Sets the node's `status` counters [`STATUS_ESTOP_ENGAGED`], [`STATUS_ESTOP_RELEASED`] and
    /// [`STATUS_ESTOP_RELEASE_REFUSED`].
    pub fn add_to_status_counters(&self, counters: &mut BTreeMap<String, u64>) {
        counters.insert(STATUS_ESTOP_ENGAGED.to_string(), self.engaged);
        counters.insert(STATUS_ESTOP_RELEASED.to_string(), self.released);
        counters.insert(STATUS_ESTOP_RELEASE_REFUSED.to_string(), self.release_refused);
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
    counts: EstopCounts,
}

impl EstopLatch {
    /// A released latch that judges stamps by `freshness`.
    pub fn new(freshness: Freshness) -> EstopLatch {
        EstopLatch { freshness, latched: None, released_at_ns: None, counts: EstopCounts::default() }
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
    /// returns (and logs) the transitions they caused.
    pub fn observe(&mut self, batch: impl IntoIterator<Item = Estop>, now_ns: u64) -> Vec<EstopTransition> {
        let mut engaged_in_batch = false;
        let mut transitions = Vec::new();
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
    use crate::header::{Header, SCHEMA_VERSION};

    const MS: u64 = 1_000_000;
    const NOW: u64 = 1_800_000_000_000_000_000;

    fn estop(engaged: bool, stamp_ns: u64, source_id: u64) -> Estop {
        Estop { header: Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id }, engaged, reason: "test".into() }
    }

    fn engaged_latch() -> EstopLatch {
        let mut latch = EstopLatch::new(Freshness::default());
        latch.observe([estop(true, NOW, 1)], NOW);
        latch
    }

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

    #[test]
    fn an_engage_and_a_release_in_one_batch_stay_latched() {
        let mut latch = EstopLatch::new(Freshness::default());
        let t = latch.observe([estop(true, NOW, 1), estop(false, NOW + MS, 1)], NOW + 2 * MS);
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
        assert_eq!(latch.counts(), EstopCounts { engaged: 1, released: 0, release_refused: 1 });
        // A later fresh release (next cycle) releases it.
        latch.observe([estop(false, NOW + 20 * MS, 2)], NOW + 21 * MS);
        assert!(!latch.is_engaged());
        assert_eq!(latch.counts(), EstopCounts { engaged: 1, released: 1, release_refused: 1 });
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
            let t = latch.observe([estop(false, stamp, 9)], now);
            assert!(latch.is_engaged(), "a release {what} released the latch");
            assert!(matches!(t[..], [EstopTransition::ReleaseRefused { source_id: 9, .. }]), "{what}: {t:?}");
        }
        assert_eq!(latch.counts().release_refused, cases.len() as u64);
        assert_eq!(latch.counts().released, 0);
    }

    #[test]
    fn a_future_stamped_engage_latches_but_stays_releasable() {
        let mut latch = EstopLatch::new(Freshness::default());
        latch.observe([estop(true, u64::MAX, 1)], NOW);
        assert!(latch.is_engaged());
        // Released by a fresh release stamped after the cap (now + 100 ms), once the clock gets there.
        latch.observe([estop(false, NOW + 150 * MS, 2)], NOW + 100 * MS);
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
        latch.observe([estop(false, release_stamp, 2)], NOW + 12 * MS);
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
        latch.observe([estop(true, NOW + 50 * MS, 3)], NOW + 51 * MS);
        assert_eq!(latch.counts().engaged, 1);
        // Newer than the first engage but not the second: refused.
        latch.observe([estop(false, NOW + 40 * MS, 2)], NOW + 60 * MS);
        assert!(latch.is_engaged());
        // A release, then an engage in the same batch: engaged again, both counted.
        let t = latch.observe([estop(false, NOW + 70 * MS, 2), estop(true, NOW + 71 * MS, 1)], NOW + 72 * MS);
        assert!(latch.is_engaged());
        assert!(matches!(t[..], [EstopTransition::Released { .. }, EstopTransition::Engaged { .. }]), "{t:?}");
        assert_eq!(latch.counts(), EstopCounts { engaged: 2, released: 1, release_refused: 1 });
        let mut counters = BTreeMap::new();
        latch.counts().add_to_status_counters(&mut counters);
        assert_eq!(counters.get(STATUS_ESTOP_ENGAGED), Some(&2));
        assert_eq!(counters.get(STATUS_ESTOP_RELEASED), Some(&1));
        assert_eq!(counters.get(STATUS_ESTOP_RELEASE_REFUSED), Some(&1));
    }

    #[test]
    fn a_release_while_released_changes_nothing() {
        let mut latch = EstopLatch::new(Freshness::default());
        assert!(latch.observe([estop(false, NOW, 1)], NOW).is_empty());
        assert_eq!(latch.counts(), EstopCounts::default());
        let mut stale = 0;
        assert!(latch.admit_command(NOW, NOW, &mut stale));
    }
}
