//! Absolute finger-tip targets as the policy's action rows, for end-effector delta data.
//!
//! A dataset's `EeDelta` row moves the tip relative to where it is
//! ([`crate::executor`]'s convention: position `p + d`, orientation `R(droll, dpitch, dyaw) · R`
//! in the base frame). A policy that predicts such increments integrates its own errors: a small
//! bias in the predicted roll or pitch turns the gripper a little further every step, into
//! orientations no demonstration visits (measured on place_in_bin, a delta-action BC policy, 100
//! scenes: 40 of its 45 failed episodes ended with the gripper more than 10° off vertical, median
//! 44°, up to 136°; all 55 successes within 1°). Predicting where the tip should be instead
//! (position control, which Chi et al. 2023, "Diffusion Policy", report to work better than
//! velocity control, with less compounding error) makes every prediction correct the drift of
//! the ones before.
//!
//! With [`crate::PolicyConfig::action_targets`] on, row k of a chunk is the tip pose the arm
//! was sent towards at step t + k:
//! `[x, y, z (m, base frame), rx, ry, rz (rad), gripper]`, where (rx, ry, rz) is the rotation
//! vector of `R_target · R_down⁻¹` and `R_down` points the gripper straight down (its approach
//! axis along base −z, [`reference_rotation`]), so a top-down grasp at yaw ψ reads (0, 0, ψ).
//! Training labels come from the recorded deltas and the tip pose by forward kinematics of the
//! frame's joints ([`target_row`]); the executor steers the measured tip towards the predicted
//! targets and emits the dataset's delta action ([`target_pose`] and the executor's
//! `delta_towards`). The number of values per row stays 7, so the dataset's action width and
//! the critic's chunk input are unchanged. Outside the policy, rows stay deltas: the policy node
//! publishes each chunk on `command/chunk` as the deltas that reach its targets
//! ([`delta_chunk`]), which is what a robot playing the chunk executes.

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};

use crate::executor::tip_targets::{delta_towards, integrate_chunk, POSE_DELTA_VALUES};

/// The reference orientation of the rotation part: the gripper pointing down (its approach
/// axis, the tip frame's x, along base −z), fingers opening along base y.
pub fn reference_rotation() -> UnitQuaternion<f64> {
    UnitQuaternion::from_axis_angle(&Vector3::y_axis(), std::f64::consts::FRAC_PI_2)
}

/// The target row of delta row `delta` (≥ 7 values) applied at tip pose `tip`: the pose the
/// delta sends the tip to (each component limited as the sim limits it), then the gripper and
/// any further values unchanged.
pub fn target_row(tip: &Isometry3<f64>, delta: &[f32]) -> Vec<f32> {
    let target = integrate_chunk(tip, [delta]).into_iter().next().unwrap_or(*tip);
    let mut row = encode(&target).to_vec();
    row.extend_from_slice(&delta[POSE_DELTA_VALUES.min(delta.len())..]);
    row
}

/// The pose part of a target row, `[x, y, z, rx, ry, rz]`.
pub fn encode(target: &Isometry3<f64>) -> [f32; POSE_DELTA_VALUES] {
    let p = target.translation.vector;
    let r = (target.rotation * reference_rotation().inverse()).scaled_axis();
    [p.x, p.y, p.z, r.x, r.y, r.z].map(|v| v as f32)
}

/// The tip pose a target row (≥ 6 values) names.
pub fn target_pose(row: &[f32]) -> Isometry3<f64> {
    let v = |i: usize| f64::from(row[i]);
    let rotation = UnitQuaternion::from_scaled_axis(Vector3::new(v(3), v(4), v(5))) * reference_rotation();
    Isometry3::from_parts(Translation3::new(v(0), v(1), v(2)), rotation)
}

/// A chunk of target rows (`dim` values each) as the equivalent chunk of delta rows executed
/// open loop from tip pose `start`: each row the delta from where the previous one left the tip
/// to its target, within the sim's per-step limits. What the policy node publishes on
/// `command/chunk`, whose consumers play rows in the dataset's action space.
pub fn delta_chunk(start: &Isometry3<f64>, values: &[f32], dim: usize) -> Vec<f32> {
    let mut from = *start;
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(dim) {
        let delta = delta_row(row, &from);
        from = integrate_chunk(&from, [&delta[..]]).into_iter().next().unwrap_or(from);
        out.extend(delta);
    }
    out
}

/// The delta row that moves the tip from `tip` towards target row `row` (≥ 7 values), within
/// the sim's per-step limits; the gripper and any further values unchanged.
pub fn delta_row(row: &[f32], tip: &Isometry3<f64>) -> Vec<f32> {
    let mut delta: Vec<f32> = delta_towards(&target_pose(row), tip).iter().map(|v| *v as f32).collect();
    delta.extend_from_slice(&row[POSE_DELTA_VALUES..]);
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_down_grasp_at_yaw_reads_as_that_yaw_and_rows_round_trip() {
        let yaw = 0.4;
        let down = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw) * reference_rotation();
        // The approach axis (tip x) points along base −z.
        assert!((down * Vector3::x() - Vector3::new(0.0, 0.0, -1.0)).norm() < 1e-12);
        let tip = Isometry3::from_parts(Translation3::new(0.3, -0.1, 0.2), down);
        // 1 cm down and a 0.1 rad yaw: the target is 1 cm lower, at yaw 0.5.
        let row = target_row(&tip, &[0.0, 0.0, -0.01, 0.0, 0.0, 0.1, 0.25]);
        let want = [0.3, -0.1, 0.19, 0.0, 0.0, 0.5, 0.25];
        for (k, (got, want)) in row.iter().zip(want).enumerate() {
            assert!((f64::from(*got) - want).abs() < 1e-6, "value {k}: {got} vs {want}");
        }
        let back = target_pose(&row);
        assert!((back.translation.vector - Vector3::new(0.3, -0.1, 0.19)).norm() < 1e-6);
        let expect = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), 0.1) * down;
        assert!(back.rotation.angle_to(&expect) < 1e-6);
    }

    #[test]
    fn a_chunk_of_targets_becomes_the_deltas_that_reach_them() {
        let down = reference_rotation();
        let start = Isometry3::from_parts(Translation3::new(0.3, 0.0, 0.15), down);
        let deltas: [[f32; 7]; 3] = [
            [0.01, 0.0, -0.02, 0.0, 0.0, 0.1, 1.0],
            [0.0, 0.02, 0.0, 0.05, 0.0, 0.0, 0.5],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        let targets = integrate_chunk(&start, deltas.iter().map(|r| &r[..]));
        let mut values = Vec::new();
        for (t, d) in targets.iter().zip(&deltas) {
            values.extend(encode(t));
            values.push(d[6]);
        }
        let back = delta_chunk(&start, &values, 7);
        for (k, (got, want)) in back.iter().zip(deltas.iter().flatten()).enumerate() {
            assert!((got - want).abs() < 1e-5, "value {k}: {got} vs {want}");
        }
    }
}
