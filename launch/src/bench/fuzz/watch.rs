//! What a fuzz run watches while it sends: the robot's own `joint_state` (joint limits, joint
//! speed, the e-stop hold), its `status` (state and counters), its `episode` events, and the
//! process's memory.
//!
//! The fuzzer publishes on the very topics it watches, so the robot's messages are told apart by
//! their `source_id`, learnt before the first hostile message (the fuzzer never forges it), and
//! its `status` by the node's name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use bus::{Bus, EpisodeEvent, EpisodeEventKind, JointState, NodeState, SceneState, Status, Subscriber};
use serde::Serialize;

/// How many examples of each violation are kept for the report.
const EXAMPLES: usize = 3;

/// The robot's joint limits (the six arm joints).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Lower position limits, rad.
    pub lower_rad: [f64; 6],
    /// Upper position limits, rad.
    pub upper_rad: [f64; 6],
    /// Velocity limits, rad/s.
    pub velocity_rad_s: [f64; 6],
}

/// How far a measurement may pass a limit before it counts as a violation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tolerances {
    /// Beyond a position limit, rad.
    pub position_rad: f64,
    /// Above a velocity limit, as a fraction of it.
    pub velocity_fraction: f64,
    /// Motion while the e-stop holds, rad.
    pub hold_rad: f64,
}

/// What the watcher counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Observed {
    /// The robot's joint states checked.
    pub joint_states: u64,
    /// Joint states with a joint outside its limits by more than the tolerance.
    pub limit_violations: u64,
    /// The largest distance past a position limit, rad.
    pub worst_limit_excess_rad: f64,
    /// Joint states with a joint faster than its velocity limit (plus the tolerance).
    pub velocity_violations: u64,
    /// The fastest measured joint speed, rad/s.
    pub peak_speed_rad_s: f64,
    /// Joint states, while the e-stop held, further than the tolerance from the held pose.
    pub hold_violations: u64,
    /// The largest distance from the held pose while the e-stop held, rad.
    pub worst_hold_rad: f64,
    /// Times the node left `Estopped` while it had to hold (before the fuzzer's fresh release).
    pub released_while_holding: u64,
    /// Episodes the robot finished with at least one step, not re-recorded.
    pub episodes_finished: u64,
    /// Their seeds.
    #[serde(skip)]
    pub finished_seeds: std::collections::BTreeSet<u64>,
    /// Episodes the robot ended as re-recorded (`discarded`).
    pub episodes_rerecorded: u64,
    /// The highest resident memory of this process seen, MB.
    pub peak_rss_mb: f64,
    /// The first few violations, described.
    pub examples: Vec<String>,
}

/// The robot's publishers, learnt while only the robot publishes.
#[derive(Default)]
struct Sources {
    joint_state: Option<u64>,
    scene_state: Option<u64>,
    episode: Option<u64>,
}

#[derive(Default)]
struct Shared {
    learning: bool,
    sources: Sources,
    latest_state: Option<JointState>,
    latest_scene: Option<SceneState>,
    status: Option<Status>,
    /// The recorder's latest `status` counters.
    recorder_counters: BTreeMap<String, u64>,
    /// When the node last reported each state.
    reported: BTreeMap<String, Instant>,
    /// The e-stop hold being checked.
    hold: Option<HoldWindow>,
    limits: Limits,
    tol: Tolerances,
    last_step: Option<Instant>,
    observed: Observed,
}

/// The robot's joint states while the e-stop holds, checked when the hold ends: an episode
/// reset (the sim places the arm anew, which is no motion) starts a new held pose.
#[derive(Default)]
struct HoldWindow {
    /// Joint states to skip before the held pose (the servos stopping).
    skip: usize,
    /// When the check began (after the robot reported the e-stop), ns: joint states stamped
    /// earlier were measured before the hold and still in the subscriber's queue (more of them
    /// the busier the machine), so they are not held poses.
    from_ns: u64,
    /// The robot's joint states: stamp (ns) and arm joints (rad).
    samples: Vec<(u64, [f64; 6])>,
    /// Stamps of the robot's episode starts, ns.
    starts: Vec<u64>,
}

/// Watches one robot; cheap to clone into the fuzzer.
#[derive(Clone)]
pub struct Watch {
    shared: Arc<Mutex<Shared>>,
    node: String,
}

/// The subscriptions the watcher reads.
pub struct WatchSubs {
    joint: Subscriber<JointState>,
    scene: Subscriber<SceneState>,
    status: Subscriber<Status>,
    episode: Subscriber<EpisodeEvent>,
}

/// The resident memory of this process, MB (`VmRSS`, or `VmHWM` for the peak).
pub fn memory_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

