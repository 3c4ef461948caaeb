//! Damped-least-squares inverse kinematics for the finger-tip frame.
//!
//! Frames: targets are poses of the finger-tip frame (`ee_gripper`) in `base_link`, translations
//! in metres. The WidowX 250 6DOF has six revolute joints, so full 6-D pose targets (position and
//! orientation) are reachable inside its workspace, away from joint limits; the solver reports
//! `converged = false` (with the closest configuration it found) when they are not.
//!
//! Each iteration: `e = [p_target − p; w · log(R_target · Rᵀ)]` (the rotation error is the
//! axis-angle vector of the base-frame rotation taking the current orientation to the target's,
//! weighted by `rot_weight`), `Δq = Jᵀ (J Jᵀ + λ² I)⁻¹ e` (λ² reduced near convergence, see
//! [`IkConfig::damping`]) with the correspondingly weighted
//! geometric Jacobian, the step scaled so that no joint moves more than `max_step_rad`, halved
//! while it does not reduce the error, and the new iterate clamped to the joint limits.

use nalgebra::{Isometry3, Matrix6, Translation3, UnitQuaternion, Vector3, Vector6};

use super::kinematics::ArmKinematics;
use super::spec::NUM_ARM_JOINTS;

/// Parameters of [`solve_ik`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IkConfig {
    /// Damping λ of the least-squares step, in the units of the weighted error (metres). Applied
    /// in full while the weighted error exceeds λ; below that λ² shrinks in proportion to the
    /// error (down to 1e-3 λ²), which keeps the last iterations fast. Larger is more robust near
    /// singularities and slower to converge.
    pub damping: f64,
    /// Maximum number of iterations.
    pub max_iters: usize,
    /// Position tolerance of the tip, metres.
    pub tol_pos_m: f64,
    /// Orientation tolerance of the tip frame, radians.
    pub tol_rot_rad: f64,
    /// Largest change of any joint in one iteration, radians.
    pub max_step_rad: f64,
    /// Weight of the rotation error against the position error, metres per radian: an
    /// orientation error of 1 rad costs as much as `rot_weight` metres of position error.
    pub rot_weight: f64,
}

impl Default for IkConfig {
    fn default() -> Self {
        Self { damping: 0.05, max_iters: 100, tol_pos_m: 1e-4, tol_rot_rad: 1e-3, max_step_rad: 0.2, rot_weight: 0.2 }
    }
}

/// Result of [`solve_ik`] / [`apply_ee_delta`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IkSolution {
    /// Joint positions, radians, chain order; always within the joint limits. When not converged,
    /// the best configuration found (lowest weighted error).
    pub q: [f64; NUM_ARM_JOINTS],
    /// Distance from the tip at `q` to the target position, metres.
    pub pos_err_m: f64,
    /// Angle between the tip orientation at `q` and the target orientation, radians.
    pub rot_err_rad: f64,
    /// Iterations performed.
    pub iters: usize,
    /// True when both errors are within the configured tolerances.
    pub converged: bool,
}

/// Pose error `[p_target − p; log(R_target · Rᵀ)]` (metres; radians, base frame), unweighted.
fn pose_error(target: &Isometry3<f64>, current: &Isometry3<f64>) -> (Vector3<f64>, Vector3<f64>) {
    let dp = target.translation.vector - current.translation.vector;
    let dr = (target.rotation * current.rotation.inverse()).scaled_axis();
    (dp, dr)
}

/// Replaces non-finite entries by 0 rad and clamps into the limits.
fn sanitize(kin: &ArmKinematics, q: &[f64; NUM_ARM_JOINTS]) -> [f64; NUM_ARM_JOINTS] {
    let mut q = q.map(|v| if v.is_finite() { v } else { 0.0 });
    kin.spec().clamp_to_limits(&mut q);
    q
}

