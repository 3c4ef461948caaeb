//! The arm in the Rapier world: the URDF loaded as one multibody, position motors on every
//! joint, and read-back of joint angles.

use std::path::Path;
use std::sync::OnceLock;

use rapier3d::prelude::*;
use rapier3d_urdf::{UrdfLoaderOptions, UrdfRobot};

use crate::arm::spec::{ArmSpec, NUM_ARM_JOINTS};

use super::{collision, SimError};

/// The arm's URDF, embedded so the simulator needs no files at run time.
pub const ARM_URDF: &str = include_str!("../../assets/widowx250.urdf");

/// Names of the two finger joints in the URDF, left then right.
pub const FINGER_JOINTS: [&str; 2] = ["left_finger", "right_finger"];

/// Position-motor gains of the arm joints (acceleration-based model, per unit of effective mass).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotorGains {
    /// Stiffness, 1/s² (natural frequency² of the tracking response).
    pub stiffness: f64,
    /// Damping, 1/s.
    pub damping: f64,
    /// Finger motor stiffness, 1/s².
    pub finger_stiffness: f64,
    /// Finger motor damping, 1/s.
    pub finger_damping: f64,
    /// Maximal finger force, N (the grip force limit).
    pub finger_max_force_n: f64,
    /// Finger motors apply forces (N per m of error) rather than mass-scaled accelerations.
    pub finger_force_based: bool,
}

impl Default for MotorGains {
    fn default() -> Self {
        // ω = 100 rad/s, ζ = 1. Rapier's acceleration-based motor is implicit and soft: the
        // realised convergence rate is erp/(1 + cfm) with erp = k/(dt·k + c) and
        // cfm = 1/(dt²·k + dt·c), ≈ 14 s⁻¹ here at dt = 2 ms (τ ≈ 70 ms). Measured: a 0.3 rad
        // step is tracked to < 2 mrad in 1 s on every joint. (ω = 2π·6 gave τ ≈ 0.4 s.)
        let omega = 100.0;
        Self {
            stiffness: omega * omega,
            damping: 2.0 * omega,
            // Measured (4 cm / 32 g cube, 500 Hz, 4 iterations, arm at ω = 100 rad/s): fingers
            // stop 0.7 mm into the cube, a lifted cube settles 0.6 mm in a 5 s hold, and the
            // pick/place/sort experts succeed 10/10. k = 8000 lost the cube when the arm
            // accelerated (1/10 place_in_bin); force-based fingers at 5–8 N crept 8–98 mm in 5 s.
            finger_stiffness: 30_000.0,
            finger_damping: 350.0,
            finger_max_force_n: 8.0,
            finger_force_based: false,
        }
    }
}

fn parsed_urdf() -> Result<&'static UrdfRobot, SimError> {
    static ROBOT: OnceLock<Result<UrdfRobot, String>> = OnceLock::new();
    let parsed = ROBOT.get_or_init(|| {
        let options = UrdfLoaderOptions {
            make_roots_fixed: true,
            // Gravity-compensated links, like a servo's position loop holding against gravity
            // (uncompensated PD motors sag ~1 cm at the tip); a held object's weight still
            // acts on the fingers through the contacts. Links never sleep: a sleeping
            // multibody ignores new motor targets (seen with rapier3d 0.36).
            rigid_body_blueprint: RigidBodyBuilder::dynamic().can_sleep(false).gravity_scale(0.0),
            ..UrdfLoaderOptions::default()
        };
        UrdfRobot::from_str(ARM_URDF, options, Path::new("."))
            .map(|(robot, urdf)| {
                // Keep joint names next to the loaded joints.
                let names: Vec<String> =
                    robot.joints.iter().map(|j| urdf.joints[j.urdf_joint_index].name.clone()).collect();
                JOINT_NAMES.get_or_init(|| names);
                robot
            })
            .map_err(|e| e.to_string())
    });
    parsed.as_ref().map_err(|e| SimError::Urdf(e.clone()))
}

static JOINT_NAMES: OnceLock<Vec<String>> = OnceLock::new();

/// Handles of the arm inside one world.
#[derive(Clone, Debug)]
pub struct ArmBody {
    /// The six arm joints in chain order.
    pub joints: [MultibodyJointHandle; NUM_ARM_JOINTS],
    /// Left and right finger joints.
    pub fingers: [MultibodyJointHandle; 2],
    /// Bodies of every arm link (for collision groups and rendering).
    pub links: Vec<RigidBodyHandle>,
    /// Finger link bodies, left then right.
    pub finger_bodies: [RigidBodyHandle; 2],
}

