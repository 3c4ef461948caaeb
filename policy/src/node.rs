//! The policy node: a policy on the bus, for `armstack deploy`.
//!
//! Inputs: `joint_state`, `scene_state` (state-only policies), `camera/<name>` (vision policies),
//! `task`, `episode`. Outputs: `command/chunk` (every chunk the policy computes, stamped with the
//! observation it answers) and `command/ee_delta` or `command/joint` (one per control tick).
//!
//! Two parts, each a plain struct driven by [`run_policy_node`]:
//! - [`ObservationAssembler`] gathers one observation per `joint_state` stamp;
//! - the [`ChunkExecutor`] turns chunks into one command per tick.
//!
//! No message stops the node: a `joint_state`, `scene_state` or camera frame the policy cannot
//! take (another dimension, non-finite values, another image size or encoding) is counted as
//! malformed and dropped, and the tick is answered from the next usable observation. Once a
//! second, and when it stops cleanly, the node publishes `status` (node `policy`) with its
//! counters and what its subscribers refused (`decode_errors`, `newer_schema`).
//!
//! The runtime runs inference on its own thread. The control loop hands it an observation only
//! when the executor wants a chunk and the inference thread is idle (a bounded(1) queue, never a
//! blocking send), then waits for that chunk at most `inference_budget` before answering the
//! tick from the chunks it already has; a chunk that arrives after its tick is counted late and
//! its past rows are dropped. So inference never blocks the control loop: a tick costs at most
//! the budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::*;
use bus::{
    now_ns, ActionChunk, ActionKind, Bus, CameraFrame, EeDeltaCommand, EpisodeEvent, EpisodeEventKind, Header,
    ImageEncoding, JointCommand, JointState, NodeState, Publisher, SceneState, Status, Subscriber, SubscriberStats,
    Task,
};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::error::{PolicyError, Result};
use crate::executor::{ChunkExecutor, ExecMode, ExecutorStats};
use crate::features::{camera_name, RawObs};
use crate::inference::Policy;

/// Policy node settings.
#[derive(Clone, Debug)]
pub struct PolicyNodeConfig {
    /// How chunks become commands (`None`: [`ExecMode::default_for`] the policy's action space).
    pub exec: Option<ExecMode>,
    /// How long a tick may wait for the chunk of its own observation.
    pub inference_budget: Duration,
    /// Instruction (default: the `task` topic, else the policy's first training task).
    pub instruction: Option<String>,
    /// Stop after this many control ticks.
    pub max_ticks: Option<u64>,
    /// How long to wait for an observation before giving up on a tick, s.
    pub observation_timeout: Duration,
}

impl PolicyNodeConfig {
    /// Defaults for a control period: the action space's default execution mode, a budget of
    /// 40% of the period.
    pub fn new(period: Duration) -> PolicyNodeConfig {
        PolicyNodeConfig {
            exec: None,
            inference_budget: period.mul_f64(0.4),
            instruction: None,
            max_ticks: None,
            observation_timeout: Duration::from_secs(2),
        }
    }
}

pub use bus::Percentiles;

/// The policy node's name on `status`.
pub const POLICY_NODE: &str = "policy";
/// How often the policy node publishes `status`.
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// What a policy node did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyNodeReport {
    /// Control ticks (observations answered or held).
    pub ticks: u64,
    /// Commands published.
    pub commands: u64,
    /// Executor counters (chunks, late chunks, starved ticks).
    pub executor: ExecutorStats,
    /// Observations skipped because inference was busy.
    pub busy_skips: u64,
    /// Inference time per chunk.
    pub inference: Percentiles,
    /// Observation stamp → command publish.
    pub obs_to_command: Percentiles,
    /// Time between consecutive commands.
    pub period: Percentiles,
    /// |period − nominal| (jitter).
    pub jitter: Percentiles,
    /// Observation messages the policy could not take (dropped; see [`ObservationAssembler`]).
    #[serde(default)]
    pub malformed: u64,
    /// Payloads the node's subscribers could not decode.
    #[serde(default)]
    pub decode_errors: u64,
    /// Messages the node's subscribers refused for a newer schema version.
    #[serde(default)]
    pub newer_schema: u64,
}

