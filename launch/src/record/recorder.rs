//! The recorder node: subscribes to the robot's observations, the commands and the episode
//! topic, aligns them into frames by stamp ([`super::align`]) and hands finished episodes to a
//! writer thread through a bounded queue; encoding never runs on the bus-receiving thread.
//!
//! Episodes are kept at their `End` event (after a short grace period for late camera frames)
//! unless the robot marked them `discarded` (re-record). The node stops after the requested
//! number of kept episodes, on a `Stop` request, or when `stop` is set (an unfinished episode is
//! then dropped, the finished ones are already durable).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bus::{
    Bus, CameraFrame, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind, EpisodeRequest, JointCommand,
    JointState, SceneState, Subscriber, Task,
};
use crossbeam_channel::{bounded, Receiver, Sender};
use dataset::{DatasetWriter, FrameRecord};

use super::align::{align_episode, ActionSource, AlignStats, MessageLog, Tick};

/// Recorder settings.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// Bus camera names, in the dataset's camera order (e.g. `front`, `wrist`).
    pub cameras: Vec<String>,
    /// RGB8 bytes of one frame of each camera.
    pub image_bytes: Vec<usize>,
    /// Which command is the action.
    pub action: ActionSource,
    /// Store `observation.environment_state` from `scene_state`.
    pub env_state: bool,
    /// Stop after this many kept episodes.
    pub episodes: Option<u64>,
    /// Task text for every episode (None: the robot's `task` instruction).
    pub task: Option<String>,
    /// Wait this long after an `End` event for late messages.
    pub grace: Duration,
    /// Per-topic receive queue, messages.
    pub queue: usize,
    /// Store each episode's seed (the sim's episodes are drawn from theirs; a real arm's are not).
    pub seeds: bool,
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
    /// Alignment counters over all kept episodes.
    pub align: AlignStats,
    /// Successful episodes among those written.
    pub successes: u64,
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
    episode: Subscriber<EpisodeEvent>,
    task: Subscriber<Task>,
    control: Subscriber<EpisodeControl>,
}

impl Subs {
    fn dropped(&self) -> u64 {
        self.joint.stats().dropped
            + self.scene.stats().dropped
            + self.cameras.iter().map(|c| c.stats().dropped).sum::<u64>()
            + self.ee.stats().dropped
            + self.joint_cmd.stats().dropped
            + self.episode.stats().dropped
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
}

/// Runs the recorder until done; `stop` is set when it finishes so the other nodes stop too.
pub fn run_recorder(
    writer: DatasetWriter,
    cfg: &RecorderConfig,
    bus: &Bus,
    stop: &Arc<AtomicBool>,
    ready: Option<&std::sync::Barrier>,
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
        episode: bus.subscriber_with_capacity::<EpisodeEvent>(bus::topics::EPISODE, q)?,
        task: bus.subscriber::<Task>()?,
        control: bus.subscriber::<EpisodeControl>()?,
    };
    if let Some(b) = ready {
        b.wait();
    }
    let (tx, rx) = bounded::<Job>(2);
    let writer_thread = std::thread::Builder::new()
        .name("dataset-writer".into())
        .spawn(move || write_jobs(writer, rx))
        .context("spawning the dataset writer thread")?;
    let result = receive(&subs, cfg, stop, &tx);
    drop(tx);
    let written = writer_thread.join().map_err(|_| anyhow::anyhow!("the dataset writer thread panicked"))?;
    stop.store(true, Ordering::SeqCst);
    let mut report = result?;
    let (episodes, frames) = written?;
    report.episodes = episodes;
    report.frames = frames;
    report.dropped_messages = subs.dropped();
    Ok(report)
}

