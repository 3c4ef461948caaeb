use std::f64::consts::PI;

use bus::{Header, SCHEMA_VERSION};

use super::*;
use crate::watchdog::DEFAULT_WATCHDOG_TIMEOUT_NS;

const MS: u64 = 1_000_000;
/// Wall clock at the start of the tests, ns since the UNIX epoch.
const T0: u64 = 1_800_000_000_000_000_000;

fn config() -> ArbiterConfig {
    ArbiterConfig {
        freshness: Freshness::default(),
        watchdog_timeout_ns: DEFAULT_WATCHDOG_TIMEOUT_NS,
        limits: crate::limits::tests::widowx250(),
        control_period_ns: 10 * MS,
        backdate_chunks: true,
    }
}

fn header(stamp_ns: u64) -> Header {
    Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 7 }
}

fn joint(q: [f64; 6], stamp_ns: u64) -> JointCommand {
    JointCommand { header: header(stamp_ns), position: q.to_vec(), gripper: 0.5, obs_stamp_ns: 0 }
}

/// A joint-target chunk of `rows` rows `period_ns` apart, stamped `stamp_ns`, turning the waist
/// 0.01 rad per row.
fn waist_chunk(rows: u32, period_ns: u64, stamp_ns: u64) -> ActionChunk {
    let values = (0..rows).flat_map(|i| [0.01 * i as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).collect();
    ActionChunk {
        header: header(stamp_ns),
        kind: ActionKind::JointTarget,
        horizon: rows,
        dim: 7,
        period_ns,
        values,
        obs_stamp_ns: 0,
    }
}

fn estop(engaged: bool, stamp_ns: u64) -> Estop {
    Estop { header: header(stamp_ns), engaged, reason: "test".into() }
}

/// A cycle `k` × 10 ms after T0 on both clocks (control clock from 0), measured at `q`.
fn cycle(k: u64, q: [f64; 6]) -> Cycle {
    Cycle { now_ns: T0 + k * 10 * MS, control_ns: k * 10 * MS, measured_q_rad: q, accept_commands: true }
}

fn at(k: u64) -> u64 {
    T0 + k * 10 * MS
}

#[test]
fn a_fresh_joint_command_moves_at_the_velocity_limit_and_stops_at_the_joint_limit() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    let far = [0.0, 3.0, 0.0, 0.0, 0.0, 0.0];
    let inbox = Inbox { joint: Some(joint(far, at(0))), ..Default::default() };
    let d = a.step(&cycle(0, [0.0; 6]), inbox, None);
    assert_eq!(d.source, Source::Joint);
    assert!(d.clamped);
    assert!((d.q_rad[1] - PI * 0.010).abs() < 1e-12, "{d:?}");
    assert_eq!(d.gripper, 0.5);
    // It keeps moving without new commands (until the watchdog), π rad/s × 10 ms per cycle.
    let d = a.step(&cycle(1, [0.0; 6]), Inbox::default(), None);
    assert_eq!(d.source, Source::Continue);
    assert!((d.q_rad[1] - PI * 0.020).abs() < 1e-12, "{d:?}");
    // Refreshed every 100 ms it reaches the limit 1.990 rad, never past it.
    let mut last = d;
    for k in 2..100 {
        let inbox = Inbox { joint: (k % 10 == 0).then(|| joint(far, at(k))), ..Default::default() };
        last = a.step(&cycle(k, [0.0; 6]), inbox, None);
    }
    assert_eq!(last.q_rad[1], 1.990);
    assert_eq!(a.counts().commands_applied, 10);
    assert_eq!(a.counts().commands_clamped, 100, "every cycle clamped: first the speed, then the limit");
}

#[test]
fn stale_future_and_malformed_commands_change_nothing_and_are_counted() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    let q = [0.1; 6];
    let mut short = joint(q, at(4));
    short.position.pop();
    let cases = [
        joint(q, at(0) - 501 * MS),
        joint(q, at(1) + 101 * MS),
        joint(q, u64::MAX),
        joint([f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], at(3)),
        short,
    ];
    for (k, c) in cases.into_iter().enumerate() {
        let d = a.step(&cycle(k as u64, [0.0; 6]), Inbox { joint: Some(c), ..Default::default() }, None);
        assert_eq!((d.source, d.q_rad, d.clamped), (Source::Idle, [0.0; 6], false), "case {k}");
    }
    let c = a.counts();
    assert_eq!((c.commands_stale, c.commands_rejected, c.commands_applied), (3, 2, 0), "{c:?}");
}