/// Builds one observation per `joint_state` stamp from the topics a policy needs, admitting only
/// messages the policy can take: a `joint_state` of the policy's state dimension, a `scene_state`
/// with at least the policy's object-state values (or fewer, for a policy that pads missing
/// objects, [`PolicyConfig::pad_objects`]), RGB8 frames of the policy's image size, all
/// finite. Anything else is counted in [`ObservationAssembler::malformed`] and dropped.
#[derive(Debug, Default)]
pub struct ObservationAssembler {
    state_dim: usize,
    env_state_dim: usize,
    pad_objects: bool,
    cameras: Vec<String>,
    /// RGB8 bytes of one camera frame (0 without cameras).
    image_bytes: usize,
    scene: HashMap<u64, Vec<f32>>,
    images: HashMap<(u64, String), Vec<u8>>,
    /// Messages dropped because the policy cannot take them.
    pub malformed: u64,
}

impl ObservationAssembler {
    /// For a policy of model `config` (its state and object-state widths, cameras and image size).
    pub fn new(config: &PolicyConfig) -> ObservationAssembler {
        let image = config.image.as_ref();
        ObservationAssembler {
            state_dim: config.state_dim,
            env_state_dim: config.env_state_dim,
            pad_objects: config.pad_objects,
            cameras: image.map(|i| i.cameras.iter().map(|c| camera_name(c).to_string()).collect()).unwrap_or_default(),
            image_bytes: image.map_or(0, |i| i.size * i.size * 3),
            ..ObservationAssembler::default()
        }
    }

    /// Whether the policy can take `js` (counted as malformed when not).
    pub fn admit_joint_state(&mut self, js: &JointState) -> bool {
        let usable = js.position.len() == self.state_dim && js.position.iter().all(|v| v.is_finite());
        self.malformed += u64::from(!usable);
        usable
    }

    /// Records a scene state (only for a policy with object state).
    pub fn add_scene(&mut self, s: &SceneState) {
        if self.env_state_dim == 0 {
            return;
        }
        let mut env = crate::features::env_state_of_scene(s);
        // Fewer objects only for a policy trained with missing objects; those are padded later.
        env.truncate(self.env_state_dim);
        if (env.len() < self.env_state_dim && !self.pad_objects) || !env.iter().all(|v| v.is_finite()) {
            self.malformed += 1;
            return;
        }
        self.scene.insert(s.header.stamp_ns, env);
    }

    /// Records a frame of one of the policy's cameras (RGB8 of the policy's size only).
    pub fn add_image(&mut self, f: &CameraFrame) {
        if !self.cameras.contains(&f.camera) {
            return;
        }
        if f.encoding != ImageEncoding::Rgb8 || f.data.len() != self.image_bytes {
            self.malformed += 1;
            return;
        }
        self.images.insert((f.header.stamp_ns, f.camera.clone()), f.data.clone());
    }

    /// The observation of `js` (admitted by [`ObservationAssembler::admit_joint_state`]) once
    /// everything with its stamp has arrived.
    pub fn assemble(&self, js: &JointState, instruction: &str) -> Option<RawObs> {
        let stamp = js.header.stamp_ns;
        let state = proprioception(js);
        let env_state = if self.env_state_dim > 0 { self.scene.get(&stamp)?.clone() } else { Vec::new() };
        let images =
            self.cameras.iter().map(|c| self.images.get(&(stamp, c.clone())).cloned()).collect::<Option<Vec<_>>>()?;
        Some(RawObs { state, env_state, instruction: instruction.to_string(), images })
    }

    /// Forgets everything older than `stamp`.
    pub fn prune_before(&mut self, stamp: u64) {
        self.scene.retain(|s, _| *s >= stamp);
        self.images.retain(|(s, _), _| *s >= stamp);
    }
}

/// The policy's proprioception in a `joint_state`: its positions (6 joint angles, rad, then the
/// gripper opening).
fn proprioception(js: &JointState) -> Vec<f32> {
    js.position.iter().map(|v| *v as f32).collect()
}

struct InferRequest {
    tick: u64,
    obs_stamp_ns: u64,
    obs: RawObs,
}