impl ArmBody {
    /// Inserts the arm into `world` at the origin, motors holding `q0` and fingers open.
    pub fn insert(
        world: &mut PhysicsWorld,
        spec: &ArmSpec,
        q0: &[f64; NUM_ARM_JOINTS],
        gains: &MotorGains,
        friction: f64,
    ) -> Result<ArmBody, SimError> {
        let robot = parsed_urdf()?.clone();
        let names = JOINT_NAMES.get().cloned().unwrap_or_default();
        // Inserted by hand rather than with `insert_using_multibody_joints`, which inserts the
        // joints without waking the bodies: a multibody that never wakes is never simulated.
        let link_bodies: Vec<(RigidBodyHandle, Vec<ColliderHandle>)> = robot
            .links
            .into_iter()
            .map(|link| {
                let body = world.bodies.insert(link.body);
                let colliders = link
                    .colliders
                    .into_iter()
                    .map(|c| world.colliders.insert_with_parent(c.collider, body, &mut world.bodies))
                    .collect();
                (body, colliders)
            })
            .collect();
        let mut joint_handles = Vec::with_capacity(robot.joints.len());
        for joint in robot.joints {
            let (b1, b2) = (link_bodies[joint.link1].0, link_bodies[joint.link2].0);
            let handle = world.multibody_joints.insert(b1, b2, joint.joint, true);
            if let Some(h) = handle {
                if let Some((mb, _)) = world.multibody_joints.get_mut(h) {
                    mb.set_self_contacts_enabled(false);
                }
            }
            joint_handles.push((handle, b2));
        }
        let find = |name: &str| -> Result<(MultibodyJointHandle, RigidBodyHandle), SimError> {
            let i = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| SimError::Urdf(format!("URDF has no joint named `{name}`")))?;
            let (joint, body) = joint_handles[i];
            let joint = joint.ok_or_else(|| SimError::Urdf(format!("joint `{name}` was not inserted")))?;
            Ok((joint, body))
        };
        let mut joints = Vec::with_capacity(NUM_ARM_JOINTS);
        for name in spec.joint_names() {
            joints.push(find(name)?.0);
        }
        let joints: [MultibodyJointHandle; NUM_ARM_JOINTS] =
            joints.try_into().map_err(|_| SimError::Urdf("the arm spec must name six joints".into()))?;
        let (left, left_body) = find(FINGER_JOINTS[0])?;
        let (right, right_body) = find(FINGER_JOINTS[1])?;
        let links: Vec<RigidBodyHandle> = link_bodies.iter().map(|(b, _)| *b).collect();
        let finger_bodies = [left_body, right_body];
        for (body, colliders) in &link_bodies {
            let is_finger = finger_bodies.contains(body);
            for c in colliders {
                if let Some(collider) = world.colliders.get_mut(*c) {
                    collider.set_collision_groups(if is_finger { collision::FINGER } else { collision::ARM });
                    collider.user_data = collision::ARM_COLOR_TAG;
                    collider.set_friction(friction as f32);
                }
            }
        }
        let arm = ArmBody { joints, fingers: [left, right], links, finger_bodies };
        arm.set_joint_positions(world, q0, spec.finger_max_m);
        for (i, q) in q0.iter().enumerate() {
            let effort = spec.joints[i].effort_nm;
            arm.configure_motor(
                world,
                arm.joints[i],
                JointAxis::AngX,
                MotorModel::AccelerationBased,
                *q,
                gains.stiffness,
                gains.damping,
                effort,
            );
        }
        for f in arm.fingers {
            arm.configure_motor(
                world,
                f,
                JointAxis::LinX,
                if gains.finger_force_based { MotorModel::ForceBased } else { MotorModel::AccelerationBased },
                spec.finger_max_m,
                gains.finger_stiffness,
                gains.finger_damping,
                gains.finger_max_force_n,
            );
        }
        Ok(arm)
    }

    #[allow(clippy::too_many_arguments)]
    fn configure_motor(
        &self,
        world: &mut PhysicsWorld,
        joint: MultibodyJointHandle,
        axis: JointAxis,
        model: MotorModel,
        target: f64,
        stiffness: f64,
        damping: f64,
        max_force: f64,
    ) {
        if let Some((mb, link_id)) = world.multibody_joints.get_mut(joint) {
            if let Some(link) = mb.link_mut(link_id) {
                link.joint
                    .data
                    .set_motor_model(axis, model)
                    .set_motor_position(axis, target as f32, stiffness as f32, damping as f32)
                    .set_motor_max_force(axis, max_force as f32);
            }
        }
    }

    /// Teleports the joints to `q` (rad) and both fingers to `finger_m`, zero velocity.
    pub fn set_joint_positions(&self, world: &mut PhysicsWorld, q: &[f64; NUM_ARM_JOINTS], finger_m: f64) {
        let Some((mb, _)) = world.multibody_joints.get_mut(self.joints[0]) else { return };
        // Displacements are relative: move each joint by (target − current).
        let mut disp = vec![0.0f32; mb.ndofs()];
        let set = |mb: &Multibody, link_id: usize, axis: usize, value: f64, disp: &mut Vec<f32>| {
            if let Some(link) = mb.link(link_id) {
                let dof = link.assembly_id();
                if dof < disp.len() {
                    disp[dof] = value as f32 - link.joint.coords()[axis];
                }
            }
        };
        for (i, handle) in self.joints.iter().enumerate() {
            if let Some(link_id) = world.multibody_joints.get(*handle).map(|(_, l)| l) {
                if let Some((mb, _)) = world.multibody_joints.get(*handle) {
                    set(mb, link_id, 3, q[i], &mut disp);
                }
            }
        }
        for handle in &self.fingers {
            if let Some((mb, link_id)) = world.multibody_joints.get(*handle) {
                set(mb, link_id, 0, finger_m, &mut disp);
            }
        }
        if let Some((mb, _)) = world.multibody_joints.get_mut(self.joints[0]) {
            mb.apply_displacements(&disp);
            mb.generalized_velocity_mut().fill(0.0);
            mb.forward_kinematics(&world.bodies, false);
            mb.update_rigid_bodies(&mut world.bodies, true);
        }
    }

    /// Sets motor targets: arm joints (rad) and each finger's travel (m).
    pub fn set_targets(
        &self,
        world: &mut PhysicsWorld,
        q: &[f64; NUM_ARM_JOINTS],
        finger_m: f64,
        gains: &MotorGains,
        gain_scale: f64,
    ) {
        for (i, handle) in self.joints.iter().enumerate() {
            if let Some((mb, link_id)) = world.multibody_joints.get_mut(*handle) {
                if let Some(link) = mb.link_mut(link_id) {
                    link.joint.data.set_motor_position(
                        JointAxis::AngX,
                        q[i] as f32,
                        (gains.stiffness * gain_scale) as f32,
                        (gains.damping * gain_scale) as f32,
                    );
                }
            }
        }
        for handle in &self.fingers {
            if let Some((mb, link_id)) = world.multibody_joints.get_mut(*handle) {
                if let Some(link) = mb.link_mut(link_id) {
                    link.joint.data.set_motor_position(
                        JointAxis::LinX,
                        finger_m as f32,
                        gains.finger_stiffness as f32,
                        gains.finger_damping as f32,
                    );
                }
            }
        }
    }

    /// Caps each arm joint's velocity at ±`max_rad_s[i]` (rad/s), as a servo's velocity limit
    /// does; returns how many joints were over their limit.
    pub fn cap_joint_speeds(&self, world: &mut PhysicsWorld, max_rad_s: &[f64; NUM_ARM_JOINTS]) -> usize {
        let mut capped = 0;
        for (i, handle) in self.joints.iter().enumerate() {
            let Some((mb, link_id)) = world.multibody_joints.get_mut(*handle) else { continue };
            let Some(dof) = mb.link(link_id).map(|link| link.assembly_id()) else { continue };
            let mut velocity = mb.generalized_velocity_mut();
            if dof < velocity.len() {
                let cap = max_rad_s[i] as f32;
                if velocity[dof].abs() > cap {
                    velocity[dof] = velocity[dof].clamp(-cap, cap);
                    capped += 1;
                }
            }
        }
        capped
    }

    /// Measured joint angles (rad) and velocities (rad/s), arm joints in chain order.
    pub fn joint_state(&self, world: &PhysicsWorld) -> ([f64; NUM_ARM_JOINTS], [f64; NUM_ARM_JOINTS]) {
        let mut q = [0.0; NUM_ARM_JOINTS];
        let mut v = [0.0; NUM_ARM_JOINTS];
        for (i, handle) in self.joints.iter().enumerate() {
            if let Some((mb, link_id)) = world.multibody_joints.get(*handle) {
                if let Some(link) = mb.link(link_id) {
                    q[i] = link.joint.coords()[3] as f64;
                    v[i] = mb.joint_velocity(link).get(0).copied().unwrap_or(0.0) as f64;
                }
            }
        }
        (q, v)
    }

    /// Measured finger travels (m), left then right.
    pub fn finger_state(&self, world: &PhysicsWorld) -> [f64; 2] {
        let mut out = [0.0; 2];
        for (i, handle) in self.fingers.iter().enumerate() {
            if let Some((mb, link_id)) = world.multibody_joints.get(*handle) {
                if let Some(link) = mb.link(link_id) {
                    out[i] = link.joint.coords()[0] as f64;
                }
            }
        }
        out
    }
}
