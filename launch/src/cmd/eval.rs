//! `armstack eval`: vectorised sim rollouts of a policy folder; success rate with a 95% interval,
//! mean episode length, and a video of the first episodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use policy::eval::{eval_env, evaluate, EvalReport};
use policy::{Policy, PolicySpec};
use serde::Serialize;
use sim::EnvConfig;

use super::arg_ranges;
use super::policy_args::{check_device, DeviceKind, RolloutArgs};
use crate::outln;
use crate::output_path::check_output_file;
use crate::with_backend;

/// `armstack eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Policy folder (runs/NAME).
    #[arg(long)]
    pub policy: PathBuf,
    /// Episodes.
    #[arg(long, default_value_t = 50, value_parser = arg_ranges::at_least(1usize))]
    pub episodes: usize,
    /// Write the first `--video-episodes` episodes to this mp4.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Episodes in the video.
    #[arg(long, default_value_t = 4, value_parser = arg_ranges::at_least(1usize))]
    pub video_episodes: usize,
    /// Write the report as JSON here (its folder must exist; checked before evaluating).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// The printed / saved result of an evaluation.
#[derive(Debug, Serialize)]
pub struct EvalSummary {
    /// Policy folder.
    pub policy: String,
    /// Scene.
    pub scene: String,
    /// Episodes.
    pub episodes: usize,
    /// Successes.
    pub successes: usize,
    /// Success rate.
    pub success_rate: f64,
    /// Wilson 95% interval.
    pub ci95: (f64, f64),
    /// Mean episode length, steps.
    pub mean_length: f64,
    /// Cycle time: mean length of the successful episodes, steps (null without a success).
    pub mean_success_length: Option<f64>,
    /// Wall time, s.
    pub wall_s: f64,
}

/// Evaluates the policy in `dir`; when `video` is set, renders cameras and writes the first
/// `video_episodes` episodes there.
pub fn evaluate_policy(
    dir: &Path,
    episodes: usize,
    rollout: &RolloutArgs,
    device: DeviceKind,
    video: Option<(&Path, usize)>,
) -> Result<(EvalSummary, EvalReport)> {
    check_device(device)?;
    let spec = PolicySpec::load(dir)?;
    let mut env = eval_env(&spec, rollout.scene.as_deref())?;
    if video.is_some() && env.cameras.is_empty() {
        env = env.with_cameras(128, 128);
    }
    let cfg = rollout.eval_config(episodes, spec.config.horizon);
    let keep = video.map_or(0, |(_, n)| n);
    let mut frames: BTreeMap<usize, Vec<Vec<Vec<u8>>>> = BTreeMap::new();
    if dir.join(policy::online::expo::FLOW_STEM).with_extension("mpk").exists() {
        tracing::warn!(
            "{} is an EXPO run: this evaluates its base policy's chunk head μ(s) alone, not the on-the-fly policy \
             (flow samples, edits, critic); the latter's success is in its curve.csv",
            dir.display()
        );
    }
    let t0 = std::time::Instant::now();
    let report = with_backend!(device, B, {
        let policy = Policy::<B>::load(dir, &Default::default())?;
        evaluate(&policy, &env, &cfg, &mut |ep, obs| {
            if ep < keep {
                frames.entry(ep).or_default().push(obs.images.iter().map(|i| i.rgb.clone()).collect());
            }
        })?
    });
    let wall_s = t0.elapsed().as_secs_f64();
    if let Some((path, _)) = video {
        write_video(path, &env, &frames, &report, &dir.display().to_string())?;
    }
    let successes = report.episodes.iter().filter(|e| e.success).count();
    let summary = EvalSummary {
        policy: dir.display().to_string(),
        scene: env.scene.name.clone(),
        episodes: report.episodes.len(),
        successes,
        success_rate: report.success_rate,
        ci95: report.ci95,
        mean_length: report.mean_length,
        mean_success_length: report.mean_success_length,
        wall_s,
    };
    Ok((summary, report))
}

fn write_video(
    path: &Path,
    env: &EnvConfig,
    frames: &BTreeMap<usize, Vec<Vec<Vec<u8>>>>,
    report: &EvalReport,
    name: &str,
) -> Result<()> {
    #[cfg(feature = "video")]
    {
        let sizes: Vec<(usize, usize)> = env.cameras.iter().map(|c| (c.width as usize, c.height as usize)).collect();
        let outcomes: Vec<String> = report
            .episodes
            .iter()
            .filter(|e| frames.contains_key(&e.episode))
            .map(|e| format!("{}:{}", e.episode, if e.success { "success" } else { "fail" }))
            .collect();
        let caption = format!("{name} on {}: {}", env.scene.name, outcomes.join(" "));
        let mut clip = dataset::export::ClipWriter::create(path, &sizes, &caption, env.control_hz)?;
        for episode in frames.values() {
            for images in episode {
                clip.push(&images.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
            }
        }
        let n = clip.finish().with_context(|| format!("writing {}", path.display()))?;
        tracing::info!(frames = n, "wrote {}", path.display());
        Ok(())
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = (env, frames, report, name);
        Err(super::video_support::missing(&format!("writing {}", path.display())))
    }
}

/// Prints one summary line.
pub fn print_summary(s: &EvalSummary) -> Result<()> {
    outln!(
        "{}: {}/{} success = {:.1}% (95% CI {:.1}–{:.1}%), mean length {:.1} steps, cycle time {} steps, {:.1} s",
        s.policy,
        s.successes,
        s.episodes,
        100.0 * s.success_rate,
        100.0 * s.ci95.0,
        100.0 * s.ci95.1,
        s.mean_length,
        cycle_time(s.mean_success_length),
        s.wall_s
    )?;
    Ok(())
}

/// A cycle time (mean length of the successful episodes) for a table: `–` without a success.
pub fn cycle_time(steps: Option<f64>) -> String {
    steps.map_or_else(|| "–".to_string(), |s| format!("{s:.1}"))
}

/// Runs `armstack eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    // Every output is checked before the evaluation, not after it.
    if let Some(path) = &args.json {
        check_output_file(path, "--json")?;
    }
    if let Some(path) = &args.video {
        #[cfg(not(feature = "video"))]
        return Err(super::video_support::missing(&format!("--video {}", path.display())));
        #[cfg(feature = "video")]
        check_output_file(path, "--video")?;
    }
    let video = args.video.as_deref().map(|p| (p, args.video_episodes));
    let (summary, _) = evaluate_policy(&args.policy, args.episodes, &args.rollout, args.device, video)?;
    print_summary(&summary)?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
