//! What the recorder lets into its message log: every message is checked before it is kept, so
//! that no single message can crash, stall or bloat a recording, and no command the robot
//! executed goes unrecorded.
//!
//! - Shape: a `joint_state` must carry the dataset's state dimension of finite positions; a
//!   `scene_state` (only kept when the dataset stores environment state) the dataset's objects;
//!   a camera frame RGB8 bytes of its camera's size; a command seven finite values (six joint
//!   targets or end-effector deltas, and the gripper). Anything else is counted as malformed and
//!   dropped.
//! - Time: a message stamped further ahead of the recorder's wall clock than the clock skew the
//!   wire tolerates between hosts ([`bus::command_rules::DEFAULT_MAX_CLOCK_SKEW_NS`], the bound the
//!   sim and the driver apply to commands) is counted and dropped ([`OBSERVATION_FRESHNESS`]). There is
//!   no bound on age: observations, camera frames above all, may arrive late and still belong to
//!   their tick.
//! - Size: the log holds at most a bounded number of messages of each kind; the oldest go first
//!   (counted as overflow).
//! - One robot: `episode` events are taken from one publisher ([`SourceLock`]): the first whose
//!   `Start` carries the stamp of a `joint_state` received (a robot stamps an episode's `Start`
//!   with its first observation's stamp). Events from any other publisher (a forged `Start` would
//!   drop the episode in progress) are counted as rejected and dropped.
//! - One commander: during an episode every command must come from one publisher on the
//!   action topic. A command from a second publisher, or on another command topic
//!   (`command/joint` while recording end-effector deltas, `command/chunk`), would move the
//!   robot without being the dataset's action: the recorder reports it as an [`Intruder`].

use std::time::{Duration, Instant};

use bus::command_rules::DEFAULT_MAX_CLOCK_SKEW_NS;
use bus::{CameraFrame, Freshness, ImageEncoding, JointState, SceneState};

use super::align::{env_state_vector, ActionSource, MessageLog};

/// The stamp rule for observations (the recorder's and the teleop node's): the wire's bound ahead
/// of the receiver's clock (the clock skew tolerated between hosts, as for commands on the sim and
/// the driver) and no bound on age.
pub const OBSERVATION_FRESHNESS: Freshness =
    Freshness { max_age_ns: u64::MAX, max_future_ns: DEFAULT_MAX_CLOCK_SKEW_NS };

/// Follows one publisher of a topic (by `source_id`): the first one admitted, and another only
/// once that one has been silent for the hand-over time (a restarted robot publishes with a new
/// `source_id`); `None` never hands over.
#[derive(Clone, Debug)]
pub struct SourceLock {
    source: Option<u64>,
    last_seen: Instant,
    handover: Option<Duration>,
}

impl SourceLock {
    /// A lock that hands over after `handover` of silence (`None`: never).
    pub fn new(handover: Option<Duration>) -> SourceLock {
        SourceLock { source: None, last_seen: Instant::now(), handover }
    }

    /// Whether a message from `source_id` is from the followed publisher (the first call, or
    /// one after the hand-over time, makes its publisher the followed one).
    pub fn admit(&mut self, source_id: u64) -> bool {
        self.admit_if(source_id, || true)
    }

    /// Like [`SourceLock::admit`], but a publisher not followed yet becomes the followed one
    /// only if `qualifies` says so.
    pub fn admit_if(&mut self, source_id: u64, qualifies: impl FnOnce() -> bool) -> bool {
        let silent = self.handover.is_some_and(|h| self.last_seen.elapsed() >= h);
        let admitted = match self.source {
            Some(followed) if followed == source_id => true,
            Some(_) if !silent => false,
            _ => qualifies(),
        };
        if admitted {
            self.source = Some(source_id);
            self.last_seen = Instant::now();
        }
        admitted
    }
}

/// Values of a command: six joint targets (rad) or end-effector deltas, then the gripper.
const COMMAND_DIM: usize = 7;

