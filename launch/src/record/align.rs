//! Aligning bus messages to dataset frames by stamp (never by arrival order).
//!
//! The robot's `episode` events are the frame clock: the `Start` event's stamp is tick 0 and
//! each `Step` event's stamp is tick k. Frame k of an episode with T steps (k < T) holds:
//! - the observation stamped tick k (`joint_state`, `scene_state`, cameras): the message with
//!   exactly that stamp, else the newest one before it (counted as stale), else the first after;
//! - the action: the command that answered tick k's observation (its `obs_stamp_ns`), else the
//!   newest command stamped in (tick k, tick k+1): what the robot applied on the step that
//!   followed; with none, the robot held (zero end-effector delta with the last gripper
//!   command, or the last joint target) and the frame is counted as held;
//! - `next.reward`, `next.success` from the `Step` event at tick k+1, and `next.done` on the
//!   last frame or where the robot said done; `next.truncated` where that end came without
//!   success or failure (the time limit or the operator cut the episode: returns bootstrap
//!   there). A failure end (the `failed` flag: an object fell off the table) is terminal.

use std::collections::BTreeMap;

use bus::{CameraFrame, ImageEncoding, JointState, SceneState};
use dataset::FrameRecord;

/// One tick of the frame clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tick {
    /// Stamp shared by the tick's observation messages, ns.
    pub stamp_ns: u64,
    /// Reward of the step that ended at this tick (0 for tick 0).
    pub reward: f64,
    /// Episode terminated at this tick.
    pub done: bool,
    /// Task achieved at this tick.
    pub success: bool,
    /// The episode terminated in a failure state at this tick (not a cut).
    pub failed: bool,
}

/// Which command topic is the dataset's `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionSource {
    /// `command/ee_delta`: [dx, dy, dz (m), droll, dpitch, dyaw (rad), gripper].
    EeDelta,
    /// `command/joint`: six joint targets (rad) and the gripper.
    Joint,
}

