//! The sim node on a real zenoh bus, shared by the integration tests: a harness that runs it on
//! loopback with an isolated discovery dir, and helpers that drive it and poll its `status`.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bus::{ActionChunk, ActionKind, Bus, BusConfig, JointState, Status};
use sim::node::{SimNode, SimNodeConfig, SimNodeReport};
use sim::{load_scene, EnvConfig};

/// A sim node on its own loopback bus (isolated discovery dir) and a client session.
pub struct Harness {
    /// The discovery directory of the node and the client (removed on drop).
    pub dir: tempfile::TempDir,
    /// The test's session.
    pub client: Bus,
    stop: Arc<AtomicBool>,
    node: Option<JoinHandle<SimNodeReport>>,
}

impl Harness {
    /// Starts the node for `robot` at `rate_hz` ("reach" scene, seed 0, free-running).
    pub fn start(robot: &str, rate_hz: f64, max_steps: Option<u64>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = BusConfig::with_discovery_dir(robot, dir.path());
        Self::start_on(dir, &config, rate_hz, max_steps)
    }

    /// Like [`Harness::start`], with the node's and the client's sessions opened from `config`;
    /// `dir` (holding whatever `config` refers to) lives as long as the harness.
    pub fn start_on(dir: tempfile::TempDir, config: &BusConfig, rate_hz: f64, max_steps: Option<u64>) -> Harness {
        let mut env = EnvConfig::new(load_scene("reach").unwrap());
        env.control_hz = rate_hz;
        let node_cfg = SimNodeConfig { max_steps, ..node_config(env) };
        let stop = Arc::new(AtomicBool::new(false));
        let node_bus = Bus::open(config).unwrap();
        let stop_node = stop.clone();
        let node = std::thread::spawn(move || {
            let mut node = SimNode::new(node_cfg).unwrap();
            node.run(&node_bus, &stop_node).unwrap()
        });
        let client = Bus::open(config).unwrap();
        Harness { dir, client, stop, node: Some(node) }
    }

    /// Stops the node and returns its report.
    pub fn finish(mut self) -> SimNodeReport {
        self.stop.store(true, Ordering::SeqCst);
        self.node.take().unwrap().join().unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(node) = self.node.take() {
            let _ = node.join();
        }
    }
}

/// A joint-target chunk of `rows` rows `period_ns` apart from the pose `start` (rad), turning the
/// waist by `step_rad` more each row, gripper open.
pub fn waist_chunk(start: &[f64; 6], rows: u32, step_rad: f32, period_ns: u64) -> ActionChunk {
    let mut values = Vec::new();
    for i in 0..rows {
        let mut row: Vec<f32> = start.iter().map(|q| *q as f32).collect();
        row[0] += step_rad * (i + 1) as f32;
        row.push(1.0);
        values.extend(row);
    }
    ActionChunk { kind: ActionKind::JointTarget, horizon: rows, dim: 7, period_ns, values, ..Default::default() }
}

/// A real-time sim node named `sim` running `env` from seed 0: no autopilot, no lockstep, no
/// limits, no pause between episodes.
pub fn node_config(env: EnvConfig) -> SimNodeConfig {
    SimNodeConfig {
        env,
        seed: 0,
        as_fast_as_possible: false,
        max_episodes: None,
        max_steps: None,
        name: "sim".into(),
        lockstep: None,
        reset_pause: Duration::ZERO,
        expert: None,
    }
}

/// The six arm joints of a joint state, rad.
pub fn arm_q(js: &JointState) -> [f64; 6] {
    let mut q = [0.0; 6];
    q.copy_from_slice(&js.position[..6]);
    q
}

/// Publishes `cmd` every 50 ms, stamped afresh each time (the node refuses commands older than
/// 500 ms), until `done(joint_state)` holds (or fails after `timeout`).
pub fn drive_until<M: bus::Message + Clone>(
    h: &Harness,
    cmd: M,
    timeout: Duration,
    mut done: impl FnMut(&JointState) -> bool,
) -> JointState {
    let publisher = h.client.publisher::<M>().unwrap();
    let states = h.client.subscriber::<JointState>().unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        publisher.publish(&mut cmd.clone()).unwrap();
        if let Some(js) = states.recv_timeout(Duration::from_millis(50)) {
            if done(&js) {
                return js;
            }
        }
        assert!(Instant::now() < deadline, "condition not reached in {timeout:?}");
    }
}

/// Polls the node's `status` until `done(counters)` holds, putting `payloads` (key, bytes) raw on
/// the bus before each poll (zenoh routes asynchronously); fails after 10 s.
pub fn put_until_status(
    h: &Harness,
    payloads: &[(String, Vec<u8>)],
    mut done: impl FnMut(&std::collections::BTreeMap<String, u64>) -> bool,
) -> Status {
    let status = h.client.subscriber::<Status>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (key, bytes) in payloads {
            h.client.put_raw(key, bytes.clone()).unwrap();
        }
        if let Some(s) = status.recv_timeout(Duration::from_millis(200)) {
            if done(&s.counters) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "status counters never matched");
    }
}
