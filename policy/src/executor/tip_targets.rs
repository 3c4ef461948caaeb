//! Absolute finger-tip targets for end-effector delta chunks.
//!
//! An `EeDelta` row `[dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper]` moves the finger tip
//! relative to where it is, in the arm's base frame, the way `sim::arm::apply_ee_delta` applies
//! it: position `p + d`, orientation `R(droll, dpitch, dyaw) · R` with `R(rpy)` the fixed-axis
//! roll-pitch-yaw rotation (about base x, then y, then z). Each component is limited like the sim
//! limits it ([`MAX_DELTA_XYZ_M`], [`MAX_DELTA_RPY_RAD`]).
//!
//! Increments planned from different tip poses cannot be averaged meaningfully, so the executor
//! integrates every chunk from the tip pose measured at its observation into absolute targets
//! ([`integrate_chunk`]), averages targets ([`blend_poses`]) and emits the delta from the tip pose
//! measured now to the average ([`delta_towards`]).

use nalgebra::{Isometry3, Quaternion, Translation3, UnitQuaternion, Vector3};
use sim::env::{MAX_DELTA_RPY_RAD, MAX_DELTA_XYZ_M};

/// Values of an `EeDelta` row before the gripper: dx, dy, dz (m), droll, dpitch, dyaw (rad).
pub const POSE_DELTA_VALUES: usize = 6;

/// The tip targets of a chunk of `rows` (each at least [`POSE_DELTA_VALUES`] values) started
/// from tip pose `start`: target i is the pose after applying rows 0…i in turn, each limited to
/// the sim's per-step limits first (what the sim would execute).
pub fn integrate_chunk<'a>(start: &Isometry3<f64>, rows: impl IntoIterator<Item = &'a [f32]>) -> Vec<Isometry3<f64>> {
    let mut pose = *start;
    rows.into_iter()
        .map(|row| {
            let v = |i: usize, limit: f64| f64::from(row[i]).clamp(-limit, limit);
            let d = Vector3::new(v(0, MAX_DELTA_XYZ_M), v(1, MAX_DELTA_XYZ_M), v(2, MAX_DELTA_XYZ_M));
            let rot = UnitQuaternion::from_euler_angles(
                v(3, MAX_DELTA_RPY_RAD),
                v(4, MAX_DELTA_RPY_RAD),
                v(5, MAX_DELTA_RPY_RAD),
            );
            pose = Isometry3::from_parts(Translation3::from(pose.translation.vector + d), rot * pose.rotation);
            pose
        })
        .collect()
}

