//! `armstack sim`: the sim node on the bus.

use anyhow::Result;
use clap::Args;

use super::arg_ranges;
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
    /// Autopilot: the scene's scripted expert drives, with this action noise in [0, 1]
    /// (0: clean demonstrations; 0.3: 82% success on pick_cube, 32% on sort; the README has the
    /// table per scene). Bus commands take over when sent.
    #[arg(long, value_name = "NOISE", value_parser = arg_ranges::unit_interval())]
    pub expert: Option<f64>,
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
        expert: args.expert,
    });
    run_nodes(vec![spec], bus)
}
