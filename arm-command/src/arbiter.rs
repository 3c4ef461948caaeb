//! The per-cycle command arbitration shared by the sim node and the driver node.
//!
//! Every control cycle the node drains its command topics into an [`Inbox`] and calls
//! [`Arbiter::step`] with the cycle's clocks and measurement ([`Cycle`]). In order:
//!
//! 1. E-stop: every `estop` message of the cycle (and any loss from the queue) goes through the
//!    [`EstopLatch`]. When it engages or releases, the joints hold where they were measured (the
//!    gripper keeps its last command, so a held object is not dropped) and any chunk is dropped; while engaged every command is ignored (not counted as stale).
//! 2. Commands (only when the node accepts them): each must be admitted by the latch (fresh on
//!    the wall clock `now_ns`, and after a release stamped after it); refused ones count as
//!    `commands_stale`. A new chunk replaces the playing one. The newest admitted direct command
//!    (`command/joint` or `command/ee_delta`, by stamp) wins and drops the chunk; otherwise the
//!    chunk's row due now ([`ChunkPlayer`], by the control clock). End-effector deltas become joint
//!    targets through the node's [`EeDeltaSolver`], from the last desired target (so a stream of
//!    small steps is not lost to lag). Malformed, non-finite or unreachable commands count as
//!    `commands_rejected` and change nothing.
//! 3. Watchdog: commands (or chunk rows) were flowing and none came for the timeout → hold the
//!    last safe target, drop the chunk, count `watchdog_holds`; afterwards the arbiter is
//!    [`Source::Idle`] until the next command.
//! 4. Safety filter: the desired target is clamped into the joint limits and moved by at most
//!    `max_velocity_rad_s × min(cycle time, control_period_ns)` per joint ([`CommandFilter`]);
//!    cycles whose target was changed count as `commands_clamped`.
//!
//! The control clock (`control_ns`) is the node's: the wall clock on the arm and in the real-time
//! sim, simulated time (control steps × period) in the lockstep and as-fast-as-possible sim. Chunk
//! rows and the watchdog run on it; freshness always uses the wall clock.

use std::collections::BTreeMap;

use bus::command_rules::Freshness;
use bus::{ActionChunk, ActionKind, EeDeltaCommand, EpisodeControl, EpisodeRequest, Estop, JointCommand};

use crate::chunk::{ChunkPlayer, RowDue};
use crate::estop::{EstopCounts, EstopLatch};
use crate::limits::{CommandFilter, JointLimits, LimitsError};
use crate::watchdog::Watchdog;
use crate::NUM_JOINTS;

#[cfg(test)]
mod tests;

/// Converts an end-effector delta into joint targets (the node's kinematics).
pub trait EeDeltaSolver {
    /// Joint targets (rad) that move the finger tip by `xyz_m` (m) and `rpy_rad` (roll, pitch,
    /// yaw, rad), both in the base frame, from the joint targets `from_q_rad`; `None` when
    /// unreachable.
    fn solve_ee_delta(
        &self,
        from_q_rad: &[f64; NUM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> Option<[f64; NUM_JOINTS]>;
}

/// The arbiter's settings; each node builds them from its own configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArbiterConfig {
    /// Freshness bound of commands and releases (wall clock).
    pub freshness: Freshness,
    /// Watchdog timeout, control-clock ns.
    pub watchdog_timeout_ns: u64,
    /// Joint position and velocity limits.
    pub limits: JointLimits,
    /// Nominal control period, ns: a cycle moves a joint by at most its velocity limit times
    /// the time since the last cycle, and never more than this period's worth.
    pub control_period_ns: u64,
    /// Back-date a chunk's start by its age (wall-clock now − stamp). True when the control clock
    /// runs with the wall clock; false when it is simulated time, which the age does not measure.
    pub backdate_chunks: bool,
}

/// The command messages a node received since its last cycle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbox {
    /// Every `estop` message, in arrival order (the subscriber drained, not only the newest).
    pub estop: Vec<Estop>,
    /// The `estop` subscriber's count of messages discarded from its full queue since it was
    /// created ([`bus::SubscriberStats::dropped`]).
    pub estop_dropped_total: u64,
    /// The newest `command/joint`.
    pub joint: Option<JointCommand>,
    /// The newest `command/ee_delta`.
    pub ee_delta: Option<EeDeltaCommand>,
    /// The newest `command/chunk`.
    pub chunk: Option<ActionChunk>,
}

/// The clocks and measurement of one cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cycle {
    /// Wall clock, ns since the UNIX epoch (freshness of stamps).
    pub now_ns: u64,
    /// Control clock, ns (chunk rows, watchdog, velocity limit); never goes back.
    pub control_ns: u64,
    /// Measured joint angles, rad (where the arm holds when the e-stop engages or releases).
    pub measured_q_rad: [f64; NUM_JOINTS],
    /// Whether commands may act this cycle (false: the node is faulted, resetting between
    /// episodes or has no measurement; commands are discarded uncounted).
    pub accept_commands: bool,
}

