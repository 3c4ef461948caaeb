//! One simulated episode: a Rapier world with the arm, the table and a scene's objects.
//!
//! World frame: z up, table top at z = 0, arm base at the origin facing +x. The physics runs at
//! a fixed step ([`PhysicsConfig::physics_hz`]); the arm's motors follow the latest joint targets,
//! which take effect after the episode's command latency, at no more than each joint's velocity
//! limit (the URDF's `velocity`, π rad/s on the WidowX 250): the motor target moves toward the
//! commanded target by at most `velocity_limit_rad_s / physics_hz` per physics step, so a far
//! target becomes a ramp the critically damped motors track, as a servo's profile velocity does
//! on the arm; and each joint's velocity is capped at that limit after every step, as a servo's
//! velocity limit does (the coupled links and contacts could otherwise push a light joint past
//! it).

mod arm_body;
pub mod collision;
mod objects;

use std::collections::VecDeque;

use nalgebra::{Isometry3, Quaternion, Translation3, UnitQuaternion};
use rapier3d::prelude::*;

pub use arm_body::{ArmBody, MotorGains, ARM_URDF, FINGER_JOINTS};
pub use objects::{ObjectBody, BIN_WALL_M, TABLE_COLOR, TABLE_HALF_EXTENTS_M};

use crate::arm::kinematics::ArmKinematics;
use crate::arm::spec::{ArmSpec, NUM_ARM_JOINTS};
use crate::scene::SceneInstance;

/// Errors building or running a world.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The embedded URDF could not be loaded.
    #[error("arm URDF: {0}")]
    Urdf(String),
    /// A scene problem.
    #[error(transparent)]
    Scene(#[from] crate::scene::SceneError),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Physics settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhysicsConfig {
    /// Physics rate, Hz (the fixed step is 1 / physics_hz).
    pub physics_hz: f64,
    /// Solver iterations per step.
    pub solver_iterations: usize,
    /// Motor gains.
    pub gains: MotorGains,
    /// Contact spring natural frequency, Hz (rapier's default is 30 Hz).
    pub contact_natural_frequency_hz: f64,
    /// One Coulomb friction constraint per contact point (rapier's simplified model solves one
    /// per group of four).
    pub coulomb_friction: bool,
    /// Warm-start joint and motor impulses from the previous step.
    pub warmstart_joints: bool,
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        Self {
            physics_hz: 500.0,
            solver_iterations: 4,
            gains: MotorGains::default(),
            contact_natural_frequency_hz: 30.0,
            coulomb_friction: false,
            warmstart_joints: false,
        }
    }
}

/// The measured state of the arm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArmState {
    /// Joint angles, rad (chain order).
    pub q_rad: [f64; NUM_ARM_JOINTS],
    /// Joint velocities, rad/s.
    pub qd_rad_s: [f64; NUM_ARM_JOINTS],
    /// Finger travels, m (left, right).
    pub finger_m: [f64; 2],
    /// Gripper opening fraction, 0 closed … 1 open (mean of the fingers).
    pub gripper_opening: f64,
    /// Finger-tip frame (ee_gripper) in the world frame.
    pub tip_pose: Isometry3<f64>,
}

/// One episode's Rapier world.
pub struct SimWorld {
    /// The Rapier state (public so tools can inspect it).
    pub physics: PhysicsWorld,
    /// The arm's handles.
    pub arm: ArmBody,
    /// Objects, in scene order.
    pub objects: Vec<ObjectBody>,
    /// The table's collider (its top face is the plane z = 0).
    pub table: ColliderHandle,
    /// The sampled episode.
    pub instance: SceneInstance,
    /// Arm description.
    pub spec: ArmSpec,
    kinematics: ArmKinematics,
    config: PhysicsConfig,
    /// Joint targets (rad) and finger travel (m) in effect (after the latency).
    active_target: ([f64; NUM_ARM_JOINTS], f64),
    /// Joint targets the motors hold now, rad: `active_target` approached at the velocity limit.
    motor_q_rad: [f64; NUM_ARM_JOINTS],
    /// Largest motor-target change per physics step, rad (velocity limit × step).
    max_motor_step_rad: [f64; NUM_ARM_JOINTS],
    /// Joint velocity limits, rad/s (the URDF's): joints are never faster, whatever pushes them.
    max_speed_rad_s: [f64; NUM_ARM_JOINTS],
    /// Targets waiting for the command latency: (physics step at which they apply, targets).
    pending: VecDeque<(u64, [f64; NUM_ARM_JOINTS], f64)>,
    latency_steps: u64,
    steps: u64,
}

