//! Online fine-tuning in the sim (the papers are cited in each module): EXPO ([`expo`]), a plain
//! SAC-style actor-critic on the chunk head ([`sac`]), WSRL's warm start (`warmup` + `offline_ratio = 0`), and H2O's
//! sim + real mixing ([`h2o`]).
//!
//! One loop ([`run_online`]) serves them all. A collector thread ([`collect`]) rolls the policy
//! out in vectorised envs and sends finished episodes over a crossbeam channel; the learner (this
//! thread) keeps them in an [`replay::OnlineReplay`], and after the `warmup` env steps owes
//! `utd` critic updates per env step and one actor update per `actor_every` critic updates. Each
//! batch mixes `offline_ratio` offline chunks (the demonstrations, or H2O's real data) with
//! online ones. When it has caught up, the learner sends the collector a fresh policy snapshot.
//! Evaluations (fixed scenes) at every `eval_every` env steps give the learning curve, written to
//! `curve.csv` and `metrics.jsonl`.

pub mod collect;
pub mod expo;
pub mod h2o;
pub mod jobs;
pub mod replay;
pub mod sac;
pub mod temperature;

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use crossbeam_channel::{unbounded, RecvTimeoutError};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sim::EnvConfig;

use crate::error::{PolicyError, Result};
use crate::spec::PolicySpec;
use crate::train::backend_rng::{seeded, step_seed};
use crate::train::data::{HostBatch, TrainingData};
use crate::train::MetricsLog;
use collect::{spawn_collector, ChunkActor, CollectConfig, EvalPoint, Report, Snapshot};
use replay::OnlineReplay;

/// File name of the learning curve in a run folder.
pub const CURVE_FILE: &str = "curve.csv";

/// Loop settings common to every online algorithm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OnlineSettings {
    /// Training env steps (control steps summed over envs).
    pub env_steps: u64,
    /// Env steps rolled out with the pre-trained policy before any update (WSRL).
    pub warmup: u64,
    /// Critic updates per env step after the warm-up (update-to-data ratio).
    pub utd: f64,
    /// Critic updates per actor update.
    pub actor_every: u64,
    /// Chunks per batch.
    pub batch_size: usize,
    /// Share of each batch drawn from the offline data (0: none, WSRL).
    pub offline_ratio: f64,
    /// Online steps kept in the replay buffer.
    pub replay_capacity: usize,
    /// Envs stepped together.
    pub num_envs: usize,
    /// Sim worker threads (0: all cores).
    pub sim_threads: usize,
    /// Evaluate every this many env steps (0: at the start and the end).
    pub eval_every: u64,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
    /// Seed of the first evaluation scene (the same scenes at every evaluation).
    pub eval_seed: u64,
    /// Seed of the first training scene.
    pub train_seed: u64,
    /// Save the weights every this many env steps (and at the end).
    pub checkpoint_every: u64,
    /// Largest lead of the collector over the learner, env steps.
    pub max_lead: u64,
    /// Log losses every this many critic updates.
    pub log_every: u64,
    /// Seed of batches, noise and initialisation.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for OnlineSettings {
    /// EXPO's published settings: UTD 20 with one actor update per env step, batches 50% offline.
    fn default() -> OnlineSettings {
        OnlineSettings {
            env_steps: 10_000,
            warmup: 0,
            utd: 20.0,
            actor_every: 20,
            batch_size: 256,
            offline_ratio: 0.5,
            replay_capacity: 1_000_000,
            num_envs: 8,
            sim_threads: 0,
            eval_every: 1000,
            eval_episodes: 50,
            eval_seed: 1_000_000,
            train_seed: 2_000_000,
            checkpoint_every: 5000,
            max_lead: 80,
            log_every: 100,
            seed: 0,
            progress: true,
        }
    }
}

