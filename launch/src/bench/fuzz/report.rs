//! The fuzz run's rows: one per target, with its invariants (each must be zero), what was sent
//! and what the nodes counted; printed as tables and written as JSON.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::kinds::Kind;
use super::session::{ProbeCounts, Session};
use super::targets::{Ended, Target};
use super::watch::Observed;
use crate::outln;

/// Counters of the nodes' `status` shown in the table (the JSON has all of them).
const SHOWN_COUNTERS: [&str; 8] = [
    bus::STATUS_DECODE_ERRORS,
    bus::STATUS_NEWER_SCHEMA,
    "commands_rejected",
    "commands_stale",
    "commands_clamped",
    bus::command_rules::STATUS_ESTOP_ENGAGED,
    bus::command_rules::STATUS_ESTOP_RELEASED,
    bus::command_rules::STATUS_ESTOP_RELEASE_REFUSED,
];

/// What the recorder kept of the robot's episodes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpisodeAccount {
    /// Episodes the robot finished (at least one step, not re-recorded).
    pub finished: u64,
    /// Episodes the robot ended as re-recorded (on the fuzzer's requests).
    pub rerecorded: u64,
    /// Episodes in the written dataset.
    pub kept: u64,
    /// Episodes the recorder discarded (re-recorded, restarted, interrupted, or the one a
    /// second commander drove).
    pub discarded: u64,
    /// Finished episodes (by seed) the dataset does not hold.
    pub lost: u64,
    /// Episodes in the dataset whose seed no finished episode of the robot had (recorded from
    /// forged episode events).
    pub foreign: u64,
    /// Why the dataset does not open, if it does not.
    pub dataset_error: Option<String>,
}

/// One target's results.
#[derive(Clone, Debug, Serialize)]
pub struct FuzzRow {
    /// The target.
    pub target: Target,
    /// Messages asked for this target.
    pub messages_budget: u64,
    /// Messages sent, per kind.
    pub sent: BTreeMap<&'static str, u64>,
    /// Crashes: a node's error or panic, an early end, nodes that did not stop.
    pub crashes: Vec<String>,
    /// The refusal provoked on purpose (the recorder stopping at a second commander).
    pub expected_refusal: Option<String>,
    /// Sim and driver: whether the node stopped on a fresh `Stop` request.
    pub stop_obeyed: Option<bool>,
    /// Record: whether a second recording stopped at a second commander.
    pub second_commander_refused: Option<bool>,
    /// What the watcher saw (limits, speed, e-stop hold, episodes, memory, examples).
    pub observed: Observed,
    /// What the e-stop probes found.
    pub estop: ProbeCounts,
    /// Record: the robot's episodes against the dataset's.
    pub episodes: Option<EpisodeAccount>,
    /// Growth of this process's resident memory during the target, MB.
    pub memory_growth_mb: f64,
    /// Whether that growth exceeded `--max-memory-growth-mb`.
    pub memory_exceeded: bool,
    /// The robot node's last `status` counters.
    pub node_counters: BTreeMap<String, u64>,
    /// Record: the recorder's counts of messages it did not record, and the most it held.
    pub recorder: BTreeMap<String, u64>,
    /// Record: the recorder's last `status` counters (also there when the recorder failed).
    pub recorder_status: BTreeMap<String, u64>,
}

impl FuzzRow {
    /// An empty row for `target`.
    pub fn new(target: Target, messages_budget: u64) -> FuzzRow {
        FuzzRow {
            target,
            messages_budget,
            sent: BTreeMap::new(),
            crashes: Vec::new(),
            expected_refusal: None,
            stop_obeyed: None,
            second_commander_refused: None,
            observed: Observed::default(),
            estop: ProbeCounts::default(),
            episodes: None,
            memory_growth_mb: 0.0,
            memory_exceeded: false,
            node_counters: BTreeMap::new(),
            recorder: BTreeMap::new(),
            recorder_status: BTreeMap::new(),
        }
    }

