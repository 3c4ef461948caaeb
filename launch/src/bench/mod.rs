//! `armstack bench …`: benchmarks as commands that print a table and JSON.

mod bus_bench;
mod dataset_bench;
mod driver_bench;
mod fuzz;
mod policy_bench;
mod sim_bench;
mod train_bench;
mod train_bench_rows;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;

use crate::outln;
use crate::output_path::check_output_file;

/// `armstack bench …`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Simulator throughput per scene: physics and control steps/s, real-time factor, frames/s.
    Sim(sim_bench::SimBenchArgs),
    /// Bus latency and throughput between two sessions on loopback, beside bare zenoh.
    Bus(bus_bench::BusBenchArgs),
    /// Dataset write throughput and random-access training-sample read throughput.
    Dataset(dataset_bench::DatasetBenchArgs),
    /// One-chunk inference latency of the state-only and vision policies.
    Inference(policy_bench::InferenceBenchArgs),
    /// The control loop at 10 and 50 Hz with a policy in it: period jitter, observation→command latency.
    Deploy(policy_bench::DeployBenchArgs),
    /// Dynamixel driver: full read+write servo cycles per second and cycle latency (emulator or port).
    Driver(driver_bench::DriverBenchArgs),
    /// Hostile messages of every kind against the real sim, driver (emulated) and recorder on an
    /// isolated loopback bus: crashes, limit violations, e-stop holds, lost episodes (all must be 0).
    Fuzz(fuzz::FuzzArgs),
    /// Training: samples/s, ms and peak memory of one optimiser update of every trained model.
    Train(train_bench::TrainBenchArgs),
}

impl BenchCommand {
    /// Where `--json` writes the rows, if given.
    fn json_path(&self) -> Option<&PathBuf> {
        match self {
            BenchCommand::Sim(a) => a.json.as_ref(),
            BenchCommand::Bus(a) => a.json.as_ref(),
            BenchCommand::Dataset(a) => a.json.as_ref(),
            BenchCommand::Inference(a) => a.json.as_ref(),
            BenchCommand::Deploy(a) => a.json.as_ref(),
            BenchCommand::Driver(a) => a.json.as_ref(),
            BenchCommand::Fuzz(a) => a.json.as_ref(),
            BenchCommand::Train(a) => a.json.as_ref(),
        }
    }
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> Result<()> {
    // A benchmark can take minutes: the JSON file is checked before it starts.
    if let Some(path) = cmd.json_path() {
        check_output_file(path, "--json")?;
    }
    match cmd {
        BenchCommand::Sim(args) => sim_bench::run(args),
        BenchCommand::Bus(args) => bus_bench::run(args),
        #[cfg(feature = "video")]
        BenchCommand::Dataset(args) => dataset_bench::run(args),
        #[cfg(not(feature = "video"))]
        BenchCommand::Dataset(_) => Err(crate::cmd::video_support::missing("bench dataset (it encodes and decodes)")),
        BenchCommand::Inference(args) => policy_bench::run_inference(args),
        BenchCommand::Deploy(args) => policy_bench::run_deploy(args),
        BenchCommand::Driver(args) => driver_bench::run(args),
        BenchCommand::Fuzz(args) => fuzz::run(args),
        BenchCommand::Train(args) => train_bench::run(args),
    }
}

/// Prints rows as pretty JSON on stdout and, when asked, writes them to a file.
pub fn emit_json<T: Serialize>(rows: &T, path: Option<&PathBuf>) -> Result<()> {
    let json = serde_json::to_string_pretty(rows)?;
    outln!("{json}")?;
    if let Some(path) = path {
        std::fs::write(path, &json).with_context(|| format!("writing --json {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
