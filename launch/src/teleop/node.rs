//! The teleop node: polls a [`TeleopDevice`] once per observation and publishes
//! `command/ee_delta` (and `command/episode` requests).
//!
//! Ticks follow the robot: each new `joint_state` is one control tick, so commands go out at the
//! robot's control rate and each answers a known observation (a lockstep sim waits for it).
//! Before answering, the node waits briefly for the tick's `episode` event and `scene_state`
//! (same stamp) when the robot publishes them, so a device never acts on a stale episode.
//!
//! Ticks only move forward: of the `joint_state`s queued, the newest by stamp is the tick; one
//! stamped at or before the last tick answered (late, or replayed) is stale and dropped, and so is
//! one stamped further ahead of this host's clock than the wire's clock-skew bound
//! ([`crate::record::intake::OBSERVATION_FRESHNESS`]), which would otherwise hold every later tick
//! back as stale. Ticks follow one robot: the publisher of the first `joint_state` answered, until
//! it has been silent for [`ROBOT_HANDOVER`]; another publisher's `joint_state`s are dropped.
//! `scene_state`s are kept by stamp until their tick is answered, so a stale
//! `joint_state` never costs a tick its scene state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bus::{
    Bus, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind, EpisodeRequest, JointState, SceneState, Task,
};

use super::{DeviceOutput, TeleopDevice, TeleopObservation};
use crate::record::intake::{SourceLock, OBSERVATION_FRESHNESS};

/// How long the robot's `joint_state` publisher may be silent before another one is followed (a
/// restarted robot publishes with a new `source_id`).
pub const ROBOT_HANDOVER: Duration = Duration::from_secs(1);

/// The most `scene_state`s, and the most `episode` events, held waiting for their tick (the
/// oldest go first).
const SCENES_HELD: usize = 64;

/// Teleop node settings.
#[derive(Clone, Debug)]
pub struct TeleopNodeConfig {
    /// End-effector translation per tick at full stick/key and speed 1, m.
    pub linear_step_m: f64,
    /// End-effector rotation per tick at full stick/key and speed 1, rad.
    pub angular_step_rad: f64,
    /// How long to wait for a tick's episode event and scene state, once seen on the bus.
    pub sync_wait: Duration,
}

impl Default for TeleopNodeConfig {
    fn default() -> Self {
        TeleopNodeConfig { linear_step_m: 0.01, angular_step_rad: 0.05, sync_wait: Duration::from_millis(30) }
    }
}

/// What the teleop node did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeleopReport {
    /// Commands published.
    pub commands: u64,
    /// Episode-control requests published.
    pub requests: u64,
    /// Whether the device asked to stop.
    pub stopped_by_device: bool,
    /// `joint_state`s dropped as stale: stamped at or before the last tick answered.
    pub stale_joint_states: u64,
    /// `joint_state`s, `scene_state`s and `episode` events dropped for a stamp too far ahead of
    /// this host's clock.
    pub future_observations: u64,
    /// `joint_state`s dropped because another publisher than the robot's sent them.
    pub foreign_joint_states: u64,
}

/// Per-tick translation and rotation of a device output, clamped to the sim's per-step limits.
pub fn ee_delta(out: &DeviceOutput, cfg: &TeleopNodeConfig) -> ([f64; 3], [f64; 3]) {
    let (mut xyz, mut rpy) = out.absolute_delta.unwrap_or_else(|| {
        let s = out.speed.clamp(0.1, 2.0);
        (
            out.linear.map(|v| v.clamp(-1.0, 1.0) * cfg.linear_step_m * s),
            out.angular.map(|v| v.clamp(-1.0, 1.0) * cfg.angular_step_rad * s),
        )
    });
    for v in &mut xyz {
        *v = v.clamp(-sim::env::MAX_DELTA_XYZ_M, sim::env::MAX_DELTA_XYZ_M);
    }
    for v in &mut rpy {
        *v = v.clamp(-sim::env::MAX_DELTA_RPY_RAD, sim::env::MAX_DELTA_RPY_RAD);
    }
    (xyz, rpy)
}

