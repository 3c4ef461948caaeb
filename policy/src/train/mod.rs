//! Training: behaviour cloning ([`bc`]) and CO-RFT offline RL ([`co_rft`]) share one loop
//! ([`run`]): batches from a prefetch thread, an update, metrics to `metrics.jsonl` and a progress
//! bar, periodic evaluation in the sim with the best policy kept, and resumable checkpoints.

pub mod adam;
pub mod backend_rng;
pub mod bc;
pub mod co_rft;
pub mod data;
pub mod ema;
pub mod jobs;
pub mod recipe;
pub mod schedule;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::{PolicyError, Result};
use crate::inference::Policy;
use crate::model::ChunkPolicy;
use crate::spec::{write_atomic, PolicySpec};
use data::{HostBatch, Prefetcher, TrainingData};
use schedule::LrSchedule;

/// Sub-folder holding the last step's full training state.
pub const RESUME_DIR: &str = "resume";
const STATE_FILE: &str = "state.json";

/// Loop settings common to every algorithm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Gradient steps in total.
    pub steps: u64,
    /// Samples per batch.
    pub batch_size: usize,
    /// Base learning rate (Adam), scaled over the run by `lr_schedule`.
    pub lr: f64,
    /// How the learning rate changes over the run (every optimiser of the learner).
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Decay of the averaged policy weights a run evaluates and saves
    /// ([`ema::WeightAverage`]); 0: the last weights themselves.
    #[serde(default)]
    pub ema_decay: f64,
    /// Fraction of each dataset's episodes held out of training for the held-out loss
    /// (`bc_held_out` in `metrics.jsonl`, at every evaluation and at the end); 0: none.
    #[serde(default)]
    pub held_out: f64,
    /// Seed of the initialisation and the batch sampler.
    pub seed: u64,
    /// Evaluate in the sim every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Log metrics every this many steps.
    pub log_every: u64,
    /// Save the resumable state every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Train on recorded actions only: frames marked `action.is_proxy` are left out.
    #[serde(default)]
    pub skip_proxy_labels: bool,
    /// Train on successful episodes only (filtered behaviour cloning, "%BC" of Chen et al.
    /// 2021): episodes without a success frame are left out.
    #[serde(default)]
    pub successful_only: bool,
    /// The chunk regression loss of BC and of CO-RFT's actor ([`bc::ChunkLoss`]); runs saved
    /// before the choice existed trained with L2.
    #[serde(default)]
    pub loss: bc::ChunkLoss,
}

impl Default for TrainSettings {
    fn default() -> TrainSettings {
        TrainSettings {
            steps: 2000,
            batch_size: 256,
            lr: 3e-4,
            lr_schedule: LrSchedule::default(),
            ema_decay: 0.999,
            held_out: 0.1,
            seed: 0,
            eval_every: 500,
            log_every: 50,
            checkpoint_every: 500,
            prefetch: 4,
            progress: true,
            skip_proxy_labels: false,
            successful_only: false,
            loss: bc::ChunkLoss::L1,
        }
    }
}

/// Where a run stands (saved in `resume/state.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Steps done.
    pub step: u64,
    /// Best evaluation success rate so far, and its step.
    pub best: Option<(f64, u64)>,
    /// The run's recipe, checked on resume (absent in runs saved before it was stored).
    #[serde(default)]
    pub recipe: Option<recipe::Recipe>,
}

/// Scores a policy (the success rate of sim rollouts, 0…1).
pub trait Evaluator<B: Backend> {
    /// Evaluates `policy`.
    fn evaluate(&mut self, policy: &Policy<B>) -> Result<f64>;
}

/// What a finished run reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainReport {
    /// Steps done.
    pub steps: u64,
    /// Training samples per second (excluding evaluation).
    pub samples_per_s: f64,
    /// Last logged losses.
    pub final_losses: Vec<(String, f64)>,
    /// Evaluations: (step, success rate).
    pub evaluations: Vec<(u64, f64)>,
    /// Best evaluation (success, step).
    pub best: Option<(f64, u64)>,
    /// Last held-out loss (the BC loss of the evaluated policy on held-out episodes), if any
    /// episodes were held out.
    #[serde(default)]
    pub held_out_loss: Option<f64>,
}

