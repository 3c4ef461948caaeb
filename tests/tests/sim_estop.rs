//! The sim node's e-stop latch and command freshness, with messages injected on a real zenoh bus
//! on loopback. The sim runs at 5 Hz (200 ms steps, 10 s episodes) so that two messages published
//! back to back always arrive within one step and no episode reset happens during a test.

use std::time::{Duration, Instant};

use bus::command_rules::{STATUS_ESTOP_ENGAGED, STATUS_ESTOP_RELEASED, STATUS_ESTOP_RELEASE_REFUSED};
use bus::{ActionChunk, EeDeltaCommand, Estop, Header, JointCommand, JointState, NodeState, Status, SCHEMA_VERSION};

mod common;
use common::{arm_q, put_until_status, waist_chunk, Harness};

const RATE_HZ: f64 = 5.0;
const HOUR_NS: u64 = 3_600 * 1_000_000_000;

fn max_change(a: &JointState, b: &JointState) -> f64 {
    arm_q(a).iter().zip(arm_q(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The first joint state published from now on (queued ones are dropped), waiting up to 2 s.
fn next_state(states: &bus::Subscriber<JointState>) -> JointState {
    states.drain();
    states.recv_timeout(Duration::from_secs(2)).expect("a joint state")
}

/// The next `n`-th joint state (skipping `n − 1`), waiting up to 2 s for each.
fn nth_state(states: &bus::Subscriber<JointState>, n: usize) -> JointState {
    let mut last = None;
    for _ in 0..n {
        last = Some(states.recv_timeout(Duration::from_secs(2)).expect("a joint state"));
    }
    last.expect("n > 0")
}

/// Starts a 40-row joint chunk turning the waist 0.04 rad per step from the current pose and
/// waits until the arm follows it; returns the joint-state subscriber.
fn play_chunk(h: &Harness) -> bus::Subscriber<JointState> {
    let states = h.client.subscriber::<JointState>().unwrap();
    let start = states.recv_timeout(Duration::from_secs(5)).expect("a joint state");
    let chunk = waist_chunk(&arm_q(&start), 40, 0.04, 200_000_000);
    let publisher = h.client.publisher::<ActionChunk>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut next_send = Instant::now();
    loop {
        // Sent again after a second without motion (zenoh routes asynchronously).
        if Instant::now() >= next_send {
            publisher.publish(&mut chunk.clone()).unwrap();
            next_send = Instant::now() + Duration::from_secs(1);
        }
        let js = states.recv_timeout(Duration::from_secs(2)).expect("a joint state");
        if js.position[0] - start.position[0] > 0.06 {
            return states;
        }
        assert!(Instant::now() < deadline, "the chunk never moved the arm");
    }
}

/// Waits for a `status` in `state` whose counters satisfy `done`; fails after 5 s.
fn wait_status(
    status: &bus::Subscriber<Status>,
    state: NodeState,
    mut done: impl FnMut(&std::collections::BTreeMap<String, u64>) -> bool,
) -> Status {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = status.recv_timeout(Duration::from_millis(200)) {
            if s.state == state && done(&s.counters) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "no {state:?} status with the expected counters");
    }
}

/// Engages until the node reports `Estopped`.
fn engage_until_reported(h: &Harness, status: &bus::Subscriber<Status>) {
    let estop = h.client.publisher::<Estop>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        estop.publish(&mut Estop { engaged: true, reason: "test".into(), ..Default::default() }).unwrap();
        if status.recv_timeout(Duration::from_millis(200)).is_some_and(|s| s.state == NodeState::Estopped) {
            return;
        }
        assert!(Instant::now() < deadline, "the e-stop was never reported");
    }
}

fn counted(c: &std::collections::BTreeMap<String, u64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0)
}

