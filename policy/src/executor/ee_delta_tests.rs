//! Executor tests in the `EeDelta` action space: rows combined as absolute tip targets.

use nalgebra::{UnitQuaternion, Vector3};
use sim::arm::{apply_ee_delta, ArmKinematics, IkConfig};

use super::*;

/// Arm joints (rad) and gripper of a reachable pose: the tip ahead of the base, pitched down.
const Q_A: [f32; 7] = [0.0, 0.2, 0.3, 0.0, 0.8, 0.0, 1.0];

/// `q` with the waist turned by `rad`.
fn waist_turned(q: [f32; 7], rad: f32) -> [f32; 7] {
    let mut q = q;
    q[0] += rad;
    q
}

/// The joints after the sim moves the tip from `q` by `xyz_m` (IK), gripper kept.
fn moved(q: [f32; 7], xyz_m: [f64; 3]) -> [f32; 7] {
    let q6: [f64; 6] = std::array::from_fn(|i| f64::from(q[i]));
    let sol = apply_ee_delta(&ArmKinematics::default(), &q6, xyz_m, [0.0; 3], &IkConfig::default());
    assert!(sol.converged);
    std::array::from_fn(|i| if i < 6 { sol.q[i] as f32 } else { q[6] })
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*g) - w).abs() < tol, "component {k}: {g} vs {w} (all: {got:?})");
    }
}

fn ensemble(horizon: usize) -> ChunkExecutor {
    ChunkExecutor::new(ExecMode::ensemble(), ActionKind::EeDelta, horizon, 7)
}

/// Chunk A (tick 0, tip at A): +1 cm x and yaw +0.05 rad per row, gripper 1. Chunk B (tick 1,
/// waist turned by 0.1 rad, so tip B = Rz(0.1)·tip A): +2 cm y per row, gripper 0. At tick 1 the
/// tip is measured still at A (it lagged). Targets of tick 1: A's row 1 = (p_A + 2 cm x,
/// Rz(0.1)·R_A) with weight 1 (oldest), B's row 0 = (p_B + 2 cm y, Rz(0.1)·R_A) with weight
/// e^−0.01. The emitted delta is their average minus the tip at A: the yaw is exactly 0.1.
/// (Averaging the raw rows would give dx = 1/(1+e^−0.01) cm and dyaw = 0.05/(1+e^−0.01).)
#[test]
fn overlapping_chunks_from_different_tips_ensemble_into_the_delta_to_the_mean_target() {
    let tip_a = tip_pose(&Q_A).unwrap();
    let q_b = waist_turned(Q_A, 0.1);
    let tip_b = tip_pose(&q_b).unwrap();
    let rz = UnitQuaternion::from_euler_angles(0.0, 0.0, 0.1);
    // Premise (the waist turns about the base z axis through the origin).
    assert!((tip_b.translation.vector - rz * tip_a.translation.vector).norm() < 1e-6);
    assert!(tip_b.rotation.angle_to(&(rz * tip_a.rotation)) < 1e-6);

    let mut ex = ensemble(3);
    let row_a = [0.01, 0.0, 0.0, 0.0, 0.0, 0.05, 1.0];
    ex.add_chunk(0, &row_a.repeat(3), 0, &Q_A);
    // Tick 0: one chunk, the tip where it was planned from: the row itself.
    assert_close(&ex.action(0, &Q_A).unwrap(), &row_a.map(f64::from), 1e-6);
    ex.add_chunk(1, &[0.0, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0].repeat(3), 1, &q_b);

    let (pa, pb) = (tip_a.translation.vector, tip_b.translation.vector);
    let w = (-0.01f64).exp();
    let mean = ((pa + Vector3::new(0.02, 0.0, 0.0)) + (pb + Vector3::new(0.0, 0.02, 0.0)) * w) / (1.0 + w);
    let d = mean - pa;
    let want = [d.x, d.y, d.z, 0.0, 0.0, 0.1, 1.0 / (1.0 + w)];
    assert_close(&ex.action(1, &Q_A).unwrap(), &want, 1e-6);
    // The numbers themselves: B's tip is ~3 cm from A's, so the delta is far from either raw row.
    assert!(d.norm() > 0.012 && d.norm() < 0.05, "{d:?}");
    assert_eq!(ex.stats.unposed, 0);
}