/// One algorithm's learner state: networks and optimisers.
pub trait Learner<B: AutodiffBackend> {
    /// One gradient update on `batch`; returns named losses.
    fn update(&mut self, batch: &HostBatch, step: u64) -> Result<Vec<(&'static str, f64)>>;
    /// Scales every base learning rate by `factor` from the next update on (the schedule).
    fn set_lr_factor(&mut self, factor: f64);
    /// The policy a run evaluates and saves (the weight average when the learner keeps one).
    fn policy(&self) -> ChunkPolicy<B::InnerBackend>;
    /// Saves the weights a user runs (`model.mpk`, and `critic.mpk` if any) into `dir`.
    fn save_weights(&self, dir: &Path) -> Result<()>;
    /// Saves everything needed to resume into `dir`.
    fn save_resume(&self, dir: &Path) -> Result<()>;
    /// Loads what [`Learner::save_resume`] wrote.
    fn load_resume(&mut self, dir: &Path) -> Result<()>;
}

/// Appends JSON lines to `metrics.jsonl`.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens (appending) `dir/metrics.jsonl`.
    pub fn open(dir: &Path) -> Result<MetricsLog> {
        let path = dir.join("metrics.jsonl");
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| PolicyError::io(&path, e))?;
        Ok(MetricsLog { file, path })
    }

    /// Writes one record.
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").map_err(|e| PolicyError::io(&self.path, e))
    }
}

fn bar(steps: u64, start: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(steps);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_position(start);
    pb
}

/// The BC loss ([`bc::chunk_mse`]) of `policy` on a held-out batch.
fn held_out_loss<B: Backend>(policy: &ChunkPolicy<B>, spec: &PolicySpec, batch: &HostBatch, device: &B::Device) -> f64 {
    let c = &spec.config;
    let obs = batch.obs.to_batch::<B>(c, device);
    let (target, mask) = bc::targets::<B>(batch, c.horizon, c.action_dim, device);
    f64::from(bc::chunk_mse(policy.forward(&obs), target, mask, None).into_scalar().elem::<f32>())
}

