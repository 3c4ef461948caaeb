//! Action chunks played by the node's control clock.
//!
//! Row k of a chunk is due at the chunk's start + k × `period_ns` on the control clock; the chunk
//! starts when it arrives, back-dated by its age (wall-clock now − its stamp) when the control
//! clock runs with the wall clock, so a chunk that spent 30 ms on the wire plays its rows 30 ms
//! earlier, as they were planned. A cycle plays the newest due row (rows whose time passed
//! between two cycles are skipped, not replayed late); the chunk ends one period after its last
//! row. A chunk of 5 rows with a 200 ms period therefore plays for 1 s whatever the node's control
//! rate.

use bus::{ActionChunk, ActionKind};

use crate::NUM_JOINTS;

/// One row: 6 joint targets (rad) or an end-effector delta (x y z in m, roll pitch yaw in rad),
/// per the chunk's [`ActionKind`], then the gripper opening (0 closed … 1 open).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkRow {
    /// The joint targets (rad) or the delta (m, m, m, rad, rad, rad).
    pub values: [f64; NUM_JOINTS],
    /// Gripper opening, 0 … 1.
    pub gripper: f64,
}

/// Why a chunk cannot be played.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkFault {
    /// `values` does not hold `horizon × dim` values, or one is NaN or infinite.
    #[error("malformed chunk: {0}")]
    Malformed(String),
    /// A row is not 6 values plus the gripper.
    #[error("chunk rows have {dim} values, need {} (6 + gripper)", NUM_JOINTS + 1)]
    WrongDim {
        /// The chunk's `dim`.
        dim: u32,
    },
    /// No rows.
    #[error("chunk has no rows")]
    Empty,
    /// `period_ns` is 0: the rows would have no time to play.
    #[error("chunk period is 0 ns")]
    ZeroPeriod,
}

/// What a chunk has for the current cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowDue {
    /// Row `index` is due now (it was not played yet).
    Row {
        /// Row index in the chunk.
        index: usize,
        /// The row.
        row: ChunkRow,
    },
    /// The row due now was already played; the next is not due yet.
    Waiting,
    /// The chunk's time is over (one period after its last row).
    Finished,
}

/// A chunk being played.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkPlayer {
    kind: ActionKind,
    rows: Vec<ChunkRow>,
    period_ns: u64,
    /// Control-clock instant the chunk arrived, ns.
    arrival_ns: u64,
    /// How long before its arrival the chunk's row 0 was due, ns.
    backdate_ns: u64,
    /// The first row not played yet.
    next: usize,
}

impl ChunkPlayer {
    /// Starts `chunk`, which arrived at control-clock `arrival_ns`, with row 0 due `backdate_ns`
    /// before that (its age on the wall clock, or 0 when the control clock is simulated time).
    pub fn start(chunk: &ActionChunk, arrival_ns: u64, backdate_ns: u64) -> Result<ChunkPlayer, ChunkFault> {
        chunk.validate().map_err(|e| ChunkFault::Malformed(e.to_string()))?;
        if chunk.dim as usize != NUM_JOINTS + 1 {
            return Err(ChunkFault::WrongDim { dim: chunk.dim });
        }
        if chunk.horizon == 0 {
            return Err(ChunkFault::Empty);
        }
        if chunk.period_ns == 0 {
            return Err(ChunkFault::ZeroPeriod);
        }
        let rows = (0..chunk.horizon as usize)
            .filter_map(|i| chunk.row(i))
            .map(|r| ChunkRow { values: std::array::from_fn(|k| f64::from(r[k])), gripper: f64::from(r[NUM_JOINTS]) })
            .collect();
        Ok(ChunkPlayer { kind: chunk.kind, rows, period_ns: chunk.period_ns, arrival_ns, backdate_ns, next: 0 })
    }

