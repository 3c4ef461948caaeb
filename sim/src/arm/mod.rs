//! The arm model: WidowX 250 6DOF data ([`spec`]), forward kinematics and Jacobian
//! ([`kinematics`]) and damped-least-squares inverse kinematics ([`ik`]).
//!
//! The physical model lives in `sim/assets/widowx250.urdf` (loaded as a Rapier multibody); the
//! code here is the arm's own analytic model, used for end-effector commands, experts and checks.
//! All lengths are metres, angles radians, poses are of the finger-tip frame (`ee_gripper`) in
//! `base_link`.

pub mod ik;
pub mod kinematics;
pub mod spec;

pub use ik::{apply_ee_delta, solve_ik, IkConfig, IkSolution};
pub use kinematics::{ArmKinematics, NUM_LINK_FRAMES};
pub use spec::{
    ArmSpec, ArmSpecError, JointSpec, ARM_JOINT_NAMES, EE_GRIPPER_LINK, LEFT_FINGER_JOINT, NUM_ARM_JOINTS,
    RIGHT_FINGER_JOINT,
};
