//! The message types published on the bus. Every type has `header: Header` as its first field
//! and serializes to a CBOR map keyed by field name; enums serialize as their variant name string.
//! Every float field decodes through [`crate::wire_float`], so a CBOR integer is accepted for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::BusError;
use crate::header::{impl_message, Header};
use crate::topics;
use crate::wire_float;

/// A rigid transform: translation in metres and rotation as a unit quaternion (x, y, z, w).
/// The frames are stated by the field that holds the pose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Translation, metres.
    #[serde(deserialize_with = "wire_float::f64_array")]
    pub translation_m: [f64; 3],
    /// Rotation quaternion in (x, y, z, w) order, unit norm.
    #[serde(deserialize_with = "wire_float::f64_array")]
    pub rotation_xyzw: [f64; 4],
}

impl Default for Pose {
    /// The identity pose.
    fn default() -> Self {
        Self { translation_m: [0.0; 3], rotation_xyzw: [0.0, 0.0, 0.0, 1.0] }
    }
}

/// Measured arm state (topic `joint_state`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct JointState {
    /// Common header; `stamp_ns` is the measurement time.
    pub header: Header,
    /// Joint names, in chain order (`waist` … `wrist_rotate`, then `gripper`).
    pub name: Vec<String>,
    /// Positions: rad for revolute joints; for `gripper`, opening fraction 0 closed … 1 open.
    #[serde(deserialize_with = "wire_float::f64_vec")]
    pub position: Vec<f64>,
    /// Velocities, rad/s (gripper: fraction/s).
    #[serde(deserialize_with = "wire_float::f64_vec")]
    pub velocity: Vec<f64>,
    /// Efforts, N·m (may be empty when not measured).
    #[serde(deserialize_with = "wire_float::f64_vec")]
    pub effort: Vec<f64>,
    /// Finger-tip frame (`ee_gripper`) pose in the robot base frame, if computed.
    pub ee_pose: Option<Pose>,
}
impl_message!(JointState, topics::JOINT_STATE);

/// Pixel layout of a [`CameraFrame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ImageEncoding {
    /// 3 bytes per pixel, R G B, row-major.
    #[default]
    Rgb8,
    /// 4 bytes per pixel: depth in metres as little-endian f32, row-major.
    Depth32F,
    /// 1 byte per pixel, grey, row-major.
    Mono8,
}

impl ImageEncoding {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            ImageEncoding::Rgb8 => 3,
            ImageEncoding::Depth32F => 4,
            ImageEncoding::Mono8 => 1,
        }
    }
}

/// Pinhole intrinsics, pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct CameraIntrinsics {
    /// Focal length along x, pixels.
    #[serde(deserialize_with = "wire_float::f64")]
    pub fx: f64,
    /// Focal length along y, pixels.
    #[serde(deserialize_with = "wire_float::f64")]
    pub fy: f64,
    /// Principal point x, pixels.
    #[serde(deserialize_with = "wire_float::f64")]
    pub cx: f64,
    /// Principal point y, pixels.
    #[serde(deserialize_with = "wire_float::f64")]
    pub cy: f64,
}

/// One camera image (topic `camera/<name>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct CameraFrame {
    /// Common header; `stamp_ns` is the exposure time.
    pub header: Header,
    /// Camera name (the `<name>` of the key), e.g. `front`, `wrist`.
    pub camera: String,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Pixel layout of `data`.
    pub encoding: ImageEncoding,
    /// Raw pixels, row-major, `width * height * bytes_per_pixel` bytes (a CBOR byte string).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Pinhole intrinsics, pixels.
    pub intrinsics: CameraIntrinsics,
    /// Camera pose in the world frame; the camera looks along +z, x right, y down (OpenCV).
    pub extrinsics: Pose,
}
impl_message!(CameraFrame, topics::CAMERA, |m: &CameraFrame| m.data.len() + 512);

impl CameraFrame {
    /// Number of bytes `data` must hold for the declared size and encoding.
    pub fn expected_len(&self) -> usize {
        (self.width as usize) * (self.height as usize) * self.encoding.bytes_per_pixel()
    }

