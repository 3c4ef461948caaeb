//! The sim node: one [`Env`] on the bus, in real time (or as fast as possible).
//!
//! Inputs: `command/joint`, `command/ee_delta`, `command/chunk` (rows executed open-loop, row k
//! at the chunk's start + k × `period_ns`), `estop`. Outputs: `joint_state` and (when cameras are on) `camera/<name>` (RGB)
//! and `camera/<name>_depth` (depth) every control step; `episode` events (start, step with
//! reward, end with success); `task` at each episode start; `status` once a second and whenever
//! the e-stop engages or releases.
//!
//! Command arbitration and safety per control step are the arm driver's, from the same code
//! ([`arm_command::Arbiter`], configured by [`arbiter_config`]), so a policy validated here meets
//! the arm's rules: the newest joint or end-effector command received since the last step wins;
//! otherwise the row of the current chunk due now; a command moves the arm only when fresh (at
//! most 500 ms old, at most 100 ms ahead of this clock); every target is clamped into the URDF's
//! joint limits and moves each joint at most π rad/s (the URDF's velocity limit; the motors also
//! ramp toward it at that speed, [`crate::world`]); every `estop` message feeds the e-stop latch,
//! so an engage followed by a release within one step still latches (and so does a message lost
//! from a full queue); while it is engaged every command is ignored, the chunk is dropped and the
//! arm holds where it was (the autopilot too); after a release only a command stamped after the
//! release moves the arm again (the old chunk never resumes). When bus commands were flowing and
//! stop for the watchdog timeout (250 ms of the control clock), the arm holds.
//!
//! Clocks: in real time chunk rows and the watchdog run on the wall clock, as on the arm (a chunk
//! of 5 rows 200 ms apart plays for 1 s whatever the control rate, back-dated by its age); in
//! lockstep and as-fast-as-possible modes they run on simulated time (control steps × period),
//! and a chunk starts at the step it arrives.
//!
//! Autopilot: with one configured, the scene's scripted expert acts whenever no bus command is
//! live (none yet, or the watchdog held since the last one); a bus command always takes over,
//! and the expert, which acts on the current observation, resumes after a watchdog hold or an
//! e-stop release.
//! Episodes end on success or at the step limit; the next episode starts with the next seed.
//!
//! Episode control (`command/episode`): `EndEpisode` ends the episode now and resets with the next
//! seed; `Rerecord` ends it with `discarded` set and resets with the same seed; `Stop` ends it and
//! stops the node. Only a fresh request counts (the commands' freshness bound, wall clock): a
//! stale, replayed or future-stamped one is ignored and counted (`episode_requests_stale`). Every episode's first observation (after reset) is published with the `Start`
//! event's stamp, and every step's observation with its `Step` event's stamp, so a recorder can
//! align topics by stamp. `scene_state` carries the objects' poses (privileged sim state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arm_command::{Arbiter, ArbiterCounts, Cycle, Inbox, Source};
use bus::{
    now_ns, ActionChunk, Bus, BusError, CameraFrame, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind,
    EpisodeRequest, Estop, JointCommand, JointState, Message, NodeState, Publisher, SceneState, Status, Subscriber,
    SubscriberStats, Task, ESTOP_QUEUE_CAPACITY,
};

use crate::arm::spec::ArmSpec;
use crate::env::{Action, Env, EnvConfig, Observation};
use crate::expert::{DemoQuality, Expert};
use crate::world::SimError;

mod arbitration;
mod messages;

pub use arbitration::{arbiter_config, IkSolver};
use arbitration::{newer, Answer};
pub use messages::{
    camera_msgs, chunk_row_action, episode_event, joint_state_msg, joint_state_names, observation_from_bus, pose_msg,
    scene_state_msg,
};

/// Errors of the sim node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Simulator error.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// Bus error.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The arm model's limits are unusable for the safety filter.
    #[error("arm limits: {0}")]
    Limits(#[from] arm_command::LimitsError),
}

