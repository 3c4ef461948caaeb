//! The recorder fed on a real loopback bus: message sequences a robot, its teleop or a stranger
//! could send, and what the recorder keeps of them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{
    Bus, BusConfig, EeDeltaCommand, EpisodeEvent, EpisodeEventKind, JointCommand, JointState, NodeState, ObjectPose,
    Pose, Publisher, SceneState, Status,
};
use dataset::session::SessionSettings;
use dataset::{DatasetInfo, DatasetSpec, DatasetWriter};

use super::align::{env_state_names, ActionSource};
use super::recorder::{run_recorder, RecorderConfig, RecorderReport, RECORDER_NODE};
use crate::shutdown::StartBarrier;

/// Tick period of the scripted robot, ns (10 Hz).
const STEP_NS: u64 = 100_000_000;
/// Joint positions per `joint_state` (six joints and the gripper).
const STATE_DIM: usize = 7;

/// The robot's and the teleop's publishers.
struct Robot {
    joint: Publisher<JointState>,
    scene: Publisher<SceneState>,
    episode: Publisher<EpisodeEvent>,
    teleop: Publisher<EeDeltaCommand>,
    /// Publish a one-object `scene_state` with every `joint_state`.
    scene_objects: usize,
}

/// Stamp of a scripted episode's first tick, ns: the script publishes its ticks faster than real
/// time, so its clock starts two seconds in the past (the recorder refuses stamps ahead of its
/// clock by more than the wire's clock-skew bound).
fn script_start_ns() -> u64 {
    bus::now_ns() - 2_000_000_000
}

fn joint_state(stamp_ns: u64, joints: usize, q: f64) -> JointState {
    let mut m = JointState { position: vec![q; joints], ee_pose: Some(Pose::default()), ..Default::default() };
    m.header.stamp_ns = stamp_ns;
    m
}

fn scene_state(stamp_ns: u64, objects: usize) -> SceneState {
    let mut m = SceneState {
        objects: (0..objects).map(|i| ObjectPose { name: format!("cube{i}"), pose: Pose::default() }).collect(),
        ..Default::default()
    };
    m.header.stamp_ns = stamp_ns;
    m
}

fn event(kind: EpisodeEventKind, episode: u64, step: u64, stamp_ns: u64, done: bool) -> EpisodeEvent {
    let mut ev = EpisodeEvent { kind, episode_index: episode, step, done, ..Default::default() };
    ev.header.stamp_ns = stamp_ns;
    ev
}

fn ee_command(stamp_ns: u64, obs_stamp_ns: u64, dx_m: f64) -> EeDeltaCommand {
    let mut c = EeDeltaCommand { delta_xyz_m: [dx_m, 0.0, 0.0], gripper: 1.0, obs_stamp_ns, ..Default::default() };
    c.header.stamp_ns = stamp_ns;
    c
}

impl Robot {
    fn new(bus: &Bus, scene_objects: usize) -> Robot {
        Robot {
            joint: bus.publisher().expect("joint_state publisher"),
            scene: bus.publisher().expect("scene_state publisher"),
            episode: bus.publisher().expect("episode publisher"),
            teleop: bus.publisher().expect("command publisher"),
            scene_objects,
        }
    }

    /// The observation of tick `stamp_ns`.
    fn observe(&self, stamp_ns: u64, q: f64) {
        self.joint.publish(&mut joint_state(stamp_ns, STATE_DIM, q)).expect("publish joint_state");
        if self.scene_objects > 0 {
            self.scene.publish(&mut scene_state(stamp_ns, self.scene_objects)).expect("publish scene_state");
        }
    }

    /// Tick `k` of `episode` (Start at k = 0), the last one at `steps`; `between` runs after the
    /// tick's observation and before the teleop answers it.
    fn tick(&self, episode: u64, k: u64, steps: u64, base_ns: u64, between: impl FnOnce(u64)) {
        let stamp = base_ns + k * STEP_NS;
        self.observe(stamp, k as f64 * 0.01);
        let kind = if k == 0 { EpisodeEventKind::Start } else { EpisodeEventKind::Step };
        self.episode.publish(&mut event(kind, episode, k, stamp, k == steps)).expect("publish event");
        between(stamp);
        if k < steps {
            self.teleop.publish(&mut ee_command(stamp + 1, stamp, 0.001)).expect("publish command");
        }
    }

    /// A whole episode of `steps` steps starting at `base_ns`.
    fn episode(&self, episode: u64, steps: u64, base_ns: u64) {
        for k in 0..=steps {
            self.tick(episode, k, steps, base_ns, |_| {});
        }
        self.end(episode, base_ns + steps * STEP_NS);
    }

