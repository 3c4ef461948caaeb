//! Raw observation features, identical for recorded datasets and live observations:
//! proprioception = 6 joint angles (rad) + gripper opening (0…1), as `observation.state`;
//! object state = per object x, y, z (m), sin(yaw), cos(yaw), as `observation.environment_state`;
//! images = 8-bit RGB, row-major, one per camera.
//!
//! Derived finger-tip features ([`push_tip_features`]) are computed from those raw values (the
//! joints through forward kinematics), so training, evaluation and deployment derive them the
//! same way from what a dataset, the sim or the real arm reports.

use std::sync::OnceLock;

use nalgebra::Isometry3;
use sim::arm::spec::NUM_ARM_JOINTS;
use sim::arm::ArmKinematics;
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

/// Values per object in the object state (`x_m, y_m, z_m, sin_yaw, cos_yaw`).
pub const ENV_VALUES_PER_OBJECT: usize = 5;

/// Width of the finger-tip features for an object state of `env_state_dim` values: the tip
/// position (3, m), the tip orientation as the first two columns of its rotation matrix (6,
/// the continuous rotation representation of Zhou et al., CVPR 2019), and per object its
/// position minus the tip's (3, m).
pub fn tip_feature_dim(env_state_dim: usize) -> usize {
    9 + 3 * (env_state_dim / ENV_VALUES_PER_OBJECT)
}

/// Component names of the finger-tip features for objects called `names`, in
/// [`push_tip_features`]' order.
pub fn tip_feature_names(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> =
        ["tip.x_m", "tip.y_m", "tip.z_m", "tip.r00", "tip.r10", "tip.r20", "tip.r01", "tip.r11", "tip.r21"]
            .map(String::from)
            .to_vec();
    v.extend(names.iter().flat_map(|n| ["dx_m", "dy_m", "dz_m"].map(|c| format!("{n}_minus_tip.{c}"))));
    v
}

/// The WidowX 250 kinematics the tip features are computed with (the sim's arm, and the real
/// arm the driver serves).
fn kinematics() -> &'static ArmKinematics {
    static KINEMATICS: OnceLock<ArmKinematics> = OnceLock::new();
    KINEMATICS.get_or_init(ArmKinematics::default)
}

/// The finger-tip (`ee_gripper`) pose in the arm's base frame, which is the sim's world frame
/// (arm base at the origin), from the first six values of the proprioception (joint angles,
/// rad). `None` when `state` has fewer than six values.
pub fn tip_pose(state: &[f32]) -> Option<Isometry3<f64>> {
    let q: [f64; NUM_ARM_JOINTS] = std::array::from_fn(|i| state.get(i).map_or(f64::NAN, |v| f64::from(*v)));
    if q.iter().any(|v| v.is_nan()) {
        return None;
    }
    Some(kinematics().fk(&q))
}

/// Appends the finger-tip features (layout: [`tip_feature_dim`]) of proprioception `state` and
/// object state `env_state` (whole objects only) to `out`. With fewer than six joint values the
/// tip is taken at the origin with identity orientation, so widths never change.
pub fn push_tip_features(state: &[f32], env_state: &[f32], out: &mut Vec<f32>) {
    let pose = tip_pose(state).unwrap_or_else(Isometry3::identity);
    let p = pose.translation.vector;
    let r = pose.rotation.to_rotation_matrix();
    let m = r.matrix();
    out.extend([p.x, p.y, p.z, m[(0, 0)], m[(1, 0)], m[(2, 0)], m[(0, 1)], m[(1, 1)], m[(2, 1)]].map(|v| v as f32));
    for o in env_state.chunks_exact(ENV_VALUES_PER_OBJECT) {
        out.extend([o[0] - p.x as f32, o[1] - p.y as f32, o[2] - p.z as f32]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The features of a sim observation: the tip from the joints equals the sim's own tip pose,
    /// and the object-relative vector is the cube's position minus it.
    #[test]
    fn tip_features_of_a_sim_observation_match_the_sims_tip_pose() {
        let scene = sim::load_scene("pick_cube").expect("scene");
        let mut env = sim::Env::new(sim::EnvConfig::new(scene)).expect("env");
        let obs = env.reset(3).expect("reset");
        let (state, env_state) = (state_of(&obs), env_state_of(&obs));
        let mut f = Vec::new();
        push_tip_features(&state, &env_state, &mut f);
        assert_eq!(f.len(), tip_feature_dim(env_state.len()));
        assert_eq!(f.len(), tip_feature_names(&["cube".into()]).len());
        let tip = obs.arm.tip_pose.translation.vector;
        for k in 0..3 {
            assert!((f64::from(f[k]) - tip[k]).abs() < 1e-5, "tip {k}: {} vs {}", f[k], tip[k]);
        }
        let r = obs.arm.tip_pose.rotation.to_rotation_matrix();
        assert!((f64::from(f[3]) - r[(0, 0)]).abs() < 1e-5 && (f64::from(f[8]) - r[(2, 1)]).abs() < 1e-5);
        let cube = obs.objects[0].pose.translation.vector;
        for k in 0..3 {
            assert!((f64::from(f[9 + k]) - (cube[k] - tip[k])).abs() < 1e-5);
        }
        assert!(tip_pose(&state[..5]).is_none());
    }
}