/// Sim node settings.
#[derive(Clone, Debug)]
pub struct SimNodeConfig {
    /// Environment (scene, rates, cameras).
    pub env: EnvConfig,
    /// Seed of the first episode; episode k uses seed + k.
    pub seed: u64,
    /// Run the control loop without sleeping (simulated time runs faster than wall time).
    pub as_fast_as_possible: bool,
    /// Stop after this many episodes (None: until stopped).
    pub max_episodes: Option<u64>,
    /// Stop after this many control steps (None: until stopped).
    pub max_steps: Option<u64>,
    /// Node name in status messages.
    pub name: String,
    /// Let the scene's scripted expert drive when no bus command arrives, demonstrating at this
    /// quality.
    pub expert: Option<DemoQuality>,
    /// Lockstep: after publishing an observation, wait (up to this long) for a command before
    /// stepping, and never sleep. Lets a bus teleop or policy drive the sim as fast as it can
    /// answer, with no step missing its command. `None`: free-running.
    pub lockstep: Option<Duration>,
    /// Pause between an episode's end and the next reset.
    pub reset_pause: Duration,
}

/// What a sim node did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimNodeReport {
    /// Control steps run.
    pub steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Episodes that succeeded.
    pub successes: u64,
    /// Command arbitration and safety counters (applied, rejected, stale, clamped, watchdog
    /// holds, stale episode requests, e-stop transitions), as the arbiter counted them.
    pub commands: ArbiterCounts,
    /// Control steps that started late by more than one period (real-time mode).
    pub overruns: u64,
    /// Lockstep waits that timed out (the arm held or the autopilot acted).
    pub lockstep_timeouts: u64,
}

/// Publishes one tick's observation (joint state, scene state, cameras) with one stamp; the
/// images are moved out of `obs`.
fn publish_observation(io: &Io, obs: &mut Observation, names: &[String], stamp: u64) -> Result<(), NodeError> {
    io.joint_state.publish(&mut joint_state_msg(obs, names, stamp))?;
    io.scene_state.publish(&mut scene_state_msg(obs, stamp))?;
    for (img, (rgb_pub, depth_pub)) in std::mem::take(&mut obs.images).into_iter().zip(io.cameras.iter()) {
        let (mut rgb, mut depth) = camera_msgs(img, stamp);
        rgb_pub.publish(&mut rgb)?;
        depth_pub.publish(&mut depth)?;
    }
    Ok(())
}

struct Io {
    joint_state: Publisher<JointState>,
    scene_state: Publisher<SceneState>,
    cameras: Vec<(Publisher<CameraFrame>, Publisher<CameraFrame>)>,
    episode: Publisher<EpisodeEvent>,
    task: Publisher<Task>,
    status: Publisher<Status>,
    joint_cmd: Subscriber<JointCommand>,
    ee_cmd: Subscriber<EeDeltaCommand>,
    chunk_cmd: Subscriber<ActionChunk>,
    control: Subscriber<EpisodeControl>,
    estop: Subscriber<Estop>,
}

impl Io {
    /// Counters of every subscriber of the node, summed (what arrived and what was refused).
    fn receive_stats(&self) -> SubscriberStats {
        [self.joint_cmd.stats(), self.ee_cmd.stats(), self.chunk_cmd.stats(), self.control.stats(), self.estop.stats()]
            .into_iter()
            .sum()
    }
}

/// The sim node.
pub struct SimNode {
    config: SimNodeConfig,
    env: Env,
}

impl SimNode {
    /// Creates the node.
    pub fn new(config: SimNodeConfig) -> Result<SimNode, NodeError> {
        let env = Env::new(config.env.clone())?;
        Ok(SimNode { config, env })
    }

