//! The driver's e-stop latch and command freshness against the servo emulator, with messages
//! injected on a real zenoh bus on loopback: a pulse within one cycle, a replayed release and
//! future-stamped commands never move the arm.

use std::time::{Duration, Instant};

use bus::{ActionChunk, ActionKind, Bus, Estop, Header, JointCommand, NodeState, Status, SCHEMA_VERSION};
use robot_driver::emulator::Faults;

mod common;
use common::{emulator, fast_cfg, in_process_arm, latest_state, with_node, TARGET};

const HOUR_NS: u64 = 3_600 * 1_000_000_000;

/// Waits until the node reports `Estopped` on `status`, engaging again every 100 ms.
fn engage_until_reported(bus: &Bus, status: &bus::Subscriber<Status>) {
    let estop = bus.publisher::<Estop>().expect("pub");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        estop.publish(&mut Estop { engaged: true, reason: "test".into(), ..Default::default() }).expect("engage");
        if let Some(s) = status.recv_timeout(Duration::from_millis(100)) {
            if s.state == NodeState::Estopped {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the e-stop was never reported");
    }
}

/// Puts a release with `header` raw on the bus, as a replaying or misconfigured client would.
fn put_release(bus: &Bus, header: Header) {
    let msg = Estop { header, engaged: false, reason: "replayed".into() };
    bus.put_raw(&bus.key("estop"), bus::encode(&msg).expect("encode")).expect("put");
}

fn max_joint_change(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).take(6).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// An engage and a release published back to back (within one 10 ms cycle) stop a playing chunk:
/// the arm holds, the node reports `Estopped` and counts the engage.
#[test]
fn an_estop_pulse_within_one_cycle_stops_a_playing_chunk() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let start = latest_state(bus, Duration::from_secs(1)).position;
        // 100 rows over 2 s turning the waist by 1 rad; the other joints stay.
        let rows = 100;
        let mut values = Vec::new();
        for i in 0..rows {
            let mut row: Vec<f32> = start.iter().take(7).map(|q| *q as f32).collect();
            row[0] += (i + 1) as f32 / rows as f32;
            values.extend(row);
        }
        let mut chunk = ActionChunk {
            kind: ActionKind::JointTarget,
            horizon: rows as u32,
            dim: 7,
            period_ns: 20_000_000,
            values,
            ..Default::default()
        };
        bus.publisher::<ActionChunk>().expect("pub").publish(&mut chunk).expect("chunk");
        std::thread::sleep(Duration::from_millis(300));
        let moving = latest_state(bus, Duration::from_secs(1)).position;
        assert!(moving[0] - start[0] > 0.05, "the chunk did not play: {} → {}", start[0], moving[0]);
        let estop = bus.publisher::<Estop>().expect("pub");
        estop.publish(&mut Estop { engaged: true, reason: "pulse".into(), ..Default::default() }).expect("engage");
        estop.publish(&mut Estop { engaged: false, ..Default::default() }).expect("release");
        std::thread::sleep(Duration::from_millis(100));
        let held = latest_state(bus, Duration::from_secs(1)).position;
        std::thread::sleep(Duration::from_millis(500));
        let later = latest_state(bus, Duration::from_secs(1)).position;
        let moved = max_joint_change(&held, &later);
        assert!(moved < 0.01, "the chunk kept moving the arm after the pulse: {moved} rad");
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.estop.engaged, 1, "{report:?}");
    assert!(statuses.iter().any(|s| s.state == NodeState::Estopped), "no Estopped status: {statuses:?}");
}

