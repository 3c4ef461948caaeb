//! The recorder node: subscribes to the robot's observations, the commands and the episode
//! topic, aligns them into frames by stamp ([`super::align`]) and hands finished episodes to a
//! writer thread through a bounded queue; encoding never runs on the bus-receiving thread.
//!
//! Episodes are kept at their `End` event (after a short grace period for late camera frames)
//! unless the robot marked them `discarded` (re-record). The node stops after the requested
//! number of kept episodes, on a `Stop` request, or when `stop` is set (an unfinished episode is
//! then dropped, the finished ones are already durable).
//!
//! No message is fatal: what [`super::intake`] does not admit (wrong shape, stamped in the
//! future, beyond the log's bound, episode events out of order) is counted in
//! [`RecorderReport::intake`] and dropped. The one exception is a second command source during
//! an episode: the robot then executes commands the dataset would not hold, so that episode is
//! discarded and the recorder ends with an error naming both publishers (the finished episodes
//! are written first).
//!
//! Once a second, and when it stops, the recorder publishes `status` (node `recorder`): what its
//! subscribers refused (`decode_errors`, `newer_schema`), what [`super::intake`] did not admit
//! (`malformed`, `stamped_in_future`, `over_bound`, `episode_events_rejected`), the messages its
//! queues dropped (`queue_dropped`) and the episodes it handed to the writer (`episodes`). A
//! recorder that fails publishes no final status: its error ends the run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bus::{
    ActionChunk, Bus, CameraFrame, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind, EpisodeRequest,
    JointCommand, JointState, NodeState, Publisher, SceneState, Status, Subscriber, SubscriberStats, Task,
};
use crossbeam_channel::{bounded, Receiver, Sender};
use dataset::{DatasetWriter, FrameRecord};

use super::align::{align_episode, ActionSource, AlignStats, MessageLog, Tick};
use super::intake::{CommandSeen, Commander, Intake, IntakeCounts, Intruder, SourceLock};
use crate::shutdown::StartBarrier;

/// Between episodes, messages older than this are dropped, ns.
const KEEP_BETWEEN_EPISODES_NS: u64 = 5_000_000_000;
/// The recorder's node name on `status`.
pub const RECORDER_NODE: &str = "recorder";
/// How often the recorder publishes `status`.
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// Recorder settings.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Bus camera names, in the dataset's camera order (e.g. `front`, `wrist`).
    pub cameras: Vec<String>,
    /// RGB8 bytes of one frame of each camera.
    pub image_bytes: Vec<usize>,
    /// Which command is the action.
    pub action: ActionSource,
    /// Joint positions in a `joint_state` (the dataset's state dimension).
    pub state_dim: usize,
    /// Values of `observation.environment_state` taken from `scene_state` (0: not stored).
    pub env_state_dim: usize,
    /// Stop after this many kept episodes.
    pub episodes: Option<u64>,
    /// Task text for every episode (None: the robot's `task` instruction).
    pub task: Option<String>,
    /// Wait this long after an `End` event for late messages.
    pub grace: Duration,
    /// Per-topic receive queue, messages; also the most messages of each kind (and ticks of
    /// an episode) the recorder holds.
    pub queue: usize,
    /// Store each episode's seed (the sim's episodes are drawn from theirs; a real arm's are not).
    pub seeds: bool,
    /// The scripted expert that drives, with its scene and quality: each seeded episode's
    /// mistake is drawn from its seed as the expert draws it, and stored (`armstack/mistake`).
    pub scripted: Option<(sim::SceneSpec, sim::DemoQuality)>,
}

/// What the recorder did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecorderReport {
    /// Episodes written.
    pub episodes: u64,
    /// Frames written.
    pub frames: u64,
    /// Episodes discarded (re-record or interrupted).
    pub discarded: u64,
    /// Messages the bus queues dropped (receiver too slow).
    pub dropped_messages: u64,
    /// Payloads the recorder's subscribers could not decode.
    pub decode_errors: u64,
    /// Messages the recorder's subscribers refused for a newer schema version.
    pub newer_schema: u64,
    /// Alignment counters over all kept episodes.
    pub align: AlignStats,
    /// Successful episodes among those written.
    pub successes: u64,
    /// Messages not admitted (malformed, stamped in the future, overflow, events out of order).
    pub intake: IntakeCounts,
    /// The most messages the recorder held at once (all kinds; bounded by the queue size).
    pub max_held: usize,
}