#[test]
fn an_estop_pulse_holds_and_only_a_fresh_release_then_a_newer_command_moves_again() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    a.step(&cycle(0, [0.0; 6]), Inbox { joint: Some(joint([0.5; 6], at(0))), ..Default::default() }, None);
    let measured = [0.03; 6];
    let pulse = Inbox { estop: vec![estop(true, at(1)), estop(false, at(1) + 1)], ..Default::default() };
    let d = a.step(&cycle(1, measured), pulse, None);
    assert_eq!((d.source, d.q_rad), (Source::EstopHold, measured), "holds where it was measured");
    assert_eq!(d.gripper, 0.5, "the gripper keeps its command");
    // Commands while engaged are ignored, not stale.
    let d = a.step(&cycle(2, measured), Inbox { joint: Some(joint([0.5; 6], at(2))), ..Default::default() }, None);
    assert_eq!((d.source, d.q_rad), (Source::EstopHold, measured));
    // A stale release is refused; a fresh one releases; the arm holds until a newer command.
    let stale = Inbox { estop: vec![estop(false, at(3) - 600 * MS)], ..Default::default() };
    assert_eq!(a.step(&cycle(3, measured), stale, None).source, Source::EstopHold);
    let release = Inbox { estop: vec![estop(false, at(4))], ..Default::default() };
    let d = a.step(&cycle(4, measured), release, None);
    assert_eq!((d.source, d.q_rad), (Source::Idle, measured));
    let queued = Inbox { joint: Some(joint([0.5; 6], at(4) - MS)), ..Default::default() };
    assert_eq!(a.step(&cycle(5, measured), queued, None).source, Source::Idle);
    let fresh = Inbox { joint: Some(joint([0.5; 6], at(6))), ..Default::default() };
    assert_eq!(a.step(&cycle(6, measured), fresh, None).source, Source::Joint);
    let c = a.counts();
    assert_eq!((c.estop.engaged, c.estop.released, c.estop.release_refused), (1, 1, 2));
    assert_eq!((c.commands_applied, c.commands_stale), (2, 1), "{c:?}");
}

#[test]
fn a_lost_estop_message_engages() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    let inbox = Inbox { estop_dropped_total: 2, joint: Some(joint([0.5; 6], at(0))), ..Default::default() };
    let d = a.step(&cycle(0, [0.0; 6]), inbox, None);
    assert_eq!(d.source, Source::EstopHold);
    assert_eq!(a.counts().estop.queue_overflows, 1);
    assert_eq!(a.counts().commands_applied, 0);
}

#[test]
fn the_watchdog_holds_when_commands_stop_then_the_arbiter_is_idle() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    let d = a.step(&cycle(0, [0.0; 6]), Inbox { joint: Some(joint([1.0; 6], at(0))), ..Default::default() }, None);
    assert_eq!(d.source, Source::Joint);
    let mut sources = Vec::new();
    let mut last_q = d.q_rad;
    for k in 1..=30 {
        let d = a.step(&cycle(k, [0.0; 6]), Inbox::default(), None);
        sources.push(d.source);
        if d.source == Source::WatchdogHold {
            last_q = d.q_rad;
        }
    }
    // 250 ms timeout at 10 ms cycles: cycles 1–25 continue, cycle 26 holds, then idle.
    assert!(sources[..25].iter().all(|s| *s == Source::Continue), "{sources:?}");
    assert_eq!(sources[25], Source::WatchdogHold);
    assert!(sources[26..].iter().all(|s| *s == Source::Idle), "{sources:?}");
    // It held where the filtered target was (26 cycles × π rad/s × 10 ms), not at the command.
    assert!((last_q[0] - 26.0 * PI * 0.010).abs() < 1e-9, "{last_q:?}");
    let d = a.step(&cycle(40, [0.0; 6]), Inbox::default(), None);
    assert_eq!(d.q_rad, last_q);
    assert_eq!(a.counts().watchdog_holds, 1);
}

