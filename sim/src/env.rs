//! The in-process environment: `reset(seed)` / `step(action)` at the control rate.
//!
//! Two action spaces, both with a gripper command in [0, 1] (0 closed, 1 open):
//! - [`Action::Joint`]: absolute joint targets, rad;
//! - [`Action::EeDelta`]: a finger-tip displacement in the base frame (|Δxyz| ≤ 5 cm per axis,
//!   |Δroll/pitch/yaw| ≤ 0.25 rad, as in BridgeData), solved by damped-least-squares IK from the
//!   previously commanded joint targets.
//!
//! Out-of-range actions are clamped and counted per env (a warning is logged once per process,
//! however many envs clamp); an action with a NaN or infinite value is rejected and the arm
//! holds its previous targets (also counted, and warned about once per process).

use std::sync::atomic::{AtomicBool, Ordering};

use nalgebra::Isometry3;

use crate::arm::ik::{apply_ee_delta, IkConfig};
use crate::arm::spec::NUM_ARM_JOINTS;
use crate::camera::{render, CameraImage, CameraSpec};
use crate::scene::{SceneInstance, SceneSpec};
use crate::task;
use crate::world::{ArmState, PhysicsConfig, SimError, SimWorld};

/// Set once the out-of-range warning was logged in this process.
static CLAMP_WARNED: AtomicBool = AtomicBool::new(false);
/// Set once the NaN/inf warning was logged in this process.
static REJECT_WARNED: AtomicBool = AtomicBool::new(false);

/// Per-step limit on end-effector translation deltas, metres per axis.
pub const MAX_DELTA_XYZ_M: f64 = 0.05;
/// Per-step limit on end-effector rotation deltas, radians per axis.
pub const MAX_DELTA_RPY_RAD: f64 = 0.25;

/// One control action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Absolute joint targets (rad, chain order) and gripper opening (0 closed … 1 open).
    Joint {
        /// Joint targets, rad.
        q_rad: [f64; NUM_ARM_JOINTS],
        /// Gripper opening in [0, 1].
        gripper: f64,
    },
    /// Finger-tip delta in the base frame and gripper opening.
    EeDelta {
        /// Translation, metres.
        xyz_m: [f64; 3],
        /// Rotation as roll, pitch, yaw about the base axes, radians.
        rpy_rad: [f64; 3],
        /// Gripper opening in [0, 1].
        gripper: f64,
    },
}

impl Action {
    /// A "hold" action: zero end-effector delta with the given gripper opening.
    pub fn hold(gripper: f64) -> Action {
        Action::EeDelta { xyz_m: [0.0; 3], rpy_rad: [0.0; 3], gripper }
    }

    /// True when every value is finite.
    pub fn is_finite(&self) -> bool {
        match self {
            Action::Joint { q_rad, gripper } => q_rad.iter().all(|v| v.is_finite()) && gripper.is_finite(),
            Action::EeDelta { xyz_m, rpy_rad, gripper } => {
                xyz_m.iter().chain(rpy_rad.iter()).all(|v| v.is_finite()) && gripper.is_finite()
            }
        }
    }
}

/// Environment settings.
#[derive(Clone, Debug)]
pub struct EnvConfig {
    /// The scene.
    pub scene: SceneSpec,
    /// Control rate, Hz (default 10).
    pub control_hz: f64,
    /// Physics settings (default 500 Hz).
    pub physics: PhysicsConfig,
    /// Cameras rendered into every observation (empty: state only).
    pub cameras: Vec<CameraSpec>,
    /// IK settings for end-effector actions.
    pub ik: IkConfig,
}

impl EnvConfig {
    /// Defaults for a scene: 10 Hz control, 500 Hz physics, no cameras.
    pub fn new(scene: SceneSpec) -> EnvConfig {
        EnvConfig {
            scene,
            control_hz: 10.0,
            physics: PhysicsConfig::default(),
            cameras: Vec::new(),
            ik: IkConfig::default(),
        }
    }

    /// Adds the front and wrist cameras at `width`×`height`.
    pub fn with_cameras(mut self, width: u32, height: u32) -> EnvConfig {
        self.cameras = vec![CameraSpec::front(width, height), CameraSpec::wrist(width, height)];
        self
    }

