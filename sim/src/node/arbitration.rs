//! The sim node's side of command arbitration: the shared [`arm_command::Arbiter`] configured
//! from the node's settings and the arm model, and the arm's kinematics as its end-effector
//! solver.

use arm_command::{ArbiterConfig, EeDeltaSolver, DEFAULT_WATCHDOG_TIMEOUT_NS};
use bus::{EeDeltaCommand, Freshness, JointCommand, Message};

use crate::arm::ik::{apply_ee_delta, IkConfig};
use crate::arm::kinematics::ArmKinematics;
use crate::arm::spec::{ArmSpec, NUM_ARM_JOINTS};
use crate::env::{MAX_DELTA_RPY_RAD, MAX_DELTA_XYZ_M};

use super::SimNodeConfig;

/// The arbiter of a sim node with `config`: the driver's freshness bound (500 ms old, 100 ms
/// ahead) and watchdog (250 ms), the arm model's joint and velocity limits (the URDF's, equal to
/// the driver's WidowX 250 servo map), the control period, and chunk timing by the control clock:
/// the wall clock in real time (chunks back-dated by their age, as on the arm), simulated time
/// (control steps × period) in lockstep and as-fast-as-possible modes, where a chunk starts at
/// the step it arrives.
pub fn arbiter_config(config: &SimNodeConfig) -> ArbiterConfig {
    ArbiterConfig {
        freshness: Freshness::default(),
        watchdog_timeout_ns: DEFAULT_WATCHDOG_TIMEOUT_NS,
        limits: ArmSpec::default().joint_limits(),
        control_period_ns: control_period_ns(config.env.control_hz),
        backdate_chunks: real_time(config),
    }
}

/// Whether the node's control clock is the wall clock (neither lockstep nor as fast as possible).
pub(super) fn real_time(config: &SimNodeConfig) -> bool {
    !config.as_fast_as_possible && config.lockstep.is_none()
}

/// One control period at `control_hz`, ns.
pub(super) fn control_period_ns(control_hz: f64) -> u64 {
    (1e9 / control_hz) as u64
}

/// The arm's analytic kinematics as the arbiter's end-effector solver: deltas clamped per axis
/// like the env's ([`MAX_DELTA_XYZ_M`], [`MAX_DELTA_RPY_RAD`]), then damped-least-squares IK.
pub struct IkSolver {
    kinematics: ArmKinematics,
    ik: IkConfig,
}

impl IkSolver {
    /// A solver for `spec` with `ik` settings.
    pub fn new(spec: ArmSpec, ik: IkConfig) -> IkSolver {
        IkSolver { kinematics: ArmKinematics::new(spec), ik }
    }

    /// The WidowX 250 6DOF with the default IK settings.
    pub fn widowx250() -> IkSolver {
        IkSolver::new(ArmSpec::default(), IkConfig::default())
    }

    /// The arm's forward kinematics.
    pub fn kinematics(&self) -> &ArmKinematics {
        &self.kinematics
    }

    /// Joint targets (rad) that move the finger tip by `xyz_m` (m) and `rpy_rad` (rad), base
    /// frame, each axis clamped to the env's per-step bound, from `from_q_rad` (the best IK
    /// iterate when it does not converge).
    pub fn solve(
        &self,
        from_q_rad: &[f64; NUM_ARM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> [f64; NUM_ARM_JOINTS] {
        let xyz = xyz_m.map(|v| v.clamp(-MAX_DELTA_XYZ_M, MAX_DELTA_XYZ_M));
        let rpy = rpy_rad.map(|v| v.clamp(-MAX_DELTA_RPY_RAD, MAX_DELTA_RPY_RAD));
        apply_ee_delta(&self.kinematics, from_q_rad, xyz, rpy, &self.ik).q
    }
}

impl EeDeltaSolver for IkSolver {
    fn solve_ee_delta(
        &self,
        from_q_rad: &[f64; NUM_ARM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> Option<[f64; NUM_ARM_JOINTS]> {
        Some(self.solve(from_q_rad, xyz_m, rpy_rad))
    }
}

/// A direct command answering the lockstep wait.
pub(super) enum Answer {
    /// A `command/joint`.
    Joint(JointCommand),
    /// A `command/ee_delta`.
    EeDelta(EeDeltaCommand),
}

/// The newer (by stamp) of two messages of a topic.
pub(super) fn newer<M: Message>(a: Option<M>, b: Option<M>) -> Option<M> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.header().stamp_ns > a.header().stamp_ns { b } else { a }),
        (a, b) => a.or(b),
    }
}
