//! The collector: a thread that rolls the current policy out in a [`VecEnv`] (whose envs step on
//! worker threads) while the learner trains, and sends finished episodes, step counts and
//! evaluations back over a crossbeam channel.
//!
//! Chunks run open-loop (each chunk to its end, then the next decision), so every executed window
//! of H actions is a chunk the critic can learn from. Pacing: the collector may run at most
//! `max_lead` env steps ahead of the steps the learner has caught up with (it blocks for a fresh
//! policy snapshot otherwise), so the update-to-data ratio holds in wall time as well as in
//! counts. Before evaluating at env step k, it waits until the learner has done every update owed
//! for the first k steps; the evaluation at k therefore measures the policy after exactly that
//! budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use sim::{EnvConfig, Observation, VecEnv};

use crate::error::{PolicyError, Result};
use crate::eval::wilson95;
use crate::features::{raw_obs, RawObs};
use crate::online::replay::{Episode, StepRecord};
use crate::spec::PolicySpec;

/// How an actor picks chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// The pre-trained policy as it was given (WSRL's warm-up rollouts).
    Pretrained,
    /// The learner's exploration policy.
    Explore,
    /// The learner's evaluation policy (no exploration noise).
    Evaluate,
}

/// A policy snapshot the collector acts with: normalised chunks (`H·D` values each, in [−1, 1])
/// for a batch of raw observations.
pub trait ChunkActor: Send {
    /// One chunk per observation.
    fn act(&mut self, obs: &[RawObs], mode: ActMode) -> Result<Vec<Vec<f32>>>;
}

/// A snapshot sent to the collector: the actor and the env steps whose updates it includes.
pub struct Snapshot {
    /// The actor.
    pub actor: Box<dyn ChunkActor>,
    /// Env steps the learner has caught up with.
    pub env_steps: u64,
}

/// One evaluation of the policy.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalPoint {
    /// Training env steps before it.
    pub env_steps: u64,
    /// Training episodes finished before it.
    pub train_episodes: u64,
    /// Success rate.
    pub success: f64,
    /// Wilson 95% interval.
    pub ci95: (f64, f64),
    /// Episodes evaluated.
    pub episodes: usize,
    /// Mean episode length, control steps.
    pub mean_length: f64,
}

/// What the collector reports.
pub enum Report {
    /// A finished training episode.
    Episode(Episode),
    /// Env steps taken so far (sent after every vectorised step).
    Steps(u64),
    /// An evaluation.
    Eval(EvalPoint),
    /// The budget is spent (after the final evaluation).
    Finished,
    /// The collector failed.
    Failed(PolicyError),
}

/// Collector settings.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    /// Training env steps in total.
    pub env_steps: u64,
    /// The first `warmup` steps act with [`ActMode::Pretrained`] and need no learner updates.
    pub warmup: u64,
    /// Envs stepped together.
    pub num_envs: usize,
    /// Sim worker threads (0: all cores).
    pub sim_threads: usize,
    /// Evaluate every this many env steps (0: at the start and the end only).
    pub eval_every: u64,
    /// Episodes per evaluation (0: none).
    pub eval_episodes: usize,
    /// Reset seed of evaluation episode k: `eval_seed + k` (the same scenes every time).
    pub eval_seed: u64,
    /// Reset seed of training episode k: `train_seed + k`.
    pub train_seed: u64,
    /// Largest lead over the learner, env steps.
    pub max_lead: u64,
}

/// Open-loop chunk state of one env.
struct Slot {
    obs: Observation,
    chunk: Vec<f32>,
    next_row: usize,
    steps: Vec<StepRecord>,
}

/// Converts a normalised action row to a sim action at observation `obs` (a tip-target row
/// becomes the delta from the measured tip to its target, [`crate::action_targets`]).
fn sim_action(spec: &PolicySpec, row: &[f32], obs: &Observation) -> Result<sim::Action> {
    let mut raw = row.to_vec();
    spec.normalizer.action.invert(&mut raw);
    if spec.config.action_targets && raw.len() > crate::executor::tip_targets::POSE_DELTA_VALUES {
        raw = crate::action_targets::delta_row(&raw, &obs.arm.tip_pose);
    }
    sim::node::chunk_row_action(spec.action_kind, &raw).ok_or_else(|| {
        PolicyError::Mismatch(format!("{:?} actions need 7 values per row, got {}", spec.action_kind, raw.len()))
    })
}

fn cameras(spec: &PolicySpec) -> Vec<String> {
    spec.config.image.as_ref().map(|i| i.cameras.clone()).unwrap_or_default()
}

/// Picks chunks for a batch of raw observations.
type ActFn<'a> = dyn FnMut(&[RawObs]) -> Result<Vec<Vec<f32>>> + 'a;