/// Counters of the messages the recorder did not keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntakeCounts {
    /// Messages of the wrong shape (dimension, encoding, image size) or with non-finite values.
    pub malformed: u64,
    /// Messages stamped further ahead of the wall clock than [`OBSERVATION_FRESHNESS`] allows.
    pub future: u64,
    /// Messages dropped, oldest first, to keep the log within its bound.
    pub overflow: u64,
    /// `episode` events from another publisher than the robot's, and steps out of order (not
    /// after the previous tick, or of no episode in progress) or beyond the episode's bound.
    pub rejected_events: u64,
}

/// A publisher of commands on one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Commander {
    /// The command topic (`command/ee_delta`, `command/joint`, `command/chunk`).
    pub topic: &'static str,
    /// The publisher's `source_id`.
    pub source_id: u64,
}

/// A second command source during an episode: `driving` sent the episode's first command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intruder {
    /// The episode's commander.
    pub driving: Commander,
    /// The other source.
    pub other: Commander,
}

impl std::fmt::Display for Intruder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} from publisher {:#018x} during an episode that {} from publisher {:#018x} drives",
            self.other.topic, self.other.source_id, self.driving.topic, self.driving.source_id
        )
    }
}

/// A command as the recorder sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSeen {
    /// Its topic and publisher.
    pub from: Commander,
    /// Its stamp, ns.
    pub stamp_ns: u64,
    /// Stamp of the observation it answers, ns (0: none).
    pub obs_stamp_ns: u64,
    /// The action vector (`None` for a chunk, which is never the dataset's action).
    pub values: Option<Vec<f32>>,
}

impl CommandSeen {
    /// The command with `header` on `topic`.
    pub fn new(topic: &'static str, header: &bus::Header, obs_stamp_ns: u64, values: Option<Vec<f32>>) -> CommandSeen {
        CommandSeen {
            from: Commander { topic, source_id: header.source_id },
            stamp_ns: header.stamp_ns,
            obs_stamp_ns,
            values,
        }
    }
}

/// The recorder's admission rules (see the module docs) and their counters.
#[derive(Clone, Debug)]
pub struct Intake {
    state_dim: usize,
    env_state_dim: usize,
    image_bytes: Vec<usize>,
    action_topic: &'static str,
    max_per_kind: usize,
    /// What was not kept.
    pub counts: IntakeCounts,
}

impl Intake {
    /// Rules for a dataset of `state_dim` joint positions, `env_state_dim` environment values
    /// (0: none, `scene_state` is not kept), cameras of `image_bytes` RGB8 bytes, the `action`
    /// topic, and at most `max_per_kind` messages of each kind.
    pub fn new(
        state_dim: usize,
        env_state_dim: usize,
        image_bytes: Vec<usize>,
        action: ActionSource,
        max_per_kind: usize,
    ) -> Intake {
        let action_topic = match action {
            ActionSource::EeDelta => bus::topics::COMMAND_EE_DELTA,
            ActionSource::Joint => bus::topics::COMMAND_JOINT,
        };
        Intake {
            state_dim,
            env_state_dim,
            image_bytes,
            action_topic,
            max_per_kind: max_per_kind.max(2),
            counts: IntakeCounts::default(),
        }
    }

    /// The most messages of one kind the log holds (also the most ticks of an episode).
    pub fn max_per_kind(&self) -> usize {
        self.max_per_kind
    }

    /// Whether `stamp_ns` is too far ahead of the wall clock `now_ns` (counted); see
    /// [`OBSERVATION_FRESHNESS`].
    pub fn is_future(&mut self, stamp_ns: u64, now_ns: u64) -> bool {
        let future = OBSERVATION_FRESHNESS.check(stamp_ns, now_ns).is_err();
        self.counts.future += u64::from(future);
        future
    }

    /// Keeps a `joint_state` of the dataset's shape.
    pub fn joint_state(&mut self, log: &mut MessageLog, m: JointState, now_ns: u64) {
        if self.is_future(m.header.stamp_ns, now_ns) {
            return;
        }
        if m.position.len() != self.state_dim || !m.position.iter().all(|x| x.is_finite()) {
            self.counts.malformed += 1;
            return;
        }
        log.joint.insert(m.header.stamp_ns, m);
    }

