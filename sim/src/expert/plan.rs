//! Waypoint plans of the scripted expert: one per scene kind, varied per episode by a
//! [`Variation`] and altered by the episode's [`Mistake`].

use nalgebra::{Isometry3, Point3, UnitQuaternion, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::normal::standard_normal;
use super::quality::Mistake;
use super::{downward, grasp_yaw, CLOSED, OPEN};
use crate::env::{Observation, MAX_DELTA_XYZ_M};
use crate::scene::{ExpertSpec, ObjectSpec};

/// Nominal translation per control step of free-space moves, metres.
const TRANSIT_STEP_M: f64 = MAX_DELTA_XYZ_M * 0.9;

/// One waypoint of the plan.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Waypoint {
    /// Tip position target, world frame, metres (an offset from the tracked object's centre when
    /// `track` is set).
    pub position: Point3<f64>,
    /// Tip orientation target.
    pub rotation: UnitQuaternion<f64>,
    /// Gripper opening while moving there.
    pub gripper: f64,
    /// Control steps the waypoint is held once reached, counting the step it is reached on
    /// (0 and 1: move on at once).
    pub dwell: u32,
    /// Largest translation per control step, metres (slower for the final approach).
    pub max_step_m: f64,
    /// Follow this object's current pose: the position is its centre plus `position`, and the
    /// yaw is re-aligned with its faces.
    pub track: Option<String>,
    /// Resolve `track` once, when the waypoint becomes current, and keep that target (closing and
    /// lifting where the object is then, without chasing it while it moves in the fingers).
    pub latch: bool,
    /// Reached by a free-space move (where a hesitation or an overshoot can be inserted).
    pub free_move: bool,
}

impl Waypoint {
    fn new(position: Point3<f64>, rotation: UnitQuaternion<f64>, gripper: f64, dwell: u32) -> Waypoint {
        Waypoint {
            position,
            rotation,
            gripper,
            dwell,
            max_step_m: TRANSIT_STEP_M,
            track: None,
            latch: false,
            free_move: false,
        }
    }

    fn slow(mut self, max_step_m: f64) -> Waypoint {
        self.max_step_m = max_step_m;
        self
    }

    fn tracking(mut self, object: &str) -> Waypoint {
        self.track = Some(object.to_string());
        self
    }

    fn latched(mut self, object: &str) -> Waypoint {
        self.track = Some(object.to_string());
        self.latch = true;
        self
    }

    fn free(mut self) -> Waypoint {
        self.free_move = true;
        self
    }

    /// The absolute target position in `obs` (tracked offsets resolved against the object).
    fn absolute(&self, obs: &Observation) -> Point3<f64> {
        match &self.track {
            Some(object) => Point3::from(pose_of(obs, object).translation.vector + self.position.coords),
            None => self.position,
        }
    }
}

/// The pose of object `name` in `obs` (identity when absent).
pub(super) fn pose_of(obs: &Observation, name: &str) -> Isometry3<f64> {
    obs.object(name).map_or_else(Isometry3::identity, |o| o.pose)
}

/// The per-episode variation of a correct plan. [`Variation::NOMINAL`] is the fixed clean plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Variation {
    /// Height of the pre-grasp point above the object's centre, metres.
    pub approach_m: f64,
    /// Scale of every move's speed limit (≤ 1).
    pub speed_scale: f64,
    /// Speed limit of the final descent to the grasp, metres per step.
    pub descend_m: f64,
    /// Added to the radial reference of the grasp yaw, rad (selects a neighbouring cube face
    /// when the cube sits diagonally).
    pub yaw_bias_rad: f64,
    /// Grasp point offset from the object's centre along the fingers' closing direction and
    /// across it, metres.
    pub grasp_offset_m: [f64; 2],
    /// Extra lift height, metres.
    pub extra_lift_m: f64,
    /// Release point offset from the bin's centre, metres (x, y).
    pub release_offset_m: [f64; 2],
    /// Extra steps held above the object before descending.
    pub pause_steps: u32,
    /// Height of the fingers while pushing, metres.
    pub push_z_m: f64,
}