impl ActionSource {
    /// Component names of the action vector.
    pub fn names(self) -> Vec<String> {
        let names: &[&str] = match self {
            ActionSource::EeDelta => &policy::demos::EE_DELTA_ACTION_NAMES,
            ActionSource::Joint => &[
                "waist_rad",
                "shoulder_rad",
                "elbow_rad",
                "forearm_roll_rad",
                "wrist_angle_rad",
                "wrist_rotate_rad",
                "gripper",
            ],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// Messages of one episode, keyed by stamp.
#[derive(Clone, Debug, Default)]
pub struct MessageLog {
    /// `joint_state` by stamp.
    pub joint: BTreeMap<u64, JointState>,
    /// `scene_state` by stamp.
    pub scene: BTreeMap<u64, SceneState>,
    /// RGB frames per camera (in the recorder's camera order) by stamp.
    pub cameras: Vec<BTreeMap<u64, CameraFrame>>,
    /// Action vectors by command stamp.
    pub commands: BTreeMap<u64, Vec<f32>>,
    /// Command stamp by the stamp of the observation it answers (commands that say so).
    pub answers: BTreeMap<u64, u64>,
}

impl MessageLog {
    /// An empty log for `cameras` cameras.
    pub fn new(cameras: usize) -> MessageLog {
        MessageLog { cameras: vec![BTreeMap::new(); cameras], ..Default::default() }
    }

    /// Drops every message stamped before `stamp_ns` (except the newest of each kind, which may
    /// still serve as a stale fallback, and commands, whose last gripper value is needed).
    pub fn prune_before(&mut self, stamp_ns: u64) {
        fn keep_tail<V>(m: &mut BTreeMap<u64, V>, stamp: u64) {
            let newest_before = m.range(..stamp).next_back().map(|(k, _)| *k);
            m.retain(|k, _| *k >= stamp || Some(*k) == newest_before);
        }
        keep_tail(&mut self.joint, stamp_ns);
        keep_tail(&mut self.scene, stamp_ns);
        for c in &mut self.cameras {
            keep_tail(c, stamp_ns);
        }
        keep_tail(&mut self.commands, stamp_ns);
        self.answers.retain(|obs, _| *obs >= stamp_ns);
    }

    /// Keeps at most `max_per_kind` messages of each kind (each camera, the commands, the
    /// answers), dropping the oldest; returns how many were dropped.
    pub fn bound(&mut self, max_per_kind: usize) -> u64 {
        fn cap<V>(m: &mut BTreeMap<u64, V>, max: usize) -> u64 {
            let mut dropped = 0;
            while m.len() > max {
                m.pop_first();
                dropped += 1;
            }
            dropped
        }
        let mut dropped = cap(&mut self.joint, max_per_kind) + cap(&mut self.scene, max_per_kind);
        for c in &mut self.cameras {
            dropped += cap(c, max_per_kind);
        }
        dropped + cap(&mut self.commands, max_per_kind) + cap(&mut self.answers, max_per_kind)
    }

    /// Messages held, all kinds together.
    pub fn held(&self) -> usize {
        self.joint.len()
            + self.scene.len()
            + self.cameras.iter().map(BTreeMap::len).sum::<usize>()
            + self.commands.len()
            + self.answers.len()
    }
}

/// Counters of one alignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlignStats {
    /// Frames produced.
    pub frames: u64,
    /// Observations (state or image) taken from another stamp than their tick's.
    pub stale: u64,
    /// Images missing entirely (a black frame was stored).
    pub missing_images: u64,
    /// Frames whose step had no command (the robot held).
    pub held: u64,
    /// Steps without a frame: no joint state (or, with environment state, no scene state) at
    /// all, or a tick not after the previous one.
    pub incomplete: u64,
}

/// The message for `stamp`: exact, else newest before (stale), else first after (stale).
fn at<V>(m: &BTreeMap<u64, V>, stamp: u64, stale: &mut u64) -> Option<V>
where
    V: Clone,
{
    if let Some(v) = m.get(&stamp) {
        return Some(v.clone());
    }
    let v = m.range(..stamp).next_back().or_else(|| m.range(stamp..).next()).map(|(_, v)| v.clone());
    if v.is_some() {
        *stale += 1;
    }
    v
}

pub use policy::features::{env_state_names, env_state_of_scene as env_state_vector};

/// Builds the frames of an episode from its ticks and messages. `env_state` says whether the
/// dataset stores `observation.environment_state`; `image_bytes` is each camera's RGB8 size.
pub fn align_episode(
    ticks: &[Tick],
    log: &MessageLog,
    source: ActionSource,
    env_state: bool,
    image_bytes: &[usize],
) -> (Vec<FrameRecord>, AlignStats) {
    let mut stats = AlignStats::default();
    let mut frames = Vec::new();
    let steps = ticks.len().saturating_sub(1);
    // The last command before the episode sets the held gripper/joint target.
    let first = ticks.first().map_or(0, |t| t.stamp_ns);
    let mut last_action: Option<Vec<f32>> = log.commands.range(..=first).next_back().map(|(_, v)| v.clone());
    for k in 0..steps {
        let (t0, t1) = (ticks[k].stamp_ns, ticks[k + 1].stamp_ns);
        // A frame spans (tick k, tick k+1]: ticks out of order hold no frame.
        if t1 <= t0 {
            stats.incomplete += 1;
            continue;
        }
        let Some(js) = at(&log.joint, t0, &mut stats.stale) else {
            stats.incomplete += 1;
            continue;
        };
        let state: Vec<f32> = js.position.iter().map(|x| *x as f32).collect();
        let env = if env_state {
            match at(&log.scene, t0, &mut stats.stale) {
                Some(s) => env_state_vector(&s),
                None => {
                    stats.incomplete += 1;
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        let mut images = Vec::with_capacity(log.cameras.len());
        for (cam, bytes) in log.cameras.iter().zip(image_bytes) {
            match at(cam, t0, &mut stats.stale) {
                Some(f) if f.encoding == ImageEncoding::Rgb8 && f.data.len() == *bytes => images.push(f.data),
                _ => {
                    stats.missing_images += 1;
                    images.push(vec![0; *bytes]);
                }
            }
        }
        // The command that answered this observation, else the newest one sent before the next tick.
        let answer = log.answers.get(&t0).and_then(|c| log.commands.get(c));
        let action = match answer.or_else(|| log.commands.range(t0 + 1..t1).next_back().map(|(_, a)| a)) {
            Some(a) => a.clone(),
            None => {
                stats.held += 1;
                match source {
                    ActionSource::EeDelta => {
                        let g = last_action.as_ref().and_then(|a| a.get(6).copied()).unwrap_or(1.0);
                        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, g]
                    }
                    ActionSource::Joint => last_action.clone().unwrap_or_else(|| state.clone()),
                }
            }
        };
        last_action = Some(action.clone());
        let next = ticks[k + 1];
        frames.push(FrameRecord {
            state,
            action,
            env_state: env,
            reward: next.reward as f32,
            done: next.done || k + 1 == steps,
            // An end without success or failure is a cut (the time limit, the operator), not a
            // terminal state: the task could still have succeeded.
            truncated: (next.done || k + 1 == steps) && !next.success && !next.failed,
            success: next.success,
            images,
        });
    }
    stats.frames = frames.len() as u64;
    (frames, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(stamp: u64, q: f64) -> JointState {
        let mut m = JointState { position: vec![q; 7], ..Default::default() };
        m.header.stamp_ns = stamp;
        m
    }

    #[test]
    fn frames_follow_stamps_not_arrival_order() {
        let ticks: Vec<Tick> = (0..4)
            .map(|k| Tick {
                stamp_ns: 1000 * (k + 1),
                reward: if k == 3 { 1.0 } else { 0.0 },
                done: k == 3,
                success: k == 3,
                failed: false,
            })
            .collect();
        let mut log = MessageLog::new(0);
        // Inserted out of order; plus a decoy observation between ticks.
        for k in [3u64, 1, 0, 2] {
            log.joint.insert(1000 * (k + 1), js(1000 * (k + 1), k as f64));
        }
        log.joint.insert(1500, js(1500, 99.0));
        log.commands.insert(1200, vec![0.1, 0., 0., 0., 0., 0., 1.0]);
        log.commands.insert(1900, vec![0.2, 0., 0., 0., 0., 0., 0.5]); // newest in (1000, 2000) wins
        log.commands.insert(3100, vec![0.3, 0., 0., 0., 0., 0., 0.0]);
        let (frames, stats) = align_episode(&ticks, &log, ActionSource::EeDelta, false, &[]);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames.iter().map(|f| f.state[0]).collect::<Vec<_>>(), vec![0.0, 1.0, 2.0]);
        assert_eq!(frames[0].action[0], 0.2);
        // No command in (2000, 3000): the robot held, with the last gripper command.
        assert_eq!(frames[1].action, vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]);
        assert_eq!(frames[2].action[0], 0.3);
        assert_eq!(stats.held, 1);
        assert_eq!(stats.stale, 0);
        assert!(frames[2].done && frames[2].success && frames[2].reward == 1.0);
        assert!(!frames[2].truncated);
        assert!(!frames[0].done);
    }

    #[test]
    fn an_end_without_success_is_a_cut_unless_the_robot_says_it_failed() {
        let mut log = MessageLog::new(0);
        for t in [1000, 2000, 3000] {
            log.joint.insert(t, js(t, 0.0));
        }
        let ticks = |failed: bool| -> Vec<Tick> {
            [1000, 2000, 3000]
                .iter()
                .map(|&stamp_ns| Tick {
                    stamp_ns,
                    done: stamp_ns == 3000,
                    failed: failed && stamp_ns == 3000,
                    ..Default::default()
                })
                .collect()
        };
        let (cut, _) = align_episode(&ticks(false), &log, ActionSource::EeDelta, false, &[]);
        assert!(cut[1].done && cut[1].truncated && !cut[1].success);
        let (failed, _) = align_episode(&ticks(true), &log, ActionSource::EeDelta, false, &[]);
        assert!(failed[1].done && !failed[1].truncated && !failed[1].success);
    }

    #[test]
    fn a_tick_out_of_order_holds_no_frame_instead_of_panicking() {
        let hour_ns = 3_600_000_000_000;
        let ticks: Vec<Tick> = [1000, 2000, 2000 + hour_ns, 3000]
            .iter()
            .map(|&stamp_ns| Tick { stamp_ns, ..Default::default() })
            .collect();
        let mut log = MessageLog::new(0);
        for t in [1000, 2000, 3000] {
            log.joint.insert(t, js(t, 0.0));
            log.commands.insert(t + 1, vec![0.0; 7]);
        }
        let (frames, stats) = align_episode(&ticks, &log, ActionSource::EeDelta, false, &[]);
        assert_eq!(frames.len(), 2, "(1000, 2000] and (2000, 2000 + 1 h]; the step back holds none");
        assert_eq!(stats.incomplete, 1);
    }

    #[test]
    fn the_log_keeps_at_most_its_bound_of_each_kind_newest_first() {
        let mut log = MessageLog::new(1);
        for t in 0..10u64 {
            log.joint.insert(t, js(t, 0.0));
            log.commands.insert(t, vec![0.0; 7]);
        }
        assert_eq!(log.bound(4), 12);
        assert_eq!(log.joint.keys().copied().collect::<Vec<_>>(), vec![6, 7, 8, 9]);
        assert_eq!(log.held(), 8);
    }
}
