//! `armstack demo`: the main job on the embedded default, end to end — scripted mixed-quality
//! demonstrations of a scene, behaviour cloning (on every demonstration, and on the successful
//! ones only), CO-RFT fine-tuning, BC at CO-RFT's number of actor updates, evaluation of all four
//! on the same scenes, a table and a rollout video.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use dataset::writer::DatasetWriter;
use policy::train::jobs::{BcJob, CoRftJob};
use policy::train::TrainSettings;
use policy::Variant;

use super::arg_ranges;
use super::demo_quality::QualityArg;
use super::eval::{evaluate_policy, print_summary, EvalSummary};
use super::policy_args::{check_device, open_datasets, DeviceKind, ExecArg, RolloutArgs, EVAL_SEED};
use super::train::VariantArg;
use crate::outln;
use crate::output_path::{prepare_output_dir, ExistingDir};
use crate::shutdown::stop_flag;
use crate::with_train_backend;

/// Noise of `--quality noisy` when `--noise` is not given (the demo's former default).
const DEFAULT_NOISE: f64 = 0.3;

/// `armstack demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Output folder (dataset, runs, video, summary).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Scene.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// Demonstrations to record.
    #[arg(long, default_value_t = 50, value_parser = arg_ranges::at_least(1u64))]
    pub demos: u64,
    /// Demonstration quality: `mixed` (expert demonstrations, a share --mistake-rate of which
    /// contain one recorded mistake), `expert` (clean, varied) or `noisy` (--noise).
    #[arg(long, value_enum, default_value_t = QualityArg::Mixed)]
    pub quality: QualityArg,
    /// Share of `--quality mixed` demonstrations that contain one mistake.
    #[arg(long, default_value_t = sim::expert::DEFAULT_MISTAKE_RATE, value_parser = arg_ranges::unit_interval())]
    pub mistake_rate: f64,
    /// Per-step action noise of the noisy level, in [0, 1]; giving it selects that level
    /// (`--quality noisy` without it uses 0.3).
    #[arg(long, value_parser = arg_ranges::unit_interval(), conflicts_with_all = ["mistake_rate"])]
    pub noise: Option<f64>,
    /// Observation variant (vision renders cameras and trains the VLA).
    #[arg(long, value_enum, default_value_t = VariantArg::State)]
    pub variant: VariantArg,
    /// BC steps.
    #[arg(long, default_value_t = 1500, value_parser = arg_ranges::at_least(1u64))]
    pub bc_steps: u64,
    /// CO-RFT steps (the first half trains the critic alone).
    #[arg(long, default_value_t = 1000, value_parser = arg_ranges::at_least(1u64))]
    pub co_rft_steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::at_least(1usize))]
    pub batch_size: usize,
    /// Evaluation episodes per policy (the same unseen scenes for each).
    #[arg(long, default_value_t = 100, value_parser = arg_ranges::at_least(1usize))]
    pub eval_episodes: usize,
    /// Training seed (initialisation and batches).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Seed of the demonstrations (episode k of the recording uses demo_seed + k; at most
    /// 2^63 − 1, since datasets store seeds as int64).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::int_range(0u64, i64::MAX as u64))]
    pub demo_seed: u64,
    /// Critic ensemble size.
    #[arg(long, default_value_t = 4, value_parser = arg_ranges::at_least(1usize))]
    pub critics: usize,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
}