    fn end(&self, episode: u64, stamp_ns: u64) {
        self.episode.publish(&mut event(EpisodeEventKind::End, episode, 0, stamp_ns, true)).expect("publish end");
    }
}

fn config(env_objects: usize, episodes: u64) -> RecorderConfig {
    RecorderConfig {
        cameras: Vec::new(),
        image_bytes: Vec::new(),
        action: ActionSource::EeDelta,
        state_dim: STATE_DIM,
        env_state_dim: 5 * env_objects,
        episodes: Some(episodes),
        task: Some("test".into()),
        grace: Duration::from_millis(300),
        queue: 4096,
        seeds: false,
        scripted: None,
    }
}

/// Runs the recorder into `dir/ds` while `script` publishes on the same loopback bus; a
/// recorder still running 20 s later is stopped.
fn record(dir: &Path, cfg: &RecorderConfig, script: impl FnOnce(&Bus)) -> anyhow::Result<RecorderReport> {
    let bus = Bus::open(&BusConfig::with_discovery_dir("arm0", dir.join("bus"))).expect("loopback bus");
    let spec = DatasetSpec {
        scene: None,
        fps: 10.0,
        robot_type: "widowx250".into(),
        state_names: (0..STATE_DIM).map(|i| format!("q{i}")).collect(),
        action_names: ActionSource::EeDelta.names(),
        env_state_names: env_state_names(&(0..cfg.env_state_dim / 5).map(|i| format!("cube{i}")).collect::<Vec<_>>()),
        cameras: Vec::new(),
    };
    let writer = DatasetWriter::create_session(&dir.join("ds"), &spec, &SessionSettings::new()).expect("dataset");
    let stop = Arc::new(AtomicBool::new(false));
    let ready = StartBarrier::new(2, stop.clone());
    std::thread::scope(|s| {
        let recorder = s.spawn(|| run_recorder(writer, cfg, &bus, &stop, Some(&ready)));
        assert!(ready.wait(), "the recorder subscribed");
        std::thread::sleep(Duration::from_millis(100));
        script(&bus);
        let started = Instant::now();
        while !recorder.is_finished() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        recorder.join().expect("the recorder thread ended")
    })
}

fn kept(dir: &Path) -> (u64, u64) {
    let info = DatasetInfo::load(&dir.join("ds")).expect("dataset info");
    (info.total_episodes, info.total_frames)
}

#[test]
fn a_step_stamped_an_hour_ahead_or_out_of_order_is_counted_and_the_episode_recorded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = record(tmp.path(), &config(0, 1), |bus| {
        let robot = Robot::new(bus, 0);
        let base = script_start_ns();
        for k in 0..=5 {
            robot.tick(0, k, 5, base, |stamp| {
                if k == 2 {
                    let hour_ns = 3_600_000_000_000;
                    let mut ahead = event(EpisodeEventKind::Step, 0, 3, stamp + hour_ns, false);
                    robot.episode.publish(&mut ahead).expect("publish");
                    let mut behind = event(EpisodeEventKind::Step, 0, 3, stamp - STEP_NS / 2, false);
                    robot.episode.publish(&mut behind).expect("publish");
                }
            });
        }
        robot.end(0, base + 5 * STEP_NS);
    })
    .expect("the recorder survives the stray steps");
    assert_eq!((report.episodes, report.frames), (1, 5));
    assert_eq!(report.intake.future, 1, "{report:?}");
    assert_eq!(report.intake.rejected_events, 1, "{report:?}");
    assert_eq!(report.align.held, 0, "every step kept its command: {report:?}");
    assert_eq!(kept(tmp.path()), (1, 5));
}

#[test]
fn malformed_observations_are_counted_and_dropped_and_the_recording_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = record(tmp.path(), &config(1, 1), |bus| {
        let robot = Robot::new(bus, 1);
        let base = script_start_ns();
        for k in 0..=4 {
            robot.tick(0, k, 4, base, |stamp| {
                // After the real observation, at the same stamp (it would replace it).
                match k {
                    1 => robot.joint.publish(&mut joint_state(stamp, 5, 9.0)).expect("publish"),
                    2 => robot.joint.publish(&mut joint_state(stamp, STATE_DIM + 1, 9.0)).expect("publish"),
                    3 => robot.scene.publish(&mut scene_state(stamp, 2)).expect("publish"),
                    _ => {}
                }
            });
        }
        robot.end(0, base + 4 * STEP_NS);
    })
    .expect("malformed messages are not fatal");
    assert_eq!(report.intake.malformed, 3, "{report:?}");
    assert_eq!((report.episodes, report.frames), (1, 4));
    assert_eq!(report.align.stale, 0, "every tick kept its real observation: {report:?}");
    assert_eq!(kept(tmp.path()), (1, 4));
}

