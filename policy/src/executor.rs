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

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

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

    /// Parses `ensemble`, `async` or `open-loop`.
    pub fn parse(name: &str, horizon: usize) -> Option<ExecMode> {
        match name {
            "ensemble" => Some(ExecMode::ensemble()),
            "async" => Some(ExecMode::asynchronous(horizon)),
            "open-loop" | "open_loop" => Some(ExecMode::OpenLoop),
            _ => None,
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
}

/// Chunk executor state for one robot.
#[derive(Clone, Debug)]
pub struct ChunkExecutor {
    mode: ExecMode,
    horizon: usize,
    dim: usize,
    /// Ensembling: live chunks (k0, rows), oldest first.
    chunks: VecDeque<(u64, Vec<f32>)>,
    /// Async / open loop: queued action per tick.
    queue: BTreeMap<u64, Vec<f32>>,
    /// Whether a chunk request is in flight (async / open loop).
    pending: bool,
    /// Counters.
    pub stats: ExecutorStats,
}

impl ChunkExecutor {
    /// An executor for chunks of `horizon` rows of `dim` values.
    pub fn new(mode: ExecMode, horizon: usize, dim: usize) -> ChunkExecutor {
        ChunkExecutor {
            mode,
            horizon,
            dim,
            chunks: VecDeque::new(),
            queue: BTreeMap::new(),
            pending: false,
            stats: ExecutorStats::default(),
        }
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

    /// Adds the chunk computed from tick `k0`'s observation, arriving at tick `now`.
    pub fn add_chunk(&mut self, k0: u64, values: &[f32], now: u64) {
        self.stats.chunks += 1;
        self.pending = false;
        if now > k0 {
            self.stats.late_chunks += 1;
        }
        if values.len() < self.horizon * self.dim {
            return;
        }
        match self.mode {
            ExecMode::Ensemble { .. } => {
                let pos = self.chunks.iter().position(|(k, _)| *k > k0).unwrap_or(self.chunks.len());
                self.chunks.insert(pos, (k0, values[..self.horizon * self.dim].to_vec()));
            }
            ExecMode::Async { keep_old, .. } => self.enqueue(k0, values, now, keep_old),
            ExecMode::OpenLoop => {
                self.queue.clear();
                self.enqueue(k0, values, now, 0.0)
            }
        }
    }

    fn enqueue(&mut self, k0: u64, values: &[f32], now: u64, keep_old: f64) {
        for i in 0..self.horizon {
            let tick = k0 + i as u64;
            if tick < now {
                continue;
            }
            let row = &values[i * self.dim..(i + 1) * self.dim];
            let merged: Vec<f32> = match self.queue.get(&tick) {
                Some(old) => old
                    .iter()
                    .zip(row)
                    .map(|(o, n)| (keep_old * f64::from(*o) + (1.0 - keep_old) * f64::from(*n)) as f32)
                    .collect(),
                None => row.to_vec(),
            };
            self.queue.insert(tick, merged);
        }
    }

    /// The action for tick `tick`, or `None` when no chunk covers it (the caller holds).
    pub fn action(&mut self, tick: u64) -> Option<Vec<f32>> {
        let out = match self.mode {
            ExecMode::Ensemble { decay } => {
                let h = self.horizon as u64;
                self.chunks.retain(|(k0, _)| k0 + h > tick);
                let mut sum = vec![0.0f64; self.dim];
                let mut total = 0.0;
                for (j, (k0, rows)) in self.chunks.iter().filter(|(k0, _)| *k0 <= tick).enumerate() {
                    let w = (-decay * j as f64).exp();
                    let i = (tick - k0) as usize;
                    for (s, v) in sum.iter_mut().zip(&rows[i * self.dim..(i + 1) * self.dim]) {
                        *s += w * f64::from(*v);
                    }
                    total += w;
                }
                (total > 0.0).then(|| sum.iter().map(|s| (s / total) as f32).collect())
            }
            ExecMode::Async { .. } | ExecMode::OpenLoop => {
                self.queue.retain(|t, _| *t >= tick);
                self.queue.remove(&tick)
            }
        };
        if out.is_none() {
            self.stats.starved_ticks += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_ensembling_matches_hand_computation() {
        // H = 3, D = 1. Chunks from ticks 0, 1, 2.
        let mut ex = ChunkExecutor::new(ExecMode::Ensemble { decay: 0.01 }, 3, 1);
        ex.add_chunk(0, &[1.0, 2.0, 3.0], 0);
        assert_eq!(ex.action(0), Some(vec![1.0]));
        ex.add_chunk(1, &[10.0, 20.0, 30.0], 1);
        // Tick 1: rows 2.0 (oldest, w 1) and 10.0 (w e^-0.01).
        let w1 = (-0.01f64).exp();
        let a1 = (2.0 + 10.0 * w1) / (1.0 + w1);
        assert!((f64::from(ex.action(1).unwrap()[0]) - a1).abs() < 1e-5);
        ex.add_chunk(2, &[100.0, 200.0, 300.0], 2);
        // Tick 2: 3.0 (w 1), 20.0 (w e^-0.01), 100.0 (w e^-0.02).
        let w2 = (-0.02f64).exp();
        let a2 = (3.0 + 20.0 * w1 + 100.0 * w2) / (1.0 + w1 + w2);
        assert!((f64::from(ex.action(2).unwrap()[0]) - a2).abs() < 1e-4);
        // Tick 3: chunk 0 expired; 30.0 (now the oldest, w 1) and 200.0 (w e^-0.01).
        let a3 = (30.0 + 200.0 * w1) / (1.0 + w1);
        assert!((f64::from(ex.action(3).unwrap()[0]) - a3).abs() < 1e-4);
        assert_eq!(ex.stats.late_chunks, 0);
    }

    #[test]
    fn async_refresh_merges_overlap_and_counts_late_chunks() {
        let mut ex = ChunkExecutor::new(ExecMode::Async { refresh_below: 3, keep_old: 0.3 }, 4, 1);
        assert!(ex.wants_chunk(0));
        assert!(!ex.wants_chunk(0), "one request in flight");
        ex.add_chunk(0, &[1.0, 2.0, 3.0, 4.0], 0);
        assert_eq!(ex.action(0), Some(vec![1.0]));
        assert!(!ex.wants_chunk(1), "3 queued, not below 3");
        assert_eq!(ex.action(1), Some(vec![2.0]));
        assert!(ex.wants_chunk(2), "2 queued < 3");
        // Chunk computed at tick 2 arrives at tick 3: late; its row for tick 2 is dropped,
        // tick 3 merges 0.3·4 + 0.7·20.
        ex.add_chunk(2, &[10.0, 20.0, 30.0, 40.0], 3);
        assert_eq!(ex.stats.late_chunks, 1);
        let a = ex.action(3).unwrap()[0];
        assert!((a - (0.3 * 4.0 + 0.7 * 20.0)).abs() < 1e-5);
        assert_eq!(ex.action(4), Some(vec![30.0]));
        assert_eq!(ex.action(5), Some(vec![40.0]));
        assert_eq!(ex.action(6), None);
        assert_eq!(ex.stats.starved_ticks, 1);
    }

    #[test]
    fn open_loop_runs_each_chunk_to_its_end() {
        let mut ex = ChunkExecutor::new(ExecMode::OpenLoop, 2, 1);
        assert!(ex.wants_chunk(0));
        ex.add_chunk(0, &[1.0, 2.0], 0);
        assert!(!ex.wants_chunk(0));
        assert_eq!(ex.action(0), Some(vec![1.0]));
        assert!(!ex.wants_chunk(1));
        assert_eq!(ex.action(1), Some(vec![2.0]));
        assert!(ex.wants_chunk(2));
    }
}