    /// Keeps a `scene_state` with the dataset's objects (none kept without environment state).
    pub fn scene_state(&mut self, log: &mut MessageLog, m: SceneState, now_ns: u64) {
        if self.env_state_dim == 0 || self.is_future(m.header.stamp_ns, now_ns) {
            return;
        }
        let env = env_state_vector(&m);
        if env.len() != self.env_state_dim || !env.iter().all(|x| x.is_finite()) {
            self.counts.malformed += 1;
            return;
        }
        log.scene.insert(m.header.stamp_ns, m);
    }

    /// Keeps an RGB8 frame of camera `camera`'s size.
    pub fn camera_frame(&mut self, log: &mut MessageLog, camera: usize, m: CameraFrame, now_ns: u64) {
        if self.is_future(m.header.stamp_ns, now_ns) {
            return;
        }
        let Some(bytes) = self.image_bytes.get(camera) else { return };
        if m.encoding != ImageEncoding::Rgb8 || m.data.len() != *bytes {
            self.counts.malformed += 1;
            return;
        }
        log.cameras[camera].insert(m.header.stamp_ns, m);
    }

    /// Takes a command: a malformed or future one is counted and dropped. A command stamped
    /// during an episode, whose commander is `episode_commander` (set by its first command), is
    /// an [`Intruder`] when it comes from another source; commands on the action topic are logged.
    pub fn command(
        &mut self,
        log: &mut MessageLog,
        cmd: CommandSeen,
        episode_commander: Option<&mut Option<Commander>>,
        now_ns: u64,
    ) -> Result<(), Intruder> {
        let CommandSeen { from, stamp_ns, obs_stamp_ns, values } = cmd;
        if self.is_future(stamp_ns, now_ns) {
            return Ok(());
        }
        if values.as_ref().is_some_and(|v| v.len() != COMMAND_DIM || !v.iter().all(|x| x.is_finite())) {
            self.counts.malformed += 1;
            return Ok(());
        }
        if let Some(commander) = episode_commander {
            match *commander {
                None => *commander = Some(from),
                Some(driving) if driving != from => return Err(Intruder { driving, other: from }),
                Some(_) => {}
            }
        }
        if let (Some(v), true) = (values, from.topic == self.action_topic) {
            if obs_stamp_ns != 0 {
                log.answers.insert(obs_stamp_ns, stamp_ns);
            }
            log.commands.insert(stamp_ns, v);
        }
        Ok(())
    }

