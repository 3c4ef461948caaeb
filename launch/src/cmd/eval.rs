//! `armstack eval`: vectorised sim rollouts of a policy folder; success rate with a 95% interval,
//! mean episode length, and a video of the first episodes. With several `--policy` folders or
//! `--compare-exec`, one evaluation per policy and execution mode on the same episodes, and a
//! table of them (with a row per mode pooling the policies, e.g. training seeds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use policy::eval::{eval_env, evaluate, wilson95, EvalReport};
use policy::{ExecMode, Policy, PolicySpec};
use serde::Serialize;
use sim::EnvConfig;

use super::arg_ranges;
use super::policy_args::{check_device, DeviceKind, ExecArg, RolloutArgs, EVAL_SEED};
use crate::outln;
use crate::output_path::check_output_file;
use crate::with_backend;

/// `armstack eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Policy folder (runs/NAME); repeat to evaluate several (e.g. training seeds) and pool them.
    #[arg(long, required = true)]
    pub policy: Vec<PathBuf>,
    /// Evaluate every chunk execution mode (open-loop, ensemble, async) on the same episodes and
    /// print a table: mode × success (95% interval) × cycle time.
    #[arg(long, conflicts_with = "exec")]
    pub compare_exec: bool,
    /// Episodes.
    #[arg(long, default_value_t = 50, value_parser = arg_ranges::at_least(1usize))]
    pub episodes: usize,
    /// Write the first `--video-episodes` episodes to this mp4 (one policy, one mode).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Episodes in the video.
    #[arg(long, default_value_t = 4, value_parser = arg_ranges::at_least(1usize))]
    pub video_episodes: usize,
    /// Write the summary as JSON here (its folder must exist; checked before evaluating): an
    /// object for one evaluation, an array of them for several policies or `--compare-exec`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// Scene seed of the first episode (episode k: seed + k). Distinct from the recording seeds
    /// and from training's validation seeds by default, so evaluation scenes are unseen and
    /// never the ones a checkpoint was selected on.
    #[arg(long, default_value_t = EVAL_SEED, value_parser = arg_ranges::int_range(0u64, i64::MAX as u64))]
    pub eval_seed: u64,
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
    /// Chunk execution mode (`open-loop`, `ensemble`, `async`).
    pub exec: String,
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
    /// Failures that ran to the time limit.
    pub time_limit: usize,
    /// Failures ended by an object falling off the table.
    pub off_table: usize,
    /// Episodes by how many of the scene's success conditions held at the end: entry k counts
    /// those with exactly k (the last entry: the successes).
    pub conditions_met: Vec<usize>,
    /// Wall time, s.
    pub wall_s: f64,
}

/// Evaluates the policy in `dir` on `episodes` scenes from seed `seed`; when `video` is set,
/// renders cameras and writes the first `video_episodes` episodes there.
pub fn evaluate_policy(
    dir: &Path,
    episodes: usize,
    seed: u64,
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
    let cfg = rollout.eval_config(episodes, spec.config.horizon, seed);
    let exec = cfg.exec.unwrap_or_else(|| ExecMode::default_for(spec.action_kind, spec.config.horizon));
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
    let off_table = report.episodes.iter().filter(|e| e.failed).count();
    let mut conditions_met = vec![0; env.scene.success.len() + 1];
    for e in &report.episodes {
        let k = (e.conditions_met as usize).min(env.scene.success.len());
        conditions_met[k] += 1;
    }
    let summary = EvalSummary {
        policy: dir.display().to_string(),
        scene: env.scene.name.clone(),
        exec: exec.name().to_string(),
        episodes: report.episodes.len(),
        successes,
        success_rate: report.success_rate,
        ci95: report.ci95,
        mean_length: report.mean_length,
        mean_success_length: report.mean_success_length,
        time_limit: report.episodes.len() - successes - off_table,
        off_table,
        conditions_met,
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
        "{} ({}): {}/{} success = {:.1}% (95% CI {:.1}–{:.1}%), mean length {:.1} steps, cycle time {} steps, {:.1} s",
        s.policy,
        s.exec,
        s.successes,
        s.episodes,
        100.0 * s.success_rate,
        100.0 * s.ci95.0,
        100.0 * s.ci95.1,
        s.mean_length,
        cycle_time(s.mean_success_length),
        s.wall_s
    )?;
    let mut ends =
        format!("  failures: {} at the time limit, {} with an object off the table", s.time_limit, s.off_table);
    if s.conditions_met.len() > 2 {
        let parts: Vec<String> = s.conditions_met.iter().enumerate().map(|(k, n)| format!("{k}: {n}")).collect();
        let of = s.conditions_met.len() - 1;
        ends.push_str(&format!("; episodes by success conditions met at the end (of {of}): {}", parts.join(", ")));
    }
    outln!("{ends}")?;
    Ok(())
}