impl Variation {
    /// The fixed clean plan (the noisy levels start from it).
    pub const NOMINAL: Variation = Variation {
        approach_m: 0.08,
        speed_scale: 1.0,
        descend_m: 0.02,
        yaw_bias_rad: 0.0,
        grasp_offset_m: [0.0; 2],
        extra_lift_m: 0.0,
        release_offset_m: [0.0; 2],
        pause_steps: 0,
        push_z_m: 0.018,
    };

    /// A random correct variation (ranges kept inside what every built-in scene tolerates): a
    /// proficient operator's, in robomimic's sense — one consistent strategy, varied in its
    /// continuous parameters (heights, speed, small offsets). The grasped face stays the one
    /// nearest the radial direction and there are no pauses: a random face choice (90° apart)
    /// or a random pause at the same state makes the recorded action multimodal in the state,
    /// which a regression policy averages (measured: BC 76/100 on pick_cube with both, against
    /// 92/100 on the fixed plan); pauses are the `hesitation` mistake.
    pub fn sample(rng: &mut ChaCha8Rng) -> Variation {
        let approach_m = rng.random_range(0.06..0.10);
        let speed_scale = rng.random_range(0.85..1.0);
        let descend_m = rng.random_range(0.018..0.024);
        // The face and pause draws of the earlier, multi-strategy level are still made (and
        // unused), so a seed varies the other parameters as it did when the README's tables
        // were measured.
        let _face_bias_rad: f64 = rng.random_range(-0.6..0.6);
        let grasp_offset_m = [rng.random_range(-0.002..0.002), rng.random_range(-0.004..0.004)];
        let extra_lift_m = rng.random_range(0.0..0.03);
        let release_offset_m = [rng.random_range(-0.012..0.012), rng.random_range(-0.012..0.012)];
        if rng.random_range(0.0..1.0) < 0.3 {
            let _pause_steps: u32 = rng.random_range(1..=2);
        }
        Variation {
            approach_m,
            speed_scale,
            descend_m,
            yaw_bias_rad: 0.0,
            grasp_offset_m,
            extra_lift_m,
            release_offset_m,
            pause_steps: 0,
            push_z_m: rng.random_range(0.016..0.022),
        }
    }
}

/// Builds an episode's plan from its first observation.
pub(super) struct Planner<'a> {
    /// The scene's objects.
    pub objects: &'a [ObjectSpec],
    /// The episode's random stream (noise draws of the noisy level).
    pub rng: &'a mut ChaCha8Rng,
    /// Noise scale of the noisy level (grasp-height and release errors), 0 otherwise.
    pub noise: f64,
    /// The episode's variation.
    pub variation: Variation,
    /// The episode's mistake.
    pub mistake: Mistake,
}