/// An engage and a release within one step latch: the chunk stops, the node reports `Estopped`
/// with the engage and the refused release counted.
#[test]
fn an_estop_pulse_within_one_step_latches_and_stops_the_chunk() {
    let h = Harness::start("sim_estop_pulse", RATE_HZ, None);
    let status = h.client.subscriber::<Status>().unwrap();
    let states = play_chunk(&h);
    let estop = h.client.publisher::<Estop>().unwrap();
    std::thread::sleep(Duration::from_millis(60));
    estop.publish(&mut Estop { engaged: true, reason: "pulse".into(), ..Default::default() }).unwrap();
    estop.publish(&mut Estop { engaged: false, ..Default::default() }).unwrap();
    let held = nth_state(&states, 2);
    let later = nth_state(&states, 4);
    let moved = max_change(&held, &later);
    assert!(moved < 0.01, "the chunk kept moving the arm after the pulse: {moved} rad");
    let s = wait_status(&status, NodeState::Estopped, |c| counted(c, STATUS_ESTOP_ENGAGED) == 1);
    assert_eq!(counted(&s.counters, STATUS_ESTOP_RELEASE_REFUSED), 1, "{s:?}");
    assert_eq!(counted(&s.counters, STATUS_ESTOP_RELEASED), 0, "{s:?}");
    let report = h.finish();
    assert_eq!(report.commands.estop.engaged, 1, "{report:?}");
}

/// After an e-stop and a valid release the old chunk does not resume: the arm holds until a
/// fresh command.
#[test]
fn after_a_release_the_old_chunk_does_not_resume() {
    let h = Harness::start("sim_estop_resume", RATE_HZ, None);
    let status = h.client.subscriber::<Status>().unwrap();
    let states = play_chunk(&h);
    engage_until_reported(&h, &status);
    let held = next_state(&states);
    h.client.publisher::<Estop>().unwrap().publish(&mut Estop::default()).unwrap();
    let later = nth_state(&states, 5);
    let moved = max_change(&held, &later);
    assert!(moved < 0.01, "the old chunk resumed after the release: {moved} rad");
    wait_status(&status, NodeState::Running, |c| counted(c, STATUS_ESTOP_RELEASED) == 1);
    let report = h.finish();
    assert_eq!(report.commands.estop.released, 1, "{report:?}");
}

/// Releases stamped 0 (seq 0, any `source_id`), a second ago or an hour ahead are refused:
/// commands still do not move the arm.
#[test]
fn replayed_and_stale_releases_keep_the_sim_estopped() {
    let h = Harness::start("sim_estop_replay", RATE_HZ, None);
    let status = h.client.subscriber::<Status>().unwrap();
    let states = h.client.subscriber::<JointState>().unwrap();
    engage_until_reported(&h, &status);
    let now = bus::now_ns();
    let releases: Vec<(String, Vec<u8>)> = [0, now - 1_000_000_000, now + HOUR_NS]
        .into_iter()
        .map(|stamp_ns| {
            let header = Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 77 };
            let release = Estop { header, engaged: false, reason: "replayed".into() };
            (h.client.key("estop"), bus::encode(&release).unwrap())
        })
        .collect();
    let held = next_state(&states);
    for (key, bytes) in &releases {
        h.client.put_raw(key, bytes.clone()).unwrap();
    }
    let command = h.client.publisher::<JointCommand>().unwrap();
    for _ in 0..50 {
        let mut cmd = JointCommand { position: vec![1.0, 0.5, 0.5, 0.5, 0.5, 0.5], ..Default::default() };
        command.publish(&mut cmd).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_status(&status, NodeState::Estopped, |c| counted(c, STATUS_ESTOP_RELEASE_REFUSED) == 3);
    let moved = max_change(&held, &next_state(&states));
    assert!(moved < 0.01, "a replayed release let a command move the arm {moved} rad");
    let report = h.finish();
    assert_eq!(report.commands.estop.released, 0, "{report:?}");
    assert_eq!(report.commands.commands_applied, 0, "{report:?}");
}