impl Watch {
    /// A watcher of the node called `node` (its `status` name) of a robot with `limits`;
    /// subscribe with [`Watch::subscribe`] and run [`Watch::run`] on a thread.
    pub fn new(node: &str, limits: Limits, tol: Tolerances) -> Watch {
        let shared = Shared { learning: true, limits, tol, ..Default::default() };
        Watch { shared: Arc::new(Mutex::new(shared)), node: node.to_string() }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subscriptions (large queues: nothing the robot says is missed while the fuzzer floods).
    pub fn subscribe(bus: &Bus) -> Result<WatchSubs> {
        Ok(WatchSubs {
            joint: bus.subscriber_with_capacity(bus::topics::JOINT_STATE, 8192)?,
            scene: bus.subscriber_with_capacity(bus::topics::SCENE_STATE, 1024)?,
            status: bus.subscriber_with_capacity(bus::topics::STATUS, 1024)?,
            episode: bus.subscriber_with_capacity(bus::topics::EPISODE, 8192)?,
        })
    }

    /// Checks every message until `stop` is set.
    pub fn run(&self, subs: &WatchSubs, stop: &AtomicBool) {
        let mut last_memory = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut sel = crossbeam_channel::Select::new();
            sel.recv(subs.joint.receiver());
            sel.recv(subs.status.receiver());
            sel.recv(subs.episode.receiver());
            let _ = sel.ready_timeout(Duration::from_millis(20));
            let mut s = self.lock();
            while let Some(m) = subs.joint.try_recv() {
                s.joint_state(m);
            }
            while let Some(m) = subs.scene.try_recv() {
                if s.learning {
                    s.sources.scene_state.get_or_insert(m.header.source_id);
                }
                if s.sources.scene_state == Some(m.header.source_id) {
                    s.latest_scene = Some(m);
                }
            }
            while let Some(m) = subs.status.try_recv() {
                if m.node == self.node {
                    s.status_report(m);
                } else if m.node == crate::record::recorder::RECORDER_NODE {
                    s.recorder_counters = m.counters;
                }
            }
            while let Some(m) = subs.episode.try_recv() {
                s.episode(m);
            }
            if last_memory.elapsed() >= Duration::from_millis(100) {
                last_memory = Instant::now();
                if let Some(mb) = memory_mb("VmRSS:") {
                    s.observed.peak_rss_mb = s.observed.peak_rss_mb.max(mb);
                }
            }
        }
    }