/// What produced a cycle's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// No command is live (none yet, or none since the last hold): the arm holds. The sim's
    /// autopilot may act instead.
    Idle,
    /// The e-stop is engaged: the arm holds where it was when it engaged.
    EstopHold,
    /// The watchdog expired this cycle: the arm holds its last safe target.
    WatchdogHold,
    /// A `command/joint` this cycle.
    Joint,
    /// A `command/ee_delta` this cycle.
    EeDelta,
    /// Row `index` of the playing chunk became due this cycle.
    ChunkRow {
        /// Row index.
        index: usize,
    },
    /// No new command this cycle: the arm keeps moving toward the last one.
    Continue,
}

/// One cycle's decision: the safe target to send, and why.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// What produced the target.
    pub source: Source,
    /// Safe joint targets, rad (inside the limits, at most the velocity limit from the last).
    pub q_rad: [f64; NUM_JOINTS],
    /// Gripper opening, 0 … 1.
    pub gripper: f64,
    /// The target was clamped (limits or speed) this cycle.
    pub clamped: bool,
}

/// What the arbiter did since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArbiterCounts {
    /// Commands applied (joint, ee delta, chunk rows).
    pub commands_applied: u64,
    /// Commands rejected (malformed, NaN/inf, unreachable).
    pub commands_rejected: u64,
    /// Commands ignored as not fresh (too old, from the future, or from before an e-stop release).
    pub commands_stale: u64,
    /// Cycles whose target was clamped (limits or speed).
    pub commands_clamped: u64,
    /// Watchdog holds.
    pub watchdog_holds: u64,
    /// Episode requests (`command/episode`) ignored as not fresh (a replayed or delayed `Stop`).
    pub episode_requests_stale: u64,
    /// E-stop transitions.
    pub estop: EstopCounts,
}

impl ArbiterCounts {
    /// Sets the node's `status` counters `commands_applied`, `commands_rejected`,
    /// `commands_stale`, `commands_clamped`, `watchdog_holds`, `episode_requests_stale` and the
    /// e-stop's.
    pub fn add_to_status_counters(&self, counters: &mut BTreeMap<String, u64>) {
        for (name, value) in [
            ("commands_applied", self.commands_applied),
            ("commands_rejected", self.commands_rejected),
            ("commands_stale", self.commands_stale),
            ("commands_clamped", self.commands_clamped),
            ("watchdog_holds", self.watchdog_holds),
            ("episode_requests_stale", self.episode_requests_stale),
        ] {
            counters.insert(name.to_string(), value);
        }
        self.estop.add_to_status_counters(counters);
    }
}

/// Joint targets (rad) and gripper opening.
type Target = ([f64; NUM_JOINTS], f64);

/// The command arbiter and safety filter of one arm (see the module doc).
#[derive(Clone, Debug)]
pub struct Arbiter {
    config: ArbiterConfig,
    latch: EstopLatch,
    watchdog: Watchdog,
    filter: CommandFilter,
    chunk: Option<ChunkPlayer>,
    desired: Target,
    last_control_ns: Option<u64>,
    counts: ArbiterCounts,
}