/// Releases stamped 0 (seq 0, any `source_id`), a second ago or an hour ahead do not release
/// the e-stop: commands still do not move the arm, and the refusals are counted on `status`.
#[test]
fn replayed_stale_and_future_releases_keep_the_estop_engaged() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let status = bus.subscriber::<Status>().expect("status sub");
        engage_until_reported(bus, &status);
        let now = bus::now_ns();
        for stamp_ns in [0, now - 1_000_000_000, now + HOUR_NS, u64::MAX] {
            put_release(bus, Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 77 });
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = latest_state(bus, Duration::from_secs(1)).position;
        let cmd = bus.publisher::<JointCommand>().expect("pub");
        for _ in 0..30 {
            cmd.publish(&mut JointCommand { position: TARGET.to_vec(), gripper: 0.5, ..Default::default() })
                .expect("command");
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = latest_state(bus, Duration::from_secs(1)).position;
        let moved = max_joint_change(&before, &after);
        assert!(moved < 0.01, "a replayed release let commands move the arm {moved} rad");
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.estop.released, 0, "{report:?}");
    assert_eq!(report.commands.estop.release_refused, 4, "{report:?}");
    assert_eq!(report.commands.commands_applied, 0, "{report:?}");
    let last = statuses.last().expect("a final status");
    assert_eq!(last.counters.get(bus::command_rules::STATUS_ESTOP_RELEASE_REFUSED), Some(&4), "{last:?}");
    assert_eq!(last.counters.get(bus::command_rules::STATUS_ESTOP_ENGAGED), Some(&1), "{last:?}");
}

/// Commands stamped an hour, a year or 2^64 − 1 ns ahead are never fresh: not before an e-stop,
/// and not as the fresh command after a release.
#[test]
fn future_stamped_commands_never_move_the_arm() {
    let emu = emulator(Faults::default());
    let (report, _) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let status = bus.subscriber::<Status>().expect("status sub");
        let cmd = bus.publisher::<JointCommand>().expect("pub");
        let send_future = || {
            for k in 0..30u64 {
                let ahead = [HOUR_NS, 365 * 24 * HOUR_NS, u64::MAX][(k % 3) as usize];
                let mut c = JointCommand { position: TARGET.to_vec(), gripper: 0.5, ..Default::default() };
                c.header.stamp_ns = bus::now_ns().saturating_add(ahead);
                cmd.publish(&mut c).expect("publish");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let before = latest_state(bus, Duration::from_secs(1)).position;
        send_future();
        engage_until_reported(bus, &status);
        bus.publisher::<Estop>().expect("pub").publish(&mut Estop::default()).expect("release");
        std::thread::sleep(Duration::from_millis(50));
        send_future();
        let after = latest_state(bus, Duration::from_secs(1)).position;
        let moved = max_joint_change(&before, &after);
        assert!(moved < 0.01, "a future-stamped command moved the arm {moved} rad");
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.commands_applied, 0, "{report:?}");
    assert!(report.commands.commands_stale >= 40, "{report:?}");
    assert_eq!(report.commands.estop.released, 1, "{report:?}");
}

/// A burst of `estop` messages larger than the node's queue within one cycle loses messages (a
/// full queue drops its oldest, which could be an engage): the latch engages, fail safe, and the
/// loss is counted. The burst holds only releases, which alone would change nothing.
#[test]
fn an_estop_queue_overflow_engages_the_latch() {
    let emu = emulator(Faults::default());
    // 5 Hz cycles: the whole burst arrives within one or two cycles.
    let cfg = robot_driver::node::DriverNodeConfig { cycle_hz: 5.0, publish_hz: 5.0, ..fast_cfg() };
    let (report, statuses) = with_node(in_process_arm(&emu), cfg, |bus| {
        let estop = bus.publisher::<Estop>().expect("pub");
        latest_state(bus, Duration::from_secs(2));
        for _ in 0..3 * bus::ESTOP_QUEUE_CAPACITY {
            estop
                .publish(&mut Estop { engaged: false, reason: "burst".into(), ..Default::default() })
                .expect("release");
        }
        std::thread::sleep(Duration::from_millis(600));
    });
    let report = report.expect("node ran");
    assert!(report.commands.estop.queue_overflows >= 1, "{report:?}");
    assert_eq!((report.commands.estop.engaged, report.commands.estop.released), (1, 0), "{report:?}");
    assert!(statuses.iter().any(|s| s.state == NodeState::Estopped), "no Estopped status: {statuses:?}");
}