    /// Runs until `stop` is set, a configured limit is reached, or a `Stop` request arrives.
    pub fn run(&mut self, bus: &Bus, stop: &AtomicBool) -> Result<SimNodeReport, NodeError> {
        let io = Io {
            joint_state: bus.publisher::<JointState>()?,
            scene_state: bus.publisher::<SceneState>()?,
            cameras: self
                .config
                .env
                .cameras
                .iter()
                .map(|c| Ok((bus.camera_publisher(&c.name)?, bus.camera_publisher(&format!("{}_depth", c.name))?)))
                .collect::<Result<Vec<_>, BusError>>()?,
            episode: bus.publisher::<EpisodeEvent>()?,
            task: bus.publisher::<Task>()?,
            status: bus.publisher::<Status>()?,
            joint_cmd: bus.subscriber::<JointCommand>()?,
            ee_cmd: bus.subscriber::<EeDeltaCommand>()?,
            chunk_cmd: bus.subscriber::<ActionChunk>()?,
            control: bus.subscriber::<EpisodeControl>()?,
            estop: bus.subscriber_with_capacity::<Estop>(Estop::TOPIC, ESTOP_QUEUE_CAPACITY)?,
        };
        let names = joint_state_names();
        let period = Duration::from_secs_f64(1.0 / self.config.env.control_hz);
        let scene_name = self.config.env.scene.name.clone();
        let mut report = SimNodeReport::default();
        let mut episode: u64 = 0;
        let mut seed = self.config.seed;
        let mut obs = self.env.reset(seed)?;
        let mut expert = self.config.expert.map(|quality| Expert::with_quality(&self.config.env.scene, quality, seed));
        let mut last_obs_stamp = self.publish_episode_start(&io, episode, seed, &mut obs, &scene_name, &names)?;
        let config = arbiter_config(&self.config);
        let (q0, g0) = self.env.target();
        let mut arbiter = Arbiter::new(config, q0, g0)?;
        let solver = IkSolver::new(ArmSpec::default(), self.config.env.ik.clone());
        let real_time = arbitration::real_time(&self.config);
        let period_ns = arbitration::control_period_ns(self.config.env.control_hz);
        let started = Instant::now();
        let mut next_tick = Instant::now();
        let mut last_status = Instant::now() - Duration::from_secs(2);
        let mut status_engaged = false;
        tracing::info!(scene = %scene_name, seed, rate_hz = self.config.env.control_hz, "sim node running");
        while !stop.load(Ordering::Relaxed) {
            let mut answer: Option<Answer> = None;
            if self.config.lockstep.is_some() && !arbiter.chunk_rows_pending() {
                match self.wait_for_command(&io, stop, last_obs_stamp) {
                    Some(a) => answer = a,
                    None => report.lockstep_timeouts += 1,
                }
            }
            // Episode control: end early, re-record, stop.
            if let Some(request) = io.control.latest().and_then(|c| arbiter.admit_episode_request(&c, now_ns())) {
                let discarded = request == EpisodeRequest::Rerecord;
                let success = self.env.success();
                let end = episode_event(EpisodeEventKind::End, episode, seed, obs.step as u64, &scene_name, now_ns());
                io.episode.publish(&mut EpisodeEvent { done: true, success, discarded, ..end })?;
                tracing::info!(episode, seed, ?request, success, steps = obs.step, "episode ended on request");
                if request == EpisodeRequest::Stop {
                    report.episodes += 1;
                    report.successes += u64::from(success);
                    break;
                }
                if !discarded {
                    report.episodes += 1;
                    report.successes += u64::from(success);
                    episode += 1;
                    seed += 1;
                }
                if self.config.max_episodes.is_some_and(|m| report.episodes >= m) {
                    break;
                }
                (obs, last_obs_stamp) =
                    self.next_episode(&io, stop, episode, seed, &mut expert, &scene_name, &names)?;
                let (q, g) = self.env.target();
                arbiter.hold_at(q, g);
                next_tick = Instant::now();
                continue;
            }
            // Arbitration and safety, as on the arm: every e-stop message since the last step
            // (and the lockstep wait) goes through the latch, so an engage is never lost behind a
            // release; the lockstep answer competes with the newest queued command by stamp.
            let (answer_joint, answer_ee) = match answer {
                Some(Answer::Joint(c)) => (Some(c), None),
                Some(Answer::EeDelta(c)) => (None, Some(c)),
                None => (None, None),
            };
            let inbox = Inbox {
                estop: io.estop.drain(),
                estop_dropped_total: io.estop.stats().dropped,
                joint: newer(answer_joint, io.joint_cmd.latest()),
                ee_delta: newer(answer_ee, io.ee_cmd.latest()),
                chunk: io.chunk_cmd.latest(),
            };
            let cycle = Cycle {
                now_ns: now_ns(),
                control_ns: if real_time {
                    started.elapsed().as_nanos() as u64
                } else {
                    report.steps.saturating_mul(period_ns)
                },
                measured_q_rad: obs.arm.q_rad,
                accept_commands: true,
            };
            let decision = arbiter.step(&cycle, inbox, Some(&solver));
            report.commands = arbiter.counts();
            // No bus command is live: the autopilot, if configured, acts on the observation.
            let autopilot = expert.as_mut().filter(|_| decision.source == Source::Idle);
            let autopilot_acted = autopilot.is_some();
            let action = match autopilot {
                Some(expert) => expert.act(&obs),
                None => Action::Joint { q_rad: decision.q_rad, gripper: decision.gripper },
            };
            let step = self.env.step(&action)?;
            report.steps += 1;
            if autopilot_acted {
                // The filter continues from where the autopilot sent the arm.
                let (q, g) = self.env.target();
                arbiter.follow(q, g);
            }
            obs = step.obs;
            let stamp = now_ns();
            last_obs_stamp = stamp;
            publish_observation(&io, &mut obs, &names, stamp)?;
            let mut ev = EpisodeEvent {
                reward: step.reward,
                done: step.done,
                success: step.success,
                failed: step.failed,
                ..episode_event(EpisodeEventKind::Step, episode, seed, obs.step as u64, &scene_name, stamp)
            };
            io.episode.publish(&mut ev)?;
            if step.done {
                ev.kind = EpisodeEventKind::End;
                io.episode.publish(&mut ev)?;
                report.episodes += 1;
                report.successes += u64::from(step.success);
                tracing::info!(episode, seed, success = step.success, steps = obs.step, "episode finished");
                if self.config.max_episodes.is_some_and(|m| report.episodes >= m) {
                    break;
                }
                episode += 1;
                seed = seed.wrapping_add(1);
                (obs, last_obs_stamp) =
                    self.next_episode(&io, stop, episode, seed, &mut expert, &scene_name, &names)?;
                let (q, g) = self.env.target();
                arbiter.hold_at(q, g);
                next_tick = Instant::now();
            }
            // Once a second, and at once when the e-stop engages or releases.
            let engaged = arbiter.is_engaged();
            if last_status.elapsed() >= Duration::from_secs(1) || engaged != status_engaged {
                last_status = Instant::now();
                status_engaged = engaged;
                self.publish_status(
                    &io,
                    &report,
                    engaged,
                    if engaged { NodeState::Estopped } else { NodeState::Running },
                )?;
            }
            if self.config.max_steps.is_some_and(|m| report.steps >= m) {
                break;
            }
            if !self.config.as_fast_as_possible && self.config.lockstep.is_none() {
                next_tick += period;
                let now = Instant::now();
                if next_tick > now {
                    std::thread::sleep(next_tick - now);
                } else if now - next_tick > period {
                    report.overruns += 1;
                    next_tick = now;
                }
            }
        }
        self.publish_status(&io, &report, arbiter.is_engaged(), NodeState::Stopped)?;
        tracing::info!(
            steps = report.steps,
            episodes = report.episodes,
            successes = report.successes,
            "sim node stopped"
        );
        Ok(report)
    }