/// One online algorithm's learner: networks, optimisers and the snapshot it acts with.
pub trait OnlineLearner<B: AutodiffBackend> {
    /// One critic update; the first `offline` rows of `batch` come from the offline (real) data.
    fn critic_update(
        &mut self,
        batch: &HostBatch,
        offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>>;
    /// One update of the actor (and whatever else moves once per env step).
    fn actor_update(
        &mut self,
        batch: &HostBatch,
        offline: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(&'static str, f64)>>;
    /// A snapshot of the current policy for the collector; `seed` seeds its sampling.
    fn actor(&self, seed: u64) -> Box<dyn ChunkActor>;
    /// Saves the weights a user runs into `dir`.
    fn save(&self, dir: &Path) -> Result<()>;
}

/// What a finished online run reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OnlineReport {
    /// Env steps taken.
    pub env_steps: u64,
    /// Training episodes finished.
    pub train_episodes: u64,
    /// Critic updates done.
    pub critic_updates: u64,
    /// Actor updates done.
    pub actor_updates: u64,
    /// Critic updates owed while there was nothing to sample (no offline data and no finished
    /// episode yet), skipped.
    pub skipped_updates: u64,
    /// Evaluations, in order.
    pub evaluations: Vec<EvalPoint>,
    /// Wall time, s.
    pub wall_s: f64,
    /// Critic updates per second of learner time.
    pub critic_updates_per_s: f64,
    /// Env steps per wall second.
    pub env_steps_per_s: f64,
    /// Last value of every loss.
    pub final_losses: Vec<(String, f64)>,
}

fn bar(total: u64, show: bool, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} env steps {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(name.to_string());
    pb
}

/// The learning curve file: one row per evaluation.
struct Curve {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Curve {
    fn create(dir: &Path) -> Result<Curve> {
        let path = dir.join(CURVE_FILE);
        let mut file = std::fs::File::create(&path).map_err(|e| PolicyError::io(&path, e))?;
        writeln!(
            file,
            "env_steps,train_episodes,success,ci95_low,ci95_high,episodes,mean_length,train_success_recent,wall_s"
        )
        .map_err(|e| PolicyError::io(&path, e))?;
        Ok(Curve { file, path })
    }

    fn write(&mut self, p: &EvalPoint, recent: Option<f64>, wall_s: f64) -> Result<()> {
        let recent = recent.map_or(String::new(), |r| format!("{r:.4}"));
        writeln!(
            self.file,
            "{},{},{:.4},{:.4},{:.4},{},{:.2},{recent},{wall_s:.1}",
            p.env_steps, p.train_episodes, p.success, p.ci95.0, p.ci95.1, p.episodes, p.mean_length
        )
        .and_then(|_| self.file.flush())
        .map_err(|e| PolicyError::io(&self.path, e))
    }
}

/// Draws a mixed batch: `offline_ratio` of it from `offline`, the rest from `replay` (all
/// offline while the replay is empty). Returns the batch and its offline row count.
fn mixed_batch(
    offline: Option<&TrainingData>,
    replay: &OnlineReplay,
    spec: &PolicySpec,
    settings: &OnlineSettings,
    rng: &mut ChaCha8Rng,
) -> Result<(HostBatch, usize)> {
    let n = settings.batch_size.max(1);
    let n_off = match offline {
        Some(_) if replay.is_empty() => n,
        Some(_) => ((n as f64) * settings.offline_ratio.clamp(0.0, 1.0)).round() as usize,
        None => 0,
    };
    let mut batch = match offline {
        Some(data) if n_off > 0 => data.sample(rng, n_off)?,
        _ => HostBatch::default(),
    };
    batch.extend(replay.sample(spec, rng, n - n_off)?);
    Ok((batch, n_off))
}

/// Runs `learner` online in `env` for `settings.env_steps` env steps, writing into `out`
/// (`curve.csv`, `metrics.jsonl`, weights). `offline` is the offline (H2O: real) data, if any.
#[allow(clippy::too_many_arguments)]
pub fn run_online<B: AutodiffBackend, L: OnlineLearner<B>>(
    name: &str,
    learner: &mut L,
    offline: Option<Arc<TrainingData>>,
    spec: &PolicySpec,
    env: &EnvConfig,
    settings: &OnlineSettings,
    gamma: f64,
    out: &Path,
    stop: Arc<AtomicBool>,
) -> Result<OnlineReport> {
    std::fs::create_dir_all(out).map_err(|e| PolicyError::io(out, e))?;
    spec.save(out)?;
    let offline = offline.filter(|_| settings.offline_ratio > 0.0);
    let mut metrics = MetricsLog::open(out)?;
    let mut curve = Curve::create(out)?;
    let (snap_tx, snap_rx) = unbounded::<Snapshot>();
    let (rep_tx, rep_rx) = unbounded::<Report>();
    let collect_cfg = CollectConfig {
        env_steps: settings.env_steps,
        warmup: settings.warmup,
        num_envs: settings.num_envs,
        sim_threads: settings.sim_threads,
        eval_every: settings.eval_every,
        eval_episodes: settings.eval_episodes,
        eval_seed: settings.eval_seed,
        train_seed: settings.train_seed,
        max_lead: settings.max_lead,
    };
    let collector = spawn_collector(
        env.clone(),
        spec.clone(),
        collect_cfg,
        learner.actor(settings.seed),
        snap_rx,
        rep_tx,
        stop.clone(),
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed ^ 0x0411_11E5);
    let mut replay = OnlineReplay::new(settings.replay_capacity, spec.config.horizon, gamma);
    let pb = bar(settings.env_steps, settings.progress, name);
    let t0 = Instant::now();
    let mut learn_s = 0.0f64;
    let mut report = OnlineReport::default();
    let mut latest: std::collections::BTreeMap<&'static str, f64> = std::collections::BTreeMap::new();
    let mut recent: VecDeque<bool> = VecDeque::new();
    let mut acked = 0u64;
    let mut next_checkpoint = settings.checkpoint_every.max(1);
    let mut last_eval = String::new();
    let mut finished = false;
    let result: Result<()> = (|| loop {
        let owed =
            (settings.utd * settings.env_steps.min(report.env_steps).saturating_sub(settings.warmup) as f64) as u64;
        let can_sample = !replay.is_empty() || offline.is_some();
        if report.critic_updates + report.skipped_updates < owed && !can_sample {
            // No data to learn from yet (no offline data, no finished episode): these updates
            // are skipped, not postponed.
            report.skipped_updates = owed - report.critic_updates;
        }
        if report.critic_updates + report.skipped_updates < owed && !stop.load(Ordering::Relaxed) {
            while let Ok(r) = rep_rx.try_recv() {
                finished |= handle(
                    r,
                    &mut replay,
                    &mut report,
                    &mut recent,
                    &mut curve,
                    &mut metrics,
                    &pb,
                    &mut last_eval,
                    t0,
                )?;
            }
            let tu = Instant::now();
            let (batch, n_off) = mixed_batch(offline.as_deref(), &replay, spec, settings, &mut rng)?;
            // Dropout masks of update k from (seed, k); the backend's generator is this thread's
            // meanwhile (see `backend_rng`).
            let update_rng = seeded::<B>(&Default::default(), step_seed(settings.seed, report.critic_updates));
            let mut losses = learner.critic_update(&batch, n_off, &mut rng)?;
            report.critic_updates += 1;
            if report.critic_updates.is_multiple_of(settings.actor_every.max(1)) {
                let (batch, n_off) = mixed_batch(offline.as_deref(), &replay, spec, settings, &mut rng)?;
                losses.extend(learner.actor_update(&batch, n_off, &mut rng)?);
                report.actor_updates += 1;
            }
            drop(update_rng);
            learn_s += tu.elapsed().as_secs_f64();
            if let Some((k, v)) = losses.iter().find(|(_, v)| !v.is_finite()) {
                return Err(PolicyError::Training(format!("loss `{k}` is {v} after {} env steps", report.env_steps)));
            }
            latest.extend(losses.iter().copied());
            if report.critic_updates.is_multiple_of(settings.log_every.max(1)) {
                let mut rec = serde_json::json!({
                    "env_steps": report.env_steps, "critic_updates": report.critic_updates,
                    "actor_updates": report.actor_updates, "algo": name,
                    "critic_updates_per_s": report.critic_updates as f64 / learn_s.max(1e-9),
                });
                for (k, v) in &latest {
                    rec[*k] = serde_json::json!(v);
                }
                metrics.write(&rec)?;
            }
            continue;
        }
        if report.env_steps > acked && (report.env_steps > settings.warmup.min(settings.env_steps) || finished) {
            acked = report.env_steps;
            let snapshot = Snapshot { actor: learner.actor(settings.seed.wrapping_add(acked)), env_steps: acked };
            let _ = snap_tx.send(snapshot);
        }
        if report.env_steps >= next_checkpoint {
            learner.save(out)?;
            next_checkpoint =
                (report.env_steps / settings.checkpoint_every.max(1) + 1) * settings.checkpoint_every.max(1);
        }
        if finished || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match rep_rx.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(r) => {
                finished |=
                    handle(r, &mut replay, &mut report, &mut recent, &mut curve, &mut metrics, &pb, &mut last_eval, t0)?
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PolicyError::Training("the collector thread stopped without finishing".into()))
            }
        }
        let msg: Vec<String> = latest
            .iter()
            .filter(|(k, _)| ["td", "q_data", "alpha"].contains(k))
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        let train = if recent.is_empty() {
            String::new()
        } else {
            format!("train {:.0}%", 100.0 * recent.iter().filter(|s| **s).count() as f64 / recent.len() as f64)
        };
        pb.set_message(format!("{last_eval} {train} {}", msg.join(" ")));
    })();
    drop(snap_tx);
    drop(rep_rx);
    let _ = collector.join();
    result?;
    learner.save(out)?;
    pb.finish_and_clear();
    report.wall_s = t0.elapsed().as_secs_f64();
    report.critic_updates_per_s = report.critic_updates as f64 / learn_s.max(1e-9);
    report.env_steps_per_s = report.env_steps as f64 / report.wall_s.max(1e-9);
    report.final_losses = latest.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let path = out.join("online_report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| PolicyError::Training(e.to_string()))?;
    crate::spec::write_atomic(&path, text.as_bytes())?;
    Ok(report)
}

/// Applies one collector report; returns true for [`Report::Finished`].
#[allow(clippy::too_many_arguments)]
fn handle(
    report: Report,
    replay: &mut OnlineReplay,
    out: &mut OnlineReport,
    recent: &mut VecDeque<bool>,
    curve: &mut Curve,
    metrics: &mut MetricsLog,
    pb: &ProgressBar,
    last_eval: &mut String,
    t0: Instant,
) -> Result<bool> {
    match report {
        Report::Episode(ep) => {
            out.train_episodes += 1;
            recent.push_back(ep.success);
            if recent.len() > 20 {
                recent.pop_front();
            }
            replay.push(ep);
        }
        Report::Steps(k) => {
            out.env_steps = k;
            pb.set_position(k);
        }
        Report::Eval(p) => {
            let recent_rate =
                (!recent.is_empty()).then(|| recent.iter().filter(|s| **s).count() as f64 / recent.len() as f64);
            curve.write(&p, recent_rate, t0.elapsed().as_secs_f64())?;
            metrics.write(&serde_json::json!({
                "env_steps": p.env_steps, "eval_success": p.success, "eval_ci95": [p.ci95.0, p.ci95.1],
                "eval_episodes": p.episodes, "eval_mean_length": p.mean_length, "train_episodes": p.train_episodes,
            }))?;
            tracing::info!(env_steps = p.env_steps, success = p.success, "evaluation");
            *last_eval = format!("eval {:.0}%", 100.0 * p.success);
            out.evaluations.push(p);
        }
        Report::Finished => return Ok(true),
        Report::Failed(e) => return Err(e),
    }
    Ok(false)
}