struct Job {
    task: String,
    seed: Option<u64>,
    success: bool,
    frames: Vec<FrameRecord>,
}

struct Subs {
    joint: Subscriber<JointState>,
    scene: Subscriber<SceneState>,
    cameras: Vec<Subscriber<CameraFrame>>,
    ee: Subscriber<EeDeltaCommand>,
    joint_cmd: Subscriber<JointCommand>,
    chunk: Subscriber<ActionChunk>,
    episode: Subscriber<EpisodeEvent>,
    task: Subscriber<Task>,
    control: Subscriber<EpisodeControl>,
}

impl Subs {
    /// Every subscriber's counters, summed.
    fn stats(&self) -> SubscriberStats {
        [
            self.joint.stats(),
            self.scene.stats(),
            self.ee.stats(),
            self.joint_cmd.stats(),
            self.chunk.stats(),
            self.episode.stats(),
            self.task.stats(),
            self.control.stats(),
        ]
        .into_iter()
        .chain(self.cameras.iter().map(Subscriber::stats))
        .sum()
    }
}

/// Publishes the recorder's `status` (see the module docs).
fn publish_status(status: &Publisher<Status>, state: NodeState, subs: &Subs, intake: &IntakeCounts, episodes: u64) {
    let receive = subs.stats();
    let mut counters = std::collections::BTreeMap::from([
        ("episodes".to_string(), episodes),
        ("queue_dropped".to_string(), receive.dropped),
        ("malformed".to_string(), intake.malformed),
        ("stamped_in_future".to_string(), intake.future),
        ("over_bound".to_string(), intake.overflow),
        ("episode_events_rejected".to_string(), intake.rejected_events),
    ]);
    receive.add_to_status_counters(&mut counters);
    let mut msg =
        Status { header: Default::default(), node: RECORDER_NODE.to_string(), state, message: String::new(), counters };
    // Status is for monitoring: a failed publish must not end the recording.
    if let Err(e) = status.publish(&mut msg) {
        tracing::warn!(error = %e, "publishing the recorder's status");
    }
}

#[derive(Default)]
struct Current {
    index: u64,
    seed: u64,
    instruction: String,
    ticks: Vec<Tick>,
    ended_at: Option<Instant>,
    discarded: bool,
    success: bool,
    /// The publisher of the episode's first command.
    commander: Option<Commander>,
}

/// Runs the recorder until done; `stop` is set when it finishes so the other nodes stop too.
pub fn run_recorder(
    writer: DatasetWriter,
    cfg: &RecorderConfig,
    bus: &Bus,
    stop: &Arc<AtomicBool>,
    ready: Option<&StartBarrier>,
) -> Result<RecorderReport> {
    let q = cfg.queue.max(16);
    let subs = Subs {
        joint: bus.subscriber_with_capacity::<JointState>(bus::topics::JOINT_STATE, q)?,
        scene: bus.subscriber_with_capacity::<SceneState>(bus::topics::SCENE_STATE, q)?,
        cameras: cfg
            .cameras
            .iter()
            .map(|c| bus.subscriber_with_capacity::<CameraFrame>(&format!("{}/{c}", bus::topics::CAMERA), q))
            .collect::<Result<_, _>>()?,
        ee: bus.subscriber_with_capacity::<EeDeltaCommand>(bus::topics::COMMAND_EE_DELTA, q)?,
        joint_cmd: bus.subscriber_with_capacity::<JointCommand>(bus::topics::COMMAND_JOINT, q)?,
        chunk: bus.subscriber_with_capacity::<ActionChunk>(bus::topics::COMMAND_CHUNK, q)?,
        episode: bus.subscriber_with_capacity::<EpisodeEvent>(bus::topics::EPISODE, q)?,
        task: bus.subscriber::<Task>()?,
        control: bus.subscriber::<EpisodeControl>()?,
    };
    let status = bus.publisher::<Status>()?;
    if let Some(b) = ready {
        b.wait();
    }
    let (tx, rx) = bounded::<Job>(2);
    let writer_stop = stop.clone();
    let scripted = cfg.scripted.clone();
    let writer_thread = std::thread::Builder::new()
        .name("dataset-writer".into())
        .spawn(move || {
            let written = write_jobs(writer, rx, scripted);
            if written.is_err() {
                // Nothing more can be written: stop recording at once.
                writer_stop.store(true, Ordering::SeqCst);
            }
            written
        })
        .context("spawning the dataset writer thread")?;
    let result = receive(&subs, cfg, stop, &tx, &status);
    drop(tx);
    let written = writer_thread.join().map_err(|_| anyhow::anyhow!("the dataset writer thread panicked"))?;
    stop.store(true, Ordering::SeqCst);
    // A writer error is the cause when both failed (the receiver only saw the writer stop).
    let (episodes, frames) = written.context("writing the dataset")?;
    let mut report = result?;
    report.episodes = episodes;
    report.frames = frames;
    let received = subs.stats();
    report.dropped_messages = received.dropped;
    report.decode_errors = received.decode_errors;
    report.newer_schema = received.newer_schema;
    publish_status(&status, NodeState::Stopped, &subs, &report.intake, episodes);
    Ok(report)
}