    /// Drops the oldest messages beyond the bound (counted as overflow).
    pub fn bound(&mut self, log: &mut MessageLog) {
        self.counts.overflow += log.bound(self.max_per_kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ee(source_id: u64, stamp_ns: u64, values: Vec<f32>) -> CommandSeen {
        let from = Commander { topic: bus::topics::COMMAND_EE_DELTA, source_id };
        CommandSeen { from, stamp_ns, obs_stamp_ns: stamp_ns - 1, values: Some(values) }
    }

    #[test]
    fn malformed_and_future_commands_are_counted_and_never_logged() {
        let mut intake = Intake::new(7, 0, Vec::new(), ActionSource::EeDelta, 16);
        let mut log = MessageLog::new(0);
        let now = 10_000_000_000;
        for cmd in [
            ee(1, 100, vec![f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
            ee(1, 101, vec![0.0; 6]),
            ee(1, now + DEFAULT_MAX_CLOCK_SKEW_NS + 1, vec![0.0; 7]),
        ] {
            assert_eq!(intake.command(&mut log, cmd, Some(&mut None), now), Ok(()));
        }
        assert_eq!(intake.counts, IntakeCounts { malformed: 2, future: 1, ..Default::default() });
        assert_eq!(log.held(), 0);
        assert_eq!(intake.command(&mut log, ee(1, 102, vec![0.0; 7]), None, now), Ok(()));
        assert_eq!(log.commands.len(), 1);
    }

    /// One rule for "stamped in the future" across nodes: what the sim and the driver would
    /// refuse as a command from the future is no observation either; late ones are kept.
    #[test]
    fn stamps_follow_the_wires_clock_skew_bound_ahead_and_none_behind() {
        let mut intake = Intake::new(7, 0, Vec::new(), ActionSource::EeDelta, 16);
        let mut log = MessageLog::new(0);
        let second_ns = 1_000_000_000;
        let now = 7_200 * second_ns;
        let wire = Freshness::default();
        // At the bound, past it by 1 ns, a second ahead (inside the old 5 s limit), an hour late.
        for stamp in [
            now + DEFAULT_MAX_CLOCK_SKEW_NS,
            now + DEFAULT_MAX_CLOCK_SKEW_NS + 1,
            now + second_ns,
            now - 3_600 * second_ns,
        ] {
            let mut js = JointState { position: vec![0.0; 7], ..Default::default() };
            js.header.stamp_ns = stamp;
            intake.joint_state(&mut log, js, now);
        }
        assert_eq!(intake.counts, IntakeCounts { future: 2, ..Default::default() });
        assert_eq!(
            log.joint.keys().copied().collect::<Vec<_>>(),
            vec![now - 3_600 * second_ns, now + DEFAULT_MAX_CLOCK_SKEW_NS]
        );
        // The same verdict as the wire's rule ahead of the clock.
        for stamp in [now + DEFAULT_MAX_CLOCK_SKEW_NS, now + DEFAULT_MAX_CLOCK_SKEW_NS + 1] {
            let wire_future = matches!(wire.check(stamp, now), Err(bus::StampFault::FromTheFuture { .. }));
            assert_eq!(intake.is_future(stamp, now), wire_future);
        }
    }

    #[test]
    fn a_source_lock_follows_its_first_publisher_until_it_falls_silent() {
        let mut forever = SourceLock::new(None);
        assert!(forever.admit(7));
        assert!(!forever.admit(8));
        assert!(forever.admit(7));
        let mut handing_over = SourceLock::new(Some(Duration::ZERO));
        assert!(handing_over.admit(7));
        assert!(handing_over.admit(8), "a silent publisher hands over");
        let mut qualified = SourceLock::new(None);
        assert!(!qualified.admit_if(7, || false), "only a qualifying publisher is followed");
        assert!(qualified.admit_if(8, || true));
        assert!(qualified.admit_if(8, || false), "the followed one needs no qualification");
        assert!(!qualified.admit_if(7, || true));
    }

    #[test]
    fn only_the_episodes_first_commander_may_command_during_it() {
        let mut intake = Intake::new(7, 0, Vec::new(), ActionSource::EeDelta, 16);
        let mut log = MessageLog::new(0);
        let now = 10_000_000_000;
        // Between episodes nothing is checked; the episode's first command names its commander.
        assert_eq!(intake.command(&mut log, ee(2, 100, vec![0.0; 7]), None, now), Ok(()));
        let mut episode = None;
        assert_eq!(intake.command(&mut log, ee(1, 200, vec![0.0; 7]), Some(&mut episode), now), Ok(()));
        let driving = Commander { topic: bus::topics::COMMAND_EE_DELTA, source_id: 1 };
        let other = Commander { topic: bus::topics::COMMAND_EE_DELTA, source_id: 2 };
        let second = intake.command(&mut log, ee(2, 300, vec![0.0; 7]), Some(&mut episode), now);
        assert_eq!(second, Err(Intruder { driving, other }));
        let chunk = Commander { topic: bus::topics::COMMAND_CHUNK, source_id: 1 };
        let seen = CommandSeen { from: chunk, stamp_ns: 400, obs_stamp_ns: 0, values: None };
        assert_eq!(intake.command(&mut log, seen, Some(&mut episode), now), Err(Intruder { driving, other: chunk }));
    }
}