impl SimWorld {
    /// Builds the world for one sampled episode.
    pub fn new(instance: SceneInstance, config: PhysicsConfig) -> Result<SimWorld, SimError> {
        if !(config.physics_hz >= 50.0 && config.physics_hz <= 10_000.0) {
            return Err(SimError::Config(format!("physics_hz {} must be in [50, 10000]", config.physics_hz)));
        }
        let spec = ArmSpec::default();
        let mut physics = PhysicsWorld::new();
        physics.gravity = Vector::new(0.0, 0.0, -9.81);
        physics.integration_parameters.dt = (1.0 / config.physics_hz) as f32;
        let params = &mut physics.integration_parameters;
        params.num_solver_iterations = config.solver_iterations.max(1);
        params.contact_softness.natural_frequency = config.contact_natural_frequency_hz as f32;
        params.static_contact_softness.natural_frequency = 2.0 * config.contact_natural_frequency_hz as f32;
        if config.coulomb_friction {
            params.friction_model = rapier3d::dynamics::FrictionModel::Coulomb;
        }
        params.warmstart_joints = config.warmstart_joints;
        let table = objects::insert_table(&mut physics, instance.friction);
        let mut q0 = instance.initial_joints_rad;
        spec.clamp_to_limits(&mut q0);
        let open = spec.gripper_opening_to_finger_m(1.0);
        let arm = ArmBody::insert(&mut physics, &spec, &q0, &config.gains, instance.friction)?;
        let objects =
            instance.objects.iter().map(|o| objects::insert_object(&mut physics, o, instance.friction)).collect();
        let latency_steps = (instance.latency_ms * 1e-3 * config.physics_hz).round() as u64;
        let max_speed_rad_s: [f64; NUM_ARM_JOINTS] = std::array::from_fn(|i| spec.joints[i].velocity_limit_rad_s);
        let max_motor_step_rad = max_speed_rad_s.map(|v| v / config.physics_hz);
        let mut world = SimWorld {
            physics,
            arm,
            objects,
            table,
            kinematics: ArmKinematics::new(spec.clone()),
            spec,
            instance,
            config,
            active_target: (q0, open),
            motor_q_rad: q0,
            max_motor_step_rad,
            max_speed_rad_s,
            pending: VecDeque::new(),
            latency_steps,
            steps: 0,
        };
        world.apply_active_target();
        // One physics step fills the broad phase, so cameras can render the reset state.
        // (Measured pitfall, rapier 0.36: calling `detect_collisions` before the first `step`
        // keeps a multibody out of the island manager for good: it is never simulated.)
        world.physics.step();
        Ok(world)
    }

    /// The physics configuration.
    pub fn config(&self) -> &PhysicsConfig {
        &self.config
    }

    /// The arm's forward kinematics.
    pub fn kinematics(&self) -> &ArmKinematics {
        &self.kinematics
    }

    /// Physics steps taken since reset.
    pub fn physics_steps(&self) -> u64 {
        self.steps
    }

    /// Simulated time since reset, seconds.
    pub fn time_s(&self) -> f64 {
        self.steps as f64 / self.config.physics_hz
    }