/// Closed loop: with the tip where the chunk planned it, the executor emits the chunk's own
/// row; with the tip lagging one row behind, the delta doubles to reach the same target.
#[test]
fn a_lagging_tip_gets_a_larger_delta_towards_the_same_target() {
    let row = [0.01f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    let on_plan = moved(Q_A, [0.01, 0.0, 0.0]);
    for (state, dx) in [(on_plan, 0.01), (Q_A, 0.02)] {
        let mut ex = ensemble(3);
        ex.add_chunk(0, &row.repeat(3), 0, &Q_A);
        ex.action(0, &Q_A).unwrap();
        let a = ex.action(1, &state).unwrap();
        // IK tolerance 0.1 mm, orientation 1 mrad.
        assert_close(&a, &[dx, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 2e-3);
        assert!((f64::from(a[0]) - dx).abs() < 2e-4, "dx {} vs {dx}", a[0]);
    }
    // A tip 20 cm behind: the delta stops at the 5 cm per-step limit.
    let mut ex = ensemble(3);
    ex.add_chunk(0, &row.repeat(3), 0, &moved(Q_A, [0.1, 0.0, 0.0]));
    assert_close(&ex.action(0, &moved(Q_A, [-0.1, 0.0, 0.0])).unwrap()[..3], &[0.05, 0.0, 0.0], 1e-3);
}

/// Async merging of `EeDelta` chunks merges targets: 0.3·(old target) + 0.7·(new target).
#[test]
fn async_merge_of_delta_chunks_blends_their_targets() {
    let mut ex = ChunkExecutor::new(ExecMode::Async { refresh_below: 2, keep_old: 0.3 }, ActionKind::EeDelta, 2, 7);
    let q_b = moved(Q_A, [0.0, 0.0, 0.03]);
    ex.add_chunk(0, &[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0].repeat(2), 0, &Q_A);
    ex.action(0, &Q_A).unwrap();
    ex.add_chunk(1, &[0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0].repeat(2), 1, &q_b);
    // Old target (A + 2 cm x), new target (A + 3 cm z + 1 cm y); the tip at A.
    let a = ex.action(1, &Q_A).unwrap();
    assert_close(&a[..3], &[0.3 * 0.02, 0.7 * 0.01, 0.7 * 0.03], 2e-4);
    // IK's orientation tolerance is 1 mrad.
    assert_close(&a[3..], &[0.0, 0.0, 0.0, 0.3], 2e-3);
}

/// Joint targets are absolute: rows are averaged as they are, whatever the state.
#[test]
fn joint_target_rows_are_averaged_as_they_are() {
    let mut ex = ChunkExecutor::new(ExecMode::ensemble(), ActionKind::JointTarget, 2, 7);
    let a = [0.1f32, 0.2, 0.3, 0.0, 0.8, 0.0, 1.0];
    let b = [0.3f32, 0.2, 0.1, 0.0, 0.6, 0.0, 0.0];
    ex.add_chunk(0, &a.repeat(2), 0, &Q_A);
    ex.add_chunk(1, &b.repeat(2), 1, &waist_turned(Q_A, 0.5));
    let w = (-0.01f64).exp();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) + w * f64::from(*y)) / (1.0 + w)).collect();
    assert_close(&ex.action(1, &[]).unwrap(), &want, 1e-6);
}

/// Open loop executes `EeDelta` rows as predicted, wherever the tip is.
#[test]
fn open_loop_delta_rows_are_executed_as_predicted() {
    let mut ex = ChunkExecutor::new(ExecMode::OpenLoop, ActionKind::EeDelta, 2, 7);
    let rows = [0.01f32, 0.0, 0.0, 0.0, 0.0, 0.1, 1.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 0.5];
    ex.add_chunk(0, &rows, 0, &Q_A);
    assert_eq!(ex.action(0, &waist_turned(Q_A, 0.3)).unwrap(), rows[..7]);
    assert_eq!(ex.action(1, &[]).unwrap(), rows[7..]);
}

/// Without six joint angles there is no tip pose: the chunk is dropped and the tick holds,
/// both counted.
#[test]
fn delta_chunks_without_a_tip_pose_are_dropped_and_counted() {
    let mut ex = ensemble(2);
    ex.add_chunk(0, &[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0].repeat(2), 0, &Q_A[..5]);
    assert_eq!(ex.action(0, &Q_A), None);
    assert_eq!((ex.stats.unposed, ex.stats.starved_ticks), (1, 1));
    ex.add_chunk(1, &[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0].repeat(2), 1, &Q_A);
    assert_eq!(ex.action(1, &[f32::NAN; 7]), None);
    assert_eq!(ex.stats.unposed, 2);
}

/// Target rows ([`crate::action_targets`]) are steered towards from the tip measured at each
/// tick, open loop included: a tip that lags gets the remaining distance, one already at the
/// target holds. The row names the target 1 cm ahead of tip A and turned by 0.05 rad of yaw.
#[test]
fn target_rows_emit_the_delta_from_the_measured_tip_in_every_mode() {
    let tip_a = tip_pose(&Q_A).unwrap();
    let delta = [0.01, 0.0, 0.0, 0.0, 0.0, 0.05, 0.5];
    let row = crate::action_targets::target_row(&tip_a, &delta);
    for mode in [ExecMode::OpenLoop, ExecMode::ensemble(), ExecMode::asynchronous(2)] {
        let mut ex = ChunkExecutor::new(mode, ActionKind::EeDelta, 2, 7).with_action_targets(true);
        assert!(ex.wants_chunk(0));
        ex.add_chunk(0, &row.repeat(2), 0, &Q_A);
        // From A: the delta that was recorded.
        assert_close(&ex.action(0, &Q_A).unwrap(), &delta.map(f64::from), 1e-5);
        // Tick 1, the tip already 1 cm ahead (yaw not yet turned): 0 in x, the yaw still to go.
        let q_ahead = moved(Q_A, [0.01, 0.0, 0.0]);
        let got = ex.action(1, &q_ahead).unwrap();
        assert_close(&got[..3], &[0.0, 0.0, 0.0], 1e-4);
        assert!((f64::from(got[5]) - 0.05).abs() < 1e-3, "{mode:?}: yaw {}", got[5]);
        assert_eq!(got[6], 0.5);
    }
    // Joint-target executors ignore the setting.
    let ex = ChunkExecutor::new(ExecMode::OpenLoop, ActionKind::JointTarget, 2, 7).with_action_targets(true);
    assert!(!ex.action_targets);
}