    /// Physics steps per control step.
    pub fn substeps(&self) -> Result<u32, SimError> {
        let n = self.physics.physics_hz / self.control_hz;
        // Written so that NaN rates are rejected too.
        let whole_multiple = self.control_hz > 0.0 && n >= 1.0 && (n - n.round()).abs() <= 1e-6;
        if !whole_multiple {
            return Err(SimError::Config(format!(
                "physics rate {} Hz must be a whole multiple of the control rate {} Hz",
                self.physics.physics_hz, self.control_hz
            )));
        }
        Ok(n.round() as u32)
    }
}

/// Pose of one scene object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectState {
    /// Object name.
    pub name: String,
    /// World pose.
    pub pose: Isometry3<f64>,
}

/// What the env returns after reset and each step.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Control steps since reset.
    pub step: u32,
    /// Simulated time since reset, s.
    pub time_s: f64,
    /// Measured arm state.
    pub arm: ArmState,
    /// Scene objects (privileged state, for state-only policies and experts).
    pub objects: Vec<ObjectState>,
    /// Rendered cameras (empty when the env has none).
    pub images: Vec<CameraImage>,
    /// The episode's instruction.
    pub instruction: String,
}

impl Observation {
    /// A flat state vector: joint angles (6, rad), gripper opening (1), tip position (3, m),
    /// then each object's position (3, m) and yaw as (sin, cos) (2).
    pub fn state_vector(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(10 + 5 * self.objects.len());
        v.extend(self.arm.q_rad.iter().map(|q| *q as f32));
        v.push(self.arm.gripper_opening as f32);
        v.extend(self.arm.tip_pose.translation.vector.iter().map(|x| *x as f32));
        for o in &self.objects {
            v.extend(o.pose.translation.vector.iter().map(|x| *x as f32));
            let yaw = o.pose.rotation.euler_angles().2;
            v.push(yaw.sin() as f32);
            v.push(yaw.cos() as f32);
        }
        v
    }

    /// The object called `name`.
    pub fn object(&self, name: &str) -> Option<&ObjectState> {
        self.objects.iter().find(|o| o.name == name)
    }
}

/// Counters of an env's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvCounters {
    /// Actions that had at least one value clamped.
    pub clamped_actions: u64,
    /// Actions rejected for NaN / infinite values.
    pub rejected_actions: u64,
    /// IK solves that did not converge (the best iterate was used).
    pub ik_failures: u64,
}

/// The result of one control step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Observation,
    /// Sparse reward: 1 on success, else 0.
    pub reward: f64,
    /// Dense reward: task progress in [0, 1].
    pub dense_reward: f64,
    /// The episode is over (success, failure or step limit).
    pub done: bool,
    /// The task succeeded.
    pub success: bool,
    /// The episode ended in a state from which the task cannot succeed (an object fell off the
    /// table, [`crate::task::FELL_BELOW_TABLE_M`]): a termination with reward 0, not a truncation.
    pub failed: bool,
    /// The step limit ended the episode without success.
    pub truncated: bool,
    /// How many of the scene's success conditions hold after the step (all on success): how far
    /// a multi-part task (sort: each cube in its bin) got.
    pub conditions_met: u32,
    /// This step's action was clamped.
    pub clamped: bool,
    /// This step's action was rejected (NaN) and the arm held.
    pub rejected: bool,
}

/// A single simulated environment.
pub struct Env {
    config: EnvConfig,
    substeps: u32,
    world: Option<SimWorld>,
    step: u32,
    target_q: [f64; NUM_ARM_JOINTS],
    target_gripper: f64,
    counters: EnvCounters,
}

