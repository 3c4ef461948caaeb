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
//! The runtime runs inference on its own thread. The control loop hands it an observation only
//! when the executor wants a chunk and the inference thread is idle (a bounded(1) queue, never a
//! blocking send), then waits for that chunk at most `inference_budget` before answering the
//! tick from the chunks it already has; a chunk that arrives after its tick is counted late and
//! its past rows are dropped. So inference never blocks the control loop: a tick costs at most
//! the budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::prelude::*;
use bus::{
    now_ns, ActionChunk, ActionKind, Bus, CameraFrame, EeDeltaCommand, EpisodeEvent, EpisodeEventKind, Header,
    JointCommand, JointState, SceneState, Subscriber, Task,
};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};
use crate::executor::{ChunkExecutor, ExecMode, ExecutorStats};
use crate::features::{camera_name, RawObs};
use crate::inference::Policy;

/// Policy node settings.
#[derive(Clone, Debug)]
pub struct PolicyNodeConfig {
    /// How chunks become commands.
    pub exec: ExecMode,
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
    /// Defaults for a control period: ensembling, a budget of 40% of the period.
    pub fn new(period: Duration) -> PolicyNodeConfig {
        PolicyNodeConfig {
            exec: ExecMode::ensemble(),
            inference_budget: period.mul_f64(0.4),
            instruction: None,
            max_ticks: None,
            observation_timeout: Duration::from_secs(2),
        }
    }
}

pub use bus::Percentiles;

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
}

/// Builds one observation per `joint_state` stamp from the topics a policy needs.
#[derive(Debug, Default)]
pub struct ObservationAssembler {
    needs_scene: bool,
    cameras: Vec<String>,
    scene: HashMap<u64, Vec<f32>>,
    images: HashMap<(u64, String), Vec<u8>>,
}

impl ObservationAssembler {
    /// For a policy with object state (`needs_scene`) and `cameras` (dataset keys).
    pub fn new(needs_scene: bool, cameras: &[String]) -> ObservationAssembler {
        ObservationAssembler {
            needs_scene,
            cameras: cameras.iter().map(|c| camera_name(c).to_string()).collect(),
            ..ObservationAssembler::default()
        }
    }

    /// Records a scene state.
    pub fn add_scene(&mut self, s: &SceneState) {
        self.scene.insert(s.header.stamp_ns, crate::features::env_state_of_scene(s));
    }

    /// Records a camera frame (RGB8 only).
    pub fn add_image(&mut self, f: &CameraFrame) {
        if self.cameras.contains(&f.camera) {
            self.images.insert((f.header.stamp_ns, f.camera.clone()), f.data.clone());
        }
    }

    /// The observation of `js` once everything with its stamp has arrived.
    pub fn assemble(&self, js: &JointState, instruction: &str) -> Option<RawObs> {
        let stamp = js.header.stamp_ns;
        let state: Vec<f32> = js.position.iter().take(7).map(|v| *v as f32).collect();
        let env_state = if self.needs_scene { self.scene.get(&stamp)?.clone() } else { Vec::new() };
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

struct InferRequest {
    tick: u64,
    obs_stamp_ns: u64,
    obs: RawObs,
}

struct InferResult {
    tick: u64,
    values: Vec<f32>,
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
            let mut msg = ActionChunk {
                header: Header::stamped(now_ns()),
                kind: policy.spec.action_kind,
                horizon: h as u32,
                dim: d as u32,
                period_ns,
                values: values.clone(),
                obs_stamp_ns: req.obs_stamp_ns,
            };
            chunks.publish(&mut msg)?;
            Ok(InferResult { tick: req.tick, values, took_ms: t.elapsed().as_secs_f64() * 1e3 })
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
    if let Some(start) = ready {
        start();
    }
    let period = Duration::from_secs_f64(1.0 / spec.fps);
    let period_ns = period.as_nanos() as u64;
    let mut asm = ObservationAssembler::new(spec.config.env_state_dim > 0, &cameras);
    let mut exec = ChunkExecutor::new(cfg.exec, spec.config.horizon, spec.config.action_dim);
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
        let result = 'tick: loop {
            if stop.load(Ordering::Relaxed) || cfg.max_ticks.is_some_and(|m| tick >= m) {
                break Ok(());
            }
            let Some(mut js) = inputs.joint_state.recv_timeout(Duration::from_millis(20)) else {
                if waiting_since.elapsed() > cfg.observation_timeout {
                    tracing::warn!("no joint_state for {:?}; is the robot running?", cfg.observation_timeout);
                    waiting_since = Instant::now();
                }
                continue;
            };
            waiting_since = Instant::now();
            while let Some(newer) = inputs.joint_state.try_recv() {
                js = newer;
            }
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
                exec.add_chunk(r.tick, &r.values, tick);
                if r.tick == tick {
                    requested = false;
                }
            }
            if let Some(row) = exec.action(tick) {
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
    report.executor = exec.stats;
    report.inference = Percentiles::of(&inference_ms);
    report.obs_to_command = Percentiles::of(&latency_ms);
    report.period = Percentiles::of(&period_ms);
    let nominal = period.as_secs_f64() * 1e3;
    report.jitter = Percentiles::of(&period_ms.iter().map(|p| (p - nominal).abs()).collect::<Vec<_>>());
    Ok(report)
}