    /// Commands new joint targets (rad, clamped to limits by the caller) and finger travel (m).
    /// They take effect after the episode's latency.
    pub fn command(&mut self, q_rad: [f64; NUM_ARM_JOINTS], finger_m: f64) {
        if self.latency_steps == 0 {
            self.active_target = (q_rad, finger_m);
            self.apply_active_target();
        } else {
            self.pending.push_back((self.steps + self.latency_steps, q_rad, finger_m));
        }
    }

    /// The targets in effect now (after the latency): joints (rad) and finger travel (m). The
    /// joint motors reach them at the velocity limit ([`SimWorld::motor_target`]).
    pub fn active_target(&self) -> ([f64; NUM_ARM_JOINTS], f64) {
        self.active_target
    }

    /// The joint targets the motors hold at this physics step, rad.
    pub fn motor_target(&self) -> [f64; NUM_ARM_JOINTS] {
        self.motor_q_rad
    }

    fn apply_active_target(&mut self) {
        let f = self.active_target.1;
        let q = self.motor_q_rad;
        self.arm.set_targets(&mut self.physics, &q, f, &self.config.gains, self.instance.motor_gain_scale);
    }

    /// Moves the motor targets one physics step toward the active target, each joint by at most
    /// its velocity limit × step; returns whether any moved.
    fn ramp_motor_targets(&mut self) -> bool {
        let mut moved = false;
        for i in 0..NUM_ARM_JOINTS {
            let (target, max_step) = (self.active_target.0[i], self.max_motor_step_rad[i]);
            let gap = target - self.motor_q_rad[i];
            if gap == 0.0 || !target.is_finite() {
                continue;
            }
            self.motor_q_rad[i] =
                if gap.abs() <= max_step { target } else { self.motor_q_rad[i] + max_step.copysign(gap) };
            moved = true;
        }
        moved
    }

    /// Advances the physics by `n` fixed steps.
    pub fn step_physics(&mut self, n: u32) {
        for _ in 0..n {
            let mut changed = false;
            while let Some((at, q, f)) = self.pending.front().copied() {
                if at > self.steps {
                    break;
                }
                self.pending.pop_front();
                self.active_target = (q, f);
                changed = true;
            }
            if self.ramp_motor_targets() || changed {
                self.apply_active_target();
            }
            self.physics.step();
            self.arm.cap_joint_speeds(&mut self.physics, &self.max_speed_rad_s);
            self.steps += 1;
        }
    }

    /// The measured arm state.
    pub fn arm_state(&self) -> ArmState {
        let (q, qd) = self.arm.joint_state(&self.physics);
        let finger_m = self.arm.finger_state(&self.physics);
        let mean = 0.5 * (finger_m[0] + finger_m[1]);
        ArmState {
            q_rad: q,
            qd_rad_s: qd,
            finger_m,
            gripper_opening: self.spec.finger_m_to_gripper_opening(mean).clamp(0.0, 1.0),
            tip_pose: self.kinematics.fk(&q),
        }
    }

    /// The world pose of the object `name` (its body frame: the centre for cubes).
    pub fn object_pose(&self, name: &str) -> Option<Isometry3<f64>> {
        let obj = self.objects.iter().find(|o| o.name == name)?;
        self.physics.bodies.get(obj.body).map(|rb| pose_to_isometry(rb.position()))
    }

    /// World pose of a rigid body.
    pub fn body_pose(&self, body: RigidBodyHandle) -> Option<Isometry3<f64>> {
        self.physics.bodies.get(body).map(|rb| pose_to_isometry(rb.position()))
    }
}

/// Converts a Rapier (glam, f32) pose into a nalgebra f64 isometry.
pub fn pose_to_isometry(p: &Pose) -> Isometry3<f64> {
    let t = p.translation;
    let r = p.rotation;
    Isometry3::from_parts(
        Translation3::new(t.x as f64, t.y as f64, t.z as f64),
        UnitQuaternion::from_quaternion(Quaternion::new(r.w as f64, r.x as f64, r.y as f64, r.z as f64)),
    )
}