impl Planner<'_> {
    fn object_spec(&self, name: &str) -> Option<&ObjectSpec> {
        self.objects.iter().find(|o| o.name == name)
    }

    fn speed(&self, max_step_m: f64) -> f64 {
        max_step_m * self.variation.speed_scale
    }

    fn noise_draw(&mut self, scale_m: f64) -> f64 {
        if self.noise > 0.0 {
            self.noise * scale_m * standard_normal(self.rng)
        } else {
            0.0
        }
    }

    /// The plan for `spec` from the first observation.
    pub fn plan(&mut self, spec: &ExpertSpec, obs: &Observation) -> Vec<Waypoint> {
        let mut plan = match spec {
            ExpertSpec::Reach { target } => {
                let t = pose_of(obs, target).translation.vector;
                let rot = obs.arm.tip_pose.rotation;
                vec![Waypoint::new(Point3::from(t), rot, OPEN, 2).slow(self.speed(TRANSIT_STEP_M)).free()]
            }
            ExpertSpec::PickPlace { object, bin, lift_m } => {
                let mistake = self.mistake;
                self.pick_place(obs, object, bin.as_deref(), *lift_m, mistake)
            }
            ExpertSpec::Push { object, target } => self.push(obs, object, target),
            ExpertSpec::Sort { pairs } => {
                // Which pair the mistake happens in; a wrong target sends that cube to another bin.
                let at = self.rng.random_range(0..pairs.len().max(1));
                let mut plan = Vec::new();
                for (i, [object, bin]) in pairs.iter().enumerate() {
                    let mut mistake = if i == at { self.mistake } else { Mistake::None };
                    let mut bin = bin.as_str();
                    if mistake == Mistake::WrongTarget {
                        if let Some([_, other]) = pairs.iter().find(|[_, b]| b != bin) {
                            bin = other.as_str();
                        }
                        mistake = Mistake::None;
                    }
                    plan.extend(self.pick_place(obs, object, Some(bin), 0.10, mistake));
                }
                plan
            }
        };
        if matches!(self.mistake, Mistake::Hesitation | Mistake::Overshoot) {
            let candidates: Vec<usize> = (0..plan.len()).filter(|i| plan[*i].free_move).collect();
            if !candidates.is_empty() {
                let at = candidates[self.rng.random_range(0..candidates.len())];
                let from = if at == 0 {
                    Point3::from(obs.arm.tip_pose.translation.vector)
                } else {
                    plan[at - 1].absolute(obs)
                };
                let to = plan[at].absolute(obs);
                let inserted = if self.mistake == Mistake::Hesitation {
                    self.hesitation(&plan[at], from, to)
                } else {
                    self.overshoot(&plan[at], from, to)
                };
                plan.splice(at..at, inserted);
            }
        }
        plan
    }

    /// Stops half-way for 5–8 steps, backs off a few centimetres, then goes on.
    fn hesitation(&mut self, next: &Waypoint, from: Point3<f64>, to: Point3<f64>) -> Vec<Waypoint> {
        let halfway = from + (to - from) * self.rng.random_range(0.4..0.6);
        let back = halfway + (from - halfway).try_normalize(1e-9).unwrap_or_else(Vector3::z) * self.rng.random_range(0.02..0.04);
        let dwell = self.rng.random_range(5..=8);
        vec![
            Waypoint::new(halfway, next.rotation, next.gripper, dwell).slow(next.max_step_m),
            Waypoint::new(back, next.rotation, next.gripper, 2).slow(0.02),
        ]
    }

    /// Goes 4–6 cm past the waypoint (along the move, slightly high), then comes back to it.
    fn overshoot(&mut self, next: &Waypoint, from: Point3<f64>, to: Point3<f64>) -> Vec<Waypoint> {
        let dir = (to - from).try_normalize(1e-9).unwrap_or_else(Vector3::x);
        let past = to + dir * self.rng.random_range(0.04..0.06) + Vector3::z() * 0.01;
        vec![Waypoint::new(past, next.rotation, next.gripper, 0).slow(next.max_step_m)]
    }

    /// Approach, close and lift: above the object, down, close in place, lift `lift_m`.
    /// `offset_m` shifts the grasp from the object's centre (world x, y, z).
    fn grasp(&self, object: &str, rot: UnitQuaternion<f64>, offset_m: Vector3<f64>, lift_m: f64) -> Vec<Waypoint> {
        let v = self.variation;
        let (ox, oy, oz) = (offset_m.x, offset_m.y, offset_m.z);
        vec![
            Waypoint::new(Point3::new(ox, oy, v.approach_m), rot, OPEN, v.pause_steps)
                .slow(self.speed(TRANSIT_STEP_M))
                .tracking(object)
                .free(),
            Waypoint::new(Point3::new(ox, oy, oz), rot, OPEN, 1).slow(v.descend_m).tracking(object),
            Waypoint::new(Point3::new(ox, oy, oz), rot, CLOSED, 4).latched(object),
            Waypoint::new(Point3::new(ox, oy, oz + lift_m), rot, CLOSED, 0).slow(self.speed(0.03)).latched(object),
        ]
    }

    fn pick_place(
        &mut self,
        obs: &Observation,
        object: &str,
        bin: Option<&str>,
        lift_m: f64,
        mistake: Mistake,
    ) -> Vec<Waypoint> {
        let v = self.variation;
        let cube = pose_of(obs, object);
        let c = cube.translation.vector;
        let cube_yaw = cube.rotation.euler_angles().2;
        let yaw = grasp_yaw(cube_yaw, c.y.atan2(c.x) + v.yaw_bias_rad);
        let rot = downward(yaw);
        let size = self.object_spec(object).map_or(0.04, |o| o.size_m);
        let grasp_err = self.noise_draw(0.012);
        let grasp_z = (c.z - 0.008 + grasp_err).max(0.006);
        // The fingers open along yaw + 90°; the pads' normal is along yaw.
        let along = Vector3::new(yaw.cos(), yaw.sin(), 0.0);
        let across = Vector3::new(-yaw.sin(), yaw.cos(), 0.0);
        let offset = across * v.grasp_offset_m[0] + along * v.grasp_offset_m[1] + Vector3::z() * (grasp_z - c.z);
        let lift = lift_m + v.extra_lift_m;
        let mut plan = Vec::new();
        match mistake {
            Mistake::MissedGrasp { regrasp } => {
                // Close above the cube or beside it, lift a little, then notice (or not).
                let miss = if self.rng.random_range(0.0..1.0) < 0.5 {
                    Vector3::z() * (size / 2.0 + 0.02 - offset.z)
                } else {
                    along * (size / 2.0 + 0.03) * if self.rng.random_range(0.0..1.0) < 0.5 { 1.0 } else { -1.0 }
                };
                let missed = self.grasp(object, rot, offset + miss, 0.04);
                if regrasp {
                    plan.extend(missed);
                    let last = plan.last().cloned();
                    plan.extend(last.map(|w| Waypoint { gripper: OPEN, dwell: 2, ..w }));
                    plan.extend(self.grasp(object, rot, offset, lift));
                } else {
                    plan.extend(missed);
                    plan.push(Waypoint::new(Point3::new(0.0, 0.0, lift), rot, CLOSED, 0).latched(object));
                }
            }
            _ => plan.extend(self.grasp(object, rot, offset, lift)),
        }
        if let Mistake::DroppedObject { regrasp } = mistake {
            // Open in mid-air: below the lift threshold without a bin, a third of the way to it
            // with one.
            let drop_at = match bin {
                Some(bin) => {
                    let b = pose_of(obs, bin).translation.vector;
                    Point3::new(c.x + (b.x - c.x) * 0.35, c.y + (b.y - c.y) * 0.35, c.z + lift)
                }
                None => Point3::new(c.x, c.y, c.z + 0.025),
            };
            if bin.is_none() {
                plan.pop();
            }
            plan.push(Waypoint::new(drop_at, rot, CLOSED, 0).slow(self.speed(0.03)));
            plan.push(Waypoint::new(drop_at, rot, OPEN, 4));
            if regrasp {
                plan.extend(self.grasp(object, rot, offset, lift));
            } else if bin.is_none() {
                plan.push(Waypoint::new(Point3::new(c.x, c.y, c.z + lift), rot, OPEN, 0));
            }
        }
        if let Some(bin) = bin {
            let b = pose_of(obs, bin).translation.vector;
            let height = self.object_spec(bin).map_or(0.04, |o| o.height_m);
            let above = height + 0.09;
            let release_err = self.noise_draw(0.02);
            let mut release = Vector3::new(b.x + v.release_offset_m[0], b.y + v.release_offset_m[1] + release_err, 0.0);
            if mistake == Mistake::WrongTarget {
                let dir = Vector3::new(b.x - c.x, b.y - c.y, 0.0).try_normalize(1e-9).unwrap_or_else(Vector3::y);
                release += dir * self.rng.random_range(0.10..0.12);
            }
            let rot_bin = downward(grasp_yaw(yaw, release.y.atan2(release.x)));
            let (rx, ry) = (release.x, release.y);
            plan.push(Waypoint::new(Point3::new(rx, ry, above), rot_bin, CLOSED, 0).slow(self.speed(0.03)).free());
            plan.push(Waypoint::new(Point3::new(rx, ry, above - 0.03), rot_bin, CLOSED, 0).slow(0.02));
            plan.push(Waypoint::new(Point3::new(rx, ry, above - 0.03), rot_bin, OPEN, 3));
            plan.push(Waypoint::new(Point3::new(b.x, b.y, above + 0.03), rot_bin, OPEN, 0).slow(self.speed(TRANSIT_STEP_M)));
        }
        plan
    }

    fn push(&mut self, obs: &Observation, object: &str, target: &str) -> Vec<Waypoint> {
        let v = self.variation;
        let c = pose_of(obs, object).translation.vector;
        let mut t = pose_of(obs, target).translation.vector;
        if self.mistake == Mistake::WrongTarget {
            // Aim beside the pad, past its success tolerance.
            let dir = Vector3::new(t.x - c.x, t.y - c.y, 0.0).try_normalize(1e-9).unwrap_or_else(Vector3::x);
            let side = if self.rng.random_range(0.0..1.0) < 0.5 { 1.0 } else { -1.0 };
            t += Vector3::new(-dir.y, dir.x, 0.0) * side * self.rng.random_range(0.06..0.08);
        }
        let dir = Vector3::new(t.x - c.x, t.y - c.y, 0.0);
        let dist = dir.norm().max(1e-6);
        let dir = dir / dist;
        let yaw = dir.y.atan2(dir.x);
        // Fingers closed, pointing down, the finger pads' flat side facing the push direction.
        let rot = downward(yaw + std::f64::consts::FRAC_PI_2);
        let size = self.object_spec(object).map_or(0.04, |o| o.size_m);
        let behind = Vector3::new(c.x, c.y, 0.0) - dir * (size / 2.0 + 0.03);
        let end = Vector3::new(t.x, t.y, 0.0) - dir * (size / 2.0 + 0.006);
        let z = v.push_z_m;
        let fast = self.speed(TRANSIT_STEP_M);
        vec![
            Waypoint::new(Point3::new(behind.x, behind.y, v.approach_m), rot, CLOSED, v.pause_steps).slow(fast).free(),
            Waypoint::new(Point3::new(behind.x, behind.y, z), rot, CLOSED, 0).slow(0.02),
            Waypoint::new(Point3::new(end.x, end.y, z), rot, CLOSED, 2).slow(0.02),
            Waypoint::new(Point3::new(end.x, end.y, 0.08), rot, CLOSED, 0).slow(fast),
        ]
    }

    /// The mistakes that make sense for `spec` (besides [`Mistake::None`]).
    pub fn applicable(spec: &ExpertSpec) -> Vec<Mistake> {
        let grasping = [
            Mistake::MissedGrasp { regrasp: false },
            Mistake::MissedGrasp { regrasp: true },
            Mistake::DroppedObject { regrasp: false },
            Mistake::DroppedObject { regrasp: true },
        ];
        let mut kinds = match spec {
            ExpertSpec::Reach { .. } => Vec::new(),
            ExpertSpec::Push { .. } => vec![Mistake::WrongTarget],
            ExpertSpec::PickPlace { bin: None, .. } => grasping.to_vec(),
            ExpertSpec::PickPlace { bin: Some(_), .. } | ExpertSpec::Sort { .. } => {
                let mut k = grasping.to_vec();
                k.push(Mistake::WrongTarget);
                k
            }
        };
        kinds.extend([Mistake::Hesitation, Mistake::Overshoot]);
        kinds
    }
}
