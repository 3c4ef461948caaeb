//! The chunk executor: turns action chunks into one action per control tick.
//!
//! Ticks count control periods. A chunk computed from the observation of tick `k0` holds the
//! actions for ticks `k0 … k0 + H − 1` (row i for tick k0 + i).
//!
//! - **Temporal ensembling** (ACT): a chunk is requested every tick; the action for tick t
//!   averages row t − k0_j of every chunk j that covers t, with weights w_j = exp(−m·j) where
//!   j = 0 is the **oldest** chunk (m = 0.01 by default).
//! - **Asynchronous refresh** (LeRobot's async client): actions are queued; a new chunk is
//!   requested when fewer than `refresh_below` queued actions remain; rows of a new chunk that
//!   overlap queued ones are merged as `keep_old·old + (1 − keep_old)·new` (0.3 / 0.7).
//! - **Open loop** (Q-chunking): refresh only when the queue is empty, no merging.
//!
//! Rows for ticks that already passed when a chunk arrives are dropped, and the chunk is
//! counted as late.
//!
//! **What is averaged.** Joint-target rows are absolute and are averaged / merged as they are.
//! End-effector delta rows (`EeDelta`) are increments relative to the tip pose they were planned
//! from, so ensembling and async merging work on absolute tip targets instead (ACT averages
//! absolute targets too): a chunk computed at tick k0 is integrated from the tip pose measured at
//! k0 into one target pose per future tick ([`tip_targets::integrate_chunk`]); the targets of a
//! tick are averaged with the mode's weights (positions by the weighted mean, orientations by the
//! normalised weighted sum of hemisphere-aligned quaternions, [`tip_targets::blend_poses`]); and
//! the emitted delta is the average target minus the tip pose measured at that tick, limited to
//! the sim's per-step limits ([`tip_targets::delta_towards`]). This closes the loop: a tip that
//! lags behind the plan gets a larger delta. The gripper value (absolute) is averaged as is. Tip
//! poses come from forward kinematics of the proprioception ([`crate::features::tip_pose`]), so
//! evaluation, the policy node and deployment derive them alike. Open loop executes the rows as
//! predicted, in either action space.
//!
//! A policy whose rows are absolute tip targets already ([`crate::action_targets`],
//! [`ChunkExecutor::with_action_targets`]) skips the integration: its rows are decoded into
//! target poses and, in every mode including open loop, the emitted delta steers the measured
//! tip towards the target of the tick.
//!
//! With an `EeDelta` executor, a chunk or a tick whose proprioception has no tip pose (fewer than
//! six finite joint angles) cannot be placed: the chunk is dropped and the tick holds, both
//! counted in [`ExecutorStats::unposed`].

pub(crate) mod tip_targets;

#[cfg(test)]
mod ee_delta_tests;

use std::collections::{BTreeMap, VecDeque};

use bus::ActionKind;
use nalgebra::Isometry3;
use serde::{Deserialize, Serialize};

use crate::features::tip_pose;
use tip_targets::{blend_poses, delta_towards, integrate_chunk, POSE_DELTA_VALUES};

/// How chunks become actions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// ACT temporal ensembling with decay `m` (weights exp(−m·i), i = 0 the oldest chunk).
    Ensemble {
        /// Decay m.
        decay: f64,
    },
    /// Asynchronous refresh.
    Async {
        /// Request a new chunk when fewer queued actions than this remain.
        refresh_below: usize,
        /// Weight of the old action where chunks overlap.
        keep_old: f64,
    },
    /// Execute each chunk to its end, then request the next.
    OpenLoop,
}

impl ExecMode {
    /// ACT's ensembling (m = 0.01).
    pub fn ensemble() -> ExecMode {
        ExecMode::Ensemble { decay: 0.01 }
    }

    /// LeRobot's async defaults for chunk length `horizon`: refresh at half the chunk, merge 0.3/0.7.
    pub fn asynchronous(horizon: usize) -> ExecMode {
        ExecMode::Async { refresh_below: horizon.div_ceil(2), keep_old: 0.3 }
    }

    /// The default mode for a policy of action space `kind` and chunk length `horizon`, chosen
    /// from the measured table in the README (section "Chunk execution"):
    /// - `EeDelta`: temporal ensembling of tip targets. On 3 BC and 3 CO-RFT policies × 100 unseen
    ///   pick_cube scenes it had the highest pooled success (24.0% against 21.7% async and 21.3%
    ///   open loop; the intervals overlap) and the shortest CO-RFT cycle time.
    /// - `JointTarget`: ACT's temporal ensembling of the (absolute) joint targets, ACT's own
    ///   setting; not measured here (no joint-target policy yet).
    ///
    /// `horizon` sizes the refresh of the async mode, should the table come to choose it.
    pub fn default_for(kind: ActionKind, horizon: usize) -> ExecMode {
        let _ = horizon;
        match kind {
            ActionKind::EeDelta | ActionKind::JointTarget => ExecMode::ensemble(),
        }
    }