/// Runs `learner` on `data` for `settings.steps` steps, writing into `out`. `spec` is saved as
/// `policy.json`. When `out/resume` exists and `resume` is set, continues from it. `stop` ends
/// the run early (after saving) when set.
#[allow(clippy::too_many_arguments)]
pub fn run<B: AutodiffBackend, L: Learner<B>>(
    name: &str,
    learner: &mut L,
    data: Arc<TrainingData>,
    spec: &PolicySpec,
    settings: &TrainSettings,
    out: &Path,
    mut evaluator: Option<&mut dyn Evaluator<B::InnerBackend>>,
    resume: bool,
    stop: &AtomicBool,
    device: &B::Device,
) -> Result<TrainReport> {
    std::fs::create_dir_all(out.join(RESUME_DIR)).map_err(|e| PolicyError::io(out, e))?;
    spec.save(out)?;
    let resume_dir = out.join(RESUME_DIR);
    let recipe = recipe::Recipe::of(settings);
    let mut state = RunState::default();
    if resume && resume_dir.join(STATE_FILE).exists() {
        let path = resume_dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| PolicyError::io(&path, e))?;
        state = serde_json::from_str(&text).map_err(|e| PolicyError::checkpoint(&path, e.to_string()))?;
        recipe.check_resume(state.recipe.as_ref())?;
        learner.load_resume(&resume_dir)?;
        tracing::info!(step = state.step, "resumed {name} from {}", resume_dir.display());
    }
    if let schedule::LrSchedule::WarmupCosine { warmup_steps, .. } = settings.lr_schedule {
        if warmup_steps >= settings.steps {
            tracing::warn!(
                warmup_steps,
                steps = settings.steps,
                "the learning-rate warm-up is as long as the run: the rate never reaches its base value (--warmup-steps)"
            );
        }
    }
    state.recipe = Some(recipe);
    let mut metrics = MetricsLog::open(out)?;
    let mut report = TrainReport { best: state.best, ..TrainReport::default() };
    // Held-out frames, fixed for the run (fewer with images: one forward pass holds them all).
    let held_out = data.held_out_batch(if spec.config.image.is_some() { 128 } else { 1024 })?;
    let prefetch = Prefetcher::start(data, settings.seed, state.step, settings.batch_size, settings.prefetch);
    let pb = bar(settings.steps, state.step, settings.progress);
    pb.set_prefix(name.to_string());
    let t0 = Instant::now();
    let mut eval_time = 0.0;
    let first = state.step;
    // Latest value of every loss (some are computed only on some steps, e.g. the actor's).
    let mut latest: std::collections::BTreeMap<&'static str, f64> = std::collections::BTreeMap::new();
    let save_resume = |learner: &L, state: &RunState| -> Result<()> {
        learner.save_resume(&resume_dir)?;
        let text = serde_json::to_string(state).map_err(|e| PolicyError::Training(e.to_string()))?;
        write_atomic(&resume_dir.join(STATE_FILE), text.as_bytes())
    };
    while state.step < settings.steps {
        let batch = prefetch.next()?;
        let lr_factor = settings.lr_schedule.factor(state.step, settings.steps);
        learner.set_lr_factor(lr_factor);
        latest.insert("lr_factor", lr_factor);
        let losses = {
            // Dropout masks of this step: a function of (seed, step) only, so resuming replays them.
            let _rng = backend_rng::seeded::<B>(device, backend_rng::step_seed(settings.seed, state.step));
            learner.update(&batch, state.step)?
        };
        if let Some((k, v)) = losses.iter().find(|(_, v)| !v.is_finite()) {
            save_resume(learner, &state)?;
            return Err(PolicyError::Training(format!("loss `{k}` is {v} at step {}", state.step)));
        }
        latest.extend(losses.iter().copied());
        state.step += 1;
        pb.inc(1);
        let done = state.step == settings.steps || stop.load(Ordering::Relaxed);
        if state.step.is_multiple_of(settings.log_every.max(1)) || done {
            let elapsed = t0.elapsed().as_secs_f64() - eval_time;
            let rate = (state.step - first) as f64 * settings.batch_size as f64 / elapsed.max(1e-9);
            let msg: Vec<String> = latest.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            pb.set_message(msg.join(" "));
            let mut rec = serde_json::json!({"step": state.step, "samples_per_s": rate, "algo": name});
            for (k, v) in &latest {
                rec[*k] = serde_json::json!(v);
            }
            metrics.write(&rec)?;
            tracing::debug!(step = state.step, "{}", msg.join(" "));
            report.samples_per_s = rate;
            report.final_losses = latest.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        }
        let eval_due = settings.eval_every > 0 && state.step.is_multiple_of(settings.eval_every);
        if let Some(held) = held_out.as_ref().filter(|_| eval_due || done) {
            let loss = held_out_loss(&learner.policy(), spec, held, device);
            report.held_out_loss = Some(loss);
            metrics.write(&serde_json::json!({"step": state.step, "bc_held_out": loss, "algo": name}))?;
            tracing::info!(step = state.step, loss, "{name}: held-out loss");
        }
        if let Some(ev) = evaluator.as_deref_mut().filter(|_| eval_due || done) {
            let te = Instant::now();
            let policy = Policy { spec: spec.clone(), model: learner.policy(), device: device.clone() };
            let success = pb.suspend(|| ev.evaluate(&policy))?;
            eval_time += te.elapsed().as_secs_f64();
            report.evaluations.push((state.step, success));
            metrics.write(&serde_json::json!({"step": state.step, "eval_success": success, "algo": name}))?;
            tracing::info!(step = state.step, success, "{name}: evaluation");
            if state.best.is_none_or(|(b, _)| success > b) {
                state.best = Some((success, state.step));
                learner.save_weights(out)?;
            }
        }
        if state.step.is_multiple_of(settings.checkpoint_every.max(1)) || done {
            save_resume(learner, &state)?;
        }
        if done {
            break;
        }
    }
    if evaluator.is_none() {
        learner.save_weights(out)?;
    }
    pb.finish_and_clear();
    report.steps = state.step;
    report.best = state.best;
    Ok(report)
}