/// The weighted average of `poses` (weights > 0, not necessarily normalised): positions by the
/// weighted mean; orientations by the normalised weighted sum of the unit quaternions, each
/// first flipped into the hemisphere of the first one (q and −q are the same rotation). That
/// sum is the first-order approximation of the weighted rotation mean (the eigenvector method of
/// Markley et al., 2007) and agrees with it to second order in the spread, which here is a few
/// degrees (targets of one tick from chunks planned a few ticks apart). `None` without a pose.
pub fn blend_poses(poses: &[(f64, Isometry3<f64>)]) -> Option<Isometry3<f64>> {
    let (_, first) = poses.first()?;
    let reference = first.rotation.quaternion().coords;
    let total: f64 = poses.iter().map(|(w, _)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mut position = Vector3::zeros();
    let mut quaternion = nalgebra::Vector4::zeros();
    for (w, pose) in poses {
        position += pose.translation.vector * (w / total);
        let q = pose.rotation.quaternion().coords;
        let sign = if q.dot(&reference) < 0.0 { -1.0 } else { 1.0 };
        quaternion += q * (sign * w / total);
    }
    let rotation = UnitQuaternion::from_quaternion(Quaternion::from(quaternion));
    Some(Isometry3::from_parts(Translation3::from(position), rotation))
}

/// The `EeDelta` pose part `[dx, dy, dz, droll, dpitch, dyaw]` that moves the tip from `tip` to
/// `target` in the sim's convention (so `R(rpy) = R_target · R_tip⁻¹`), within the per-step
/// limits: a translation longer than [`MAX_DELTA_XYZ_M`] in any axis is scaled down as a whole
/// (its direction kept), a rotation by more than [`MAX_DELTA_RPY_RAD`] is cut to that angle
/// about the same axis, and each roll/pitch/yaw is then clamped to the limit.
pub fn delta_towards(target: &Isometry3<f64>, tip: &Isometry3<f64>) -> [f64; POSE_DELTA_VALUES] {
    let mut d = target.translation.vector - tip.translation.vector;
    let largest = d.amax();
    if largest > MAX_DELTA_XYZ_M {
        d *= MAX_DELTA_XYZ_M / largest;
    }
    let mut rot = target.rotation * tip.rotation.inverse();
    let angle = rot.angle();
    if angle > MAX_DELTA_RPY_RAD {
        rot = UnitQuaternion::identity().slerp(&rot, MAX_DELTA_RPY_RAD / angle);
    }
    let (r, p, y) = rot.euler_angles();
    let c = |v: f64| v.clamp(-MAX_DELTA_RPY_RAD, MAX_DELTA_RPY_RAD);
    [d.x, d.y, d.z, c(r), c(p), c(y)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pose(xyz: [f64; 3], rpy: [f64; 3]) -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(xyz[0], xyz[1], xyz[2]),
            UnitQuaternion::from_euler_angles(rpy[0], rpy[1], rpy[2]),
        )
    }

    #[test]
    fn integration_follows_the_sims_convention_and_limits() {
        // Start at (0.3, 0, 0.2) pointing down (pitch π/2). Row 0: +1 cm x, yaw +0.1 in the base
        // frame; row 1: +1 cm z and a 0.4 rad roll the sim limits to 0.25.
        let start = pose([0.3, 0.0, 0.2], [0.0, std::f64::consts::FRAC_PI_2, 0.0]);
        let rows: [[f32; 7]; 2] = [[0.01, 0.0, 0.0, 0.0, 0.0, 0.1, 1.0], [0.0, 0.0, 0.01, 0.4, 0.0, 0.0, 0.0]];
        let t = integrate_chunk(&start, rows.iter().map(|r| &r[..]));
        assert!((t[0].translation.vector - Vector3::new(0.31, 0.0, 0.2)).norm() < 1e-7);
        assert!((t[1].translation.vector - Vector3::new(0.31, 0.0, 0.21)).norm() < 1e-7);
        let r0 = UnitQuaternion::from_euler_angles(0.0, 0.0, 0.1) * start.rotation;
        let r1 = UnitQuaternion::from_euler_angles(0.25, 0.0, 0.0) * r0;
        assert!(t[0].rotation.angle_to(&r0) < 1e-7 && t[1].rotation.angle_to(&r1) < 1e-7);
    }

    #[test]
    fn blended_rotation_of_two_yaws_is_the_weighted_middle() {
        // Yaw 0.1 (weight 1) and 0.2 (weight 3): the mean yaw is 0.175 to within 1e-4 rad; the
        // −q form of the second quaternion is recognised as the same rotation.
        let a = pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.1]);
        let mut b = pose([0.4, 0.0, 0.0], [0.0, 0.0, 0.2]);
        b.rotation = UnitQuaternion::new_unchecked(-b.rotation.into_inner());
        let m = blend_poses(&[(1.0, a), (3.0, b)]).unwrap();
        assert!((m.translation.vector.x - 0.3).abs() < 1e-12);
        assert!((m.rotation.euler_angles().2 - 0.175).abs() < 1e-4, "{:?}", m.rotation.euler_angles());
        assert!(blend_poses(&[]).is_none());
    }

    #[test]
    fn deltas_are_limited_keeping_their_direction() {
        let tip = pose([0.3, 0.0, 0.2], [0.0, 1.0, 0.0]);
        // 10 cm x and 5 cm y: scaled by 0.5 to (5, 2.5) cm. A yaw of 0.6 rad: cut to 0.25.
        let target = pose([0.4, 0.05, 0.2], [0.0, 0.0, 0.6]);
        let target = Isometry3::from_parts(target.translation, target.rotation * tip.rotation);
        let d = delta_towards(&target, &tip);
        let want = [0.05, 0.025, 0.0, 0.0, 0.0, 0.25];
        for (k, (got, want)) in d.iter().zip(want).enumerate() {
            assert!((got - want).abs() < 1e-9, "component {k}: {got} vs {want}");
        }
    }
}