#[test]
fn a_second_command_publisher_discards_the_episode_and_stops_naming_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sources = (0, 0);
    let result = record(tmp.path(), &config(0, 3), |bus| {
        let robot = Robot::new(bus, 0);
        let stranger: Publisher<EeDeltaCommand> = bus.publisher().expect("second publisher");
        sources = (robot.teleop.source_id(), stranger.source_id());
        let base = script_start_ns();
        robot.episode(0, 3, base);
        let base = base + 10 * STEP_NS;
        for k in 0..=3 {
            robot.tick(1, k, 3, base, |stamp| {
                if k == 1 {
                    stranger.publish(&mut ee_command(stamp + 2, stamp, 0.02)).expect("publish");
                }
            });
        }
        robot.end(1, base + 3 * STEP_NS);
        std::thread::sleep(Duration::from_millis(500));
    });
    let error = format!("{:#}", result.expect_err("the recording refuses to go on"));
    assert!(error.contains(&format!("{:#018x}", sources.0)), "{error}");
    assert!(error.contains(&format!("{:#018x}", sources.1)), "{error}");
    assert!(error.contains("episode 1 is discarded"), "{error}");
    assert_eq!(kept(tmp.path()), (1, 3), "the finished episode is kept");
}

#[test]
fn commands_on_another_command_topic_during_an_episode_stop_the_recording() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let result = record(tmp.path(), &config(0, 2), |bus| {
        let robot = Robot::new(bus, 0);
        let joint: Publisher<JointCommand> = bus.publisher().expect("joint command publisher");
        let base = script_start_ns();
        for k in 0..=3 {
            robot.tick(0, k, 3, base, |stamp| {
                if k == 2 {
                    let mut c = JointCommand { position: vec![0.1; 6], gripper: 1.0, ..Default::default() };
                    c.header.stamp_ns = stamp + 2;
                    joint.publish(&mut c).expect("publish");
                }
            });
        }
        robot.end(0, base + 3 * STEP_NS);
    });
    let error = format!("{:#}", result.expect_err("the recording refuses to go on"));
    assert!(error.contains("command/joint from publisher"), "{error}");
    assert_eq!(kept(tmp.path()), (0, 0));
}