struct InferResult {
    tick: u64,
    values: Vec<f32>,
    /// Proprioception of the observation the chunk answers (its tip pose anchors `EeDelta` rows).
    state: Vec<f32>,
    took_ms: f64,
}

fn inference_loop<B: Backend>(
    policy: &Policy<B>,
    rx: Receiver<InferRequest>,
    tx: Sender<Result<InferResult>>,
    chunks: &bus::Publisher<ActionChunk>,
    period_ns: u64,
) {
    let (h, d) = (policy.spec.config.horizon, policy.spec.config.action_dim);
    while let Ok(req) = rx.recv() {
        let t = Instant::now();
        let out = policy.act(std::slice::from_ref(&req.obs)).and_then(|mut v| {
            let values = v.pop().ok_or_else(|| PolicyError::Training("the policy returned no chunk".into()))?;
            // Chunk consumers play rows in the data's action space: tip targets go out as the
            // deltas that reach them from the observation's tip pose.
            let published = if policy.spec.config.action_targets {
                let tip = crate::features::tip_pose(&req.obs.state).ok_or_else(|| {
                    PolicyError::Mismatch("the observation has no tip pose for the chunk's targets".into())
                })?;
                crate::action_targets::delta_chunk(&tip, &values, d)
            } else {
                values.clone()
            };
            let mut msg = ActionChunk {
                header: Header::stamped(now_ns()),
                kind: policy.spec.action_kind,
                horizon: h as u32,
                dim: d as u32,
                period_ns,
                values: published,
                obs_stamp_ns: req.obs_stamp_ns,
            };
            chunks.publish(&mut msg)?;
            let took_ms = t.elapsed().as_secs_f64() * 1e3;
            Ok(InferResult { tick: req.tick, values, state: req.obs.state, took_ms })
        });
        if tx.send(out).is_err() {
            return;
        }
    }
}

/// Publishes one action row as a command answering `obs_stamp_ns`.
fn publish_command(
    kind: ActionKind,
    row: &[f32],
    obs_stamp_ns: u64,
    ee: &bus::Publisher<EeDeltaCommand>,
    joint: &bus::Publisher<JointCommand>,
) -> Result<()> {
    let r: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
    if r.len() < 7 {
        return Err(PolicyError::Mismatch(format!("action rows need 7 values, got {}", r.len())));
    }
    match kind {
        ActionKind::EeDelta => ee.publish(&mut EeDeltaCommand {
            header: Header::stamped(now_ns()),
            delta_xyz_m: [r[0], r[1], r[2]],
            delta_rpy_rad: [r[3], r[4], r[5]],
            gripper: r[6],
            obs_stamp_ns,
        })?,
        ActionKind::JointTarget => joint.publish(&mut JointCommand {
            header: Header::stamped(now_ns()),
            position: r[..6].to_vec(),
            gripper: r[6],
            obs_stamp_ns,
        })?,
    }
    Ok(())
}

/// Subscriptions of the control loop.
struct Inputs {
    joint_state: Subscriber<JointState>,
    scene: Subscriber<SceneState>,
    cameras: Vec<Subscriber<CameraFrame>>,
    tasks: Subscriber<Task>,
    episodes: Subscriber<EpisodeEvent>,
}

impl Inputs {
    /// Every subscriber's counters, summed.
    fn stats(&self) -> SubscriberStats {
        [self.joint_state.stats(), self.scene.stats(), self.tasks.stats(), self.episodes.stats()]
            .into_iter()
            .chain(self.cameras.iter().map(Subscriber::stats))
            .sum()
    }

    /// The newest usable `joint_state` queued (by stamp, not arrival: a late or replayed one
    /// arriving last does not replace the tick's), waiting up to `timeout` for the first one.
    fn newest_joint_state(&self, asm: &mut ObservationAssembler, timeout: Duration) -> Option<JointState> {
        let first = self.joint_state.recv_timeout(timeout)?;
        let mut newest: Option<JointState> = None;
        for js in std::iter::once(first).chain(std::iter::from_fn(|| self.joint_state.try_recv())) {
            if asm.admit_joint_state(&js) && newest.as_ref().is_none_or(|n| js.header.stamp_ns > n.header.stamp_ns) {
                newest = Some(js);
            }
        }
        newest
    }