#[test]
fn a_chunk_plays_by_the_control_clock_back_dated_by_its_age() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    // 5 rows, 200 ms apart, stamped 50 ms before it arrives at cycle 0.
    let chunk = waist_chunk(5, 200 * MS, at(0) - 50 * MS);
    let mut rows = Vec::new();
    for k in 0..120 {
        let inbox = Inbox { chunk: (k == 0).then(|| chunk.clone()), ..Default::default() };
        if let Source::ChunkRow { index } = a.step(&cycle(k, [0.0; 6]), inbox, None).source {
            rows.push((index, k));
        }
        assert_eq!(a.chunk_rows_pending(), k < 75, "cycle {k}: rows pending until the last is due");
    }
    // Row i is due at (200 i − 50) ms after arrival: cycles 0, 15, 35, 55, 75.
    assert_eq!(rows, [(0, 0), (1, 15), (2, 35), (3, 55), (4, 75)]);
    // The chunk lasts until 950 ms; the watchdog holds 250 ms later (cycle 121 > 120: still live).
    assert_eq!(a.counts().watchdog_holds, 0);
    assert_eq!(a.step(&cycle(121, [0.0; 6]), Inbox::default(), None).source, Source::WatchdogHold);
}

struct Shift;

impl EeDeltaSolver for Shift {
    fn solve_ee_delta(&self, from_q_rad: &[f64; 6], xyz_m: [f64; 3], _rpy_rad: [f64; 3]) -> Option<[f64; 6]> {
        (xyz_m[2] < 1.0).then(|| std::array::from_fn(|i| from_q_rad[i] + xyz_m[0]))
    }
}

#[test]
fn ee_deltas_accumulate_on_the_desired_target_through_the_solver() {
    let mut a = Arbiter::new(config(), [0.0; 6], 1.0).expect("limits");
    let ee = |dx: f64, dz: f64, k: u64| EeDeltaCommand {
        header: header(at(k)),
        delta_xyz_m: [dx, 0.0, dz],
        delta_rpy_rad: [0.0; 3],
        gripper: 1.0,
        obs_stamp_ns: 0,
    };
    for k in 0..3 {
        let d =
            a.step(&cycle(k, [0.0; 6]), Inbox { ee_delta: Some(ee(0.01, 0.0, k)), ..Default::default() }, Some(&Shift));
        assert_eq!(d.source, Source::EeDelta);
    }
    let d = a.step(&cycle(3, [0.0; 6]), Inbox::default(), Some(&Shift));
    assert!((d.q_rad[0] - 0.03).abs() < 1e-12, "{d:?}");
    // Unreachable, or no kinematics: rejected.
    a.step(&cycle(4, [0.0; 6]), Inbox { ee_delta: Some(ee(0.01, 2.0, 4)), ..Default::default() }, Some(&Shift));
    a.step(&cycle(5, [0.0; 6]), Inbox { ee_delta: Some(ee(0.01, 0.0, 5)), ..Default::default() }, None);
    assert_eq!(a.counts().commands_rejected, 2);
    // The newest of a joint and an ee command wins.
    let inbox = Inbox { joint: Some(joint([0.2; 6], at(6))), ee_delta: Some(ee(0.01, 0.0, 5)), ..Default::default() };
    assert_eq!(a.step(&cycle(6, [0.0; 6]), inbox, Some(&Shift)).source, Source::Joint);
}

#[test]
fn on_simulated_time_a_chunk_starts_when_it_arrives() {
    // The lockstep sim: the control clock is simulated time, which a chunk's wall-clock age does
    // not measure; row k is due k periods after the step it arrived in.
    let mut a = Arbiter::new(ArbiterConfig { backdate_chunks: false, ..config() }, [0.0; 6], 1.0).expect("limits");
    let chunk = waist_chunk(3, 20 * MS, at(0) - 150 * MS);
    let rows: Vec<Source> = (0..8)
        .map(|k| {
            a.step(&cycle(k, [0.0; 6]), Inbox { chunk: (k == 0).then(|| chunk.clone()), ..Default::default() }, None)
        })
        .map(|d| d.source)
        .collect();
    let row = |index| Source::ChunkRow { index };
    assert_eq!(rows[..6], [row(0), Source::Continue, row(1), Source::Continue, row(2), Source::Continue]);
}
