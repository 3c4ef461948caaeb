//! Evaluation: vectorised sim rollouts of a policy, success rate with a Wilson 95% interval,
//! mean episode length, and an optional per-frame callback (for videos).

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use sim::{EnvConfig, Observation, VecEnv};

use crate::error::{PolicyError, Result};
use crate::executor::{ChunkExecutor, ExecMode};
use crate::features::{raw_obs, state_of};
use crate::inference::Policy;
use crate::train::Evaluator;

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Episodes in total.
    pub episodes: usize,
    /// Envs stepped in parallel (policy batch size).
    pub num_envs: usize,
    /// Sim worker threads (0: all cores).
    pub threads: usize,
    /// Seed of the first episode; episode k uses seed + k.
    pub seed: u64,
    /// How chunks are executed (`None`: [`ExecMode::default_for`] the policy's action space).
    pub exec: Option<ExecMode>,
}

/// One evaluated episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeOutcome {
    /// Episode number (0…episodes).
    pub episode: usize,
    /// Reset seed.
    pub seed: u64,
    /// Success.
    pub success: bool,
    /// Control steps.
    pub length: u32,
    /// The episode ended in a failure state (an object fell off the table) rather than at the
    /// time limit.
    #[serde(default)]
    pub failed: bool,
    /// Success conditions of the scene holding at the end (all of them on success).
    #[serde(default)]
    pub conditions_met: u32,
}

/// Evaluation results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Per episode.
    pub episodes: Vec<EpisodeOutcome>,
    /// Successes / episodes.
    pub success_rate: f64,
    /// Wilson 95% interval of the success rate.
    pub ci95: (f64, f64),
    /// Mean episode length, control steps.
    pub mean_length: f64,
    /// Cycle time: mean length of the successful episodes, control steps (`None` without a
    /// success). Failures run to the time limit, so `mean_length` mixes speed with success.
    pub mean_success_length: Option<f64>,
    /// Chunks computed.
    pub chunks: u64,
}

/// Wilson score interval (95%, z = 1.96) of `k` successes in `n` trials.
pub fn wilson95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.959_963_985);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Mean length of the successful episodes in `outcomes`, control steps (`None` without one).
pub fn mean_success_length(outcomes: &[EpisodeOutcome]) -> Option<f64> {
    let lengths: Vec<f64> = outcomes.iter().filter(|o| o.success).map(|o| f64::from(o.length)).collect();
    (!lengths.is_empty()).then(|| lengths.iter().sum::<f64>() / lengths.len() as f64)
}

/// Converts an action row to a sim action.
fn to_action(kind: bus::ActionKind, row: &[f32]) -> Result<sim::Action> {
    sim::node::chunk_row_action(kind, row)
        .ok_or_else(|| PolicyError::Mismatch(format!("{kind:?} actions need 7 values per row, got {}", row.len())))
}

/// Rolls `policy` out in `env` for `cfg.episodes` episodes. `on_frame(episode, obs)` sees every
/// observation (including each episode's first).
pub fn evaluate<B: Backend>(
    policy: &Policy<B>,
    env: &EnvConfig,
    cfg: &EvalConfig,
    on_frame: &mut dyn FnMut(usize, &Observation),
) -> Result<EvalReport> {
    let spec = &policy.spec;
    let cameras: Vec<String> = spec.config.image.as_ref().map(|i| i.cameras.clone()).unwrap_or_default();
    let (h, d) = (spec.config.horizon, spec.config.action_dim);
    let mode = cfg.exec.unwrap_or_else(|| ExecMode::default_for(spec.action_kind, h));
    let n_envs = cfg.num_envs.clamp(1, cfg.episodes.max(1));
    let mut vec_env = VecEnv::new(env, n_envs, cfg.threads)?;
    // Slot state: which episode each env runs, its tick, its executor, its last observation.
    let mut next_episode = 0usize;
    let mut slots: Vec<Option<(usize, u64, ChunkExecutor, Observation)>> = Vec::new();
    let first: Vec<(usize, u64)> = (0..n_envs).map(|i| (i, cfg.seed.wrapping_add(i as u64))).collect();
    for (i, obs) in vec_env.reset_some(&first[..n_envs.min(cfg.episodes)])? {
        on_frame(next_episode, &obs);
        slots.resize_with(n_envs, || None);
        slots[i] = Some((
            next_episode,
            0,
            ChunkExecutor::new(mode, spec.action_kind, h, d).with_action_targets(spec.config.action_targets),
            obs,
        ));
        next_episode += 1;
    }
    let mut outcomes = Vec::new();
    let mut chunks = 0u64;
    while slots.iter().any(Option::is_some) {
        // Chunks for every env whose executor wants one, in one batch.
        let mut want = Vec::new();
        let mut raws = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some((_, tick, ex, obs)) = slot {
                if ex.wants_chunk(*tick) {
                    let raw = raw_obs(obs, &cameras)
                        .ok_or_else(|| PolicyError::Mismatch(format!("the env renders no camera among {cameras:?}")))?;
                    want.push(i);
                    raws.push(raw);
                }
            }
        }
        if !raws.is_empty() {
            let out = policy.act(&raws)?;
            chunks += out.len() as u64;
            for (i, values) in want.into_iter().zip(out) {
                if let Some((_, tick, ex, obs)) = slots[i].as_mut() {
                    ex.add_chunk(*tick, &values, *tick, &state_of(obs));
                }
            }
        }
        let mut actions = Vec::with_capacity(n_envs);
        for slot in slots.iter_mut() {
            let a = match slot {
                Some((_, tick, ex, obs)) => match ex.action(*tick, &state_of(obs)) {
                    Some(row) => to_action(spec.action_kind, &row)?,
                    None => sim::Action::hold(obs.arm.gripper_opening),
                },
                None => sim::Action::hold(1.0),
            };
            actions.push(a);
        }
        let steps = vec_env.step(&actions)?;
        let mut resets = Vec::new();
        for (i, step) in steps.into_iter().enumerate() {
            let Some((episode, tick, ex, obs)) = slots[i].as_mut() else { continue };
            *tick += 1;
            on_frame(*episode, &step.obs);
            *obs = step.obs;
            if step.done {
                outcomes.push(EpisodeOutcome {
                    episode: *episode,
                    seed: cfg.seed.wrapping_add(*episode as u64),
                    success: step.success,
                    length: obs.step,
                    failed: step.failed,
                    conditions_met: step.conditions_met,
                });
                ex.reset();
                if next_episode < cfg.episodes {
                    resets.push((i, cfg.seed.wrapping_add(next_episode as u64), next_episode));
                    next_episode += 1;
                } else {
                    slots[i] = None;
                }
            }
        }
        if !resets.is_empty() {
            let items: Vec<(usize, u64)> = resets.iter().map(|(i, s, _)| (*i, *s)).collect();
            for ((i, obs), (_, _, episode)) in vec_env.reset_some(&items)?.into_iter().zip(&resets) {
                on_frame(*episode, &obs);
                if let Some(slot) = slots[i].as_mut() {
                    slot.0 = *episode;
                    slot.1 = 0;
                    slot.3 = obs;
                }
            }
        }
    }
    outcomes.sort_by_key(|o| o.episode);
    let successes = outcomes.iter().filter(|o| o.success).count();
    let n = outcomes.len();
    Ok(EvalReport {
        success_rate: successes as f64 / n.max(1) as f64,
        ci95: wilson95(successes, n),
        mean_length: outcomes.iter().map(|o| f64::from(o.length)).sum::<f64>() / n.max(1) as f64,
        mean_success_length: mean_success_length(&outcomes),
        episodes: outcomes,
        chunks,
    })
}