    /// Parses `ensemble`, `async` or `open-loop`.
    pub fn parse(name: &str, horizon: usize) -> Option<ExecMode> {
        match name {
            "ensemble" => Some(ExecMode::ensemble()),
            "async" => Some(ExecMode::asynchronous(horizon)),
            "open-loop" | "open_loop" => Some(ExecMode::OpenLoop),
            _ => None,
        }
    }

    /// The mode's name as [`ExecMode::parse`] reads it.
    pub fn name(&self) -> &'static str {
        match self {
            ExecMode::Ensemble { .. } => "ensemble",
            ExecMode::Async { .. } => "async",
            ExecMode::OpenLoop => "open-loop",
        }
    }
}

/// Counters of an executor's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorStats {
    /// Chunks received.
    pub chunks: u64,
    /// Chunks that arrived after their first tick had passed.
    pub late_chunks: u64,
    /// Ticks with no action available (the caller holds).
    pub starved_ticks: u64,
    /// `EeDelta` chunks dropped and ticks held because their proprioception gave no tip pose.
    #[serde(default)]
    pub unposed: u64,
}

/// One row in the space the executor combines rows in.
#[derive(Clone, Debug)]
struct Row {
    /// `EeDelta` on tip targets: the absolute tip pose (base frame) this row aims at; its pose
    /// delta values are then unused.
    target: Option<Isometry3<f64>>,
    /// The row's values.
    values: Vec<f64>,
}

impl Row {
    /// The weighted average of `rows` (weights > 0): values by the weighted mean, targets by
    /// [`blend_poses`] (all rows of one executor have targets or none does).
    fn blend(rows: &[(f64, &Row)]) -> Option<Row> {
        let (_, first) = rows.first()?;
        let total: f64 = rows.iter().map(|(w, _)| w).sum();
        let mut values = vec![0.0; first.values.len()];
        for (w, row) in rows {
            for (s, v) in values.iter_mut().zip(&row.values) {
                *s += w / total * v;
            }
        }
        let targets: Option<Vec<(f64, Isometry3<f64>)>> = rows.iter().map(|(w, r)| Some((*w, r.target?))).collect();
        let target = targets.and_then(|t| blend_poses(&t));
        Some(Row { target, values })
    }

    /// The action values to emit with the tip at `tip` (tip-target rows; `None`: plain rows).
    fn emit(self, tip: Option<&Isometry3<f64>>) -> Vec<f32> {
        let mut values = self.values;
        if let (Some(target), Some(tip)) = (self.target, tip) {
            values[..POSE_DELTA_VALUES].copy_from_slice(&delta_towards(&target, tip));
        }
        values.into_iter().map(|v| v as f32).collect()
    }
}

/// Chunk executor state for one robot.
#[derive(Clone, Debug)]
pub struct ChunkExecutor {
    mode: ExecMode,
    kind: ActionKind,
    horizon: usize,
    dim: usize,
    /// Whether rows are combined as absolute tip targets (`EeDelta`, not open loop).
    tip_targets: bool,
    /// Whether rows are absolute tip targets as predicted ([`crate::action_targets`]).
    action_targets: bool,
    /// Ensembling: live chunks (k0, rows), oldest first.
    chunks: VecDeque<(u64, Vec<Row>)>,
    /// Async / open loop: queued action per tick.
    queue: BTreeMap<u64, Row>,
    /// Whether a chunk request is in flight (async / open loop).
    pending: bool,
    /// Counters.
    pub stats: ExecutorStats,
}

impl ChunkExecutor {
    /// An executor for chunks of `horizon` rows of `dim` values in action space `kind`.
    pub fn new(mode: ExecMode, kind: ActionKind, horizon: usize, dim: usize) -> ChunkExecutor {
        ChunkExecutor {
            mode,
            kind,
            horizon,
            dim,
            tip_targets: kind == ActionKind::EeDelta && dim > POSE_DELTA_VALUES && mode != ExecMode::OpenLoop,
            action_targets: false,
            chunks: VecDeque::new(),
            queue: BTreeMap::new(),
            pending: false,
            stats: ExecutorStats::default(),
        }
    }