/// Commands stamped an hour, a year or 2^64 − 1 ns ahead, or a second ago, never move the arm.
#[test]
fn future_and_stale_commands_never_move_the_sim() {
    let h = Harness::start("sim_future_cmd", RATE_HZ, None);
    let states = h.client.subscriber::<JointState>().unwrap();
    // Past the first steps after the reset, while the arm rests at its start pose.
    std::thread::sleep(Duration::from_millis(600));
    let before = next_state(&states);
    let command = h.client.publisher::<JointCommand>().unwrap();
    let offsets: [fn(u64) -> u64; 4] =
        [|t| t + HOUR_NS, |t| t + 365 * 24 * HOUR_NS, |_| u64::MAX, |t| t - 1_000_000_000];
    let until = Instant::now() + Duration::from_millis(1500);
    let mut k = 0;
    while Instant::now() < until {
        let mut cmd = JointCommand { position: vec![1.0, 0.5, 0.5, 0.5, 0.5, 0.5], ..Default::default() };
        cmd.header.stamp_ns = offsets[k % offsets.len()](bus::now_ns());
        command.publish(&mut cmd).unwrap();
        k += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let moved = max_change(&before, &next_state(&states));
    assert!(moved < 0.01, "a future or stale command moved the arm {moved} rad");
    let report = h.finish();
    assert_eq!(report.commands.commands_applied, 0, "{report:?}");
    assert!(report.commands.commands_stale >= 4, "{report:?}");
}

/// `seq` jumping from 0 to 2^64 − 1 on both direct command topics saturates the `command_gaps`
/// counter instead of overflowing it (which killed the sim).
#[test]
fn seq_jumps_to_the_maximum_on_two_command_topics_do_not_kill_the_sim() {
    let h = Harness::start("sim_seq_jump", RATE_HZ, None);
    let header = |seq| Header { schema: SCHEMA_VERSION, stamp_ns: 1, seq, source_id: 5 };
    let mut payloads = Vec::new();
    for seq in [0, u64::MAX] {
        let joint = JointCommand { header: header(seq), position: vec![0.0; 6], ..Default::default() };
        let ee = EeDeltaCommand { header: header(seq), ..Default::default() };
        payloads.push((h.client.key("command/joint"), bus::encode(&joint).unwrap()));
        payloads.push((h.client.key("command/ee_delta"), bus::encode(&ee).unwrap()));
    }
    let s = put_until_status(&h, &payloads, |c| counted(c, "command_gaps") == u64::MAX);
    assert_eq!(s.state, NodeState::Running, "{s:?}");
    let report = h.finish();
    assert!(report.steps > 0, "{report:?}");
}

/// A burst of `estop` messages larger than the node's queue within one step loses messages (a
/// full queue drops its oldest, which could be an engage): the latch engages, fail safe, and the
/// loss is counted on `status`. The burst holds only releases, which alone would change nothing.
#[test]
fn an_estop_queue_overflow_engages_the_latch() {
    let h = Harness::start("sim_estop_overflow", RATE_HZ, None);
    let status = h.client.subscriber::<Status>().unwrap();
    let estop = h.client.publisher::<Estop>().unwrap();
    // Subscription propagation: the node has seen a release when its next status comes.
    std::thread::sleep(Duration::from_millis(500));
    // 3 × the queue within well under one 200 ms step: at least one step's queue overflows.
    for _ in 0..3 * bus::ESTOP_QUEUE_CAPACITY {
        estop.publish(&mut Estop { engaged: false, reason: "burst".into(), ..Default::default() }).unwrap();
    }
    let s = wait_status(&status, NodeState::Estopped, |c| {
        counted(c, bus::command_rules::STATUS_ESTOP_QUEUE_OVERFLOWS) >= 1
    });
    assert_eq!(counted(&s.counters, STATUS_ESTOP_ENGAGED), 1, "{s:?}");
    let report = h.finish();
    assert!(report.commands.estop.queue_overflows >= 1, "{report:?}");
    assert_eq!(report.commands.estop.released, 0, "{report:?}");
}

/// A replayed or delayed `Stop` (stamped 0, a second ago, or an hour ahead) does not stop the sim
/// or end its episode: episode requests obey the commands' freshness bound and are counted.
#[test]
fn stale_and_future_episode_requests_are_ignored() {
    let h = Harness::start("sim_stale_episode_request", RATE_HZ, None);
    let now = bus::now_ns();
    let payloads: Vec<(String, Vec<u8>)> = [0, now - 1_000_000_000, now + HOUR_NS]
        .into_iter()
        .map(|stamp_ns| {
            let header = Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 78 };
            let stop = bus::EpisodeControl { header, request: bus::EpisodeRequest::Stop };
            (h.client.key("command/episode"), bus::encode(&stop).unwrap())
        })
        .collect();
    let s = put_until_status(&h, &payloads, |c| counted(c, "episode_requests_stale") >= 3);
    assert_eq!(s.state, NodeState::Running, "{s:?}");
    let report = h.finish();
    assert_eq!(report.episodes, 0, "a stale request ended an episode: {report:?}");
    assert!(report.commands.episode_requests_stale >= 3, "{report:?}");
}