#[test]
fn floods_of_future_stamped_and_unused_messages_stay_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = RecorderConfig { queue: 64, ..config(0, 1) };
    let report = record(tmp.path(), &cfg, |bus| {
        let robot = Robot::new(bus, 0);
        let joint: Publisher<JointCommand> = bus.publisher().expect("joint command publisher");
        let now = bus::now_ns();
        for i in 0..2000u64 {
            // Stamped an hour ahead, and recent but past (between episodes), and a topic the
            // recorder does not record.
            robot.joint.publish(&mut joint_state(now + 3_600_000_000_000 + i, STATE_DIM, 0.0)).expect("publish");
            robot.joint.publish(&mut joint_state(now - 1_000_000_000 + i, STATE_DIM, 0.0)).expect("publish");
            let mut c = JointCommand { position: vec![0.0; 6], ..Default::default() };
            c.header.stamp_ns = now - 1_000_000_000 + i;
            joint.publish(&mut c).expect("publish");
            if i % 20 == 0 {
                // The recorder drains its queues every few milliseconds.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        robot.episode(0, 3, script_start_ns());
    })
    .expect("floods are not fatal");
    assert_eq!((report.episodes, report.frames), (1, 3));
    assert!(report.intake.future > 0, "future-stamped messages are dropped: {report:?}");
    // Joint states and commands (with their answers), at most `queue` of each.
    assert!(report.max_held <= 3 * 64, "the log stays bounded: {report:?}");
    assert!(report.intake.overflow > 0, "{report:?}");
}

/// The recorder's newest `status` whose counters satisfy `done`, waiting up to 10 s.
fn status_until(statuses: &bus::Subscriber<Status>, done: impl Fn(&Status) -> bool) -> Status {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(10) {
        let Some(s) = statuses.recv_timeout(Duration::from_millis(100)) else { continue };
        if s.node == RECORDER_NODE {
            if done(&s) {
                return s;
            }
            last = Some(s);
        }
    }
    panic!("no recorder status as expected within 10 s; the last one: {last:?}");
}

fn counted(s: &Status, name: &str) -> u64 {
    s.counters.get(name).copied().unwrap_or(0)
}

/// Garbage, newer-schema and malformed messages on the recorder's topics are counted on its
/// `status` (as the sim and the driver count theirs) and in its report, and the recording goes on.
#[test]
fn refused_and_malformed_messages_are_counted_on_the_recorders_status() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut seen = None;
    let report = record(tmp.path(), &config(0, 1), |bus| {
        let statuses = bus.subscriber::<Status>().expect("status subscriber");
        let robot = Robot::new(bus, 0);
        let mut newer_js = joint_state(bus::now_ns(), STATE_DIM, 0.0);
        newer_js.header.schema = bus::SCHEMA_VERSION + 1;
        let mut newer_step = event(EpisodeEventKind::Step, 0, 1, bus::now_ns(), false);
        newer_step.header.schema = bus::SCHEMA_VERSION + 1;
        let payloads = [
            (bus.key(bus::topics::JOINT_STATE), vec![0xff, 0x00, 0x13]),
            (bus.key(bus::topics::COMMAND_EE_DELTA), b"not cbor at all".to_vec()),
            (bus.key(bus::topics::JOINT_STATE), bus::encode(&newer_js).expect("encode")),
            (bus.key(bus::topics::EPISODE), bus::encode(&newer_step).expect("encode")),
        ];
        for (key, payload) in payloads {
            bus.put_raw(&key, payload).expect("put");
        }
        robot.joint.publish(&mut joint_state(bus::now_ns(), 5, 0.0)).expect("publish");
        let status = status_until(&statuses, |s| {
            counted(s, bus::STATUS_DECODE_ERRORS) >= 2
                && counted(s, bus::STATUS_NEWER_SCHEMA) >= 2
                && counted(s, "malformed") >= 1
        });
        seen = Some(status);
        robot.episode(0, 3, script_start_ns());
    })
    .expect("refused messages are not fatal");
    let status = seen.expect("a status");
    assert_eq!(status.state, NodeState::Running, "{status:?}");
    assert_eq!(counted(&status, bus::STATUS_DECODE_ERRORS), 2, "{status:?}");
    assert_eq!(counted(&status, bus::STATUS_NEWER_SCHEMA), 2, "{status:?}");
    assert_eq!(counted(&status, "malformed"), 1, "{status:?}");
    assert_eq!((report.decode_errors, report.newer_schema), (2, 2), "{report:?}");
    assert_eq!(report.intake.malformed, 1, "{report:?}");
    assert_eq!((report.episodes, report.frames), (1, 3));
}

/// `Start` events from another publisher than the robot's (one stamped 0, one stamped now) are
/// counted and dropped: the episode in progress is recorded whole. A forged `Start` used to drop
/// it and open an episode spanning all time.
#[test]
fn episode_events_from_another_publisher_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = record(tmp.path(), &config(0, 1), |bus| {
        let robot = Robot::new(bus, 0);
        let forger: Publisher<EpisodeEvent> = bus.publisher().expect("a second episode publisher");
        let base = script_start_ns();
        for k in 0..=4 {
            robot.tick(0, k, 4, base, |stamp| {
                if k == 2 {
                    for forged_stamp in [0, stamp + 1] {
                        let mut start = event(EpisodeEventKind::Start, 7, 0, forged_stamp, false);
                        forger.publish(&mut start).expect("publish");
                    }
                }
            });
        }
        robot.end(0, base + 4 * STEP_NS);
    })
    .expect("forged events are not fatal");
    assert_eq!((report.episodes, report.frames), (1, 4), "{report:?}");
    assert_eq!(report.intake.rejected_events, 2, "{report:?}");
    assert_eq!(report.discarded, 0, "{report:?}");
    assert_eq!(kept(tmp.path()), (1, 4));
}

/// Episodes that end faster than the recorder writes them (a fast sim under load) are not all
/// kept: the recorder stops at its episode count even when several finished at once.
#[test]
fn episodes_ending_together_past_the_count_are_not_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = record(tmp.path(), &config(0, 2), |bus| {
        let robot = Robot::new(bus, 0);
        let base = script_start_ns();
        for episode in 0..5 {
            robot.episode(episode, 3, base + episode * 4 * STEP_NS);
        }
    })
    .expect("recording");
    assert_eq!((report.episodes, report.frames), (2, 6), "{report:?}");
    assert_eq!(kept(tmp.path()), (2, 6));
}