/// Steps `env` until `episodes` episodes are done, or (with `budget`) that many env steps,
/// acting with `act`; chunks run open-loop. `on_episode` gets every finished episode (its steps
/// only when `record` is set) and its length; `on_tick` gets the env steps taken so far after
/// every vectorised step and returns false to stop. Returns the env steps taken.
#[allow(clippy::too_many_arguments)]
fn rollout(
    env: &mut VecEnv,
    spec: &PolicySpec,
    act: &mut ActFn<'_>,
    seeds: &mut dyn FnMut() -> u64,
    episodes: Option<usize>,
    budget: Option<u64>,
    record: bool,
    on_episode: &mut dyn FnMut(Episode, u32) -> Result<()>,
    on_tick: &mut dyn FnMut(u64) -> Result<bool>,
) -> Result<u64> {
    let (h, d) = (spec.config.horizon, spec.config.action_dim);
    let cams = cameras(spec);
    let n = env.len().min(episodes.unwrap_or(usize::MAX)).max(1);
    let items: Vec<(usize, u64)> = (0..n).map(|i| (i, seeds())).collect();
    let mut started = n;
    let mut slots: Vec<Option<Slot>> = (0..env.len()).map(|_| None).collect();
    for (i, obs) in env.reset_some(&items)? {
        slots[i] = Some(Slot { obs, chunk: Vec::new(), next_row: h, steps: Vec::new() });
    }
    let mut taken = 0u64;
    let raw = |obs: &Observation| {
        raw_obs(obs, &cams).ok_or_else(|| PolicyError::Mismatch(format!("the env renders no camera among {cams:?}")))
    };
    while slots.iter().any(Option::is_some) {
        let mut want = Vec::new();
        let mut raws = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            if let Some(s) = slot.as_ref().filter(|s| s.next_row >= h) {
                want.push(i);
                raws.push(raw(&s.obs)?);
            }
        }
        if !raws.is_empty() {
            let chunks = act(&raws)?;
            for (i, chunk) in want.into_iter().zip(chunks) {
                if chunk.len() != h * d {
                    return Err(PolicyError::Mismatch(format!(
                        "a chunk of {} values, expected {}",
                        chunk.len(),
                        h * d
                    )));
                }
                if let Some(s) = slots[i].as_mut() {
                    s.chunk = chunk;
                    s.next_row = 0;
                }
            }
        }
        let mut actions = Vec::with_capacity(slots.len());
        let mut rows = Vec::with_capacity(slots.len());
        for slot in &slots {
            match slot {
                Some(s) => {
                    let row = s.chunk[s.next_row * d..(s.next_row + 1) * d].to_vec();
                    actions.push(sim_action(spec, &row, &s.obs)?);
                    rows.push(row);
                }
                None => {
                    actions.push(sim::Action::hold(1.0));
                    rows.push(Vec::new());
                }
            }
        }
        let steps = env.step(&actions)?;
        let mut resets = Vec::new();
        for (i, (step, row)) in steps.into_iter().zip(rows).enumerate() {
            let Some(s) = slots[i].as_mut() else { continue };
            taken += 1;
            let before = std::mem::replace(&mut s.obs, step.obs);
            if record {
                s.steps.push(StepRecord { obs: raw(&before)?, action: row, reward: step.reward as f32 });
            }
            s.next_row += 1;
            if step.done {
                let final_obs = if record { raw(&s.obs)? } else { RawObs::default() };
                let episode = Episode {
                    steps: std::mem::take(&mut s.steps),
                    final_obs,
                    success: step.success,
                    truncated: step.truncated,
                };
                on_episode(episode, s.obs.step)?;
                if episodes.is_none_or(|e| started < e) && budget.is_none_or(|b| taken < b) {
                    resets.push((i, seeds()));
                    started += 1;
                } else {
                    slots[i] = None;
                }
            }
        }
        // Unfinished episodes at the end of a budget are dropped: their last windows would
        // bootstrap from steps the budget never took.
        if !on_tick(taken)? || budget.is_some_and(|b| taken >= b) {
            break;
        }
        if !resets.is_empty() {
            for (i, obs) in env.reset_some(&resets)? {
                slots[i] = Some(Slot { obs, chunk: Vec::new(), next_row: h, steps: Vec::new() });
            }
        }
    }
    Ok(taken)
}

/// The evaluation of `act` on `episodes` fixed scenes (seeds `seed..seed + episodes`).
pub fn evaluate_chunks(
    env: &mut VecEnv,
    spec: &PolicySpec,
    act: &mut ActFn<'_>,
    episodes: usize,
    seed: u64,
) -> Result<(usize, usize, f64)> {
    let mut next = seed;
    let (mut successes, mut done, mut length) = (0usize, 0usize, 0u64);
    rollout(
        env,
        spec,
        act,
        &mut || {
            next += 1;
            next - 1
        },
        Some(episodes),
        None,
        false,
        &mut |ep, len| {
            successes += usize::from(ep.success);
            done += 1;
            length += u64::from(len);
            Ok(())
        },
        &mut |_| Ok(true),
    )?;
    Ok((successes, done, length as f64 / done.max(1) as f64))
}

/// The collector thread's state.
struct Collector {
    spec: PolicySpec,
    cfg: CollectConfig,
    actor: Box<dyn ChunkActor>,
    acked: u64,
    snapshots: Receiver<Snapshot>,
    reports: Sender<Report>,
    eval_env: Option<VecEnv>,
    train_episodes: u64,
    next_eval: u64,
    stop: Arc<AtomicBool>,
}

