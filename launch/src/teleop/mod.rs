//! Teleoperation: devices that turn a human's (or a script's) input into end-effector delta
//! commands, and the teleop node that publishes them on the bus at the control rate.
//!
//! A device is polled once per control tick with the latest observation; it answers with a
//! [`DeviceOutput`]: a normalised end-effector twist, a gripper target and episode-control
//! requests. The node scales the twist by the speed setting and the BridgeData per-step limits
//! and publishes `command/ee_delta`; episode requests go out on `command/episode`. Devices never
//! touch physics or the bus.

pub mod circle;
pub mod gamepad;
pub mod keyboard;
pub mod node;
pub mod scripted;

use bus::{EpisodeRequest, JointState, SceneState};

/// What a device sees each tick.
#[derive(Clone, Debug, Default)]
pub struct TeleopObservation {
    /// The newest `joint_state` (None until the robot has published one).
    pub joint_state: Option<JointState>,
    /// Episode index and step of the robot's current episode (from the `episode` topic).
    pub episode: Option<(u64, u64)>,
    /// The current instruction (from the `task` topic).
    pub instruction: String,
    /// The sim's privileged scene state with the same stamp as `joint_state` (None on a real robot).
    pub scene_state: Option<SceneState>,
}

/// What a device asks for in one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceOutput {
    /// Translational velocity command, each axis in −1…1 (fraction of the top speed), robot base
    /// frame (x forward, y left, z up).
    pub linear: [f64; 3],
    /// Rotational velocity command (roll, pitch, yaw about the base axes), each in −1…1.
    pub angular: [f64; 3],
    /// Gripper target, 0 closed … 1 open.
    pub gripper: f64,
    /// Multiplier on the top speed, changed by the speed keys/buttons (0.1 … 2.0).
    pub speed: f64,
    /// Episode-control requests raised this tick (end early, re-record, stop).
    pub requests: Vec<EpisodeRequest>,
    /// The device's own absolute end-effector delta for this tick, when it computes one (the
    /// scripted expert does: metres and radians, already within limits). Overrides `linear` and
    /// `angular` when present.
    pub absolute_delta: Option<([f64; 3], [f64; 3])>,
}

impl Default for DeviceOutput {
    fn default() -> Self {
        DeviceOutput {
            linear: [0.0; 3],
            angular: [0.0; 3],
            gripper: 1.0,
            speed: 1.0,
            requests: Vec::new(),
            absolute_delta: None,
        }
    }
}

/// A teleoperation input device.
pub trait TeleopDevice: Send {
    /// A short name for logs and the status line ("keyboard", "gamepad", "scripted").
    fn name(&self) -> &'static str;
    /// Reads pending input (never blocks for long: at most a few ms) and returns this tick's
    /// command. Called once per control tick.
    fn poll(&mut self, obs: &TeleopObservation) -> anyhow::Result<DeviceOutput>;
    /// Whether the device reads the sim's `scene_state` (the node then waits for each tick's).
    fn needs_scene_state(&self) -> bool {
        false
    }
    /// Called when the robot starts a new episode (after a reset): devices reset internal state
    /// (the scripted expert re-plans with the episode's seed).
    fn on_episode_start(&mut self, _episode: u64, _seed: u64) {}
    /// Draws a one-line status (end-effector pose, gripper, episode state) where the device's
    /// user can see it; devices without a user ignore it.
    fn show_status(&mut self, _line: &str) {}
}
