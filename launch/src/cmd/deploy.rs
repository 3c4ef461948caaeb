//! `armstack deploy`: a policy node on the bus driving a robot at the policy's control rate: the
//! sim (started in this process, in real time) or a WidowX-style arm through the driver.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use policy::node::{run_policy_node, PolicyNodeConfig, PolicyNodeReport};
use policy::{Policy, PolicySpec};

use super::arg_ranges;
use super::policy_args::{check_device, DeviceKind, ExecArg};
use super::teleop::{supervise_robot, widowx_node, Extra, ExtraNode, RobotKind, RobotNode};
use crate::outln;
use crate::robots::widowx::DriverArgs;
use crate::with_backend;

/// `armstack deploy`.
#[derive(Args, Debug, Clone)]
pub struct DeployArgs {
    /// Policy folder (runs/NAME).
    #[arg(long)]
    pub policy: PathBuf,
    /// Robot to drive.
    #[arg(long, value_enum, default_value = "sim")]
    pub robot: RobotKind,
    /// Scene (sim; default: the policy's training scene).
    #[arg(long)]
    pub scene: Option<String>,
    /// Control rate, Hz (default: the policy's).
    #[arg(long, value_parser = arg_ranges::rate_hz())]
    pub rate: Option<f64>,
    /// Chunk execution.
    #[arg(long, value_enum, default_value_t = ExecArg::Auto)]
    pub exec: ExecArg,
    /// Instruction (default: the policy's first training task).
    #[arg(long)]
    pub task: Option<String>,
    /// Stop after this many episodes.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub episodes: Option<u64>,
    /// Stop after this many control ticks.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub ticks: Option<u64>,
    /// Seed of the first sim episode.
    #[arg(long, default_value_t = 1_000_000, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// The arm's connection (`--robot widowx`).
    #[command(flatten)]
    pub driver: DriverArgs,
}

/// Runs the policy against a real-time sim or the arm; returns the node report and the robot's
/// episodes (successes, total; a real arm reports no successes).
pub fn deploy(
    args: &DeployArgs,
    bus_config: &bus::BusConfig,
    stop: Arc<AtomicBool>,
) -> Result<(PolicyNodeReport, u64, u64)> {
    check_device(args.device)?;
    let mut spec = PolicySpec::load(&args.policy)?;
    if let Some(rate) = args.rate {
        spec.fps = rate;
    }
    let period = Duration::try_from_secs_f64(1.0 / spec.fps).map_err(|_| {
        anyhow::anyhow!("{}: the policy's control rate is {} Hz; pass --rate HZ", args.policy.display(), spec.fps)
    })?;
    let mut node_cfg = PolicyNodeConfig::new(period);
    node_cfg.exec = args.exec.mode(spec.config.horizon);
    node_cfg.instruction = args.task.clone();
    node_cfg.max_ticks = args.ticks;
    let robot = match args.robot {
        RobotKind::Sim => {
            let env = policy::eval::eval_env(&spec, args.scene.as_deref())?;
            env.substeps()?;
            RobotNode::Sim(Box::new(sim::node::SimNodeConfig {
                env,
                seed: args.seed,
                as_fast_as_possible: false,
                max_episodes: args.episodes,
                max_steps: args.ticks.map(|t| t + 1),
                name: "sim".into(),
                expert: None,
                lockstep: None,
                reset_pause: Duration::ZERO,
            }))
        }
        RobotKind::Widowx => {
            if spec.config.env_state_dim > 0 {
                anyhow::bail!(
                    "{}: this policy reads the sim's object poses (observation.environment_state, {} values), \
                     which a real arm does not publish; deploy a policy trained on data recorded on the arm",
                    args.policy.display(),
                    spec.config.env_state_dim
                );
            }
            if let Some(image) = &spec.config.image {
                tracing::warn!(
                    cameras = ?image.cameras,
                    "this policy needs camera/<name> topics: armstack has no camera driver yet, so a camera node of \
                     yours must publish them, or the policy node waits"
                );
            }
            let episodes = robot_driver::episodes::EpisodeConfig {
                max_steps: None,
                reset_pause: Duration::ZERO,
                instruction: args.task.clone().unwrap_or_default(),
                scene: "real".into(),
                max_episodes: args.episodes,
            };
            widowx_node(&args.driver, spec.fps, episodes)?
        }
    };
    // The policy is loaded and warmed up (first-call allocations) before any node starts: one
    // that fails to load ends the run before the robot moves, and never leaves the other nodes
    // waiting for it at the start.
    let (sim_report, _, node) = with_backend!(args.device, B, {
        let mut policy = Policy::<B>::load(&args.policy, &Default::default())?;
        policy.spec = spec.clone();
        let warm = policy::features::RawObs {
            state: vec![0.0; spec.config.state_dim],
            env_state: vec![0.0; spec.config.env_state_dim],
            instruction: String::new(),
            images: spec
                .config
                .image
                .as_ref()
                .map_or(Vec::new(), |i| vec![vec![0u8; i.size * i.size * 3]; i.cameras.len()]),
        };
        policy.act(std::slice::from_ref(&warm))?;
        let extra: ExtraNode<'_, PolicyNodeReport> = Box::new(move |bus, stop, ready| {
            let start = || {
                ready.wait();
            };
            Ok(run_policy_node(&policy, bus, &node_cfg, stop, Some(&start))?)
        });
        // The policy has nothing to finish once the robot ended: no grace.
        let extra = Extra { name: "policy", run: extra, grace: Duration::ZERO };
        supervise_robot(bus_config, robot, None, stop, Some(extra))?.into_result()?
    });
    let node = node.context("the policy node did not report")?;
    Ok((node, sim_report.successes, sim_report.episodes))
}

/// Prints a node report.
pub fn print_report(r: &PolicyNodeReport) -> Result<()> {
    outln!(
        "ticks {}, commands {}, chunks {} ({} late), starved ticks {}, busy skips {}",
        r.ticks,
        r.commands,
        r.executor.chunks,
        r.executor.late_chunks,
        r.executor.starved_ticks,
        r.busy_skips
    )?;
    outln!(
        "observation messages not used: malformed {} | undecodable {} | newer schema {}",
        r.malformed,
        r.decode_errors,
        r.newer_schema
    )?;
    outln!(
        "inference p50 {:.2} ms p99 {:.2} ms; observation→command p50 {:.2} ms p99 {:.2} ms; period p50 {:.2} ms, jitter p99 {:.2} ms",
        r.inference.p50_ms, r.inference.p99_ms, r.obs_to_command.p50_ms, r.obs_to_command.p99_ms, r.period.p50_ms, r.jitter.p99_ms
    )?;
    Ok(())
}

/// Runs `armstack deploy`.
pub fn run(args: DeployArgs, bus_config: &bus::BusConfig) -> Result<()> {
    let stop = crate::shutdown::stop_flag()?;
    let (report, successes, episodes) = deploy(&args, bus_config, stop)?;
    outln!("episodes {episodes}, successes {successes}")?;
    print_report(&report)?;
    Ok(())
}
