//! `armstack sim`: the sim node on the bus.

use anyhow::Result;
use clap::Args;

use super::arg_ranges;
use super::demo_quality::{parse_expert_level, ExpertLevel};
use crate::nodes::{run_nodes, NodeSpec, SimNodeSpec};

/// Arguments of `armstack sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Scene name (see `armstack scene list`) or path to a scene TOML file.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// Control rate, Hz.
    #[arg(long, default_value_t = 10.0, value_parser = arg_ranges::rate_hz())]
    pub rate: f64,
    /// Physics rate, Hz (a whole multiple of the control rate).
    #[arg(long, default_value_t = 500.0, value_parser = arg_ranges::rate_hz())]
    pub physics_hz: f64,
    /// Seed of the first episode (episode k uses seed + k).
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Do not sleep between control steps.
    #[arg(long)]
    pub as_fast_as_possible: bool,
    /// Do not render or publish camera frames.
    #[arg(long)]
    pub no_cameras: bool,
    /// Camera image width, pixels.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(1u32, 4096))]
    pub width: u32,
    /// Camera image height, pixels.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(1u32, 4096))]
    pub height: u32,
    /// Stop after this many episodes.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub episodes: Option<u64>,
    /// Stop after this many control steps.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub steps: Option<u64>,
    /// Autopilot: the scene's scripted expert drives, demonstrating at LEVEL: `expert` (clean,
    /// varied), `mixed` (a share --mistake-rate of episodes contain one mistake) or a number in
    /// [0, 1], the per-step action noise of the noisy level (0: the fixed clean plan; the README
    /// has the success table per scene and level). Bus commands take over when sent.
    #[arg(long, value_name = "LEVEL", value_parser = parse_expert_level)]
    pub expert: Option<ExpertLevel>,
    /// Share of `--expert mixed` episodes that contain one mistake.
    #[arg(long, default_value_t = sim::expert::DEFAULT_MISTAKE_RATE, value_parser = arg_ranges::unit_interval())]
    pub mistake_rate: f64,
}

/// Runs the sim node until Ctrl-C or a limit.
pub fn run(args: SimArgs, bus: &bus::BusConfig) -> Result<()> {
    let spec = NodeSpec::Sim(SimNodeSpec {
        name: "sim".into(),
        robot: None,
        scene: args.scene,
        rate_hz: args.rate,
        physics_hz: args.physics_hz,
        seed: args.seed,
        as_fast_as_possible: args.as_fast_as_possible,
        cameras: !args.no_cameras,
        width: args.width,
        height: args.height,
        episodes: args.episodes,
        steps: args.steps,
        expert: None,
        expert_quality: args.expert.map(|level| level.level(args.mistake_rate)),
    });
    run_nodes(vec![spec], bus)
}