impl Collector {
    fn send(&self, report: Report) -> Result<bool> {
        Ok(self.reports.send(report).is_ok())
    }

    /// Takes the newest snapshot waiting, without blocking.
    fn drain(&mut self) {
        while let Ok(s) = self.snapshots.try_recv() {
            self.actor = s.actor;
            self.acked = s.env_steps;
        }
    }

    /// Blocks until the learner has caught up with `steps` env steps (or it is gone).
    fn wait_for(&mut self, steps: u64) -> Result<bool> {
        self.drain();
        while steps > self.cfg.warmup && self.acked < steps {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            match self.snapshots.recv_timeout(std::time::Duration::from_millis(200)) {
                Ok(s) => {
                    self.actor = s.actor;
                    self.acked = s.env_steps;
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Evaluates the policy after `steps` env steps and reports it.
    fn evaluate(&mut self, steps: u64) -> Result<bool> {
        let Some(mut env) = self.eval_env.take() else { return Ok(true) };
        if !self.wait_for(steps)? {
            return Ok(false);
        }
        let actor = &mut self.actor;
        let result = evaluate_chunks(
            &mut env,
            &self.spec,
            &mut |obs| actor.act(obs, ActMode::Evaluate),
            self.cfg.eval_episodes,
            self.cfg.eval_seed,
        );
        self.eval_env = Some(env);
        let (k, n, mean_length) = result?;
        let point = EvalPoint {
            env_steps: steps,
            train_episodes: self.train_episodes,
            success: k as f64 / n.max(1) as f64,
            ci95: wilson95(k, n),
            episodes: n,
            mean_length,
        };
        self.send(Report::Eval(point))
    }

    fn run(&mut self, env_config: &EnvConfig) -> Result<()> {
        let mut env = VecEnv::new(env_config, self.cfg.num_envs.max(1), self.cfg.sim_threads)?;
        if self.cfg.eval_episodes > 0 {
            let n = self.cfg.num_envs.clamp(1, self.cfg.eval_episodes);
            self.eval_env = Some(VecEnv::new(env_config, n, self.cfg.sim_threads)?);
        }
        if !self.evaluate(0)? {
            return Ok(());
        }
        self.next_eval = if self.cfg.eval_every > 0 { self.cfg.eval_every } else { self.cfg.env_steps };
        let spec = self.spec.clone();
        let mut seed = self.cfg.train_seed;
        let budget = self.cfg.env_steps;
        let this = std::cell::RefCell::new(self);
        let taken_total = std::cell::Cell::new(0u64);
        if budget > 0 {
            rollout(
                &mut env,
                &spec,
                &mut |obs| {
                    let mut me = this.borrow_mut();
                    let mode = if taken_total.get() < me.cfg.warmup { ActMode::Pretrained } else { ActMode::Explore };
                    me.actor.act(obs, mode)
                },
                &mut || {
                    seed += 1;
                    seed - 1
                },
                None,
                Some(budget),
                true,
                &mut |episode, _| {
                    let mut me = this.borrow_mut();
                    me.train_episodes += 1;
                    me.send(Report::Episode(episode)).map(|_| ())
                },
                &mut |taken| {
                    taken_total.set(taken);
                    let mut me = this.borrow_mut();
                    if !me.send(Report::Steps(taken))? || me.stop.load(Ordering::Relaxed) {
                        return Ok(false);
                    }
                    me.drain();
                    let lead = me.cfg.max_lead;
                    if taken > me.cfg.warmup && taken > me.acked + lead && !me.wait_for(taken - lead)? {
                        return Ok(false);
                    }
                    if taken >= me.next_eval && taken < budget {
                        let every = me.cfg.eval_every.max(1);
                        me.next_eval = (taken / every + 1) * every;
                        return me.evaluate(taken);
                    }
                    Ok(true)
                },
            )?;
        }
        let me = this.into_inner();
        // The final evaluation (already done when the budget is 0).
        let steps = taken_total.get();
        if !me.stop.load(Ordering::Relaxed) && (steps == 0 || me.evaluate(steps)?) {
            me.send(Report::Finished)?;
        }
        Ok(())
    }
}

/// Starts the collector thread: it acts with `first` until the learner sends snapshots, and
/// reports on `reports` until the budget is spent, `stop` is set or the learner hangs up.
pub fn spawn_collector(
    env: EnvConfig,
    spec: PolicySpec,
    cfg: CollectConfig,
    first: Box<dyn ChunkActor>,
    snapshots: Receiver<Snapshot>,
    reports: Sender<Report>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("collector".into())
        .spawn(move || {
            let mut c = Collector {
                spec,
                cfg,
                actor: first,
                acked: 0,
                snapshots,
                reports: reports.clone(),
                eval_env: None,
                train_episodes: 0,
                next_eval: 0,
                stop,
            };
            if let Err(e) = c.run(&env) {
                let _ = reports.send(Report::Failed(e));
            }
        })
        .map_err(|e| PolicyError::Training(format!("cannot start the collector thread: {e}")))
}