/// Solves for joint positions (radians) that put the finger-tip frame at `target` (pose in
/// `base_link`, metres), starting from `q_init` (radians; non-finite entries are replaced by 0 and
/// the start is clamped into the limits).
///
/// Never returns NaN: a non-finite target or configuration yields `converged = false` with the
/// sanitised start configuration, and infinite errors for a non-finite target.
pub fn solve_ik(
    kin: &ArmKinematics,
    target: &Isometry3<f64>,
    q_init: &[f64; NUM_ARM_JOINTS],
    cfg: &IkConfig,
) -> IkSolution {
    let mut q = sanitize(kin, q_init);
    let target_finite =
        target.translation.vector.iter().all(|v| v.is_finite()) && target.rotation.coords.iter().all(|v| v.is_finite());
    if !target_finite {
        tracing::debug!("solve_ik: non-finite target");
        return IkSolution { q, pos_err_m: f64::INFINITY, rot_err_rad: f64::INFINITY, iters: 0, converged: false };
    }
    let w = if cfg.rot_weight.is_finite() && cfg.rot_weight > 0.0 { cfg.rot_weight } else { 1.0 };
    let damping = if cfg.damping.is_finite() { cfg.damping.abs() } else { 0.05 };
    let lambda2 = damping * damping;
    let max_step = if cfg.max_step_rad.is_finite() && cfg.max_step_rad > 0.0 { cfg.max_step_rad } else { 0.2 };

    let weighted = |dp: &Vector3<f64>, dr: &Vector3<f64>| -> Vector6<f64> {
        Vector6::new(dp.x, dp.y, dp.z, w * dr.x, w * dr.y, w * dr.z)
    };
    let converged = |dp: &Vector3<f64>, dr: &Vector3<f64>| dp.norm() <= cfg.tol_pos_m && dr.norm() <= cfg.tol_rot_rad;

    let (mut pose, mut jac) = kin.fk_and_jacobian(&q);
    let (mut dp, mut dr) = pose_error(target, &pose);
    let mut err = weighted(&dp, &dr);
    let mut iters = 0;
    let mut done = converged(&dp, &dr);

    while !done && iters < cfg.max_iters {
        iters += 1;
        // Weight the angular rows like the error.
        for c in 0..NUM_ARM_JOINTS {
            for r in 3..6 {
                jac[(r, c)] *= w;
            }
        }
        // Full damping far from the target; λ² shrinks in proportion to the error once it is
        // below λ, so that convergence stays fast near (but not at) singular configurations.
        let err_norm = err.norm();
        let scale = if damping > 0.0 { (err_norm / damping).clamp(1e-3, 1.0) } else { 1.0 };
        let jjt: Matrix6<f64> = jac * jac.transpose() + Matrix6::identity() * (lambda2 * scale);
        let Some(chol) = jjt.cholesky() else {
            tracing::debug!("solve_ik: damped normal matrix not positive definite");
            break;
        };
        let mut dq = jac.transpose() * chol.solve(&err);
        let largest = dq.amax();
        if !largest.is_finite() {
            break;
        }
        if largest > max_step {
            dq *= max_step / largest;
        }

        // Backtrack: halve the step until the weighted error decreases (at most 8 halvings).
        let mut candidate = q;
        let mut cand_pose = pose;
        let mut cand_jac = jac;
        let mut cand = (dp, dr, err);
        for _ in 0..8 {
            for i in 0..NUM_ARM_JOINTS {
                candidate[i] = q[i] + dq[i];
            }
            kin.spec().clamp_to_limits(&mut candidate);
            (cand_pose, cand_jac) = kin.fk_and_jacobian(&candidate);
            let (cdp, cdr) = pose_error(target, &cand_pose);
            let cerr = weighted(&cdp, &cdr);
            cand = (cdp, cdr, cerr);
            if cerr.norm() < err_norm {
                break;
            }
            dq *= 0.5;
        }
        let improved = cand.2.norm() < err_norm;
        if !improved {
            // No descent even for a tiny step: a local minimum (e.g. target out of reach or
            // pinned by a limit). Stop with the best configuration so far.
            break;
        }
        q = candidate;
        pose = cand_pose;
        jac = cand_jac;
        (dp, dr, err) = cand;
        done = converged(&dp, &dr);
    }

    IkSolution { q, pos_err_m: dp.norm(), rot_err_rad: dr.norm(), iters, converged: done }
}