/// Periodic evaluation during training.
pub struct SimEvaluator {
    /// The env.
    pub env: EnvConfig,
    /// Settings.
    pub config: EvalConfig,
}

impl<B: Backend> Evaluator<B> for SimEvaluator {
    fn evaluate(&mut self, policy: &Policy<B>) -> Result<f64> {
        Ok(evaluate(policy, &self.env, &self.config, &mut |_, _| {})?.success_rate)
    }
}

/// The env a policy is evaluated in: `scene` (default: the training data's scene) at the
/// policy's control rate, with its cameras rendered at its image size.
pub fn eval_env(spec: &crate::spec::PolicySpec, scene: Option<&str>) -> Result<EnvConfig> {
    let name = scene
        .or(spec.scene.as_deref())
        .ok_or_else(|| PolicyError::Config("the training data names no scene; pass --scene".into()))?;
    let scene = sim::load_scene(name).map_err(|e| PolicyError::Config(format!("scene {name}: {e}")))?;
    // A policy reading more objects than the scene has, and not trained to pad them, would be
    // refused at its first observation (eval) or never act (deploy): refuse it here.
    let c = &spec.config;
    let objects = scene.objects.len();
    if c.env_state_dim > crate::features::ENV_VALUES_PER_OBJECT * objects && !c.pad_objects {
        return Err(PolicyError::Config(format!(
            "the policy reads the state of {} objects, scene {name} has {objects}: it was trained on {}; pass \
             that scene, or train one policy on both scenes' data",
            c.env_state_dim / crate::features::ENV_VALUES_PER_OBJECT,
            spec.scene.as_deref().unwrap_or("another scene")
        )));
    }
    let mut env = EnvConfig::new(scene);
    env.control_hz = spec.fps;
    if let Some(img) = &spec.config.image {
        env = env.with_cameras(img.size as u32, img.size as u32);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_reference_values() {
        // Reference: 25/50 → (0.366, 0.634); 0/50 → (0, 0.0714); 50/50 → (0.9286, 1).
        let (lo, hi) = wilson95(25, 50);
        assert!((lo - 0.3664).abs() < 1e-3 && (hi - 0.6336).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson95(0, 50);
        assert!(lo == 0.0 && (hi - 0.0714).abs() < 1e-3, "{hi}");
        let (lo, hi) = wilson95(50, 50);
        assert!((lo - 0.9286).abs() < 1e-3 && hi == 1.0, "{lo}");
    }

    #[test]
    fn cycle_time_is_the_mean_length_of_the_successes_only() {
        let outcome = |episode: usize, success: bool, length: u32| EpisodeOutcome {
            episode,
            seed: episode as u64,
            success,
            length,
            failed: false,
            conditions_met: u32::from(success),
        };
        let outcomes = [outcome(0, true, 16), outcome(1, false, 60), outcome(2, true, 20)];
        assert_eq!(mean_success_length(&outcomes), Some(18.0));
        assert_eq!(mean_success_length(&[outcome(0, false, 60)]), None);
        assert_eq!(mean_success_length(&[]), None);
    }
}