    /// Lockstep: blocks until a joint or end-effector command answering the last published
    /// observation (its `obs_stamp_ns`, or when unset, a command stamped after it) arrives
    /// (returned as `Some(Some(answer))`, for the arbiter to admit), a chunk or an episode-control
    /// message is queued (`Some(None)`: the normal arbitration takes it), or the timeout or
    /// `stop` (`None`). Commands answering an older observation (e.g. the last one of the
    /// previous episode) are dropped.
    fn wait_for_command(&self, io: &Io, stop: &AtomicBool, obs_stamp: u64) -> Option<Option<Answer>> {
        let timeout = self.config.lockstep?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut newest: Option<(u64, Answer)> = None;
            let answers = |obs: u64, stamp: u64| if obs != 0 { obs == obs_stamp } else { stamp > obs_stamp };
            while let Some(c) = io.joint_cmd.try_recv() {
                if answers(c.obs_stamp_ns, c.header.stamp_ns)
                    && newest.as_ref().is_none_or(|(s, _)| c.header.stamp_ns > *s)
                {
                    newest = Some((c.header.stamp_ns, Answer::Joint(c)));
                }
            }
            while let Some(c) = io.ee_cmd.try_recv() {
                if answers(c.obs_stamp_ns, c.header.stamp_ns)
                    && newest.as_ref().is_none_or(|(s, _)| c.header.stamp_ns > *s)
                {
                    newest = Some((c.header.stamp_ns, Answer::EeDelta(c)));
                }
            }
            if let Some((_, answer)) = newest {
                return Some(Some(answer));
            }
            if !io.chunk_cmd.is_empty() || !io.control.is_empty() {
                return Some(None);
            }
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Relaxed) {
                return None;
            }
            let mut sel = crossbeam_channel::Select::new();
            sel.recv(io.joint_cmd.receiver());
            sel.recv(io.ee_cmd.receiver());
            sel.recv(io.chunk_cmd.receiver());
            sel.recv(io.control.receiver());
            // Only waits; messages are taken above.
            let _ = sel.ready_timeout((deadline - now).min(Duration::from_millis(20)));
        }
    }

    /// Pauses, resets the env with `seed`, re-plans the autopilot and publishes the episode start
    /// with its first observation; returns that observation and its stamp.
    #[allow(clippy::too_many_arguments)]
    fn next_episode(
        &mut self,
        io: &Io,
        stop: &AtomicBool,
        episode: u64,
        seed: u64,
        expert: &mut Option<Expert>,
        scene: &str,
        names: &[String],
    ) -> Result<(Observation, u64), NodeError> {
        self.reset_pause(stop);
        let mut obs = self.env.reset(seed)?;
        if let Some(expert) = expert.as_mut() {
            expert.reset(seed);
        }
        let stamp = self.publish_episode_start(io, episode, seed, &mut obs, scene, names)?;
        Ok((obs, stamp))
    }

    /// The pause between episodes (a person resets the scene on a real robot; the sim only waits).
    fn reset_pause(&self, stop: &AtomicBool) {
        let until = Instant::now() + self.config.reset_pause;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
    }

    fn publish_episode_start(
        &self,
        io: &Io,
        episode: u64,
        seed: u64,
        obs: &mut Observation,
        scene: &str,
        names: &[String],
    ) -> Result<u64, NodeError> {
        let stamp = now_ns();
        let mut task =
            Task { header: Default::default(), instruction: obs.instruction.clone(), scene: scene.to_string() };
        task.header.stamp_ns = stamp;
        io.task.publish(&mut task)?;
        let mut ev = episode_event(EpisodeEventKind::Start, episode, seed, 0, scene, stamp);
        // The initial observation carries the Start event's stamp: it is frame 0 of the episode.
        publish_observation(io, obs, names, stamp)?;
        io.episode.publish(&mut ev)?;
        Ok(stamp)
    }

    fn publish_status(
        &self,
        io: &Io,
        report: &SimNodeReport,
        estopped: bool,
        state: NodeState,
    ) -> Result<(), NodeError> {
        let mut counters = BTreeMap::new();
        counters.insert("steps".to_string(), report.steps);
        counters.insert("episodes".to_string(), report.episodes);
        counters.insert("successes".to_string(), report.successes);
        counters.insert("overruns".to_string(), report.overruns);
        // `seq` comes from the wire: a sender may jump it by 2^64 − 1 on each topic.
        let gaps = io.joint_cmd.stats().gaps_missed.saturating_add(io.ee_cmd.stats().gaps_missed);
        counters.insert("command_gaps".to_string(), gaps);
        report.commands.add_to_status_counters(&mut counters);
        io.receive_stats().add_to_status_counters(&mut counters);
        let mut status = Status {
            header: Default::default(),
            node: self.config.name.clone(),
            state,
            message: if estopped { "e-stop engaged: holding position".into() } else { String::new() },
            counters,
        };
        io.status.publish(&mut status)?;
        Ok(())
    }
}