fn write_jobs(mut writer: DatasetWriter, rx: Receiver<Job>) -> Result<(u64, u64)> {
    let mut episodes = 0;
    let mut frames = 0;
    for job in rx {
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

fn receive(subs: &Subs, cfg: &RecorderConfig, stop: &AtomicBool, tx: &Sender<Job>) -> Result<RecorderReport> {
    let mut report = RecorderReport::default();
    let mut log = MessageLog::new(cfg.cameras.len());
    let mut cur: Option<Current> = None;
    // Ended episodes waiting for their last messages, oldest first.
    let mut finished: std::collections::VecDeque<Current> = std::collections::VecDeque::new();
    let mut instruction = String::new();
    let mut stop_requested = false;
    let mut sent = 0u64;
    let mut last_progress = Instant::now();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
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
        // Drain everything (order does not matter: messages are keyed by stamp).
        while let Some(m) = subs.joint.try_recv() {
            log.joint.insert(m.header.stamp_ns, m);
        }
        while let Some(m) = subs.scene.try_recv() {
            log.scene.insert(m.header.stamp_ns, m);
        }
        for (i, c) in subs.cameras.iter().enumerate() {
            while let Some(m) = c.try_recv() {
                log.cameras[i].insert(m.header.stamp_ns, m);
            }
        }
        match cfg.action {
            ActionSource::EeDelta => {
                while let Some(m) = subs.ee.try_recv() {
                    let mut v: Vec<f32> = m.delta_xyz_m.iter().chain(&m.delta_rpy_rad).map(|x| *x as f32).collect();
                    v.push(m.gripper as f32);
                    if m.obs_stamp_ns != 0 {
                        log.answers.insert(m.obs_stamp_ns, m.header.stamp_ns);
                    }
                    log.commands.insert(m.header.stamp_ns, v);
                }
            }
            ActionSource::Joint => {
                while let Some(m) = subs.joint_cmd.try_recv() {
                    let mut v: Vec<f32> = m.position.iter().map(|x| *x as f32).collect();
                    v.push(m.gripper as f32);
                    if m.obs_stamp_ns != 0 {
                        log.answers.insert(m.obs_stamp_ns, m.header.stamp_ns);
                    }
                    log.commands.insert(m.header.stamp_ns, v);
                }
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
            match ev.kind {
                EpisodeEventKind::Start => {
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
                        ticks: vec![Tick { stamp_ns: ev.header.stamp_ns, ..Default::default() }],
                        ..Default::default()
                    });
                }
                EpisodeEventKind::Step => {
                    if let Some(c) = cur.as_mut().filter(|c| c.index == ev.episode_index) {
                        c.ticks.push(Tick {
                            stamp_ns: ev.header.stamp_ns,
                            reward: ev.reward,
                            done: ev.done,
                            success: ev.success,
                        });
                    }
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
        // Finish an ended episode once its last tick's messages are in, or after the grace period.
        let ready = finished.front().is_some_and(|c| {
            c.ended_at.is_some_and(|t| {
                let last = c.ticks[c.ticks.len().saturating_sub(2)].stamp_ns;
                let complete = log.joint.contains_key(&last) && log.cameras.iter().all(|m| m.contains_key(&last));
                complete || stopping || t.elapsed() >= cfg.grace
            })
        });
        if ready {
            if let Some(c) = finished.pop_front() {
                if c.discarded {
                    report.discarded += 1;
                    tracing::info!(episode = c.index, "episode discarded (re-record)");
                } else if c.ticks.len() < 2 {
                    tracing::info!(episode = c.index, "episode without steps: not written");
                } else {
                    let (frames, stats) = align_episode(&c.ticks, &log, cfg.action, cfg.env_state, &cfg.image_bytes);
                    report.align.frames += stats.frames;
                    report.align.stale += stats.stale;
                    report.align.missing_images += stats.missing_images;
                    report.align.held += stats.held;
                    report.successes += u64::from(c.success);
                    let task = cfg.task.clone().unwrap_or_else(|| c.instruction.clone());
                    tracing::info!(episode = sent, frames = frames.len(), success = c.success, "episode recorded");
                    let seed = cfg.seeds.then_some(c.seed);
                    tx.send(Job { task, seed, success: c.success, frames })
                        .map_err(|_| anyhow::anyhow!("the dataset writer stopped (see the error above)"))?;
                    sent += 1;
                }
                if let Some(last) = c.ticks.last() {
                    log.prune_before(last.stamp_ns);
                }
            }
        }
        if cfg.episodes.is_some_and(|n| sent >= n) || (stop_requested && cur.is_none() && finished.is_empty()) {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            if cur.is_none() && finished.is_empty() {
                // Between episodes (or with a robot that sends no episode events) keep the log small.
                log.prune_before(bus::now_ns().saturating_sub(5_000_000_000));
            }
            tracing::info!(episodes = sent, dropped = subs.dropped(), "recording");
        }
    }
    Ok(report)
}