    /// Records a crash.
    pub fn crash(&mut self, what: String) {
        tracing::error!(target = self.target.name(), "{what}");
        self.crashes.push(what);
    }

    /// Takes how the nodes ended.
    pub fn ended(&mut self, ended: Ended) {
        if let Some(failure) = ended.failure {
            self.crash(failure);
        }
        self.expected_refusal = ended.expected_refusal;
        if let Some(r) = ended.recorder {
            for (name, value) in [
                ("malformed", r.intake.malformed),
                ("future", r.intake.future),
                ("overflow", r.intake.overflow),
                ("rejected_events", r.intake.rejected_events),
                ("dropped_messages", r.dropped_messages),
                ("discarded", r.discarded),
                ("incomplete_steps", r.align.incomplete),
                ("max_held", r.max_held as u64),
            ] {
                self.recorder.insert(name.to_string(), value);
            }
        }
    }

    /// Takes what the watcher saw and the memory growth since `before_mb`.
    pub fn take_observed(
        &mut self,
        observed: Observed,
        (counters, recorder_status): (BTreeMap<String, u64>, BTreeMap<String, u64>),
        before_mb: f64,
        max_growth_mb: f64,
    ) {
        self.memory_growth_mb = (observed.peak_rss_mb - before_mb).max(0.0);
        self.memory_exceeded = self.memory_growth_mb > max_growth_mb;
        self.observed = observed;
        self.node_counters = counters;
        self.recorder_status = recorder_status;
    }

    /// Takes what the fuzzer sent.
    pub fn take_sent(&mut self, session: &Session<'_>) {
        self.sent = session.sent.iter().map(|(k, n)| (k.name(), *n)).collect();
        self.estop = session.probes.clone();
    }

    /// Opens the recorded dataset and accounts for the robot's episodes.
    pub fn dataset(&mut self, root: &Path) {
        let mut account = EpisodeAccount {
            finished: self.observed.episodes_finished,
            rerecorded: self.observed.episodes_rerecorded,
            discarded: self.recorder.get("discarded").copied().unwrap_or(0),
            ..Default::default()
        };
        match dataset::Dataset::open(root) {
            Ok(d) => {
                let kept: std::collections::BTreeSet<u64> = d.episodes().iter().filter_map(|e| e.seed).collect();
                let finished = &self.observed.finished_seeds;
                account.kept = d.episodes().len() as u64;
                account.lost = finished.difference(&kept).count() as u64;
                account.foreign =
                    d.episodes().iter().filter(|e| e.seed.is_none_or(|s| !finished.contains(&s))).count() as u64;
            }
            Err(e) => {
                account.dataset_error = Some(format!("{e:#}"));
                account.lost = account.finished;
            }
        }
        self.episodes = Some(account);
    }

    /// Takes the results of the recording that a second commander ended.
    pub fn merge_second_commander(&mut self, second: FuzzRow) {
        self.crashes.extend(second.crashes.into_iter().map(|c| format!("second-commander recording: {c}")));
        self.expected_refusal = second.expected_refusal;
        self.second_commander_refused = second.second_commander_refused;
        for (kind, n) in second.sent {
            *self.sent.entry(kind).or_default() += n;
        }
        let (o, s) = (&mut self.observed, second.observed);
        o.joint_states += s.joint_states;
        o.limit_violations += s.limit_violations;
        o.velocity_violations += s.velocity_violations;
        o.peak_speed_rad_s = o.peak_speed_rad_s.max(s.peak_speed_rad_s);
        o.examples.extend(s.examples);
        self.memory_exceeded |= second.memory_exceeded;
    }