    fn drain(&self, asm: &mut ObservationAssembler, instruction: &mut String, exec: &mut ChunkExecutor) {
        while let Some(s) = self.scene.try_recv() {
            asm.add_scene(&s);
        }
        for c in &self.cameras {
            while let Some(f) = c.try_recv() {
                asm.add_image(&f);
            }
        }
        while let Some(t) = self.tasks.try_recv() {
            *instruction = t.instruction;
        }
        while let Some(e) = self.episodes.try_recv() {
            if e.kind == EpisodeEventKind::Start {
                exec.reset();
            }
        }
    }
}

/// Publishes the policy node's `status` with `report`'s counters.
fn publish_status(status: &Publisher<Status>, state: NodeState, report: &PolicyNodeReport) {
    let mut counters = BTreeMap::from([
        ("ticks".to_string(), report.ticks),
        ("commands".to_string(), report.commands),
        ("chunks".to_string(), report.executor.chunks),
        ("late_chunks".to_string(), report.executor.late_chunks),
        ("starved_ticks".to_string(), report.executor.starved_ticks),
        ("unposed".to_string(), report.executor.unposed),
        ("busy_skips".to_string(), report.busy_skips),
        ("malformed".to_string(), report.malformed),
    ]);
    let received = SubscriberStats {
        decode_errors: report.decode_errors,
        newer_schema: report.newer_schema,
        ..SubscriberStats::default()
    };
    received.add_to_status_counters(&mut counters);
    let mut msg =
        Status { header: Header::default(), node: POLICY_NODE.to_string(), state, message: String::new(), counters };
    // Status is for monitoring: a failed publish must not stop the policy.
    if let Err(e) = status.publish(&mut msg) {
        tracing::warn!(error = %e, "publishing the policy node's status");
    }
}

/// Copies the executor's, the assembler's and the subscribers' counters into `report`.
fn update_receive_counts(
    report: &mut PolicyNodeReport,
    inputs: &Inputs,
    asm: &ObservationAssembler,
    exec: &ChunkExecutor,
) {
    let received = inputs.stats();
    report.executor = exec.stats;
    report.malformed = asm.malformed;
    report.decode_errors = received.decode_errors;
    report.newer_schema = received.newer_schema;
}