    /// Waits until the robot published a joint state and an episode step (so that both its
    /// sources are learnt); false after `timeout`.
    pub fn wait_for_robot(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            {
                let s = self.lock();
                if s.latest_state.is_some() && s.sources.episode.is_some() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// From now on only the learnt sources count as the robot (the fuzzer starts sending).
    pub fn stop_learning(&self) {
        self.lock().learning = false;
    }

    /// The robot's latest arm joints (rad), scene state and observation stamp.
    pub fn latest(&self) -> ([f64; 6], Option<SceneState>, u64) {
        let s = self.lock();
        let state = s.latest_state.as_ref();
        let q = state.map_or([0.0; 6], |m| std::array::from_fn(|i| m.position.get(i).copied().unwrap_or(0.0)));
        (q, s.latest_scene.clone(), state.map_or(0, |m| m.header.stamp_ns))
    }

    /// Waits until the node reported `state` after `since`; false after `timeout`.
    pub fn wait_state(&self, state: NodeState, since: Instant, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let key = format!("{state:?}");
        while Instant::now() < deadline {
            if self.lock().reported.get(&key).is_some_and(|t| *t >= since) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Waits until the robot published an episode step after `since`; false after `timeout`.
    pub fn wait_step(&self, since: Instant, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lock().last_step.is_some_and(|t| t >= since) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Starts checking the e-stop hold: after `settle` joint states, the next one is the held
    /// pose, and every later one must stay within the tolerance of it.
    pub fn begin_hold(&self, settle: usize) {
        self.lock().hold = Some(HoldWindow { skip: settle, from_ns: bus::now_ns(), ..Default::default() });
    }

    /// Ends the hold check (the fuzzer is about to release the e-stop).
    pub fn end_hold(&self) {
        let mut s = self.lock();
        if let Some(window) = s.hold.take() {
            s.check_hold(window);
        }
    }

    /// The counts so far.
    pub fn observed(&self) -> Observed {
        self.lock().observed.clone()
    }

    /// The robot node's and the recorder's latest status counters.
    pub fn status_counters(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let s = self.lock();
        (s.status.as_ref().map(|s| s.counters.clone()).unwrap_or_default(), s.recorder_counters.clone())
    }
}

impl Shared {
    fn example(&mut self, what: String) {
        if self.observed.examples.len() < EXAMPLES * 4 {
            self.observed.examples.push(what);
        }
    }

    fn joint_state(&mut self, m: JointState) {
        let (limits, tol) = (self.limits, self.tol);
        if self.learning {
            self.sources.joint_state.get_or_insert(m.header.source_id);
        }
        if self.sources.joint_state != Some(m.header.source_id) || m.position.len() < 6 {
            return;
        }
        self.observed.joint_states += 1;
        let stamp = m.header.stamp_ns;
        let names = sim::node::joint_state_names();
        let mut outside = false;
        let mut too_fast = false;
        for i in 0..6 {
            let q = m.position[i];
            let excess = (limits.lower_rad[i] - q).max(q - limits.upper_rad[i]).max(0.0);
            if excess > tol.position_rad || !q.is_finite() {
                outside = true;
                self.observed.worst_limit_excess_rad = self.observed.worst_limit_excess_rad.max(excess);
                if self.observed.limit_violations < EXAMPLES as u64 {
                    self.example(format!(
                        "limit: joint_state {stamp}: {} at {q:.4} rad, limits [{:.4}, {:.4}]",
                        names[i], limits.lower_rad[i], limits.upper_rad[i]
                    ));
                }
            }
            let speed = m.velocity.get(i).map_or(0.0, |v| v.abs());
            self.observed.peak_speed_rad_s = self.observed.peak_speed_rad_s.max(speed);
            if speed > limits.velocity_rad_s[i] * (1.0 + tol.velocity_fraction) {
                too_fast = true;
                if self.observed.velocity_violations < EXAMPLES as u64 {
                    self.example(format!(
                        "speed: joint_state {stamp}: {} at {speed:.2} rad/s, limit {:.2} rad/s",
                        names[i], limits.velocity_rad_s[i]
                    ));
                }
            }
        }
        self.observed.limit_violations += u64::from(outside);
        self.observed.velocity_violations += u64::from(too_fast);
        if let Some(window) = self.hold.as_mut().filter(|w| stamp >= w.from_ns) {
            window.samples.push((stamp, std::array::from_fn(|i| m.position[i])));
        }
        self.latest_state = Some(m);
    }

    /// Counts the joint states of `window` further than the tolerance from their held pose
    /// (the first one after the skipped ones, and again after each episode start).
    fn check_hold(&mut self, window: HoldWindow) {
        let tol = self.tol;
        let names = sim::node::joint_state_names();
        let mut held: Option<(u64, [f64; 6])> = None;
        for (stamp, q) in window.samples.into_iter().skip(window.skip) {
            let reset = held.is_some_and(|(h, _)| window.starts.iter().any(|s| h < *s && *s <= stamp));
            let Some((_, pose)) = held.filter(|_| !reset) else {
                held = Some((stamp, q));
                continue;
            };
            let (joint, moved) =
                (0..6).map(|i| (i, (pose[i] - q[i]).abs())).fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
            self.observed.worst_hold_rad = self.observed.worst_hold_rad.max(moved);
            if moved > tol.hold_rad {
                self.observed.hold_violations += 1;
                if self.observed.hold_violations <= EXAMPLES as u64 {
                    self.example(format!(
                        "e-stop hold: joint_state {stamp}: {} moved {moved:.4} rad from the held {:.4} rad",
                        names[joint], pose[joint]
                    ));
                }
            }
        }
    }

    fn status_report(&mut self, m: Status) {
        if self.hold.is_some() && m.state != NodeState::Estopped {
            self.observed.released_while_holding += 1;
            self.example(format!("e-stop hold: the node reported {:?} before the fresh release", m.state));
        }
        self.reported.insert(format!("{:?}", m.state), Instant::now());
        self.status = Some(m);
    }

    fn episode(&mut self, m: EpisodeEvent) {
        if self.learning && m.kind == EpisodeEventKind::Step {
            self.sources.episode.get_or_insert(m.header.source_id);
        }
        if self.sources.episode != Some(m.header.source_id) {
            return;
        }
        match m.kind {
            EpisodeEventKind::Start => {
                if let Some(window) = self.hold.as_mut() {
                    window.starts.push(m.header.stamp_ns);
                }
            }
            EpisodeEventKind::Step => self.last_step = Some(Instant::now()),
            EpisodeEventKind::End => {
                if m.discarded {
                    self.observed.episodes_rerecorded += 1;
                } else if m.step >= 1 {
                    self.observed.episodes_finished += 1;
                    self.observed.finished_seeds.insert(m.seed);
                }
            }
        }
    }
}