    /// What the rows mean.
    pub fn kind(&self) -> ActionKind {
        self.kind
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the chunk has no rows (never true for a started chunk).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Time between rows, ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Whether every row was played or skipped (the last one may still be in its period).
    pub fn all_rows_played(&self) -> bool {
        self.next >= self.rows.len()
    }

    /// The row due at control-clock `control_ns`, marking it played.
    pub fn poll(&mut self, control_ns: u64) -> RowDue {
        let elapsed_ns = control_ns.saturating_sub(self.arrival_ns).saturating_add(self.backdate_ns);
        let due = usize::try_from(elapsed_ns / self.period_ns).unwrap_or(usize::MAX);
        if due >= self.rows.len() {
            RowDue::Finished
        } else if due >= self.next {
            self.next = due + 1;
            RowDue::Row { index: due, row: self.rows[due] }
        } else {
            RowDue::Waiting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn chunk(rows: usize, period_ns: u64) -> ActionChunk {
        let values = (0..rows).flat_map(|i| [i as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).collect();
        ActionChunk { horizon: rows as u32, dim: 7, period_ns, values, ..Default::default() }
    }

    fn index(due: RowDue) -> Option<usize> {
        match due {
            RowDue::Row { index, .. } => Some(index),
            _ => None,
        }
    }

    #[test]
    fn rows_are_due_by_the_clock_not_by_the_cycle() {
        // 5 rows, 200 ms apart, polled every 100 ms from its arrival at t = 10 s.
        let mut p = ChunkPlayer::start(&chunk(5, 200 * MS), 10_000 * MS, 0).expect("valid");
        let played: Vec<RowDue> = (0..12).map(|k| p.poll(10_000 * MS + k * 100 * MS)).collect();
        let rows: Vec<Option<usize>> = played.iter().map(|d| index(*d)).collect();
        assert_eq!(rows, [Some(0), None, Some(1), None, Some(2), None, Some(3), None, Some(4), None, None, None]);
        assert_eq!(played[1], RowDue::Waiting);
        assert_eq!(played[10], RowDue::Finished, "the chunk lasts 5 × 200 ms = 1 s");
        assert_eq!(played[9], RowDue::Waiting);
    }

    #[test]
    fn an_old_chunk_starts_where_its_plan_is_now_and_skips_missed_rows() {
        // Arrived 450 ms after it was stamped: rows 0 and 1 are past, row 2 is due at once.
        let mut p = ChunkPlayer::start(&chunk(5, 200 * MS), 1_000 * MS, 450 * MS).expect("valid");
        assert_eq!(index(p.poll(1_000 * MS)), Some(2));
        assert_eq!(p.poll(1_100 * MS), RowDue::Waiting);
        // A late cycle at +400 ms skips row 3 and plays row 4.
        assert!(!p.all_rows_played());
        assert_eq!(index(p.poll(1_400 * MS)), Some(4));
        assert!(p.all_rows_played());
        assert_eq!(p.poll(1_550 * MS), RowDue::Finished);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let mut short = chunk(3, 100 * MS);
        short.values.pop();
        assert!(matches!(ChunkPlayer::start(&short, 0, 0), Err(ChunkFault::Malformed(_))));
        let mut nan = chunk(3, 100 * MS);
        nan.values[8] = f32::NAN;
        assert!(matches!(ChunkPlayer::start(&nan, 0, 0), Err(ChunkFault::Malformed(_))));
        let wide = ActionChunk { horizon: 1, dim: 8, period_ns: MS, values: vec![0.0; 8], ..Default::default() };
        assert_eq!(ChunkPlayer::start(&wide, 0, 0), Err(ChunkFault::WrongDim { dim: 8 }));
        assert_eq!(ChunkPlayer::start(&chunk(0, MS), 0, 0), Err(ChunkFault::Empty));
        assert_eq!(ChunkPlayer::start(&chunk(3, 0), 0, 0), Err(ChunkFault::ZeroPeriod));
    }
}