    /// Checks that `data` has exactly [`Self::expected_len`] bytes.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.data.len() != self.expected_len() {
            return Err(BusError::InvalidMessage {
                topic: topics::CAMERA,
                reason: format!(
                    "camera {:?}: {}x{} {:?} needs {} bytes, data has {}",
                    self.camera,
                    self.width,
                    self.height,
                    self.encoding,
                    self.expected_len(),
                    self.data.len()
                ),
            });
        }
        Ok(())
    }
}

/// Absolute joint targets (topic `command/joint`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct JointCommand {
    /// Common header; `stamp_ns` is when the command was issued.
    pub header: Header,
    /// Targets for the 6 arm joints in chain order, rad.
    #[serde(deserialize_with = "wire_float::f64_vec")]
    pub position: Vec<f64>,
    /// Gripper opening fraction, 0 closed … 1 open.
    #[serde(deserialize_with = "wire_float::f64")]
    pub gripper: f64,
    /// Stamp of the observation this command answers, ns (0: unknown). A lockstep robot uses
    /// it to tell a fresh command from a late answer to an older observation.
    #[serde(default)]
    pub obs_stamp_ns: u64,
}
impl_message!(JointCommand, topics::COMMAND_JOINT);

/// End-effector delta command, BridgeData style (topic `command/ee_delta`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct EeDeltaCommand {
    /// Common header; `stamp_ns` is when the command was issued.
    pub header: Header,
    /// Translation of the finger-tip frame, metres, in the robot base frame.
    #[serde(deserialize_with = "wire_float::f64_array")]
    pub delta_xyz_m: [f64; 3],
    /// Rotation as roll, pitch, yaw increments, rad, about the base frame axes.
    #[serde(deserialize_with = "wire_float::f64_array")]
    pub delta_rpy_rad: [f64; 3],
    /// Gripper opening fraction, 0 closed … 1 open (absolute, not a delta).
    #[serde(deserialize_with = "wire_float::f64")]
    pub gripper: f64,
    /// Stamp of the observation this command answers, ns (0: unknown). A lockstep robot uses
    /// it to tell a fresh command from a late answer to an older observation.
    #[serde(default)]
    pub obs_stamp_ns: u64,
}
impl_message!(EeDeltaCommand, topics::COMMAND_EE_DELTA);

/// What each row of an [`ActionChunk`] means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ActionKind {
    /// Row = 6 joint targets (rad) + gripper (0…1), like [`JointCommand`].
    #[default]
    JointTarget,
    /// Row = dxyz (m) + drpy (rad) + gripper (0…1), like [`EeDeltaCommand`].
    EeDelta,
}

/// A chunk of future actions computed by a policy (topic `command/chunk`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ActionChunk {
    /// Common header; `stamp_ns` is when the chunk was produced.
    pub header: Header,
    /// Meaning of each row.
    pub kind: ActionKind,
    /// Number of rows (future steps).
    pub horizon: u32,
    /// Values per row.
    pub dim: u32,
    /// Time between consecutive rows, ns.
    pub period_ns: u64,
    /// Row-major `horizon × dim` values (units per [`ActionKind`]).
    #[serde(deserialize_with = "wire_float::f32_vec")]
    pub values: Vec<f32>,
    /// `stamp_ns` of the observation the chunk was computed from (ns since the UNIX epoch).
    pub obs_stamp_ns: u64,
}
impl_message!(ActionChunk, topics::COMMAND_CHUNK, |m: &ActionChunk| m.values.len() * 5 + 256);

impl ActionChunk {
    /// Row `i` (the action for step `i` after `obs_stamp_ns`), or `None` past the horizon or if
    /// `values` is too short.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let dim = self.dim as usize;
        if i >= self.horizon as usize {
            return None;
        }
        let start = i.checked_mul(dim)?;
        self.values.get(start..start.checked_add(dim)?)
    }

    /// Checks `values.len() == horizon * dim` and that every value is finite.
    pub fn validate(&self) -> Result<(), BusError> {
        let expected = (self.horizon as u64) * (self.dim as u64);
        if self.values.len() as u64 != expected {
            return Err(BusError::InvalidMessage {
                topic: topics::COMMAND_CHUNK,
                reason: format!(
                    "values has {} entries, horizon {} x dim {} needs {}",
                    self.values.len(),
                    self.horizon,
                    self.dim,
                    expected
                ),
            });
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(BusError::InvalidMessage {
                topic: topics::COMMAND_CHUNK,
                reason: format!("values[{i}] (row {}) is {}", i / (self.dim.max(1) as usize), self.values[i]),
            });
        }
        Ok(())
    }
}

