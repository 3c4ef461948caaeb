//! Scripted experts: waypoint state machines over privileged object state, emitting
//! end-effector delta actions (so they drive the same action space a teleoperator does).
//!
//! Grasps approach from above with the gripper pointing down (tip x axis along world −z) and the
//! fingers aligned with the cube's faces. How the expert demonstrates is a [`DemoQuality`]:
//! - `expert`: a correct plan varied per episode (approach height, speed, small offsets; one
//!   consistent grasp-face rule and no pauses), no per-step noise;
//! - `mixed`: expert episodes, a seeded share of which contain one [`Mistake`] (missed grasp,
//!   dropped object, wrong target, hesitation, overshoot), recorded per episode;
//! - `noisy`: the fixed clean plan with Gaussian noise on every action (σ = 2 cm·noise per
//!   axis, 0.1 rad·noise per angle, 3 %·noise gripper flips) and imprecise grasp heights and
//!   release points.
//!
//! Once a waypoint is reached its dwell runs to the end even if a noisy step moves the tip away
//! again, a noisy expert counts a waypoint reached once it commanded the step that gets there,
//! and a finished plan holds at its last waypoint, so noise turns into mistakes rather than
//! dithering and time-outs. Every emitted action is already inside the env's per-step limits,
//! so the recorded action is the executed one.
//! Measured success over seeds 0–49 (pick_cube / place_in_bin / sort), noisy level:
//! noise 0 → 100% / 100% / 98%, 0.3 → 96% / 90% / 86% (before the fix 82% / 66% / 32%, and its
//! successes took twice the clean length), 1 → 48% / 24% / 0% (the README has every scene and level).

mod plan;
mod quality;

