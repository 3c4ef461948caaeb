//! Raw observation features, identical for recorded datasets and live observations:
//! proprioception = 6 joint angles (rad) + gripper opening (0…1), as `observation.state`;
//! object state = per object x, y, z (m), sin(yaw), cos(yaw), as `observation.environment_state`;
//! images = 8-bit RGB, row-major, one per camera.

use sim::Observation;

/// Prefix of dataset camera features; the rest is the sim camera's name.
pub const IMAGE_KEY_PREFIX: &str = "observation.images.";

/// One observation in raw units, before normalisation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawObs {
    /// Proprioception.
    pub state: Vec<f32>,
    /// Object state (may be empty).
    pub env_state: Vec<f32>,
    /// The instruction.
    pub instruction: String,
    /// RGB images, in the policy's camera order (empty for state-only policies).
    pub images: Vec<Vec<u8>>,
}

/// Proprioception of a sim observation.
pub fn state_of(obs: &Observation) -> Vec<f32> {
    let mut v: Vec<f32> = obs.arm.q_rad.iter().map(|q| *q as f32).collect();
    v.push(obs.arm.gripper_opening as f32);
    v
}

/// Object state of a sim observation.
pub fn env_state_of(obs: &Observation) -> Vec<f32> {
    let mut v = Vec::with_capacity(5 * obs.objects.len());
    for o in &obs.objects {
        let t = o.pose.translation.vector;
        let yaw = o.pose.rotation.euler_angles().2;
        v.extend([t.x as f32, t.y as f32, t.z as f32, yaw.sin() as f32, yaw.cos() as f32]);
    }
    v
}

/// Object state of a `scene_state` message, the same layout as [`env_state_of`].
pub fn env_state_of_scene(scene: &bus::SceneState) -> Vec<f32> {
    let mut v = Vec::with_capacity(5 * scene.objects.len());
    for o in &scene.objects {
        let [x, y, z] = o.pose.translation_m;
        let [qx, qy, qz, qw] = o.pose.rotation_xyzw;
        let yaw = (2.0 * (qw * qz + qx * qy)).atan2(1.0 - 2.0 * (qy * qy + qz * qz));
        v.extend([x as f32, y as f32, z as f32, yaw.sin() as f32, yaw.cos() as f32]);
    }
    v
}

/// Component names of the object state of objects called `names`.
pub fn env_state_names(names: &[String]) -> Vec<String> {
    names.iter().flat_map(|n| ["x_m", "y_m", "z_m", "sin_yaw", "cos_yaw"].map(|c| format!("{n}.{c}"))).collect()
}

/// The sim camera name of a dataset image key (`observation.images.front` → `front`).
pub fn camera_name(key: &str) -> &str {
    key.strip_prefix(IMAGE_KEY_PREFIX).unwrap_or(key)
}

/// A sim observation as the policy's raw input; `cameras` are the policy's image keys. `None`
/// when a camera is missing.
pub fn raw_obs(obs: &Observation, cameras: &[String]) -> Option<RawObs> {
    let mut images = Vec::with_capacity(cameras.len());
    for key in cameras {
        let name = camera_name(key);
        images.push(obs.images.iter().find(|i| i.name == name)?.rgb.clone());
    }
    Some(RawObs { state: state_of(obs), env_state: env_state_of(obs), instruction: obs.instruction.clone(), images })
}