    /// Rows are absolute tip targets ([`crate::action_targets`]; `on` only takes effect for
    /// `EeDelta` rows): each is decoded into its target pose, and every mode, open loop
    /// included, emits the delta from the measured tip to the tick's target.
    pub fn with_action_targets(mut self, on: bool) -> ChunkExecutor {
        let on = on && self.kind == ActionKind::EeDelta && self.dim > POSE_DELTA_VALUES;
        self.action_targets = on;
        self.tip_targets |= on;
        self
    }

    /// The mode.
    pub fn mode(&self) -> ExecMode {
        self.mode
    }

    /// Forgets every chunk (at an episode reset).
    pub fn reset(&mut self) {
        self.chunks.clear();
        self.queue.clear();
        self.pending = false;
    }

    /// Whether a new chunk should be computed from the observation of tick `tick`. Marks the
    /// request as in flight (async / open loop) when it returns true.
    pub fn wants_chunk(&mut self, tick: u64) -> bool {
        match self.mode {
            ExecMode::Ensemble { .. } => true,
            ExecMode::Async { refresh_below, .. } => {
                let queued = self.queue.range(tick..).count();
                let want = !self.pending && queued < refresh_below.max(1);
                self.pending |= want;
                want
            }
            ExecMode::OpenLoop => {
                let want = !self.pending && self.queue.range(tick..).next().is_none();
                self.pending |= want;
                want
            }
        }
    }

    /// Adds the chunk computed from tick `k0`'s observation, whose proprioception was `state_k0`
    /// (6 joint angles, rad, then the gripper), arriving at tick `now`.
    pub fn add_chunk(&mut self, k0: u64, values: &[f32], now: u64, state_k0: &[f32]) {
        self.stats.chunks += 1;
        self.pending = false;
        if now > k0 {
            self.stats.late_chunks += 1;
        }
        if values.len() < self.horizon * self.dim {
            return;
        }
        let Some(rows) = self.rows_of(&values[..self.horizon * self.dim], state_k0) else {
            self.stats.unposed += 1;
            return;
        };
        match self.mode {
            ExecMode::Ensemble { .. } => {
                let pos = self.chunks.iter().position(|(k, _)| *k > k0).unwrap_or(self.chunks.len());
                self.chunks.insert(pos, (k0, rows));
            }
            ExecMode::Async { keep_old, .. } => self.enqueue(k0, rows, now, keep_old),
            ExecMode::OpenLoop => {
                self.queue.clear();
                self.enqueue(k0, rows, now, 0.0)
            }
        }
    }

    /// A chunk's rows in the executor's space (`None`: tip targets without a tip pose).
    fn rows_of(&self, values: &[f32], state_k0: &[f32]) -> Option<Vec<Row>> {
        let rows = values.chunks_exact(self.dim);
        let targets: Vec<Option<Isometry3<f64>>> = if self.action_targets {
            rows.clone().map(|row| Some(crate::action_targets::target_pose(row))).collect()
        } else if self.tip_targets {
            integrate_chunk(&tip_pose(state_k0)?, rows.clone()).into_iter().map(Some).collect()
        } else {
            vec![None; self.horizon]
        };
        Some(
            rows.zip(targets)
                .map(|(row, target)| Row { target, values: row.iter().map(|v| f64::from(*v)).collect() })
                .collect(),
        )
    }

    fn enqueue(&mut self, k0: u64, rows: Vec<Row>, now: u64, keep_old: f64) {
        for (tick, row) in (k0..).zip(rows) {
            if tick < now {
                continue;
            }
            let merged = match self.queue.get(&tick) {
                Some(old) => Row::blend(&[(keep_old, old), (1.0 - keep_old, &row)]).unwrap_or(row),
                None => row,
            };
            self.queue.insert(tick, merged);
        }
    }