/// Runs the teleop node until `stop`, or the device asks to stop.
pub fn run_teleop(
    device: &mut dyn TeleopDevice,
    cfg: &TeleopNodeConfig,
    bus: &Bus,
    stop: &AtomicBool,
    ready: Option<&crate::shutdown::StartBarrier>,
) -> Result<TeleopReport> {
    let joint_state = bus.subscriber::<JointState>()?;
    let scene_state = bus.subscriber::<SceneState>()?;
    let episodes = bus.subscriber::<EpisodeEvent>()?;
    let tasks = bus.subscriber::<Task>()?;
    let command = bus.publisher::<EeDeltaCommand>()?;
    let control = bus.publisher::<EpisodeControl>()?;
    if let Some(b) = ready {
        b.wait();
    }
    let mut report = TeleopReport::default();
    let mut obs = TeleopObservation::default();
    let mut last_event_stamp = 0u64;
    let mut seen_events = false;
    // Events stamped after the tick being answered wait for their own tick: a new episode's
    // `Start` can arrive while the old episode's terminal observation is handled, and applied
    // then it would reset the device (the scripted expert plans from the next observation it
    // sees) onto the old episode's scene.
    let mut pending: std::collections::VecDeque<EpisodeEvent> = std::collections::VecDeque::new();
    let mut seen_scene = false;
    // Scene states by stamp: the newest at or before the last tick, and any newer ones.
    let mut scenes: BTreeMap<u64, SceneState> = BTreeMap::new();
    let mut terminal_stamp = 0u64;
    let mut last_tick_ns = 0u64;
    let mut robot = SourceLock::new(Some(ROBOT_HANDOVER));
    tracing::info!(device = device.name(), "teleop running");
    while !stop.load(Ordering::Relaxed) {
        let tick = next_tick(&joint_state, last_tick_ns, &mut robot, &mut report);
        let Some(js) = tick else {
            // No robot tick: still read the device so that stop/re-record keys work.
            let out = device.poll(&obs)?;
            if publish_requests(&control, &out, &mut report)? {
                break;
            }
            continue;
        };
        let stamp = js.header.stamp_ns;
        last_tick_ns = stamp;
        let needs_scene = device.needs_scene_state();
        let deadline = Instant::now() + if needs_scene { cfg.sync_wait * 20 } else { cfg.sync_wait };
        loop {
            while let Some(ev) = episodes.try_recv() {
                // An event stamped ahead of this clock would wait for a tick that never comes.
                if OBSERVATION_FRESHNESS.check(ev.header.stamp_ns, bus::now_ns()).is_err() {
                    report.future_observations += 1;
                    continue;
                }
                seen_events = true;
                last_event_stamp = last_event_stamp.max(ev.header.stamp_ns);
                pending.push_back(ev);
                while pending.len() > SCENES_HELD {
                    pending.pop_front();
                }
            }
            while let Some(ev) =
                pending.front().is_some_and(|ev| ev.header.stamp_ns <= stamp).then(|| pending.pop_front()).flatten()
            {
                match ev.kind {
                    EpisodeEventKind::Start => {
                        device.on_episode_start(ev.episode_index, ev.seed);
                        obs.episode = Some((ev.episode_index, 0));
                    }
                    EpisodeEventKind::Step => {
                        obs.episode = Some((ev.episode_index, ev.step));
                        if ev.done {
                            terminal_stamp = ev.header.stamp_ns;
                        }
                    }
                    EpisodeEventKind::End => {}
                }
            }
            while let Some(s) = scene_state.try_recv() {
                seen_scene = true;
                if OBSERVATION_FRESHNESS.check(s.header.stamp_ns, bus::now_ns()).is_err() {
                    report.future_observations += 1;
                    continue;
                }
                scenes.insert(s.header.stamp_ns, s);
                while scenes.len() > SCENES_HELD {
                    scenes.pop_first();
                }
            }
            let events_ok = !seen_events || last_event_stamp >= stamp;
            let scene_ok = !(seen_scene || needs_scene) || scenes.contains_key(&stamp);
            if (events_ok && scene_ok) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if let Some(t) = tasks.latest() {
            obs.instruction = t.instruction;
        }
        // The tick's own scene state, else the newest before it; older ones are no longer needed.
        obs.scene_state = scenes.range(..=stamp).next_back().map(|(_, s)| s.clone());
        if let Some(kept) = obs.scene_state.as_ref().map(|s| s.header.stamp_ns) {
            scenes = scenes.split_off(&kept);
        }
        obs.joint_state = Some(js);
        let out = device.poll(&obs)?;
        if stamp == terminal_stamp {
            // The episode ended at this observation: nothing to answer (the robot resets).
            if publish_requests(&control, &out, &mut report)? {
                break;
            }
            continue;
        }
        let (xyz, rpy) = ee_delta(&out, cfg);
        let mut cmd = EeDeltaCommand {
            header: Default::default(),
            delta_xyz_m: xyz,
            delta_rpy_rad: rpy,
            gripper: out.gripper.clamp(0.0, 1.0),
            obs_stamp_ns: stamp,
        };
        command.publish(&mut cmd)?;
        report.commands += 1;
        if let Some(pose) = obs.joint_state.as_ref().and_then(|j| j.ee_pose.as_ref()) {
            let [x, y, z] = pose.translation_m;
            let (ep, step) = obs.episode.unwrap_or((0, 0));
            device.show_status(&format!(
                "ee x {x:+.3} y {y:+.3} z {z:+.3} m | gripper {:.2} | speed {:.2} | episode {ep} step {step}",
                cmd.gripper, out.speed
            ));
        }
        if publish_requests(&control, &out, &mut report)? {
            break;
        }
    }
    Ok(report)
}

/// The next tick: the newest `joint_state` by stamp among those queued (waiting up to 50 ms for
/// the first), leaving out another publisher's than `robot`'s, stale ones (stamped at or before
/// `last_tick_ns`) and ones from the future (all counted in `report`). `None` when no new tick
/// came.
fn next_tick(
    joint_state: &bus::Subscriber<JointState>,
    last_tick_ns: u64,
    robot: &mut SourceLock,
    report: &mut TeleopReport,
) -> Option<JointState> {
    let first = joint_state.recv_timeout(Duration::from_millis(50))?;
    let mut newest: Option<JointState> = None;
    for js in std::iter::once(first).chain(std::iter::from_fn(|| joint_state.try_recv())) {
        let stamp = js.header.stamp_ns;
        if OBSERVATION_FRESHNESS.check(stamp, bus::now_ns()).is_err() {
            report.future_observations += 1;
        } else if !robot.admit(js.header.source_id) {
            report.foreign_joint_states += 1;
        } else if stamp <= last_tick_ns {
            report.stale_joint_states += 1;
        } else if newest.as_ref().is_none_or(|n| stamp > n.header.stamp_ns) {
            newest = Some(js);
        }
    }
    newest
}

/// Publishes the device's episode requests; true when one of them is `Stop`.
fn publish_requests(
    control: &bus::Publisher<EpisodeControl>,
    out: &DeviceOutput,
    report: &mut TeleopReport,
) -> Result<bool> {
    let mut stop = false;
    for r in &out.requests {
        let mut msg = EpisodeControl { header: Default::default(), request: *r };
        control.publish(&mut msg)?;
        report.requests += 1;
        tracing::info!(request = ?r, "episode request");
        if *r == EpisodeRequest::Stop {
            stop = true;
            report.stopped_by_device = true;
        }
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bus::{BusConfig, Publisher};
    use crossbeam_channel::Sender;

    use super::*;
    use crate::shutdown::StartBarrier;

    /// A device that reports the stamps of each distinct (joint_state, scene_state) pair it is
    /// polled with, and needs scene states like the scripted expert.
    struct Spy {
        seen: Sender<(u64, Option<u64>)>,
        last: Option<(u64, Option<u64>)>,
    }

    impl TeleopDevice for Spy {
        fn name(&self) -> &'static str {
            "spy"
        }

        fn poll(&mut self, obs: &TeleopObservation) -> Result<DeviceOutput> {
            if let Some(js) = &obs.joint_state {
                let pair = (js.header.stamp_ns, obs.scene_state.as_ref().map(|s| s.header.stamp_ns));
                if self.last != Some(pair) {
                    self.last = Some(pair);
                    let _ = self.seen.send(pair);
                }
            }
            Ok(DeviceOutput::default())
        }

        fn needs_scene_state(&self) -> bool {
            true
        }
    }

    struct Robot {
        joint: Publisher<JointState>,
        scene: Publisher<SceneState>,
        /// Another publisher of joint states.
        stranger: Publisher<JointState>,
    }

    impl Robot {
        fn joint_state(&self, stamp_ns: u64) {
            let mut m = JointState { position: vec![0.0; 7], ..Default::default() };
            m.header.stamp_ns = stamp_ns;
            self.joint.publish(&mut m).expect("publish joint_state");
        }

        fn scene_state(&self, stamp_ns: u64) {
            let mut m = SceneState::default();
            m.header.stamp_ns = stamp_ns;
            self.scene.publish(&mut m).expect("publish scene_state");
        }
    }

    /// Sets the stop flag when dropped (also when the test panics).
    struct StopOnDrop<'a>(&'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Waits for the teleop's command answering `stamp_ns`, returning every command's
    /// `obs_stamp_ns` seen meanwhile.
    fn answers_until(commands: &bus::Subscriber<EeDeltaCommand>, stamp_ns: u64) -> Vec<u64> {
        let started = Instant::now();
        let mut answered = Vec::new();
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(c) = commands.recv_timeout(Duration::from_millis(50)) {
                answered.push(c.obs_stamp_ns);
                if c.obs_stamp_ns == stamp_ns {
                    return answered;
                }
            }
        }
        panic!("no command answering {stamp_ns} within 10 s; answered {answered:?}");
    }

    /// A stale `joint_state` (late or replayed: stamped before the tick answered), in the same
    /// burst as a tick or alone between ticks, one stamped an hour ahead and one from another
    /// publisher are dropped and counted: every tick is answered once with its own `scene_state`. The node used to answer
    /// the stale one as a tick, discarding the next tick's scene state (stamped after it) and
    /// giving the device an older one; one from the future held every later tick back.
    #[test]
    fn a_stale_joint_state_costs_no_tick_its_scene_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = Bus::open(&BusConfig::with_discovery_dir("arm0", dir.path().join("bus"))).expect("loopback bus");
        let robot = Robot {
            joint: bus.publisher().expect("joint_state publisher"),
            scene: bus.publisher().expect("scene_state publisher"),
            stranger: bus.publisher().expect("a second joint_state publisher"),
        };
        let commands = bus.subscriber::<EeDeltaCommand>().expect("command subscriber");
        let stop = Arc::new(AtomicBool::new(false));
        let ready = StartBarrier::new(2, stop.clone());
        let (seen_tx, seen) = crossbeam_channel::unbounded();
        let (report, answered) = std::thread::scope(|s| {
            let node = s.spawn(|| {
                let mut spy = Spy { seen: seen_tx, last: None };
                run_teleop(&mut spy, &TeleopNodeConfig::default(), &bus, &stop, Some(&ready))
            });
            // A failing assertion below stops the node too, so the test fails instead of hanging.
            let _stop_node = StopOnDrop(&stop);
            assert!(ready.wait(), "the teleop node subscribed");
            let mut answered = Vec::new();
            let mut ticks = Vec::new();
            let hour_ns = 3_600_000_000_000;
            for k in 0..6 {
                let stamp = bus::now_ns();
                let before = ticks.last().map_or(stamp - 1_000_000, |t| t - 1_000);
                match k {
                    // The tick's joint_state, then a stale one, then its scene state.
                    1 => {
                        robot.joint_state(stamp);
                        robot.joint_state(before);
                        robot.scene_state(stamp);
                    }
                    // A stale one alone, then the tick.
                    2 => {
                        robot.joint_state(before);
                        robot.scene_state(stamp);
                        robot.joint_state(stamp);
                    }
                    // One from the future alone, then the tick.
                    3 => {
                        robot.joint_state(stamp + hour_ns);
                        robot.scene_state(stamp);
                        robot.joint_state(stamp);
                    }
                    // Another publisher's newer joint state of 5 joints, then the tick.
                    4 => {
                        let mut m = JointState { position: vec![0.0; 5], ..Default::default() };
                        m.header.stamp_ns = stamp + 1_000;
                        robot.stranger.publish(&mut m).expect("publish joint_state");
                        robot.scene_state(stamp);
                        robot.joint_state(stamp);
                    }
                    _ => {
                        robot.scene_state(stamp);
                        robot.joint_state(stamp);
                    }
                }
                ticks.push(stamp);
                answered.extend(answers_until(&commands, stamp));
            }
            stop.store(true, Ordering::SeqCst);
            let report = node.join().expect("the teleop thread").expect("teleop ran");
            let polled: Vec<(u64, Option<u64>)> = seen.try_iter().collect();
            let expected: Vec<(u64, Option<u64>)> = ticks.iter().map(|t| (*t, Some(*t))).collect();
            assert_eq!(polled, expected, "each tick polled once, with its own scene state");
            assert_eq!(answered, ticks, "each tick answered once");
            (report, answered)
        });
        assert_eq!(answered.len(), 6);
        let dropped = (report.stale_joint_states, report.future_observations, report.foreign_joint_states);
        assert_eq!(dropped, (2, 1, 1), "{report:?}");
        assert_eq!(report.commands, 6, "{report:?}");
    }

    #[test]
    fn device_output_scales_and_clamps() {
        let cfg = TeleopNodeConfig::default();
        let out = DeviceOutput { linear: [1.0, -0.5, 0.0], angular: [0.0, 0.0, 1.0], speed: 2.0, ..Default::default() };
        let (xyz, rpy) = ee_delta(&out, &cfg);
        assert!((xyz[0] - 0.02).abs() < 1e-12 && (xyz[1] + 0.01).abs() < 1e-12);
        assert!((rpy[2] - 0.1).abs() < 1e-12);
        let scripted = DeviceOutput { absolute_delta: Some(([0.2, 0.0, 0.0], [0.0; 3])), ..Default::default() };
        assert_eq!(ee_delta(&scripted, &cfg).0[0], sim::env::MAX_DELTA_XYZ_M);
    }
}