use nalgebra::{Point3, UnitQuaternion, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use quality::{DemoQuality, Mistake, QualityError, DEFAULT_MISTAKE_RATE};

use crate::env::{Action, Observation, MAX_DELTA_RPY_RAD, MAX_DELTA_XYZ_M};
use crate::scene::{ExpertSpec, ObjectSpec, SceneSpec};
use plan::{pose_of, Planner, Variation, Waypoint};

/// Gripper opening commanded to grasp (fully closed: the fingers stop on the cube).
const CLOSED: f64 = 0.0;
const OPEN: f64 = 1.0;
/// Position tolerance to consider a waypoint reached, metres.
const REACHED_M: f64 = 0.008;
/// Steps a demonstrator holds its last waypoint after the plan is done, watching the outcome,
/// before it ends the recording ([`Expert::stopped`]); the longest settling any scene's success
/// needs after the plan's last waypoint (a released cube dropping into its bin) is shorter.
pub const STOP_AFTER_PLAN_STEPS: u32 = 5;
/// Orientation tolerance to consider a waypoint reached, rad.
const REACHED_RAD: f64 = 0.05;
/// Seed mixers of the noise stream (the noisy level) and the plan stream (variation, mistakes).
const NOISE_STREAM: u64 = 0x5eed_e4be;
const PLAN_STREAM: u64 = 0x91a2_7c0d_e5e1;

/// Minimal Box–Muller standard normal (avoids a dependency for one function).
mod normal {
    use rand::Rng;
    /// One N(0, 1) sample.
    pub fn standard_normal(rng: &mut impl Rng) -> f64 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A scripted expert for one scene.
pub struct Expert {
    spec: ExpertSpec,
    objects: Vec<ObjectSpec>,
    quality: DemoQuality,
    /// Per-step noise (noisy level).
    rng: ChaCha8Rng,
    /// Variation and mistake draws, and the plan's own choices.
    plan_rng: ChaCha8Rng,
    variation: Variation,
    mistake: Mistake,
    plan: Vec<Waypoint>,
    index: usize,
    /// Steps of the current waypoint's dwell still to hold, once it was reached.
    dwell_left: Option<u32>,
    /// The previous step's clean (noise-free) action would have reached the current waypoint.
    commanded_reach: bool,
    planned: bool,
    /// Steps acted since the plan was done.
    steps_after_plan: u32,
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

/// `action` with every component inside the env's limits (translation ±[`MAX_DELTA_XYZ_M`] per
/// axis, rotation ±[`MAX_DELTA_RPY_RAD`] per angle, gripper in [0, 1]).
pub fn within_limits(action: Action) -> Action {
    match action {
        Action::EeDelta { xyz_m, rpy_rad, gripper } => Action::EeDelta {
            xyz_m: xyz_m.map(|v| v.clamp(-MAX_DELTA_XYZ_M, MAX_DELTA_XYZ_M)),
            rpy_rad: rpy_rad.map(|v| v.clamp(-MAX_DELTA_RPY_RAD, MAX_DELTA_RPY_RAD)),
            gripper: gripper.clamp(0.0, 1.0),
        },
        other => other,
    }
}

impl Expert {
    /// The noisy-level expert of `scene` with action noise `noise` ∈ [0, 1], seeded (noise 0:
    /// the deterministic clean expert).
    pub fn new(scene: &SceneSpec, noise: f64, seed: u64) -> Expert {
        Expert::with_quality(scene, DemoQuality::noisy(noise), seed)
    }

    /// The expert of `scene` demonstrating at `quality`, seeded; the first episode is drawn from
    /// `seed` as by [`Expert::reset`].
    pub fn with_quality(scene: &SceneSpec, quality: DemoQuality, seed: u64) -> Expert {
        let mut expert = Expert {
            spec: scene.expert.clone(),
            objects: scene.objects.clone(),
            quality,
            rng: ChaCha8Rng::seed_from_u64(seed ^ NOISE_STREAM),
            plan_rng: ChaCha8Rng::seed_from_u64(seed ^ PLAN_STREAM),
            variation: Variation::NOMINAL,
            mistake: Mistake::None,
            plan: Vec::new(),
            index: 0,
            dwell_left: None,
            commanded_reach: false,
            planned: false,
            steps_after_plan: 0,
        };
        expert.reset(seed);
        expert
    }

    /// Resets the plan for a new episode and draws its variation and mistake from `seed` (the
    /// plan itself is built from the first observation).
    pub fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ NOISE_STREAM);
        self.plan_rng = ChaCha8Rng::seed_from_u64(seed ^ PLAN_STREAM);
        let (variation, mistake) = match self.quality {
            DemoQuality::Noisy { .. } => (Variation::NOMINAL, Mistake::None),
            DemoQuality::Expert => (Variation::sample(&mut self.plan_rng), Mistake::None),
            DemoQuality::Mixed { mistake_rate } => {
                let variation = Variation::sample(&mut self.plan_rng);
                let kinds = Planner::applicable(&self.spec);
                let mistake = if self.plan_rng.random_range(0.0..1.0) < mistake_rate && !kinds.is_empty() {
                    kinds[self.plan_rng.random_range(0..kinds.len())]
                } else {
                    Mistake::None
                };
                (variation, mistake)
            }
        };
        self.variation = variation;
        self.mistake = mistake;
        self.plan.clear();
        self.index = 0;
        self.dwell_left = None;
        self.commanded_reach = false;
        self.planned = false;
        self.steps_after_plan = 0;
    }

    /// The mistake `scene`'s expert at `quality` makes in the episode drawn from `seed` (a
    /// recorder that is not the expert's process learns the episode's mistake from its seed).
    pub fn planned_mistake(scene: &SceneSpec, quality: DemoQuality, seed: u64) -> Mistake {
        Expert::with_quality(scene, quality, seed).mistake()
    }

    /// The demonstration quality.
    pub fn quality(&self) -> DemoQuality {
        self.quality
    }

    /// The mistake the current episode contains ([`Mistake::None`] for expert episodes).
    pub fn mistake(&self) -> Mistake {
        self.mistake
    }

    /// True once the last waypoint has been reached and held.
    pub fn finished(&self) -> bool {
        self.planned && self.index >= self.plan.len()
    }

    /// True once the plan is done and its last waypoint was held [`STOP_AFTER_PLAN_STEPS`]
    /// more steps: the demonstrator ends the recording here, as a person at the keyboard does
    /// once the attempt is over (an episode still running then failed: the scene's success
    /// would have ended it). Recording on would fill the dataset with the arm standing still
    /// until the time limit, which behaviour cloning learns as an action like any other.
    /// The noisy level never stops: at its last waypoint it keeps correcting its noisy steps,
    /// and such corrections still succeed now and then (reach at noise 1: 7 of 50 episodes).
    pub fn stopped(&self) -> bool {
        self.quality.noise() == 0.0 && self.finished() && self.steps_after_plan >= STOP_AFTER_PLAN_STEPS
    }

    fn build_plan(&mut self, obs: &Observation) {
        let mut planner = Planner {
            objects: &self.objects,
            rng: &mut self.plan_rng,
            noise: self.quality.noise(),
            variation: self.variation,
            mistake: self.mistake,
        };
        // The noisy level draws its grasp and release errors from the noise stream, as always.
        if let DemoQuality::Noisy { .. } = self.quality {
            planner.rng = &mut self.rng;
        }
        self.plan = planner.plan(&self.spec, obs);
        self.planned = true;
    }

    /// Waypoint `index` with tracked targets resolved against `obs` (latched ones are resolved
    /// once and kept).
    fn resolve_waypoint(&mut self, index: usize, obs: &Observation) -> Option<Waypoint> {
        let yaw_bias = self.variation.yaw_bias_rad;
        let wp = self.plan.get_mut(index)?;
        let mut resolved = wp.clone();
        if let Some(object) = &wp.track {
            let pose = pose_of(obs, object);
            let c = pose.translation.vector;
            let yaw = grasp_yaw(pose.rotation.euler_angles().2, c.y.atan2(c.x) + yaw_bias);
            resolved.position = Point3::from(c + wp.position.coords);
            resolved.rotation = downward(yaw);
            resolved.track = None;
            if wp.latch {
                *wp = resolved.clone();
            }
        }
        Some(resolved)
    }

    /// The next action for `obs`.
    pub fn act(&mut self, obs: &Observation) -> Action {
        if !self.planned {
            self.build_plan(obs);
        }
        // Once the plan is done the expert holds at its last waypoint (correcting noisy steps).
        let finished = self.finished();
        if finished {
            self.steps_after_plan += 1;
        }
        let index = if finished { self.plan.len().saturating_sub(1) } else { self.index };
        let Some(wp) = self.resolve_waypoint(index, obs) else {
            return within_limits(self.noisy(Action::hold(OPEN)));
        };
        let tip = obs.arm.tip_pose;
        let dp = wp.position - Point3::from(tip.translation.vector);
        let rot_err = wp.rotation * tip.rotation.inverse();
        let angle = rot_err.angle();
        // A noisy demonstrator judges a waypoint reached when it commanded the step that gets
        // there (as a person does), not only when a noisy step happens to land within the
        // tolerance: otherwise noise turns into dithering and time-outs.
        let reached = !finished && ((dp.norm() < REACHED_M && angle < REACHED_RAD) || self.commanded_reach);
        // Once reached, the dwell runs to its end whatever later (noisy) steps do.
        if self.dwell_left.is_none() && reached {
            self.dwell_left = Some(wp.dwell.max(1));
        }
        if let Some(left) = self.dwell_left.as_mut() {
            *left -= 1;
            if *left == 0 {
                self.index += 1;
                self.dwell_left = None;
            }
        }
        // Move at most the per-step limits towards the waypoint.
        let scale = (wp.max_step_m.min(MAX_DELTA_XYZ_M) / dp.amax().max(1e-12)).min(1.0);
        let step = dp * scale;
        let frac = if angle > 1e-9 { (MAX_DELTA_RPY_RAD * 0.9 / angle).min(1.0) } else { 1.0 };
        let rot_step = if angle > 1e-9 { UnitQuaternion::identity().slerp(&rot_err, frac) } else { UnitQuaternion::identity() };
        self.commanded_reach =
            !finished && self.quality.noise() > 0.0 && self.index == index && scale >= 1.0 && frac >= 1.0;
        let (r, p, y) = rot_step.euler_angles();
        let action = Action::EeDelta { xyz_m: [step.x, step.y, step.z], rpy_rad: [r, p, y], gripper: wp.gripper };
        within_limits(self.noisy(action))
    }

    fn noisy(&mut self, action: Action) -> Action {
        let noise = self.quality.noise();
        if noise <= 0.0 {
            return action;
        }
        match action {
            Action::EeDelta { mut xyz_m, mut rpy_rad, gripper } => {
                for v in &mut xyz_m {
                    *v += noise * 0.02 * normal::standard_normal(&mut self.rng);
                }
                for v in &mut rpy_rad {
                    *v += noise * 0.1 * normal::standard_normal(&mut self.rng);
                }
                let gripper = if self.rng.random_range(0.0..1.0) < 0.03 * noise { 1.0 - gripper } else { gripper };
                Action::EeDelta { xyz_m, rpy_rad, gripper }
            }
            other => other,
        }
    }
}