impl Arbiter {
    /// An arbiter holding `q_rad` (clamped into the limits) and `gripper`; fails on unusable
    /// limits.
    pub fn new(config: ArbiterConfig, q_rad: [f64; NUM_JOINTS], gripper: f64) -> Result<Arbiter, LimitsError> {
        config.limits.validate()?;
        let filter = CommandFilter::new(config.limits, q_rad);
        Ok(Arbiter {
            latch: EstopLatch::new(config.freshness),
            watchdog: Watchdog::new(config.watchdog_timeout_ns),
            desired: (filter.last(), clamp_gripper(gripper)),
            filter,
            chunk: None,
            last_control_ns: None,
            counts: ArbiterCounts::default(),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ArbiterConfig {
        &self.config
    }

    /// Whether the e-stop is engaged.
    pub fn is_engaged(&self) -> bool {
        self.latch.is_engaged()
    }

    /// Whether a chunk has rows still to play (its last row may still be in its period
    /// otherwise: the lockstep sim then waits for the next command).
    pub fn chunk_rows_pending(&self) -> bool {
        self.chunk.as_ref().is_some_and(|c| !c.all_rows_played())
    }

    /// The counters so far.
    pub fn counts(&self) -> ArbiterCounts {
        ArbiterCounts { estop: self.latch.counts(), ..self.counts }
    }

    /// Stops following commands and holds `q_rad` (clamped) with `gripper`: the chunk is dropped
    /// and the watchdog cleared (a node fault, a new episode).
    pub fn hold_at(&mut self, q_rad: [f64; NUM_JOINTS], gripper: f64) {
        self.filter.reset(q_rad);
        self.desired = (self.filter.last(), clamp_gripper(gripper));
        self.chunk = None;
        self.watchdog.clear();
    }

    /// Moves toward the node's own target `q_rad` (a ready pose between episodes) at the filter's
    /// speed, instead of any command: the chunk is dropped and the watchdog cleared.
    pub fn set_target(&mut self, q_rad: [f64; NUM_JOINTS], gripper: f64) {
        if q_rad.iter().all(|q| q.is_finite()) {
            self.desired = (q_rad, clamp_gripper(gripper));
        }
        self.chunk = None;
        self.watchdog.clear();
    }

    /// The node moved the arm by other means (the sim's autopilot) to the targets `q_rad`: the
    /// filter continues from there.
    pub fn follow(&mut self, q_rad: [f64; NUM_JOINTS], gripper: f64) {
        self.filter.reset(q_rad);
        self.desired = (self.filter.last(), clamp_gripper(gripper));
    }

    /// Admits an episode request (`command/episode`) received at `now_ns` (wall clock): only a
    /// fresh one (the same [`Freshness`] bound as commands) ends, re-records or stops an episode;
    /// a stale, replayed or future-stamped one is ignored and counted as `episode_requests_stale`.
    /// The e-stop does not block it: ending an episode or stopping the node is always allowed.
    pub fn admit_episode_request(&mut self, request: &EpisodeControl, now_ns: u64) -> Option<EpisodeRequest> {
        match self.config.freshness.check(request.header.stamp_ns, now_ns) {
            Ok(()) => Some(request.request),
            Err(fault) => {
                self.counts.episode_requests_stale += 1;
                tracing::warn!(
                    request = ?request.request,
                    source_id = request.header.source_id,
                    %fault,
                    "episode request ignored"
                );
                None
            }
        }
    }

    /// Runs one cycle (see the module doc) and returns the target to send.
    pub fn step(&mut self, cycle: &Cycle, inbox: Inbox, solver: Option<&dyn EeDeltaSolver>) -> Decision {
        let was_engaged = self.latch.is_engaged();
        self.latch.observe(inbox.estop, inbox.estop_dropped_total, cycle.now_ns);
        let engaged = self.latch.is_engaged();
        if engaged != was_engaged {
            // The joints hold where they are; the gripper keeps its command (a held object stays
            // held).
            let gripper = self.desired.1;
            self.hold_at(cycle.measured_q_rad, gripper);
        }
        let mut source = None;
        if !engaged && cycle.accept_commands {
            let (joint, ee_delta, chunk) = (inbox.joint, inbox.ee_delta, inbox.chunk);
            source = self.take_commands(cycle, joint, ee_delta, chunk, solver);
        }
        if source.is_none() && !engaged && self.watchdog.expired(cycle.control_ns) {
            self.counts.watchdog_holds += 1;
            tracing::warn!(
                timeout_ms = self.config.watchdog_timeout_ns / 1_000_000,
                "no command within the watchdog timeout: holding position"
            );
            self.desired.0 = self.filter.last();
            self.chunk = None;
            self.watchdog.clear();
            source = Some(Source::WatchdogHold);
        }
        let source = match source {
            _ if engaged => Source::EstopHold,
            Some(s) => s,
            None if self.watchdog.active() || self.chunk.is_some() => Source::Continue,
            None => Source::Idle,
        };
        let elapsed_ns = self.last_control_ns.map_or(self.config.control_period_ns, |last| {
            cycle.control_ns.saturating_sub(last).min(self.config.control_period_ns)
        });
        self.last_control_ns = Some(cycle.control_ns);
        let (q_rad, clamped) = match self.filter.filter(&self.desired.0, elapsed_ns as f64 * 1e-9) {
            Some(f) => (f.q_rad, f.position_clamped || f.velocity_clamped),
            // The desired target is always finite (commands are checked); keep the last one.
            None => (self.filter.last(), false),
        };
        self.counts.commands_clamped += u64::from(clamped);
        Decision { source, q_rad, gripper: self.desired.1, clamped }
    }

    /// Step 2 of [`Arbiter::step`]: the new desired target and its source, if a command acts.
    fn take_commands(
        &mut self,
        cycle: &Cycle,
        joint: Option<JointCommand>,
        ee_delta: Option<EeDeltaCommand>,
        chunk: Option<ActionChunk>,
        solver: Option<&dyn EeDeltaSolver>,
    ) -> Option<Source> {
        let (now_ns, control_ns) = (cycle.now_ns, cycle.control_ns);
        if let Some(c) = chunk.filter(|c| self.admit(c.header.stamp_ns, now_ns)) {
            let backdate_ns = if self.config.backdate_chunks { now_ns.saturating_sub(c.header.stamp_ns) } else { 0 };
            match ChunkPlayer::start(&c, control_ns, backdate_ns) {
                Ok(player) => self.chunk = Some(player),
                Err(fault) => self.reject(&fault),
            }
        }
        let joint = joint.filter(|c| self.admit(c.header.stamp_ns, now_ns));
        let ee_delta = ee_delta.filter(|c| self.admit(c.header.stamp_ns, now_ns));
        let newest_is_ee = match (&joint, &ee_delta) {
            (Some(j), Some(e)) => e.header.stamp_ns > j.header.stamp_ns,
            (None, Some(_)) => true,
            _ => false,
        };
        let (source, target) = if newest_is_ee {
            let e = ee_delta?;
            (Source::EeDelta, self.ee_target(e.delta_xyz_m, e.delta_rpy_rad, e.gripper, solver))
        } else if let Some(j) = joint {
            (Source::Joint, joint_target(&j))
        } else {
            return self.chunk_row(control_ns, solver);
        };
        match target {
            Some(target) => {
                self.chunk = None;
                Some(self.apply(source, target, control_ns))
            }
            None => {
                // A rejected command changes nothing: the chunk plays on.
                self.reject(&"a malformed, non-finite or unreachable command");
                self.chunk_row(control_ns, solver)
            }
        }
    }

    /// The playing chunk's row due now, if any (a live chunk keeps the watchdog fed).
    fn chunk_row(&mut self, control_ns: u64, solver: Option<&dyn EeDeltaSolver>) -> Option<Source> {
        let player = self.chunk.as_mut()?;
        let kind = player.kind();
        match player.poll(control_ns) {
            RowDue::Finished => {
                self.chunk = None;
                None
            }
            RowDue::Waiting => {
                self.watchdog.feed(control_ns);
                None
            }
            RowDue::Row { index, row } => {
                let target = match kind {
                    ActionKind::JointTarget => Some((row.values, row.gripper)),
                    ActionKind::EeDelta => {
                        let v = row.values;
                        self.ee_target([v[0], v[1], v[2]], [v[3], v[4], v[5]], row.gripper, solver)
                    }
                };
                match target {
                    Some(target) => Some(self.apply(Source::ChunkRow { index }, target, control_ns)),
                    None => {
                        self.watchdog.feed(control_ns);
                        self.reject(&"an unreachable chunk row");
                        None
                    }
                }
            }
        }
    }

    fn apply(&mut self, source: Source, (q_rad, gripper): Target, control_ns: u64) -> Source {
        self.desired = (q_rad, clamp_gripper(gripper));
        self.watchdog.feed(control_ns);
        self.counts.commands_applied += 1;
        source
    }

    /// Whether a command stamped `stamp_ns` may act; refusals other than the engaged e-stop count
    /// as stale.
    fn admit(&mut self, stamp_ns: u64, now_ns: u64) -> bool {
        self.latch.admit_command(stamp_ns, now_ns, &mut self.counts.commands_stale)
    }

    fn reject(&mut self, why: &dyn std::fmt::Display) {
        self.counts.commands_rejected += 1;
        let n = self.counts.commands_rejected;
        if n == 1 || n.is_multiple_of(100) {
            tracing::warn!(occurrences = n, "command rejected: {why}");
        }
    }

    fn ee_target(
        &self,
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
        gripper: f64,
        solver: Option<&dyn EeDeltaSolver>,
    ) -> Option<Target> {
        let finite = xyz_m.iter().chain(&rpy_rad).all(|v| v.is_finite()) && gripper.is_finite();
        if !finite {
            return None;
        }
        let Some(solver) = solver else {
            tracing::warn!("an end-effector command needs kinematics; this node has none");
            return None;
        };
        let q = solver.solve_ee_delta(&self.desired.0, xyz_m, rpy_rad)?;
        q.iter().all(|v| v.is_finite()).then_some((q, gripper))
    }
}

/// The joint targets of a `command/joint`: six finite positions and a finite gripper.
fn joint_target(c: &JointCommand) -> Option<Target> {
    let q: [f64; NUM_JOINTS] = c.position.as_slice().try_into().ok()?;
    (q.iter().all(|v| v.is_finite()) && c.gripper.is_finite()).then_some((q, c.gripper))
}

/// A gripper opening clamped into [0, 1] (NaN: 1, open).
fn clamp_gripper(g: f64) -> f64 {
    if g.is_nan() {
        1.0
    } else {
        g.clamp(0.0, 1.0)
    }
}