    /// The action for tick `tick` with the proprioception `state` measured at that tick, or
    /// `None` when no chunk covers it (the caller holds).
    pub fn action(&mut self, tick: u64, state: &[f32]) -> Option<Vec<f32>> {
        let row = match self.mode {
            ExecMode::Ensemble { decay } => {
                let h = self.horizon as u64;
                self.chunks.retain(|(k0, _)| k0 + h > tick);
                let covering: Vec<(f64, &Row)> = self
                    .chunks
                    .iter()
                    .filter(|(k0, _)| *k0 <= tick)
                    .enumerate()
                    .map(|(j, (k0, rows))| ((-decay * j as f64).exp(), &rows[(tick - k0) as usize]))
                    .collect();
                Row::blend(&covering)
            }
            ExecMode::Async { .. } | ExecMode::OpenLoop => {
                self.queue.retain(|t, _| *t >= tick);
                self.queue.remove(&tick)
            }
        };
        let Some(row) = row else {
            self.stats.starved_ticks += 1;
            return None;
        };
        if !self.tip_targets {
            return Some(row.emit(None));
        }
        let Some(tip) = tip_pose(state) else {
            self.stats.unposed += 1;
            return None;
        };
        Some(row.emit(Some(&tip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_ensembling_matches_hand_computation() {
        // H = 3, D = 1. Chunks from ticks 0, 1, 2.
        let mut ex = ChunkExecutor::new(ExecMode::Ensemble { decay: 0.01 }, ActionKind::JointTarget, 3, 1);
        ex.add_chunk(0, &[1.0, 2.0, 3.0], 0, &[]);
        assert_eq!(ex.action(0, &[]), Some(vec![1.0]));
        ex.add_chunk(1, &[10.0, 20.0, 30.0], 1, &[]);
        // Tick 1: rows 2.0 (oldest, w 1) and 10.0 (w e^-0.01).
        let w1 = (-0.01f64).exp();
        let a1 = (2.0 + 10.0 * w1) / (1.0 + w1);
        assert!((f64::from(ex.action(1, &[]).unwrap()[0]) - a1).abs() < 1e-5);
        ex.add_chunk(2, &[100.0, 200.0, 300.0], 2, &[]);
        // Tick 2: 3.0 (w 1), 20.0 (w e^-0.01), 100.0 (w e^-0.02).
        let w2 = (-0.02f64).exp();
        let a2 = (3.0 + 20.0 * w1 + 100.0 * w2) / (1.0 + w1 + w2);
        assert!((f64::from(ex.action(2, &[]).unwrap()[0]) - a2).abs() < 1e-4);
        // Tick 3: chunk 0 expired; 30.0 (now the oldest, w 1) and 200.0 (w e^-0.01).
        let a3 = (30.0 + 200.0 * w1) / (1.0 + w1);
        assert!((f64::from(ex.action(3, &[]).unwrap()[0]) - a3).abs() < 1e-4);
        assert_eq!(ex.stats.late_chunks, 0);
    }

    #[test]
    fn async_refresh_merges_overlap_and_counts_late_chunks() {
        let mut ex =
            ChunkExecutor::new(ExecMode::Async { refresh_below: 3, keep_old: 0.3 }, ActionKind::JointTarget, 4, 1);
        assert!(ex.wants_chunk(0));
        assert!(!ex.wants_chunk(0), "one request in flight");
        ex.add_chunk(0, &[1.0, 2.0, 3.0, 4.0], 0, &[]);
        assert_eq!(ex.action(0, &[]), Some(vec![1.0]));
        assert!(!ex.wants_chunk(1), "3 queued, not below 3");
        assert_eq!(ex.action(1, &[]), Some(vec![2.0]));
        assert!(ex.wants_chunk(2), "2 queued < 3");
        // Chunk computed at tick 2 arrives at tick 3: late; its row for tick 2 is dropped,
        // tick 3 merges 0.3·4 + 0.7·20.
        ex.add_chunk(2, &[10.0, 20.0, 30.0, 40.0], 3, &[]);
        assert_eq!(ex.stats.late_chunks, 1);
        let a = ex.action(3, &[]).unwrap()[0];
        assert!((a - (0.3 * 4.0 + 0.7 * 20.0)).abs() < 1e-5);
        assert_eq!(ex.action(4, &[]), Some(vec![30.0]));
        assert_eq!(ex.action(5, &[]), Some(vec![40.0]));
        assert_eq!(ex.action(6, &[]), None);
        assert_eq!(ex.stats.starved_ticks, 1);
    }

    #[test]
    fn open_loop_runs_each_chunk_to_its_end() {
        let mut ex = ChunkExecutor::new(ExecMode::OpenLoop, ActionKind::JointTarget, 2, 1);
        assert!(ex.wants_chunk(0));
        ex.add_chunk(0, &[1.0, 2.0], 0, &[]);
        assert!(!ex.wants_chunk(0));
        assert_eq!(ex.action(0, &[]), Some(vec![1.0]));
        assert!(!ex.wants_chunk(1));
        assert_eq!(ex.action(1, &[]), Some(vec![2.0]));
        assert!(ex.wants_chunk(2));
    }
}
