#![warn(missing_docs)]
//! The command arbiter and safety filter shared by the sim node and the arm driver node, so that
//! a policy validated in the sim meets the arm's rules.
//!
//! A node owns its bus I/O; once per control cycle it hands the arbiter what it drained from its
//! command topics ([`Inbox`]) and the cycle's clocks and measurement ([`Cycle`]), and gets back a
//! [`Decision`]: the safe joint target to send this cycle and what produced it. The arbiter is a
//! plain struct: no threads, no I/O, the same input gives the same decisions in either node.
//!
//! One concern per module:
//! - [`estop`]: the e-stop latch (engage wins, releases only when fresh and newer than the engage,
//!   a lost `estop` message engages it) and the freshness rule every command passes
//!   ([`bus::command_rules::Freshness`]: at most 500 ms old, at most 100 ms ahead);
//! - [`watchdog`]: commands were flowing and stopped for the timeout (default 250 ms) → hold;
//! - [`limits`]: joint limits and velocity limits as plain data, and the filter that clamps every
//!   target into the limits and rate-limits it (at most `max_velocity_rad_s × period` per cycle);
//! - [`chunk`]: action chunks played by the node's control clock, row k due at the chunk's start
//!   plus k × `period_ns`;
//! - [`arbiter`]: the per-cycle arbitration that ties them together, and its counters.

pub mod arbiter;
pub mod chunk;
pub mod estop;
pub mod limits;
pub mod watchdog;

pub use arbiter::{Arbiter, ArbiterConfig, ArbiterCounts, Cycle, Decision, EeDeltaSolver, Inbox, Source};
pub use chunk::{ChunkFault, ChunkPlayer, ChunkRow, RowDue};
pub use estop::{CommandRefusal, EstopCounts, EstopLatch, EstopTransition, ReleaseRefusal};
pub use limits::{CommandFilter, Filtered, JointLimit, JointLimits, LimitsError};
pub use watchdog::{Watchdog, DEFAULT_WATCHDOG_TIMEOUT_NS};

/// Number of arm joints a command targets (waist … wrist_rotate; the gripper is separate).
pub const NUM_JOINTS: usize = 6;
