//! Success predicates and rewards: a scene's conditions evaluated on a world.
//!
//! Sparse reward: 1 on the step the episode succeeds, else 0. Dense reward: the mean over the
//! scene's conditions of a progress term in [0, 1] (reaching, then the condition's own
//! geometry), so it rises smoothly as the expert would proceed.
//!
//! Failure: an object whose centre drops below the table top by more than
//! [`FELL_BELOW_TABLE_M`] has left the table; the task can no longer be achieved and the episode
//! terminates (a terminal failure, not a truncation).

use nalgebra::{Isometry3, Point3};

use crate::scene::{ConditionSpec, ObjectKind, SceneSpec};
use crate::world::SimWorld;

/// Distance scale of the dense progress terms, metres.
const PROGRESS_SCALE_M: f64 = 0.05;
/// An object whose centre is this far below the table top (z = 0), metres, fell off the table.
pub const FELL_BELOW_TABLE_M: f64 = 0.05;

/// Result of evaluating a scene's conditions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskEval {
    /// All conditions hold.
    pub success: bool,
    /// Dense progress in [0, 1].
    pub progress: f64,
    /// An object fell off the table: the task can no longer succeed.
    pub failed: bool,
    /// How many of the scene's success conditions hold (all of them on success).
    pub conditions_met: u32,
}

fn tip_position(world: &SimWorld) -> Point3<f64> {
    Point3::from(world.arm_state().tip_pose.translation.vector)
}

fn pose_of(world: &SimWorld, name: &str) -> Isometry3<f64> {
    world.object_pose(name).unwrap_or_else(Isometry3::identity)
}

fn closeness(d_m: f64) -> f64 {
    (-d_m / PROGRESS_SCALE_M).exp()
}

/// True when `p` (world frame) lies inside bin `bin`'s inner footprint and below its rim.
pub fn inside_bin(world: &SimWorld, bin: &str, p: &Point3<f64>) -> bool {
    let Some(spec) = world.instance.object(bin) else { return false };
    if spec.kind != ObjectKind::Bin {
        return false;
    }
    let local = pose_of(world, bin).inverse_transform_point(p);
    let half = spec.size_m / 2.0;
    local.x.abs() < half && local.y.abs() < half && local.z < spec.height_m + 0.01 && local.z > -0.01
}

/// Evaluates one condition: (holds, progress in [0, 1]).
pub fn evaluate_condition(world: &SimWorld, cond: &ConditionSpec) -> (bool, f64) {
    let tip = tip_position(world);
    match cond {
        ConditionSpec::TipNear { object, tol_m } => {
            let target = Point3::from(pose_of(world, object).translation.vector);
            let d = (tip - target).norm();
            (d <= *tol_m, closeness(d))
        }
        ConditionSpec::Lifted { object, min_height_m } => {
            let rest = world.instance.object(object).map_or(0.0, |o| o.size_m / 2.0);
            let p = Point3::from(pose_of(world, object).translation.vector);
            let lift = p.z - rest;
            let reach = closeness((tip - p).norm());
            (lift >= *min_height_m, 0.5 * reach + 0.5 * (lift / min_height_m).clamp(0.0, 1.0))
        }
        ConditionSpec::InBin { object, bin } => {
            let p = Point3::from(pose_of(world, object).translation.vector);
            let b = pose_of(world, bin).translation.vector;
            let d_xy = ((p.x - b.x).powi(2) + (p.y - b.y).powi(2)).sqrt();
            let inside = inside_bin(world, bin, &p);
            let progress = if inside { 1.0 } else { 0.5 * closeness((tip - p).norm()) + 0.5 * closeness(d_xy) };
            (inside, progress)
        }
        ConditionSpec::NearXy { object, target, tol_m } => {
            let p = Point3::from(pose_of(world, object).translation.vector);
            let t = pose_of(world, target).translation.vector;
            let d_xy = ((p.x - t.x).powi(2) + (p.y - t.y).powi(2)).sqrt();
            let near = d_xy <= *tol_m;
            let progress = if near { 1.0 } else { 0.5 * closeness((tip - p).norm()) + 0.5 * closeness(d_xy) };
            (near, progress)
        }
    }
}

/// Evaluates all of a scene's conditions.
pub fn evaluate(world: &SimWorld, spec: &SceneSpec) -> TaskEval {
    let mut success = true;
    let mut progress = 0.0;
    let mut conditions_met = 0;
    for cond in &spec.success {
        let (ok, p) = evaluate_condition(world, cond);
        success &= ok;
        conditions_met += u32::from(ok);
        progress += p;
    }
    let failed = !success && fallen_object(world).is_some();
    TaskEval { success, progress: progress / spec.success.len().max(1) as f64, failed, conditions_met }
}

/// The first object whose centre lies more than [`FELL_BELOW_TABLE_M`] below the table top.
pub fn fallen_object(world: &SimWorld) -> Option<&str> {
    world
        .objects
        .iter()
        .find(|o| world.body_pose(o.body).is_some_and(|p| p.translation.vector.z < -FELL_BELOW_TABLE_M))
        .map(|o| o.name.as_str())
}
