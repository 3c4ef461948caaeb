//! Scripted experts: waypoint state machines over privileged object state, emitting
//! end-effector delta actions (so they drive the same action space a teleoperator does).
//!
//! Grasps approach from above with the gripper pointing down (tip x axis along world −z) and the
//! fingers aligned with the cube's faces. `noise` ∈ [0, 1] adds Gaussian noise to every action
//! (σ = 2 cm·noise per axis, 0.1 rad·noise per angle) and makes the grasp height and release
//! point imprecise, so noisy demonstrations include failures, mostly by running out of time.
//! Measured success over seeds 0–49 (pick_cube / place_in_bin / sort): noise 0 → 100% / 100% /
//! 100%, 0.3 → 86% / 72% / 40%, 0.35 → 40% / 18% / 0% (the README has every scene).

use nalgebra::{Isometry3, Point3, UnitQuaternion, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr_normal::standard_normal;

use crate::env::{Action, Observation, MAX_DELTA_RPY_RAD, MAX_DELTA_XYZ_M};
use crate::scene::{ExpertSpec, ObjectSpec, SceneSpec};

/// Gripper opening commanded to grasp (fully closed: the fingers stop on the cube).
const CLOSED: f64 = 0.0;
const OPEN: f64 = 1.0;
/// Position tolerance to consider a waypoint reached, metres.
const REACHED_M: f64 = 0.008;

/// Minimal Box–Muller standard normal (avoids a dependency for one function).
mod rand_distr_normal {
    use rand::Rng;
    /// One N(0, 1) sample.
    pub fn standard_normal(rng: &mut impl Rng) -> f64 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// One waypoint of the plan.
#[derive(Clone, Debug, PartialEq)]
struct Waypoint {
    /// Tip position target, world frame, metres.
    position: Point3<f64>,
    /// Tip orientation target.
    rotation: UnitQuaternion<f64>,
    /// Gripper opening while moving there.
    gripper: f64,
    /// Extra control steps to wait once reached (e.g. for the fingers to close).
    dwell: u32,
    /// Largest translation per control step, metres (slower for the final approach).
    max_step_m: f64,
    /// Follow this object's current pose (grasp approach): the position is then the object's
    /// centre plus `position` as an offset, and the yaw is re-aligned with its faces.
    track: Option<String>,
}

impl Waypoint {
    fn new(position: Point3<f64>, rotation: UnitQuaternion<f64>, gripper: f64, dwell: u32) -> Waypoint {
        Waypoint { position, rotation, gripper, dwell, max_step_m: MAX_DELTA_XYZ_M * 0.9, track: None }
    }

    fn slow(mut self, max_step_m: f64) -> Waypoint {
        self.max_step_m = max_step_m;
        self
    }

    fn tracking(mut self, object: &str) -> Waypoint {
        self.track = Some(object.to_string());
        self
    }
}

/// A scripted expert for one scene.
pub struct Expert {
    spec: ExpertSpec,
    objects: Vec<ObjectSpec>,
    noise: f64,
    rng: ChaCha8Rng,
    plan: Vec<Waypoint>,
    index: usize,
    dwell_left: u32,
    planned: bool,
}

/// The gripper pointing down with its fingers opening along the world direction at `yaw`+90°.
pub fn downward(yaw_rad: f64) -> UnitQuaternion<f64> {
    UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw_rad)
        * UnitQuaternion::from_axis_angle(&Vector3::y_axis(), std::f64::consts::FRAC_PI_2)
}

/// Of the cube's four grasp yaws (yaw + k·90°), the one closest to `reference_rad`.
pub fn grasp_yaw(cube_yaw_rad: f64, reference_rad: f64) -> f64 {
    let quarter = std::f64::consts::FRAC_PI_2;
    let k = ((reference_rad - cube_yaw_rad) / quarter).round();
    cube_yaw_rad + k * quarter
}

impl Expert {
    /// Creates the expert of `scene` with action noise `noise` ∈ [0, 1], seeded.
    pub fn new(scene: &SceneSpec, noise: f64, seed: u64) -> Expert {
        Expert {
            spec: scene.expert.clone(),
            objects: scene.objects.clone(),
            noise: noise.clamp(0.0, 1.0),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e4be),
            plan: Vec::new(),
            index: 0,
            dwell_left: 0,
            planned: false,
        }
    }

    /// Resets the plan for a new episode (the plan is built from the first observation).
    pub fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e4be);
        self.plan.clear();
        self.index = 0;
        self.dwell_left = 0;
        self.planned = false;
    }

    /// True once the last waypoint has been reached and held.
    pub fn finished(&self) -> bool {
        self.planned && self.index >= self.plan.len()
    }

    fn object_spec(&self, name: &str) -> Option<&ObjectSpec> {
        self.objects.iter().find(|o| o.name == name)
    }

    fn pose_of(obs: &Observation, name: &str) -> Isometry3<f64> {
        obs.object(name).map_or_else(Isometry3::identity, |o| o.pose)
    }

    fn pick_place_plan(&mut self, obs: &Observation, object: &str, bin: Option<&str>, lift_m: f64) -> Vec<Waypoint> {
        let cube = Self::pose_of(obs, object);
        let c = cube.translation.vector;
        let cube_yaw = cube.rotation.euler_angles().2;
        let yaw = grasp_yaw(cube_yaw, c.y.atan2(c.x));
        let rot = downward(yaw);
        let grasp_err = if self.noise > 0.0 { self.noise * 0.012 * standard_normal(&mut self.rng) } else { 0.0 };
        let grasp_z = (c.z - 0.008 + grasp_err).max(0.006);
        // Approach waypoints track the cube (offsets from its centre) until the fingers close.
        let mut plan = vec![
            Waypoint::new(Point3::new(0.0, 0.0, 0.08), rot, OPEN, 0).tracking(object),
            Waypoint::new(Point3::new(0.0, 0.0, grasp_z - c.z), rot, OPEN, 1).slow(0.02).tracking(object),
            Waypoint::new(Point3::new(c.x, c.y, grasp_z), rot, CLOSED, 4),
            Waypoint::new(Point3::new(c.x, c.y, c.z + lift_m), rot, CLOSED, 0).slow(0.03),
        ];
        if let Some(bin) = bin {
            let b = Self::pose_of(obs, bin).translation.vector;
            let height = self.object_spec(bin).map_or(0.04, |o| o.height_m);
            let above = height + 0.09;
            let release_err = if self.noise > 0.0 { self.noise * 0.02 * standard_normal(&mut self.rng) } else { 0.0 };
            let rot_bin = downward(grasp_yaw(yaw, b.y.atan2(b.x)));
            plan.push(Waypoint::new(Point3::new(b.x, b.y + release_err, above), rot_bin, CLOSED, 0).slow(0.03));
            plan.push(Waypoint::new(Point3::new(b.x, b.y + release_err, above - 0.03), rot_bin, CLOSED, 0).slow(0.02));
            plan.push(Waypoint::new(Point3::new(b.x, b.y + release_err, above - 0.03), rot_bin, OPEN, 3));
            plan.push(Waypoint::new(Point3::new(b.x, b.y, above + 0.03), rot_bin, OPEN, 0));
        }
        plan
    }

    fn build_plan(&mut self, obs: &Observation) {
        let spec = self.spec.clone();
        self.plan = match &spec {
            ExpertSpec::Reach { target } => {
                let t = Self::pose_of(obs, target).translation.vector;
                let rot = obs.arm.tip_pose.rotation;
                vec![Waypoint::new(Point3::from(t), rot, OPEN, 2)]
            }
            ExpertSpec::PickPlace { object, bin, lift_m } => self.pick_place_plan(obs, object, bin.as_deref(), *lift_m),
            ExpertSpec::Push { object, target } => {
                let c = Self::pose_of(obs, object).translation.vector;
                let t = Self::pose_of(obs, target).translation.vector;
                let dir = Vector3::new(t.x - c.x, t.y - c.y, 0.0);
                let dist = dir.norm().max(1e-6);
                let dir = dir / dist;
                let yaw = dir.y.atan2(dir.x);
                // Fingers closed, pointing down, the finger pads' flat side facing the push direction.
                let rot = downward(yaw + std::f64::consts::FRAC_PI_2);
                let size = self.object_spec(object).map_or(0.04, |o| o.size_m);
                let behind = Vector3::new(c.x, c.y, 0.0) - dir * (size / 2.0 + 0.03);
                let end = Vector3::new(t.x, t.y, 0.0) - dir * (size / 2.0 + 0.006);
                let z = 0.018;
                vec![
                    Waypoint::new(Point3::new(behind.x, behind.y, 0.08), rot, CLOSED, 0),
                    Waypoint::new(Point3::new(behind.x, behind.y, z), rot, CLOSED, 0).slow(0.02),
                    Waypoint::new(Point3::new(end.x, end.y, z), rot, CLOSED, 2).slow(0.02),
                    Waypoint::new(Point3::new(end.x, end.y, 0.08), rot, CLOSED, 0),
                ]
            }
            ExpertSpec::Sort { pairs } => {
                let mut plan = Vec::new();
                for [object, bin] in pairs {
                    plan.extend(self.pick_place_plan(obs, object, Some(bin), 0.10));
                }
                plan
            }
        };
        self.planned = true;
    }

    /// The next action for `obs`.
    pub fn act(&mut self, obs: &Observation) -> Action {
        if !self.planned {
            self.build_plan(obs);
        }
        let Some(mut wp) = self.plan.get(self.index).cloned() else {
            return self.noisy(Action::hold(self.plan.last().map_or(OPEN, |w| w.gripper)));
        };
        if let Some(object) = &wp.track {
            let pose = Self::pose_of(obs, object);
            let c = pose.translation.vector;
            let yaw = grasp_yaw(pose.rotation.euler_angles().2, c.y.atan2(c.x));
            wp.position = Point3::from(c + wp.position.coords);
            wp.rotation = downward(yaw);
        }
        let tip = obs.arm.tip_pose;
        let dp = wp.position - Point3::from(tip.translation.vector);
        let rot_err = wp.rotation * tip.rotation.inverse();
        let angle = rot_err.angle();
        let reached = dp.norm() < REACHED_M && angle < 0.05;
        if reached {
            if self.dwell_left == 0 && wp.dwell > 0 {
                self.dwell_left = wp.dwell;
            }
            if self.dwell_left > 0 {
                self.dwell_left -= 1;
            }
            if self.dwell_left == 0 {
                self.index += 1;
            }
        }
        // Move at most the per-step limits towards the waypoint.
        let scale = (wp.max_step_m.min(MAX_DELTA_XYZ_M) / dp.amax().max(1e-12)).min(1.0);
        let step = dp * scale;
        let rot_step = if angle > 1e-9 {
            let frac = (MAX_DELTA_RPY_RAD * 0.9 / angle).min(1.0);
            UnitQuaternion::identity().slerp(&rot_err, frac)
        } else {
            UnitQuaternion::identity()
        };
        let (r, p, y) = rot_step.euler_angles();
        self.noisy(Action::EeDelta { xyz_m: [step.x, step.y, step.z], rpy_rad: [r, p, y], gripper: wp.gripper })
    }

    fn noisy(&mut self, action: Action) -> Action {
        if self.noise <= 0.0 {
            return action;
        }
        match action {
            Action::EeDelta { mut xyz_m, mut rpy_rad, gripper } => {
                for v in &mut xyz_m {
                    *v += self.noise * 0.02 * standard_normal(&mut self.rng);
                }
                for v in &mut rpy_rad {
                    *v += self.noise * 0.1 * standard_normal(&mut self.rng);
                }
                let gripper = if self.rng.random_range(0.0..1.0) < 0.03 * self.noise { 1.0 - gripper } else { gripper };
                Action::EeDelta { xyz_m, rpy_rad, gripper }
            }
            other => other,
        }
    }
}
