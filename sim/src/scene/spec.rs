//! Scene files: the data that describes a task (objects, randomisation, success, instruction).
//!
//! A scene is a TOML file (`sim/scenes/*.toml`). All positions are in the world frame: z up,
//! the table top at z = 0, the arm's base at the origin facing +x. Ranges are `[min, max]`
//! and are sampled uniformly per episode from the episode seed.

use serde::Deserialize;

/// A closed interval `[min, max]` sampled uniformly (a single value is written `[v, v]`).
pub type Range = [f64; 2];

/// One scene, as read from its TOML file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneSpec {
    /// Scene name (`pick_cube`, …). Must match the file stem for files in a scenes folder.
    pub name: String,
    /// One-line description shown by `armstack scene list`.
    #[serde(default)]
    pub description: String,
    /// Instruction template; `{name}` placeholders are filled from the episode's choices
    /// (`{cube_color}`, `{bin_color}`, …: see [`SceneSpec::choices`]).
    pub instruction: String,
    /// Episode length limit in control steps.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Arm joint configuration at reset (rad, 6 joints); default: a ready pose above the table.
    #[serde(default)]
    pub initial_joints_rad: Option<[f64; 6]>,
    /// Uniform noise added to each initial joint angle (rad).
    #[serde(default)]
    pub initial_joint_noise_rad: f64,
    /// Objects placed on the table.
    #[serde(default, rename = "object")]
    pub objects: Vec<ObjectSpec>,
    /// Named colour choices drawn per episode; objects refer to them as `color = "$cube_color"`.
    #[serde(default, rename = "choice")]
    pub choices: Vec<ChoiceSpec>,
    /// Conditions that must all hold for success.
    #[serde(rename = "success")]
    pub success: Vec<ConditionSpec>,
    /// Domain randomisation knobs.
    #[serde(default)]
    pub randomization: RandomizationSpec,
    /// Scripted expert used for demonstrations.
    pub expert: ExpertSpec,
}

fn default_max_steps() -> u32 {
    80
}

/// What an object is.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A dynamic cube that can be grasped and pushed.
    Cube,
    /// A fixed open-top bin (floor and four walls).
    Bin,
    /// A flat fixed target pad on the table (1 mm thick).
    Pad,
    /// A target point in the air, visible to the cameras, never collided with.
    Marker,
}

/// One object of a scene.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Unique name within the scene; conditions refer to objects by it.
    pub name: String,
    /// Object kind.
    pub kind: ObjectKind,
    /// Edge length (cube), inner width (bin), side (pad) or radius (marker), metres.
    pub size_m: f64,
    /// Wall height of a bin, metres.
    #[serde(default = "default_bin_height")]
    pub height_m: f64,
    /// Mass of a dynamic object, kg (before the mass randomisation scale).
    #[serde(default = "default_mass")]
    pub mass_kg: f64,
    /// A colour name (see [`crate::scene::color::named_color`]) or `$choice` to take an episode choice.
    pub color: String,
    /// Centre x range, metres (world frame).
    pub x_m: Range,
    /// Centre y range, metres.
    pub y_m: Range,
    /// Centre height above the table for markers, metres (cubes, bins and pads sit on the table).
    #[serde(default)]
    pub z_m: Range,
    /// Rotation about z, radians.
    #[serde(default)]
    pub yaw_rad: Range,
    /// Minimal horizontal distance to every earlier-placed object, metres (rejection sampling).
    #[serde(default)]
    pub min_separation_m: f64,
}

fn default_bin_height() -> f64 {
    0.04
}
fn default_mass() -> f64 {
    0.032
}

/// A named choice among colours, drawn per episode (without repetition within a group).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSpec {
    /// Placeholder name, used as `{name}` in the instruction and `$name` in object colours.
    pub name: String,
    /// Candidate colour names.
    pub options: Vec<String>,
    /// Choices with the same group never draw the same option in one episode.
    #[serde(default)]
    pub group: String,
}

/// A success condition. Each also defines a dense progress term in [0, 1].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionSpec {
    /// The finger-tip frame is within `tol_m` of the object's centre.
    TipNear {
        /// Target object name (usually a marker).
        object: String,
        /// Distance tolerance, metres.
        tol_m: f64,
    },
    /// The object's centre is at least `min_height_m` above its resting height.
    Lifted {
        /// Object name.
        object: String,
        /// Lift height, metres.
        min_height_m: f64,
    },
    /// The object rests inside the bin's inner footprint, below its rim.
    InBin {
        /// Object name.
        object: String,
        /// Bin name.
        bin: String,
    },
    /// The object's centre is within `tol_m` (horizontally) of the target's centre.
    NearXy {
        /// Object name.
        object: String,
        /// Target name (usually a pad).
        target: String,
        /// Distance tolerance, metres.
        tol_m: f64,
    },
}

/// Domain randomisation knobs. Every range defaults to "no randomisation".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomizationSpec {
    /// Friction coefficient of objects and fingers.
    pub friction: Range,
    /// Multiplier on object masses.
    pub mass_scale: Range,
    /// Multiplier on joint motor stiffness and damping (motor gains).
    pub motor_gain_scale: Range,
    /// Command latency, milliseconds: a command takes effect this long after it is given.
    pub latency_ms: Range,
    /// Light direction azimuth, radians (about z, 0 = from +x).
    pub light_azimuth_rad: Range,
    /// Light elevation above the horizon, radians.
    pub light_elevation_rad: Range,
    /// Ambient light level in [0, 1].
    pub ambient: Range,
    /// Per-channel additive colour jitter amplitude in [0, 1].
    pub color_jitter: f64,
}

impl Default for RandomizationSpec {
    fn default() -> Self {
        Self {
            friction: [0.9, 0.9],
            mass_scale: [1.0, 1.0],
            motor_gain_scale: [1.0, 1.0],
            latency_ms: [0.0, 0.0],
            light_azimuth_rad: [0.6, 0.6],
            light_elevation_rad: [0.9, 0.9],
            ambient: [0.35, 0.35],
            color_jitter: 0.0,
        }
    }
}

/// The scripted expert of a scene.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExpertSpec {
    /// Move the finger tip to a marker.
    Reach {
        /// Marker object name.
        target: String,
    },
    /// Grasp an object, lift it, and optionally place it in a bin / push it.
    PickPlace {
        /// Object to grasp.
        object: String,
        /// Bin to drop it in (`None`: just lift).
        #[serde(default)]
        bin: Option<String>,
        /// Lift height above the table, metres.
        #[serde(default = "default_lift")]
        lift_m: f64,
    },
    /// Push an object onto a target with closed fingers.
    Push {
        /// Object to push.
        object: String,
        /// Target pad.
        target: String,
    },
    /// Several pick-and-place tasks in a row: `pairs` of (object, bin).
    Sort {
        /// (object, bin) pairs in order.
        pairs: Vec<[String; 2]>,
    },
}

fn default_lift() -> f64 {
    0.12
}