    /// Violated invariants, counted (zero on a clean run).
    pub fn violations(&self) -> u64 {
        let o = &self.observed;
        let episodes = self.episodes.as_ref().map_or(0, |e| e.lost + e.foreign + u64::from(e.dataset_error.is_some()));
        self.crashes.len() as u64
            + o.limit_violations
            + o.velocity_violations
            + o.hold_violations
            + o.released_while_holding
            + self.estop.missed
            + self.estop.release_ignored
            + episodes
            + u64::from(self.memory_exceeded)
            + u64::from(self.stop_obeyed == Some(false))
            + u64::from(self.second_commander_refused == Some(false))
    }
}

/// Prints the invariants table, the messages sent per kind, the nodes' counters and examples.
pub fn print(rows: &[FuzzRow]) -> Result<()> {
    outln!(
        "{:<7} {:>8} {:>7} {:>6} {:>6} {:>10} {:>16} {:>7} {:>27} {:>7}",
        "target",
        "messages",
        "crashes",
        "limit",
        "speed",
        "peak rad/s",
        "e-stop p/m/h/e/i",
        "stop",
        "episodes f/k/d/lost/foreign",
        "mem MB"
    )?;
    for r in rows {
        let o = &r.observed;
        let estop = format!(
            "{}/{}/{}/{}/{}",
            r.estop.pulses, r.estop.missed, o.hold_violations, o.released_while_holding, r.estop.release_ignored
        );
        let stop = match (r.stop_obeyed, r.second_commander_refused) {
            (Some(false), _) | (_, Some(false)) => "FAILED",
            (None, None) => "-",
            _ => "ok",
        };
        let episodes = r.episodes.as_ref().map_or_else(
            || format!("{}/-/-/-/-", o.episodes_finished),
            |e| format!("{}/{}/{}/{}/{}", e.finished, e.kept, e.discarded, e.lost, e.foreign),
        );
        outln!(
            "{:<7} {:>8} {:>7} {:>6} {:>6} {:>10.2} {:>16} {:>7} {:>27} {:>7.0}",
            r.target.name(),
            r.sent.values().sum::<u64>(),
            r.crashes.len(),
            o.limit_violations,
            o.velocity_violations,
            o.peak_speed_rad_s,
            estop,
            stop,
            episodes,
            r.memory_growth_mb
        )?;
    }
    outln!("(e-stop: pulses / missed / motion while held / released by a stale release / fresh release ignored)")?;
    outln!()?;
    outln!("messages sent per kind")?;
    outln!("{:<15}{}", "kind", rows.iter().map(|r| format!("{:>9}", r.target.name())).collect::<String>())?;
    for kind in Kind::ALL {
        let counts: String = rows.iter().map(|r| format!("{:>9}", r.sent.get(kind.name()).unwrap_or(&0))).collect();
        outln!("{:<15}{counts}", kind.name())?;
    }
    outln!()?;
    for r in rows {
        let counters: Vec<String> = SHOWN_COUNTERS
            .iter()
            .map(|name| format!("{name} {}", r.node_counters.get(*name).map_or("-".into(), u64::to_string)))
            .collect();
        outln!("{} node counters: {}", r.target.name(), counters.join(", "))?;
        if !r.recorder.is_empty() {
            let recorder: Vec<String> = r.recorder.iter().map(|(k, v)| format!("{k} {v}")).collect();
            outln!("{} recorder: {}", r.target.name(), recorder.join(", "))?;
        }
        if !r.recorder_status.is_empty() {
            let status: Vec<String> = r.recorder_status.iter().map(|(k, v)| format!("{k} {v}")).collect();
            outln!("{} recorder status: {}", r.target.name(), status.join(", "))?;
        }
        if let Some(e) = r.episodes.as_ref().and_then(|e| e.dataset_error.as_ref()) {
            outln!("{} dataset does not open: {e}", r.target.name())?;
        }
        for c in &r.crashes {
            outln!("{} CRASH: {c}", r.target.name())?;
        }
        for e in &r.observed.examples {
            outln!("{} violation: {e}", r.target.name())?;
        }
    }
    outln!()?;
    Ok(())
}
