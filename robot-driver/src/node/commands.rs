//! The driver node's side of command arbitration: what it drained from its command topics this
//! cycle, for the shared [`arm_command::Arbiter`], and its kinematics as the arbiter's
//! end-effector solver.

use arm_command::{EeDeltaSolver, Inbox};

use super::{ArmKinematics, Io};
use crate::servo_map::NUM_JOINTS;

/// The messages received since the last cycle: every `estop` message (and the queue's losses),
/// the newest of each command topic.
pub(super) fn drain_inbox(io: &Io) -> Inbox {
    Inbox {
        estop: io.estop.drain(),
        estop_dropped_total: io.estop.stats().dropped,
        joint: io.joint_cmd.latest(),
        ee_delta: io.ee_cmd.latest(),
        chunk: io.chunk_cmd.latest(),
    }
}

/// The node's [`ArmKinematics`] as the arbiter's end-effector solver.
pub(super) struct Solver<'a>(pub(super) &'a dyn ArmKinematics);

impl EeDeltaSolver for Solver<'_> {
    fn solve_ee_delta(
        &self,
        from_q_rad: &[f64; NUM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> Option<[f64; NUM_JOINTS]> {
        self.0.apply_ee_delta(from_q_rad, xyz_m, rpy_rad)
    }
}