/// A cycle time (mean length of the successful episodes) for a table: `–` without a success.
pub fn cycle_time(steps: Option<f64>) -> String {
    steps.map_or_else(|| "–".to_string(), |s| format!("{s:.1}"))
}

/// The execution modes `--compare-exec` evaluates.
const COMPARED_MODES: [ExecArg; 3] = [ExecArg::OpenLoop, ExecArg::Ensemble, ExecArg::Async];

/// Prints the comparison table of `rows` (per policy and mode), then, with several policies, one
/// row per mode pooling them: successes summed, the Wilson 95% interval of the pooled rate, and
/// the cycle time over every success.
pub fn print_table(rows: &[EvalSummary]) -> Result<()> {
    outln!("| policy | exec | successes | success (95% CI) | cycle time (steps) |")?;
    outln!("|---|---|---|---|---|")?;
    let line = |name: &str, exec: &str, k: usize, n: usize, cycle: Option<f64>| {
        let (lo, hi) = wilson95(k, n);
        let rate = 100.0 * k as f64 / n.max(1) as f64;
        outln!(
            "| {name} | {exec} | {k}/{n} | {rate:.1}% ({:.1}–{:.1}) | {} |",
            100.0 * lo,
            100.0 * hi,
            cycle_time(cycle)
        )
    };
    for r in rows {
        line(&r.policy, &r.exec, r.successes, r.episodes, r.mean_success_length)?;
    }
    let policies: Vec<&str> =
        rows.iter().map(|r| r.policy.as_str()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    if policies.len() > 1 {
        let mut modes: Vec<&str> = Vec::new();
        for r in rows {
            if !modes.contains(&r.exec.as_str()) {
                modes.push(&r.exec);
            }
        }
        for mode in modes {
            let of_mode: Vec<&EvalSummary> = rows.iter().filter(|r| r.exec == mode).collect();
            let (k, n) = of_mode.iter().fold((0, 0), |(k, n), r| (k + r.successes, n + r.episodes));
            let steps: f64 = of_mode.iter().filter_map(|r| r.mean_success_length.map(|l| l * r.successes as f64)).sum();
            let cycle = (k > 0).then(|| steps / k as f64);
            line(&format!("pooled ({} policies)", of_mode.len()), mode, k, n, cycle)?;
        }
    }
    Ok(())
}

/// Runs `armstack eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let modes: Vec<ExecArg> = if args.compare_exec { COMPARED_MODES.to_vec() } else { vec![args.rollout.exec] };
    let several = args.policy.len() > 1 || modes.len() > 1;
    if several && args.video.is_some() {
        anyhow::bail!("--video records one evaluation: give one --policy and no --compare-exec");
    }
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
    let mut rows = Vec::new();
    for dir in &args.policy {
        for &exec in &modes {
            let rollout = RolloutArgs { exec, ..args.rollout.clone() };
            let (summary, _) = evaluate_policy(dir, args.episodes, args.eval_seed, &rollout, args.device, video)?;
            print_summary(&summary)?;
            rows.push(summary);
        }
    }
    if several {
        print_table(&rows)?;
    }
    if let Some(path) = &args.json {
        let text = match rows.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            all => serde_json::to_string_pretty(all)?,
        };
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
