//! `armstack train expo|sac|h2o`: online fine-tuning of a BC policy in the sim (EXPO, a plain
//! SAC-style baseline, WSRL's warm start via `--warmup` + `--offline-ratio 0`, H2O sim + real).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use policy::online::expo::ExpoConfig;
use policy::online::h2o::H2oConfig;
use policy::online::jobs::{OnlineAlgo, OnlineJob};
use policy::online::sac::SacConfig;
use policy::online::{OnlineReport, OnlineSettings, CURVE_FILE};
use policy::PolicySpec;

use super::arg_ranges;
use super::curves::{read_curve, CurveRow};
use super::policy_args::{check_device, open_datasets, DeviceKind};
use crate::curves_png::{write_curves_png, Curve, Panel};
use crate::outln;
use crate::with_train_backend;

/// Flags every online verb shares.
#[derive(Args, Clone, Debug)]
pub struct OnlineArgs {
    /// The pre-trained (BC) policy folder.
    #[arg(long)]
    pub init: PathBuf,
    /// Output folder (runs/NAME).
    #[arg(long)]
    pub out: PathBuf,
    /// Scene to fine-tune in (default: the policy's training scene).
    #[arg(long)]
    pub scene: Option<String>,
    /// Training env steps (control steps summed over envs).
    #[arg(long, default_value_t = 10_000, value_parser = arg_ranges::at_least(0u64))]
    pub online_steps: u64,
    /// Env steps rolled out with the pre-trained policy before any update (WSRL: 5000).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub warmup: u64,
    /// Critic updates per env step (update-to-data ratio; 0: no updates, rollouts only).
    #[arg(long, default_value_t = 20.0, value_parser = arg_ranges::non_negative(""))]
    pub utd: f64,
    /// Critic updates per actor update (default: one actor update per env step).
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub actor_every: Option<u64>,
    /// Chunks per batch.
    #[arg(long, default_value_t = 256, value_parser = arg_ranges::at_least(1usize))]
    pub batch_size: usize,
    /// Critic ensemble size K.
    #[arg(long, default_value_t = 10, value_parser = arg_ranges::at_least(1usize))]
    pub critics: usize,
    /// Envs rolled out together.
    #[arg(long, default_value_t = 8, value_parser = arg_ranges::at_least(1usize))]
    pub num_envs: usize,
    /// Sim worker threads (0: all cores).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0usize))]
    pub sim_threads: usize,
    /// Evaluate every this many env steps (and at the start and the end; 0: only there).
    #[arg(long, default_value_t = 1000, value_parser = arg_ranges::at_least(0u64))]
    pub eval_every: u64,
    /// Episodes per evaluation (the same scenes each time; 0: none).
    #[arg(long, default_value_t = 50, value_parser = arg_ranges::at_least(0usize))]
    pub eval_episodes: usize,
    /// Seed of the first evaluation scene (unseen in training and in the demonstrations).
    #[arg(long, default_value_t = 1_000_000, value_parser = arg_ranges::at_least(0u64))]
    pub eval_seed: u64,
    /// Save the weights every this many env steps (and at the end).
    #[arg(long, default_value_t = 5000, value_parser = arg_ranges::at_least(1u64))]
    pub checkpoint_every: u64,
    /// Log losses to metrics.jsonl every this many critic updates.
    #[arg(long, default_value_t = 100, value_parser = arg_ranges::at_least(1u64))]
    pub log_every: u64,
    /// Seed (batches, noise, training scenes).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Replace the previous run in `--out` (without it, a non-empty `--out` is refused).
    #[arg(long)]
    pub force: bool,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

impl OnlineArgs {
    fn settings(&self, offline_ratio: f64) -> OnlineSettings {
        let actor_every = self.actor_every.unwrap_or_else(|| self.utd.round().max(1.0) as u64);
        OnlineSettings {
            env_steps: self.online_steps,
            warmup: self.warmup,
            utd: self.utd,
            actor_every,
            batch_size: self.batch_size,
            offline_ratio,
            num_envs: self.num_envs,
            sim_threads: self.sim_threads,
            eval_every: self.eval_every,
            eval_episodes: self.eval_episodes,
            eval_seed: self.eval_seed,
            train_seed: 2_000_000 + self.seed * 100_000,
            checkpoint_every: self.checkpoint_every,
            log_every: self.log_every,
            seed: self.seed,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ..OnlineSettings::default()
        }
    }
}

/// `armstack train expo`.
#[derive(Args, Debug)]
pub struct ExpoArgs {
    #[command(flatten)]
    pub online: OnlineArgs,
    /// Demonstrations for the offline half of each batch (repeatable).
    #[arg(long = "dataset")]
    pub datasets: Vec<PathBuf>,
    /// Share of each batch from the demonstrations (0: none, WSRL).
    #[arg(long, default_value_t = 0.5, value_parser = arg_ranges::unit_interval())]
    pub offline_ratio: f64,
    /// Edit scale β (normalised action units; 0.7 for hard dexterous tasks).
    #[arg(long, default_value_t = 0.05, value_parser = arg_ranges::non_negative(""))]
    pub beta: f64,
    /// Base chunks sampled per decision N (as many edited ones join them).
    #[arg(long, default_value_t = 8, value_parser = arg_ranges::at_least(1usize))]
    pub samples: usize,
    /// Euler steps of the flow head.
    #[arg(long, default_value_t = 10, value_parser = arg_ranges::at_least(1usize))]
    pub flow_steps: usize,
    /// Hidden width of the flow head (and of the edit policy).
    #[arg(long, default_value_t = 256, value_parser = arg_ranges::at_least(1usize))]
    pub hidden: usize,
    /// Imitation steps of the flow head on the demonstrations before going online.
    #[arg(long, default_value_t = 500, value_parser = arg_ranges::at_least(0u64))]
    pub base_steps: u64,
}

/// `armstack train sac`.
#[derive(Args, Debug)]
pub struct SacArgs {
    #[command(flatten)]
    pub online: OnlineArgs,
    /// Demonstrations for the offline part of each batch (repeatable).
    #[arg(long = "dataset")]
    pub datasets: Vec<PathBuf>,
    /// Share of each batch from the demonstrations (0: none, WSRL).
    #[arg(long, default_value_t = 0.5, value_parser = arg_ranges::unit_interval())]
    pub offline_ratio: f64,
    /// Initial σ of the chunk Gaussian (normalised units).
    #[arg(long, default_value_t = 0.1, value_parser = arg_ranges::positive(""))]
    pub init_std: f64,
    /// Target entropy (default −H·D/2; WSRL uses 0).
    #[arg(long, value_parser = arg_ranges::finite())]
    pub target_entropy: Option<f64>,
}

/// `armstack train h2o`.
#[derive(Args, Debug)]
pub struct H2oArgs {
    #[command(flatten)]
    pub online: OnlineArgs,
    /// The real transitions: a LeRobot dataset recorded on the robot (repeatable).
    #[arg(long = "real", required = true)]
    pub real: Vec<PathBuf>,
    /// Weight λ of the sim Q penalty.
    #[arg(long, default_value_t = 0.01, value_parser = arg_ranges::non_negative(""))]
    pub penalty: f64,
}

/// Which online verb.
pub enum OnlineVerb {
    /// EXPO.
    Expo(ExpoArgs),
    /// SAC-style baseline.
    Sac(SacArgs),
    /// H2O.
    H2o(H2oArgs),
}

fn print_report(name: &str, out: &Path, r: &OnlineReport) -> Result<()> {
    outln!(
        "{name}: {} env steps, {} episodes, {} critic / {} actor updates, {:.1} critic updates/s, {:.1} env steps/s, {:.0} s",
        r.env_steps, r.train_episodes, r.critic_updates, r.actor_updates, r.critic_updates_per_s, r.env_steps_per_s, r.wall_s
    )?;
    outln!("  {:>10}  {:>8}  {:>15}", "env steps", "success", "95% interval")?;
    for p in &r.evaluations {
        outln!(
            "  {:>10}  {:>7.0}%  {:>6.0}% – {:>3.0}%",
            p.env_steps,
            100.0 * p.success,
            100.0 * p.ci95.0,
            100.0 * p.ci95.1
        )?;
    }
    outln!("  policy: {} (curve: {}, curve.png)", out.display(), out.join(CURVE_FILE).display())?;
    Ok(())
}

/// Draws `out/curve.csv` as `out/curve.png`.
fn plot_run(name: &str, out: &Path, scene: &str) -> Result<()> {
    let rows: Vec<CurveRow> = read_curve(&out.join(CURVE_FILE))?;
    let points = rows.iter().map(|r| (r.env_steps as f64, r.success, r.ci95.0, r.ci95.1)).collect();
    let panel = Panel { title: format!("{name} on {scene}"), curves: vec![Curve { label: name.to_string(), points }] };
    write_curves_png(&out.join("curve.png"), &[panel], "env steps", "success rate")
}

/// Runs `armstack train expo|sac|h2o`.
pub fn run(verb: OnlineVerb, stop: &Arc<AtomicBool>) -> Result<()> {
    let (online, algo, datasets, offline_ratio) = match verb {
        OnlineVerb::Expo(a) => {
            let mut rl = ExpoConfig::default();
            rl.critic.ensemble = a.online.critics;
            rl.beta = a.beta;
            rl.samples = a.samples;
            rl.flow.steps = a.flow_steps;
            rl.flow.hidden = a.hidden;
            rl.edit.hidden = a.hidden;
            rl.base_pretrain_steps = if a.datasets.is_empty() { 0 } else { a.base_steps };
            (a.online, OnlineAlgo::Expo(rl), a.datasets, a.offline_ratio)
        }
        OnlineVerb::Sac(a) => {
            let mut rl = SacConfig::default();
            rl.critic.ensemble = a.online.critics;
            rl.init_std = a.init_std;
            rl.target_entropy = a.target_entropy;
            (a.online, OnlineAlgo::Sac(rl), a.datasets, a.offline_ratio)
        }
        OnlineVerb::H2o(a) => {
            let mut cfg = H2oConfig::default();
            cfg.sac.critic.ensemble = a.online.critics;
            cfg.penalty = a.penalty;
            (a.online, OnlineAlgo::H2o(cfg), a.real, 0.5)
        }
    };
    check_device(online.device)?;
    let inputs: Vec<&Path> =
        datasets.iter().map(PathBuf::as_path).chain(std::iter::once(online.init.as_path())).collect();
    super::train::prepare_run_out(&online.out, online.force, None, &inputs)?;
    let spec = PolicySpec::load(&online.init)?;
    let opened = if datasets.is_empty() { Vec::new() } else { open_datasets(&datasets, spec.config.image.is_some())? };
    let name = algo.name();
    let job = OnlineJob {
        init: online.init.clone(),
        out: online.out.clone(),
        scene: online.scene.clone(),
        algo,
        settings: online.settings(offline_ratio),
        datasets,
    };
    let report = with_train_backend!(online.device, B, {
        policy::online::jobs::run_online_job::<B>(&job, opened, Arc::clone(stop), &Default::default())
    })
    .with_context(|| format!("online fine-tuning ({name})"))?;
    let scene = online.scene.clone().or(spec.scene.clone()).unwrap_or_default();
    if !report.evaluations.is_empty() {
        plot_run(name, &online.out, &scene).context("drawing curve.png")?;
    }
    print_report(name, &online.out, &report)?;
    Ok(())
}