/// Moves the finger-tip frame by a small Cartesian delta from its pose at `q_current`, by IK.
///
/// The target position is the current tip position plus `delta_xyz_m` (metres, `base_link`); the
/// target orientation is `R(delta_rpy_rad) · R_current`, with `R(rpy)` the fixed-axis
/// roll-pitch-yaw rotation (radians, about base x, then y, then z), i.e. the rotation delta is
/// applied in the base frame about the tip. IK starts from `q_current`.
pub fn apply_ee_delta(
    kin: &ArmKinematics,
    q_current: &[f64; NUM_ARM_JOINTS],
    delta_xyz_m: [f64; 3],
    delta_rpy_rad: [f64; 3],
    cfg: &IkConfig,
) -> IkSolution {
    let q0 = sanitize(kin, q_current);
    let current = kin.fk(&q0);
    let [dx, dy, dz] = delta_xyz_m;
    let [roll, pitch, yaw] = delta_rpy_rad;
    let rotation = UnitQuaternion::from_euler_angles(roll, pitch, yaw) * current.rotation;
    let translation = Translation3::from(current.translation.vector + Vector3::new(dx, dy, dz));
    let target = Isometry3::from_parts(translation, rotation);
    solve_ik(kin, &target, &q0, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::kinematics::tests::Lcg;
    use crate::arm::spec::ArmSpec;

    /// A random configuration well inside the limits and away from singularities: waist ±1.5,
    /// shoulder/elbow ±1, forearm_roll and wrist_rotate ±1.2, |wrist_angle| in [0.3, 1.2] rad.
    fn random_q(rng: &mut Lcg) -> [f64; NUM_ARM_JOINTS] {
        let sign = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
        [
            rng.uniform(-1.5, 1.5),
            rng.uniform(-1.0, 1.0),
            rng.uniform(-1.0, 1.0),
            rng.uniform(-1.2, 1.2),
            sign * rng.uniform(0.3, 1.2),
            rng.uniform(-1.2, 1.2),
        ]
    }

    #[test]
    fn recovers_random_reachable_poses() {
        let kin = ArmKinematics::default();
        let cfg = IkConfig::default();
        let mut rng = Lcg::new(42);
        let mut total_iters = 0;
        for _ in 0..50 {
            let q_true = random_q(&mut rng);
            let target = kin.fk(&q_true);
            let q_init: [f64; 6] = std::array::from_fn(|i| q_true[i] + rng.uniform(-0.2, 0.2));
            let sol = solve_ik(&kin, &target, &q_init, &cfg);
            assert!(sol.converged, "did not converge for {q_true:?}: {sol:?}");
            assert!(sol.pos_err_m < 1e-3 && sol.rot_err_rad < 0.01, "{sol:?}");
            // Check the reported errors against an independent FK.
            let reached = kin.fk(&sol.q);
            let pe = (reached.translation.vector - target.translation.vector).norm();
            let re = reached.rotation.angle_to(&target.rotation);
            assert!(pe < 1e-3 && re < 0.01, "pos {pe} rot {re}");
            assert!(kin.spec().within_limits(&sol.q));
            total_iters += sol.iters;
        }
        // Typically ~8 iterations per target from a 0.2 rad perturbation.
        assert!(total_iters <= 50 * 25, "{total_iters} iterations for 50 targets");
    }

    #[test]
    fn mostly_converges_from_a_neutral_start() {
        // IK is local: from one fixed start some far targets end in a local minimum (waist
        // flipped, a roll joint at its limit). Require at least 90% of them to converge.
        let kin = ArmKinematics::default();
        let cfg = IkConfig::default();
        let mut rng = Lcg::new(3);
        let start = [0.0, 0.0, 0.0, 0.0, 0.5, 0.0];
        let converged = (0..200)
            .filter(|_| {
                let q_true = random_q(&mut rng);
                let sol = solve_ik(&kin, &kin.fk(&q_true), &start, &cfg);
                assert!(sol.q.iter().all(|v| v.is_finite()));
                sol.converged
            })
            .count();
        assert!(converged >= 180, "{converged}/200 converged");
    }

    #[test]
    fn ee_delta_moves_tip_two_centimetres() {
        let kin = ArmKinematics::default();
        let cfg = IkConfig::default();
        // A typical pre-grasp pose: reaching forward and down, gripper pitched down.
        let q = [0.3, 0.2, 0.3, 0.0, 1.0, 0.0];
        let before = kin.fk(&q);
        for delta in [[0.02, 0.0, 0.0], [0.0, -0.02, 0.0], [0.0, 0.0, 0.02]] {
            let sol = apply_ee_delta(&kin, &q, delta, [0.0; 3], &cfg);
            assert!(sol.converged, "{sol:?}");
            let after = kin.fk(&sol.q);
            let moved = after.translation.vector - before.translation.vector;
            let want = Vector3::from(delta);
            assert!((moved - want).norm() < 1e-3, "moved {moved:?} want {want:?}");
            assert!(after.rotation.angle_to(&before.rotation) < 0.01);
        }
        // A rotation delta about base z by 0.1 rad keeps the tip in place.
        let sol = apply_ee_delta(&kin, &q, [0.0; 3], [0.0, 0.0, 0.1], &cfg);
        assert!(sol.converged, "{sol:?}");
        let after = kin.fk(&sol.q);
        assert!((after.translation.vector - before.translation.vector).norm() < 1e-3);
        let want = UnitQuaternion::from_euler_angles(0.0, 0.0, 0.1) * before.rotation;
        assert!(after.rotation.angle_to(&want) < 0.01);
    }

    #[test]
    fn out_of_reach_target_does_not_converge() {
        let kin = ArmKinematics::default();
        let cfg = IkConfig::default();
        let far = Isometry3::translation(1.5, 0.2, 0.4);
        let sol = solve_ik(&kin, &far, &ArmSpec::home(), &cfg);
        assert!(!sol.converged);
        assert!(sol.q.iter().all(|v| v.is_finite()));
        assert!(sol.pos_err_m.is_finite() && sol.rot_err_rad.is_finite());
        // The target is 1.54 m from the shoulder; the arm reaches 0.66 m.
        assert!(sol.pos_err_m > 0.85, "{sol:?}");
        assert!(kin.spec().within_limits(&sol.q));

        // Non-finite inputs never produce NaN joint values.
        let nan_target = Isometry3::translation(f64::NAN, 0.0, 0.0);
        let sol = solve_ik(&kin, &nan_target, &ArmSpec::home(), &cfg);
        assert!(!sol.converged && sol.q.iter().all(|v| v.is_finite()));
        let q_nan = [f64::NAN, 0.0, 0.0, f64::INFINITY, 0.0, 0.0];
        let sol = apply_ee_delta(&kin, &q_nan, [0.01, 0.0, 0.0], [0.0; 3], &cfg);
        assert!(sol.q.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn already_at_target_takes_no_iterations() {
        let kin = ArmKinematics::default();
        let q = [0.1, -0.2, 0.3, 0.1, 0.5, -0.1];
        let sol = solve_ik(&kin, &kin.fk(&q), &q, &IkConfig::default());
        assert!(sol.converged);
        assert_eq!(sol.iters, 0);
        assert_eq!(sol.q, q);
    }
}