/// Lifecycle state of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NodeState {
    /// Initialising.
    #[default]
    Starting,
    /// Working normally.
    Running,
    /// Halted by an emergency stop.
    Estopped,
    /// Failed; see `message`.
    Error,
    /// Shut down cleanly.
    Stopped,
}

/// Periodic node status (topic `status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Status {
    /// Common header.
    pub header: Header,
    /// Node name, e.g. `sim`, `driver`, `policy`.
    pub node: String,
    /// Lifecycle state.
    pub state: NodeState,
    /// Human-readable detail (empty when nothing to say).
    pub message: String,
    /// Named counters (messages handled, faults, …), dimensionless.
    pub counters: BTreeMap<String, u64>,
}
impl_message!(Status, topics::STATUS);

/// Emergency stop (topic `estop`). Engaged stops all motion until released.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Estop {
    /// Common header.
    pub header: Header,
    /// `true` engages the e-stop, `false` releases it.
    pub engaged: bool,
    /// Why (shown to the operator).
    pub reason: String,
}
impl_message!(Estop, topics::ESTOP);

/// Kind of an [`EpisodeEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EpisodeEventKind {
    /// An episode began (after reset).
    #[default]
    Start,
    /// One environment step.
    Step,
    /// The episode ended.
    End,
}

/// Episode bookkeeping from the sim or a recorder (topic `episode`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct EpisodeEvent {
    /// Common header.
    pub header: Header,
    /// Episode number, from 0.
    pub episode_index: u64,
    /// Seed the episode was reset with.
    pub seed: u64,
    /// Start, step or end.
    pub kind: EpisodeEventKind,
    /// Step index within the episode, from 0.
    pub step: u64,
    /// Reward of this step (dimensionless).
    #[serde(deserialize_with = "wire_float::f64")]
    pub reward: f64,
    /// Whether the episode terminated at this step.
    pub done: bool,
    /// Whether the task was achieved.
    pub success: bool,
    /// Scene name.
    pub scene: String,
    /// On an `End` event: the episode was ended by a re-record request and must not be kept.
    #[serde(default)]
    pub discarded: bool,
    /// The episode terminated in a failure state (an object fell off the table): a real end, not
    /// a cut. Absent from older publishers (read as false: an end without success is then a cut).
    #[serde(default)]
    pub failed: bool,
}
impl_message!(EpisodeEvent, topics::EPISODE);

/// An episode-control request (topic `command/episode`), from a teleop device or an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EpisodeRequest {
    /// End the current episode now (kept) and reset with the next seed.
    #[default]
    EndEpisode,
    /// End the current episode, discard it, and reset with the same seed to record it again.
    Rerecord,
    /// End the current episode (kept) and stop recording.
    Stop,
}

/// Episode control (topic `command/episode`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct EpisodeControl {
    /// Common header.
    pub header: Header,
    /// What is asked.
    pub request: EpisodeRequest,
}
impl_message!(EpisodeControl, topics::COMMAND_EPISODE);

/// Pose of one scene object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ObjectPose {
    /// Object name from the scene file.
    pub name: String,
    /// Pose in the robot base (world) frame.
    pub pose: Pose,
}

/// Privileged scene state (topic `scene_state`): object poses, published by the sim with the same
/// stamp as the `joint_state` of the same tick. A real robot has no such topic; state-only
/// policies, scripted experts and the recorder's `observation.environment_state` use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct SceneState {
    /// Common header.
    pub header: Header,
    /// Objects in scene order.
    pub objects: Vec<ObjectPose>,
}
impl_message!(SceneState, topics::SCENE_STATE);

/// The current task (topic `task`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Task {
    /// Common header.
    pub header: Header,
    /// Natural-language instruction, e.g. "put the red cube in the bowl".
    pub instruction: String,
    /// Scene name.
    pub scene: String,
}
impl_message!(Task, topics::TASK);