/// Runs `policy` on `bus` until `stop` is set or `cfg.max_ticks` ticks are done. `ready` is
/// called once every subscription is declared and returns when the run starts (a start line
/// shared with the other nodes; it returns early when the run is stopped first).
pub fn run_policy_node<B: Backend>(
    policy: &Policy<B>,
    bus: &Bus,
    cfg: &PolicyNodeConfig,
    stop: &AtomicBool,
    ready: Option<&dyn Fn()>,
) -> Result<PolicyNodeReport> {
    let spec = &policy.spec;
    let cameras: Vec<String> = spec.config.image.as_ref().map(|i| i.cameras.clone()).unwrap_or_default();
    let inputs = Inputs {
        joint_state: bus.subscriber::<JointState>()?,
        scene: bus.subscriber::<SceneState>()?,
        cameras: cameras.iter().map(|c| bus.camera_subscriber(camera_name(c))).collect::<Result<_, _>>()?,
        tasks: bus.subscriber::<Task>()?,
        episodes: bus.subscriber::<EpisodeEvent>()?,
    };
    let chunk_pub = bus.publisher::<ActionChunk>()?;
    let ee_pub = bus.publisher::<EeDeltaCommand>()?;
    let joint_pub = bus.publisher::<JointCommand>()?;
    let status_pub = bus.publisher::<Status>()?;
    if let Some(start) = ready {
        start();
    }
    let period = Duration::from_secs_f64(1.0 / spec.fps);
    let period_ns = period.as_nanos() as u64;
    let mut asm = ObservationAssembler::new(&spec.config);
    let mode = cfg.exec.unwrap_or_else(|| ExecMode::default_for(spec.action_kind, spec.config.horizon));
    let mut exec = ChunkExecutor::new(mode, spec.action_kind, spec.config.horizon, spec.config.action_dim)
        .with_action_targets(spec.config.action_targets);
    let mut instruction = cfg.instruction.clone().or_else(|| spec.tasks.first().cloned()).unwrap_or_default();
    let (req_tx, req_rx) = bounded::<InferRequest>(1);
    let (res_tx, res_rx) = bounded::<Result<InferResult>>(4);
    let mut report = PolicyNodeReport::default();
    let (mut inference_ms, mut latency_ms, mut period_ms) = (Vec::new(), Vec::new(), Vec::new());
    std::thread::scope(|s| -> Result<()> {
        // Owned here so that dropping it (below, on every exit path) ends the inference thread.
        let req_tx = req_tx;
        let chunk_pub = &chunk_pub;
        s.spawn(move || inference_loop(policy, req_rx, res_tx, chunk_pub, period_ns));
        let mut tick = 0u64;
        let mut last_command: Option<Instant> = None;
        let mut waiting_since = Instant::now();
        let mut last_status: Option<Instant> = None;
        let result = 'tick: loop {
            if stop.load(Ordering::Relaxed) || cfg.max_ticks.is_some_and(|m| tick >= m) {
                break Ok(());
            }
            if last_status.is_none_or(|t| t.elapsed() >= STATUS_PERIOD) {
                last_status = Some(Instant::now());
                update_receive_counts(&mut report, &inputs, &asm, &exec);
                publish_status(&status_pub, NodeState::Running, &report);
            }
            let Some(js) = inputs.newest_joint_state(&mut asm, Duration::from_millis(20)) else {
                if waiting_since.elapsed() > cfg.observation_timeout {
                    tracing::warn!("no usable joint_state for {:?}; is the robot running?", cfg.observation_timeout);
                    waiting_since = Instant::now();
                }
                continue;
            };
            waiting_since = Instant::now();
            let stamp = js.header.stamp_ns;
            // Wait briefly for the rest of this observation (same stamp).
            let deadline = Instant::now() + period.mul_f64(0.25);
            let obs = loop {
                inputs.drain(&mut asm, &mut instruction, &mut exec);
                if let Some(o) = asm.assemble(&js, &instruction) {
                    break Some(o);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_micros(200));
            };
            asm.prune_before(stamp);
            let mut requested = false;
            if let Some(obs) = obs {
                if exec.wants_chunk(tick) {
                    match req_tx.try_send(InferRequest { tick, obs_stamp_ns: stamp, obs }) {
                        Ok(()) => requested = true,
                        Err(TrySendError::Full(_)) => report.busy_skips += 1,
                        Err(TrySendError::Disconnected(_)) => {
                            break 'tick Err(PolicyError::Training("the inference thread stopped".into()))
                        }
                    }
                }
            }
            // Take finished chunks; wait up to the budget for the one just requested.
            let budget_end = Instant::now() + cfg.inference_budget;
            loop {
                let r = if requested { res_rx.recv_deadline(budget_end).ok() } else { res_rx.try_recv().ok() };
                let Some(r) = r else { break };
                let r = match r {
                    Ok(r) => r,
                    Err(e) => break 'tick Err(e),
                };
                inference_ms.push(r.took_ms);
                exec.add_chunk(r.tick, &r.values, tick, &r.state);
                if r.tick == tick {
                    requested = false;
                }
            }
            if let Some(row) = exec.action(tick, &proprioception(&js)) {
                if let Err(e) = publish_command(spec.action_kind, &row, stamp, &ee_pub, &joint_pub) {
                    break 'tick Err(e);
                }
                report.commands += 1;
                let now = Instant::now();
                latency_ms.push((now_ns().saturating_sub(stamp)) as f64 / 1e6);
                if let Some(prev) = last_command {
                    period_ms.push((now - prev).as_secs_f64() * 1e3);
                }
                last_command = Some(now);
            }
            tick += 1;
            report.ticks = tick;
        };
        drop(req_tx);
        result
    })?;
    update_receive_counts(&mut report, &inputs, &asm, &exec);
    publish_status(&status_pub, NodeState::Stopped, &report);
    report.inference = Percentiles::of(&inference_ms);
    report.obs_to_command = Percentiles::of(&latency_ms);
    report.period = Percentiles::of(&period_ms);
    let nominal = period.as_secs_f64() * 1e3;
    report.jitter = Percentiles::of(&period_ms.iter().map(|p| (p - nominal).abs()).collect::<Vec<_>>());
    Ok(report)
}
