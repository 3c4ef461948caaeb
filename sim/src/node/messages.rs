//! Conversions between sim types and bus messages: observations to `joint_state`,
//! `scene_state` and camera frames, and bus messages back to observations and actions.

use bus::{
    ActionKind, CameraFrame, CameraIntrinsics, EpisodeEvent, EpisodeEventKind, ImageEncoding, JointState, ObjectPose,
    Pose, SceneState,
};
use nalgebra::Isometry3;

use crate::arm::spec::NUM_ARM_JOINTS;
use crate::camera::CameraImage;
use crate::env::{Action, ObjectState, Observation};
use crate::world::ArmState;

/// A bus [`Pose`] (metres, quaternion x y z w) from an isometry.
pub fn pose_msg(p: &Isometry3<f64>) -> Pose {
    let t = p.translation.vector;
    let q = p.rotation.into_inner();
    Pose { translation_m: [t.x, t.y, t.z], rotation_xyzw: [q.i, q.j, q.k, q.w] }
}

/// Joint names in `joint_state`: the six arm joints then `gripper`.
pub fn joint_state_names() -> Vec<String> {
    let spec = crate::arm::spec::ArmSpec::default();
    spec.joint_names().iter().map(|s| s.to_string()).chain(std::iter::once("gripper".to_string())).collect()
}

/// Builds the `joint_state` message of an observation.
pub fn joint_state_msg(obs: &Observation, names: &[String], stamp_ns: u64) -> JointState {
    let mut position: Vec<f64> = obs.arm.q_rad.to_vec();
    position.push(obs.arm.gripper_opening);
    let mut velocity: Vec<f64> = obs.arm.qd_rad_s.to_vec();
    velocity.push(0.0);
    let mut msg = JointState {
        header: Default::default(),
        name: names.to_vec(),
        position,
        velocity,
        effort: Vec::new(),
        ee_pose: Some(pose_msg(&obs.arm.tip_pose)),
    };
    msg.header.stamp_ns = stamp_ns;
    msg
}

/// Builds the RGB and depth `CameraFrame`s of a rendered image (the RGB buffer is moved, not copied).
pub fn camera_msgs(img: CameraImage, stamp_ns: u64) -> (CameraFrame, CameraFrame) {
    let k = img.intrinsics;
    let intrinsics = CameraIntrinsics { fx: k.fx, fy: k.fy, cx: k.cx, cy: k.cy };
    let mut rgb = CameraFrame {
        header: Default::default(),
        camera: img.name.clone(),
        width: img.width,
        height: img.height,
        encoding: ImageEncoding::Rgb8,
        data: img.rgb,
        intrinsics: intrinsics.clone(),
        extrinsics: pose_msg(&img.pose_world),
    };
    rgb.header.stamp_ns = stamp_ns;
    let mut depth_bytes = Vec::with_capacity(img.depth_m.len() * 4);
    for d in &img.depth_m {
        depth_bytes.extend_from_slice(&d.to_le_bytes());
    }
    let mut depth = CameraFrame {
        header: Default::default(),
        camera: format!("{}_depth", img.name),
        width: img.width,
        height: img.height,
        encoding: ImageEncoding::Depth32F,
        data: depth_bytes,
        intrinsics,
        extrinsics: rgb.extrinsics.clone(),
    };
    depth.header.stamp_ns = stamp_ns;
    (rgb, depth)
}

/// Turns a chunk row into an action; `None` if the row is malformed.
pub fn chunk_row_action(kind: ActionKind, row: &[f32]) -> Option<Action> {
    let r: Vec<f64> = row.iter().map(|v| *v as f64).collect();
    match kind {
        ActionKind::JointTarget if r.len() == NUM_ARM_JOINTS + 1 => {
            let mut q = [0.0; NUM_ARM_JOINTS];
            q.copy_from_slice(&r[..NUM_ARM_JOINTS]);
            Some(Action::Joint { q_rad: q, gripper: r[NUM_ARM_JOINTS] })
        }
        ActionKind::EeDelta if r.len() == 7 => {
            Some(Action::EeDelta { xyz_m: [r[0], r[1], r[2]], rpy_rad: [r[3], r[4], r[5]], gripper: r[6] })
        }
        _ => None,
    }
}

fn pose_from_msg(p: &Pose) -> Isometry3<f64> {
    let [x, y, z] = p.translation_m;
    let [qx, qy, qz, qw] = p.rotation_xyzw;
    Isometry3::from_parts(
        nalgebra::Translation3::new(x, y, z),
        nalgebra::UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(qw, qx, qy, qz)),
    )
}

/// Rebuilds an [`Observation`] (no images) from bus messages, for bus clients that run sim-side
/// logic such as the scripted expert. `None` when `joint_state` lacks the six joints, the
/// gripper or the end-effector pose.
pub fn observation_from_bus(
    js: &JointState,
    scene: Option<&SceneState>,
    instruction: &str,
    step: u32,
) -> Option<Observation> {
    if js.position.len() < NUM_ARM_JOINTS + 1 {
        return None;
    }
    let mut q_rad = [0.0; NUM_ARM_JOINTS];
    q_rad.copy_from_slice(&js.position[..NUM_ARM_JOINTS]);
    let mut qd_rad_s = [0.0; NUM_ARM_JOINTS];
    for (v, x) in qd_rad_s.iter_mut().zip(&js.velocity) {
        *v = *x;
    }
    let gripper_opening = js.position[NUM_ARM_JOINTS];
    let finger = crate::arm::spec::ArmSpec::default().gripper_opening_to_finger_m(gripper_opening);
    let objects = scene
        .map(|s| s.objects.iter().map(|o| ObjectState { name: o.name.clone(), pose: pose_from_msg(&o.pose) }).collect())
        .unwrap_or_default();
    Some(Observation {
        step,
        time_s: 0.0,
        arm: ArmState {
            q_rad,
            qd_rad_s,
            finger_m: [finger, finger],
            gripper_opening,
            tip_pose: pose_from_msg(js.ee_pose.as_ref()?),
        },
        objects,
        images: Vec::new(),
        instruction: instruction.to_string(),
    })
}

/// An `episode` event of `kind` at `step`, stamped `stamp_ns`; reward 0, not done, not
/// successful, not discarded (set those with struct update syntax).
pub fn episode_event(
    kind: EpisodeEventKind,
    episode: u64,
    seed: u64,
    step: u64,
    scene: &str,
    stamp_ns: u64,
) -> EpisodeEvent {
    let mut ev =
        EpisodeEvent { episode_index: episode, seed, kind, step, scene: scene.to_string(), ..Default::default() };
    ev.header.stamp_ns = stamp_ns;
    ev
}

/// Builds the `scene_state` message of an observation.
pub fn scene_state_msg(obs: &Observation, stamp_ns: u64) -> SceneState {
    let mut msg = SceneState {
        header: Default::default(),
        objects: obs.objects.iter().map(|o| ObjectPose { name: o.name.clone(), pose: pose_msg(&o.pose) }).collect(),
    };
    msg.header.stamp_ns = stamp_ns;
    msg
}