impl Env {
    /// Creates an env (call [`Env::reset`] before stepping).
    pub fn new(config: EnvConfig) -> Result<Env, SimError> {
        let substeps = config.substeps()?;
        Ok(Env {
            config,
            substeps,
            world: None,
            step: 0,
            target_q: [0.0; NUM_ARM_JOINTS],
            target_gripper: 1.0,
            counters: EnvCounters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EnvConfig {
        &self.config
    }

    /// The current world (None before the first reset).
    pub fn world(&self) -> Option<&SimWorld> {
        self.world.as_ref()
    }

    /// Lifetime counters.
    pub fn counters(&self) -> EnvCounters {
        self.counters
    }

    /// Starts a new episode drawn from `seed`.
    pub fn reset(&mut self, seed: u64) -> Result<Observation, SimError> {
        let instance = SceneInstance::sample(&self.config.scene, seed);
        let world = SimWorld::new(instance, self.config.physics)?;
        let (q, _) = world.active_target();
        self.target_q = q;
        self.target_gripper = 1.0;
        self.step = 0;
        self.world = Some(world);
        Ok(self.observe())
    }

    /// Whether the current episode's task is achieved now (false before the first reset).
    pub fn success(&self) -> bool {
        self.world.as_ref().is_some_and(|w| task::evaluate(w, &self.config.scene).success)
    }

    /// The commanded joint targets (rad) and gripper (0…1).
    pub fn target(&self) -> ([f64; NUM_ARM_JOINTS], f64) {
        (self.target_q, self.target_gripper)
    }

    /// Applies `action` for one control period and returns the outcome.
    pub fn step(&mut self, action: &Action) -> Result<Step, SimError> {
        let Some(world) = self.world.as_mut() else {
            return Err(SimError::Config("step() called before reset()".into()));
        };
        let mut clamped = false;
        let mut rejected = false;
        if !action.is_finite() {
            rejected = true;
            self.counters.rejected_actions += 1;
            if !REJECT_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(?action, "action with NaN/inf rejected; the arm holds position (counted; warned once)");
            }
        } else {
            let spec = &world.spec;
            let (q_new, gripper) = match *action {
                Action::Joint { q_rad, gripper } => {
                    let mut q = q_rad;
                    clamped |= spec.clamp_to_limits(&mut q) > 0;
                    (q, gripper)
                }
                Action::EeDelta { xyz_m, rpy_rad, gripper } => {
                    let mut xyz = xyz_m;
                    let mut rpy = rpy_rad;
                    for v in &mut xyz {
                        clamped |= clamp_abs(v, MAX_DELTA_XYZ_M);
                    }
                    for v in &mut rpy {
                        clamped |= clamp_abs(v, MAX_DELTA_RPY_RAD);
                    }
                    let sol = apply_ee_delta(world.kinematics(), &self.target_q, xyz, rpy, &self.config.ik);
                    if !sol.converged {
                        self.counters.ik_failures += 1;
                    }
                    let mut q = sol.q;
                    spec.clamp_to_limits(&mut q);
                    (q, gripper)
                }
            };
            let g = gripper.clamp(0.0, 1.0);
            clamped |= g != gripper;
            self.target_q = q_new;
            self.target_gripper = g;
            if clamped {
                self.counters.clamped_actions += 1;
                if !CLAMP_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(?action, "action out of range: clamped (counted; warned once)");
                }
            }
        }
        let finger = world.spec.gripper_opening_to_finger_m(self.target_gripper);
        world.command(self.target_q, finger);
        world.step_physics(self.substeps);
        self.step += 1;
        let eval = task::evaluate(world, &self.config.scene);
        let truncated = !eval.success && !eval.failed && self.step >= self.config.scene.max_steps;
        let obs = self.observe();
        Ok(Step {
            obs,
            reward: if eval.success { 1.0 } else { 0.0 },
            dense_reward: eval.progress,
            done: eval.success || eval.failed || truncated,
            success: eval.success,
            failed: eval.failed,
            conditions_met: eval.conditions_met,
            truncated,
            clamped,
            rejected,
        })
    }

    fn observe(&self) -> Observation {
        let Some(world) = self.world.as_ref() else {
            return Observation {
                step: 0,
                time_s: 0.0,
                arm: ArmState {
                    q_rad: [0.0; NUM_ARM_JOINTS],
                    qd_rad_s: [0.0; NUM_ARM_JOINTS],
                    finger_m: [0.0; 2],
                    gripper_opening: 0.0,
                    tip_pose: Isometry3::identity(),
                },
                objects: Vec::new(),
                images: Vec::new(),
                instruction: String::new(),
            };
        };
        let images = self.config.cameras.iter().map(|cam| render(world, cam)).collect();
        let obs = Observation {
            step: self.step,
            time_s: world.time_s(),
            arm: world.arm_state(),
            objects: world
                .objects
                .iter()
                .filter_map(|o| world.body_pose(o.body).map(|pose| ObjectState { name: o.name.clone(), pose }))
                .collect(),
            images,
            instruction: world.instance.instruction.clone(),
        };
        obs
    }
}

fn clamp_abs(v: &mut f64, limit: f64) -> bool {
    let c = v.clamp(-limit, limit);
    // A value at the limit in single precision (0.05f32 is 0.0500000007) is at the limit, not
    // out of range: only a clamp past the rounding counts.
    let changed = (c - *v).abs() > limit * 1e-6;
    *v = c;
    changed
}
