//! The sim node on a real zenoh bus (loopback, isolated discovery dir) times commands like the
//! arm driver: a chunk's rows play by the wall clock, not one per control step, and the watchdog
//! holds the arm when commands stop.

use std::time::{Duration, Instant};

use bus::{ActionChunk, JointCommand, JointState, Status};

mod common;
use common::{arm_q, waist_chunk, Harness};

/// The sim's default control rate, Hz.
const RATE_HZ: f64 = 10.0;

/// The first joint state from now on (queued ones are dropped), waiting up to 2 s.
fn next_state(states: &bus::Subscriber<JointState>) -> JointState {
    states.drain();
    states.recv_timeout(Duration::from_secs(2)).expect("a joint state")
}

/// A 5-row chunk with a 200 ms period takes about 1 s at a 10 Hz control rate (its last row is
/// due 800 ms after its stamp), not 5 control steps (500 ms).
#[test]
fn a_chunk_plays_by_the_wall_clock_not_one_row_per_step() {
    let h = Harness::start("sim_chunk_clock", RATE_HZ, None);
    let states = h.client.subscriber::<JointState>().unwrap();
    // Past the first steps after the reset, while the arm rests at its start pose.
    std::thread::sleep(Duration::from_millis(500));
    let start = arm_q(&next_state(&states));
    // The waist turns 0.1 rad per row; each row's move takes about 32 ms at π rad/s.
    let chunk = waist_chunk(&start, 5, 0.1, 200_000_000);
    let publisher = h.client.publisher::<ActionChunk>().unwrap();
    // Subscription propagation: wait until the first row moved the arm, then time from its stamp.
    let deadline = Instant::now() + Duration::from_secs(5);
    let sent = loop {
        // A fresh clone each time: the publisher stamps it now (a re-sent stamp would go stale).
        publisher.publish(&mut chunk.clone()).unwrap();
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(400) {
            let js = states.recv_timeout(Duration::from_millis(200)).expect("a joint state");
            if js.position[0] - start[0] > 0.05 {
                break;
            }
        }
        if arm_q(&next_state(&states))[0] - start[0] > 0.05 {
            break sent;
        }
        assert!(Instant::now() < deadline, "the chunk never moved the arm");
        // Let a chunk that arrived late play out before sending it again.
        std::thread::sleep(Duration::from_millis(1200));
    };
    let last_row_reached = loop {
        let js = states.recv_timeout(Duration::from_secs(2)).expect("a joint state");
        if js.position[0] - start[0] > 0.45 {
            break sent.elapsed();
        }
        assert!(sent.elapsed() < Duration::from_secs(3), "the chunk's last row was never reached");
    };
    assert!(
        last_row_reached >= Duration::from_millis(750) && last_row_reached <= Duration::from_millis(1300),
        "the last row (due 800 ms after the chunk's stamp) was reached after {last_row_reached:?}"
    );
    let report = h.finish();
    assert!(report.commands.commands_applied >= 5, "{report:?}");
}

/// Commands toward a far target flow for 200 ms and stop: 250 ms later the watchdog holds the
/// arm where it is, short of the target (which it would reach 0.8 s after the first command at
/// π rad/s), and counts the hold on `status`.
#[test]
fn the_watchdog_holds_when_commands_stop() {
    let h = Harness::start("sim_watchdog", RATE_HZ, None);
    let states = h.client.subscriber::<JointState>().unwrap();
    let status = h.client.subscriber::<Status>().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = arm_q(&next_state(&states));
    let mut target = start;
    target[0] = if start[0] > 0.0 { start[0] - 2.5 } else { start[0] + 2.5 };
    let command = h.client.publisher::<JointCommand>().unwrap();
    // Subscription propagation: send until the arm moves, then 200 ms more.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        command.publish(&mut JointCommand { position: target.to_vec(), gripper: 1.0, ..Default::default() }).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        if states.latest().is_some_and(|js| (js.position[0] - start[0]).abs() > 0.05) {
            break;
        }
        assert!(Instant::now() < deadline, "the command never moved the arm");
    }
    for _ in 0..4 {
        command.publish(&mut JointCommand { position: target.to_vec(), gripper: 1.0, ..Default::default() }).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let held = arm_q(&next_state(&states));
    let travelled = (held[0] - start[0]).abs();
    assert!(travelled < 2.0, "the arm kept going to the target after commands stopped: {travelled} rad of 2.5");
    assert!(travelled > 0.3, "the arm barely moved: {travelled} rad");
    let later = arm_q(&next_state(&states));
    assert!((later[0] - held[0]).abs() < 0.01, "the arm did not hold: {} → {}", held[0], later[0]);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = status.recv_timeout(Duration::from_millis(500));
        if s.is_some_and(|s| s.counters.get("watchdog_holds") == Some(&1)) {
            break;
        }
        assert!(Instant::now() < deadline, "no status with watchdog_holds = 1");
    }
    let report = h.finish();
    assert_eq!(report.commands.watchdog_holds, 1, "{report:?}");
}