/// Runs `armstack demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    // Before recording: a device this build lacks would otherwise train on the CPU backend and
    // fail only at the evaluation.
    check_device(args.device)?;
    let stop = stop_flag()?;
    let t0 = Instant::now();
    let vision = args.variant == VariantArg::Vision;
    let data_dir = args.out.join("data");
    let bc_dir = args.out.join("bc");
    let rft_dir = args.out.join("co_rft");
    let bc_long_dir = args.out.join("bc_equal_updates");
    let bc_ok_dir = args.out.join("bc_successful_only");
    // Only a previous demo's folder is replaced; anything else is the user's and stays.
    let previous = ExistingDir::ReplacePrevious { what: "demo", markers: &["summary.json", "data/meta/info.json"] };
    prepare_output_dir(&args.out, "--out", previous)?;
    // 1. Demonstrations.
    let scene = sim::load_scene(&args.scene)?;
    let mut env = sim::EnvConfig::new(scene);
    if vision {
        env = env.with_cameras(64, 64);
    }
    let cameras = policy::demos::camera_features(&env);
    let mut writer = DatasetWriter::create(&data_dir, &policy::demos::dataset_spec(&env, cameras))?;
    let quality = match args.noise {
        Some(noise) => sim::DemoQuality::noisy(noise),
        None => args.quality.level(args.mistake_rate, DEFAULT_NOISE),
    };
    let collected = policy::demos::collect(&env, &mut writer, args.demos, quality, args.demo_seed, 4)?;
    writer.finish()?;
    outln!(
        "1/6 recorded {} demonstrations of {} at quality {quality} ({} succeeded, {} frames) in {:.0} s",
        collected.episodes,
        args.scene,
        collected.successes,
        collected.frames,
        t0.elapsed().as_secs_f64()
    )?;
    let settings = |steps: u64, lr: f64| TrainSettings {
        steps,
        batch_size: args.batch_size,
        lr,
        seed: args.seed,
        eval_every: 0,
        log_every: 50,
        checkpoint_every: steps.max(1),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..TrainSettings::default()
    };
    // 2. BC.
    let bc_job = |out: &PathBuf, steps: u64, successful_only: bool| BcJob {
        out: out.clone(),
        variant: if vision { Variant::Vision } else { Variant::StateOnly },
        horizon: 10,
        config: None,
        tip_features: None,
        action_targets: None,
        settings: TrainSettings { successful_only, ..settings(steps, 1e-3) },
        eval: None,
        resume: false,
        encoder: None,
    };
    let train_bc = |job: &BcJob| -> Result<policy::train::TrainReport> {
        let datasets = open_datasets(std::slice::from_ref(&data_dir), vision)?;
        Ok(with_train_backend!(args.device, B, {
            policy::train::jobs::run_bc::<B>(job, datasets, &stop, &Default::default())
        })?)
    };
    let r = train_bc(&bc_job(&bc_dir, args.bc_steps, false))?;
    outln!(
        "2/6 behaviour cloning: {} steps, {:.0} samples/s ({:.0} s so far)",
        r.steps,
        r.samples_per_s,
        t0.elapsed().as_secs_f64()
    )?;
    // 3. CO-RFT.
    let mut rl = policy::train::co_rft::CoRftConfig::default();
    rl.critic.ensemble = args.critics;
    rl.critic.layers = 2;
    rl.cql_samples = 4;
    rl.critic_warmup = args.co_rft_steps / 2;
    // The actor updates CO-RFT makes after BC: BC trained on for as many steps is the baseline
    // at an equal number of actor updates.
    let actor_updates = args.co_rft_steps.saturating_sub(rl.critic_warmup).div_ceil(rl.actor_every.max(1));
    let job = CoRftJob {
        init: bc_dir.clone(),
        out: rft_dir.clone(),
        rl,
        settings: settings(args.co_rft_steps, 3e-4),
        eval: None,
        resume: false,
        encoder: None,
    };
    let datasets = open_datasets(std::slice::from_ref(&data_dir), vision)?;
    let r = with_train_backend!(args.device, B, {
        policy::train::jobs::run_co_rft::<B>(&job, datasets, &stop, &Default::default())
    })?;
    outln!(
        "3/6 CO-RFT: {} steps ({actor_updates} actor updates), {:.0} samples/s ({:.0} s so far)",
        r.steps,
        r.samples_per_s,
        t0.elapsed().as_secs_f64()
    )?;
    // 4. BC with as many actor updates as BC + CO-RFT.
    let r = train_bc(&bc_job(&bc_long_dir, args.bc_steps + actor_updates, false))?;
    outln!(
        "4/6 behaviour cloning for {} steps (as many actor updates as CO-RFT's policy) ({:.0} s so far)",
        r.steps,
        t0.elapsed().as_secs_f64()
    )?;
    // 5. Filtered BC: the successful demonstrations only (none: skipped).
    let filtered = collected.successes > 0;
    if filtered {
        train_bc(&bc_job(&bc_ok_dir, args.bc_steps, true))?;
        outln!(
            "5/6 behaviour cloning on the {} successful demonstrations ({:.0} s so far)",
            collected.successes,
            t0.elapsed().as_secs_f64()
        )?;
    } else {
        outln!("5/6 no demonstration succeeded: no filtered behaviour cloning")?;
    }
    // 6. Evaluation.
    let rollout = RolloutArgs { scene: Some(args.scene.clone()), num_envs: 25, exec: ExecArg::Auto };
    let video = args.out.join("co_rft_rollouts.mp4");
    let (bc_sum, _) = evaluate_policy(&bc_dir, args.eval_episodes, EVAL_SEED, &rollout, args.device, None)?;
    let (bc_long_sum, _) = evaluate_policy(&bc_long_dir, args.eval_episodes, EVAL_SEED, &rollout, args.device, None)?;
    let bc_ok_sum = if filtered {
        Some(evaluate_policy(&bc_ok_dir, args.eval_episodes, EVAL_SEED, &rollout, args.device, None)?.0)
    } else {
        None
    };
    let (rft_sum, _) = evaluate_policy(
        &rft_dir,
        args.eval_episodes,
        EVAL_SEED,
        &rollout,
        args.device,
        cfg!(feature = "video").then_some((video.as_path(), 4)),
    )?;
    outln!("6/6 evaluated the policies on the same {} unseen {} scenes", args.eval_episodes, args.scene)?;
    let long_name = format!("BC, {} steps", args.bc_steps + actor_updates);
    let mut rows = vec![("BC", &bc_sum), (long_name.as_str(), &bc_long_sum)];
    if let Some(s) = &bc_ok_sum {
        rows.push(("BC, successful demos only", s));
    }
    rows.push(("CO-RFT", &rft_sum));
    print_table(&rows, collected.successes, collected.episodes)?;
    let summary = serde_json::json!({
        "scene": args.scene, "quality": quality.to_string(), "demos": collected.episodes,
        "demo_successes": collected.successes, "bc": bc_sum, "bc_equal_actor_updates": bc_long_sum,
        "bc_successful_only": bc_ok_sum,
        "co_rft": rft_sum, "co_rft_actor_updates": actor_updates, "wall_s": t0.elapsed().as_secs_f64(),
    });
    std::fs::write(args.out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    if cfg!(feature = "video") {
        outln!("rollout video: {}", video.display())?;
    } else {
        outln!("no rollout video: this build has no video support (the `video` feature)")?;
    }
    outln!("done in {:.0} s; everything is in {}", t0.elapsed().as_secs_f64(), args.out.display())?;
    Ok(())
}

fn print_table(rows: &[(&str, &EvalSummary)], demo_ok: u64, demos: u64) -> Result<()> {
    outln!()?;
    outln!("| policy | success | 95% CI | mean length | cycle time (successes) |")?;
    outln!("|---|---|---|---|---|")?;
    outln!("| expert demos | {demo_ok}/{demos} | | | |")?;
    for (name, s) in rows {
        outln!(
            "| {name} | {}/{} ({:.0}%) | {:.0}–{:.0}% | {:.1} | {} |",
            s.successes,
            s.episodes,
            100.0 * s.success_rate,
            100.0 * s.ci95.0,
            100.0 * s.ci95.1,
            s.mean_length,
            super::eval::cycle_time(s.mean_success_length)
        )?;
    }
    for (_, s) in rows {
        print_summary(s)?;
    }
    Ok(())
}