fn write_jobs(
    mut writer: DatasetWriter,
    rx: Receiver<Job>,
    scripted: Option<(sim::SceneSpec, sim::DemoQuality)>,
) -> Result<(u64, u64)> {
    let mut episodes = 0;
    let mut frames = 0;
    for job in rx {
        if let Some((scene, quality)) = &scripted {
            let mistake = job.seed.map(|seed| sim::Expert::planned_mistake(scene, *quality, seed));
            writer.set_mistake(mistake.map(|m| m.name()));
        }
        writer.begin_episode(&job.task)?;
        for f in &job.frames {
            writer.add_frame(f)?;
        }
        if let Some(s) = writer.end_episode(job.seed, Some(job.success))? {
            episodes += 1;
            frames += s.frames;
        }
    }
    writer.finish()?;
    Ok((episodes, frames))
}

fn receive(
    subs: &Subs,
    cfg: &RecorderConfig,
    stop: &AtomicBool,
    tx: &Sender<Job>,
    status: &Publisher<Status>,
) -> Result<RecorderReport> {
    let mut report = RecorderReport::default();
    let mut log = MessageLog::new(cfg.cameras.len());
    let mut intake = Intake::new(cfg.state_dim, cfg.env_state_dim, cfg.image_bytes.clone(), cfg.action, cfg.queue);
    let mut cur: Option<Current> = None;
    // Ended episodes waiting for their last messages, oldest first.
    let mut finished: VecDeque<Current> = VecDeque::new();
    let mut instruction = String::new();
    let mut stop_requested = false;
    let mut failure: Option<anyhow::Error> = None;
    let mut sent = 0u64;
    let mut last_progress = Instant::now();
    let mut last_prune = Instant::now();
    let mut last_status: Option<Instant> = None;
    // The robot's `episode` publisher, for the whole run (see `super::intake`).
    let mut episode_source = SourceLock::new(None);
    loop {
        if last_status.is_none_or(|t| t.elapsed() >= STATUS_PERIOD) {
            last_status = Some(Instant::now());
            publish_status(status, NodeState::Running, subs, &intake.counts, sent);
        }
        let stopping = failure.is_some() || stop.load(Ordering::Relaxed);
        if stopping && finished.is_empty() {
            if cur.as_ref().is_some_and(|c| !c.ticks.is_empty()) {
                report.discarded += 1;
                tracing::warn!("stopped mid-episode: the unfinished episode is not written");
            }
            break;
        }
        let mut sel = crossbeam_channel::Select::new();
        sel.recv(subs.joint.receiver());
        let _ = sel.ready_timeout(Duration::from_millis(10));
        // Drain everything (order does not matter: messages are keyed by stamp). Each stamp is
        // checked against the clock when its message is taken, not when the drain began: a
        // message published during a long drain is not from the future.
        while let Some(m) = subs.joint.try_recv() {
            intake.joint_state(&mut log, m, bus::now_ns());
        }
        while let Some(m) = subs.scene.try_recv() {
            intake.scene_state(&mut log, m, bus::now_ns());
        }
        for (i, c) in subs.cameras.iter().enumerate() {
            while let Some(m) = c.try_recv() {
                intake.camera_frame(&mut log, i, m, bus::now_ns());
            }
        }
        while let Some(t) = subs.task.try_recv() {
            instruction = t.instruction;
        }
        while let Some(c) = subs.control.try_recv() {
            if c.request == EpisodeRequest::Stop {
                stop_requested = true;
            }
        }
        while let Some(ev) = subs.episode.try_recv() {
            let stamp_ns = ev.header.stamp_ns;
            if intake.is_future(stamp_ns, bus::now_ns()) {
                continue;
            }
            let robots_start = || {
                // The robot published the Start's observation just before it: take what came.
                while let Some(m) = subs.joint.try_recv() {
                    intake.joint_state(&mut log, m, bus::now_ns());
                }
                ev.kind == EpisodeEventKind::Start && log.joint.contains_key(&stamp_ns)
            };
            if !episode_source.admit_if(ev.header.source_id, robots_start) {
                intake.counts.rejected_events += 1;
                continue;
            }
            match ev.kind {
                // After a failure no episode starts.
                EpisodeEventKind::Start if failure.is_none() => {
                    if let Some(old) = cur.take() {
                        if !old.ticks.is_empty() {
                            report.discarded += 1;
                            tracing::warn!(episode = old.index, "episode restarted before it ended: dropped");
                        }
                    }
                    cur = Some(Current {
                        index: ev.episode_index,
                        seed: ev.seed,
                        instruction: instruction.clone(),
                        ticks: vec![Tick { stamp_ns, ..Default::default() }],
                        ..Default::default()
                    });
                }
                EpisodeEventKind::Start => {}
                EpisodeEventKind::Step => {
                    let Some(c) = cur.as_mut().filter(|c| c.index == ev.episode_index) else {
                        intake.counts.rejected_events += 1;
                        continue;
                    };
                    // Ticks only move forward, and an episode holds no more ticks than messages.
                    let after_last = c.ticks.last().is_none_or(|t| stamp_ns > t.stamp_ns);
                    if !after_last || c.ticks.len() >= intake.max_per_kind() {
                        intake.counts.rejected_events += 1;
                        continue;
                    }
                    c.ticks.push(Tick {
                        stamp_ns,
                        reward: ev.reward,
                        done: ev.done,
                        success: ev.success,
                        failed: ev.failed,
                    });
                }
                EpisodeEventKind::End => {
                    if let Some(mut c) = cur.take_if(|c| c.index == ev.episode_index) {
                        c.ended_at = Some(Instant::now());
                        c.discarded = ev.discarded;
                        c.success = ev.success;
                        finished.push_back(c);
                    }
                }
            }
        }
        // After the episode events, so that a command in the same batch as its episode's
        // Start is checked against that episode's commander. A command belongs to the episode
        // its stamp falls in.
        for seen in drain_commands(subs) {
            let stamp = seen.stamp_ns;
            let episode = cur.as_mut().filter(|c| c.ticks[0].stamp_ns <= stamp).or_else(|| {
                finished
                    .iter_mut()
                    .find(|c| c.ticks[0].stamp_ns <= stamp && c.ticks.last().is_some_and(|t| stamp <= t.stamp_ns))
            });
            let index = episode.as_ref().map(|c| c.index);
            let Err(intruder) = intake.command(&mut log, seen, episode.map(|c| &mut c.commander), bus::now_ns()) else {
                continue;
            };
            if failure.is_none() {
                // That episode is not written; the ones finished before it are.
                let dropped_cur = cur.take_if(|c| Some(c.index) == index).is_some();
                let before = finished.len();
                finished.retain(|c| Some(c.index) != index);
                report.discarded += u64::from(dropped_cur) + (before - finished.len()) as u64;
                failure = Some(second_commander(intruder, index));
            }
        }
        // Finish ended episodes once their last tick's messages are in, or after the grace period.
        // Episodes that ended past the count (a fast robot outran the recorder) are not written.
        while let Some(c) = finished.front().filter(|_| cfg.episodes.is_none_or(|n| sent < n)) {
            let last = c.ticks[c.ticks.len().saturating_sub(2)].stamp_ns;
            let complete = log.joint.contains_key(&last) && log.cameras.iter().all(|m| m.contains_key(&last));
            let due = c.ended_at.is_some_and(|t| t.elapsed() >= cfg.grace);
            if !(complete || stopping || due) {
                break;
            }
            let Some(c) = finished.pop_front() else { break };
            if c.discarded {
                report.discarded += 1;
                tracing::info!(episode = c.index, "episode discarded (re-record)");
            } else if c.ticks.len() < 2 {
                tracing::info!(episode = c.index, "episode without steps: not written");
            } else {
                let env_state = cfg.env_state_dim > 0;
                let (frames, stats) = align_episode(&c.ticks, &log, cfg.action, env_state, &cfg.image_bytes);
                report.align.frames += stats.frames;
                report.align.stale += stats.stale;
                report.align.missing_images += stats.missing_images;
                report.align.held += stats.held;
                report.align.incomplete += stats.incomplete;
                report.successes += u64::from(c.success);
                let task = cfg.task.clone().unwrap_or_else(|| c.instruction.clone());
                tracing::info!(episode = sent, frames = frames.len(), success = c.success, "episode recorded");
                let seed = cfg.seeds.then_some(c.seed);
                if tx.send(Job { task, seed, success: c.success, frames }).is_err() {
                    // The writer failed: run_recorder returns its error.
                    anyhow::bail!("the dataset writer stopped");
                }
                sent += 1;
            }
        }
        // Every kind of message is bounded in count, and pruned by time: only what the oldest
        // episode still to be written needs is kept (between episodes, a few seconds).
        intake.bound(&mut log);
        report.max_held = report.max_held.max(log.held());
        if last_prune.elapsed() >= Duration::from_millis(200) {
            last_prune = Instant::now();
            let pending = finished.front().or(cur.as_ref()).and_then(|c| c.ticks.first());
            let between_episodes = bus::now_ns().saturating_sub(KEEP_BETWEEN_EPISODES_NS);
            log.prune_before(pending.map_or(between_episodes, |t| t.stamp_ns));
        }
        if cfg.episodes.is_some_and(|n| sent >= n) || (stop_requested && cur.is_none() && finished.is_empty()) {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            tracing::info!(episodes = sent, dropped = subs.stats().dropped, held = log.held(), "recording");
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    report.intake = intake.counts;
    Ok(report)
}

/// Every command that moves the robot, drained from its topics.
fn drain_commands(subs: &Subs) -> Vec<CommandSeen> {
    let mut commands = Vec::new();
    while let Some(m) = subs.ee.try_recv() {
        let v = m.delta_xyz_m.iter().chain(&m.delta_rpy_rad).chain([&m.gripper]).map(|x| *x as f32).collect();
        commands.push(CommandSeen::new(bus::topics::COMMAND_EE_DELTA, &m.header, m.obs_stamp_ns, Some(v)));
    }
    while let Some(m) = subs.joint_cmd.try_recv() {
        let v = m.position.iter().chain([&m.gripper]).map(|x| *x as f32).collect();
        commands.push(CommandSeen::new(bus::topics::COMMAND_JOINT, &m.header, m.obs_stamp_ns, Some(v)));
    }
    while let Some(m) = subs.chunk.try_recv() {
        commands.push(CommandSeen::new(bus::topics::COMMAND_CHUNK, &m.header, 0, None));
    }
    commands
}

/// The recorder's error for a second command source during `episode`.
fn second_commander(intruder: Intruder, episode: Option<u64>) -> anyhow::Error {
    let episode = episode.map_or_else(|| "the current episode".to_string(), |e| format!("episode {e}"));
    anyhow::anyhow!(
        "{intruder}: the robot executed commands the dataset would not hold, so {episode} is discarded and the \
         recording stops (the finished episodes are kept); stop the other publisher, then record again with --resume"
    )
}
