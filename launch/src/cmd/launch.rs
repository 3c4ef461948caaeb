//! `armstack launch FILE.toml`: start the nodes a launch file lists.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::launch_file::load_launch;
use crate::nodes::run_nodes;

/// Arguments of `armstack launch`.
#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// The launch file (see launch/examples/).
    pub file: PathBuf,
}

/// Loads the launch file and runs its nodes until Ctrl-C.
pub fn run(args: LaunchArgs, bus: &bus::BusConfig) -> Result<()> {
    let launch = load_launch(&args.file)?;
    let mut bus = bus.clone();
    if let Some(robot) = &launch.robot {
        bus.robot = robot.clone();
    }
    tracing::info!(file = %args.file.display(), nodes = launch.nodes.len(), "launching");
    run_nodes(launch.nodes, &bus)
}
