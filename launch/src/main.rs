//! `armstack`: the command-line entry point of the Armstack control stack.
//!
//! Every verb maps to one module under `cmd/`; libraries below never print, only this crate does.

mod bench;
mod cmd;
mod curves_png;
mod heap;
mod launch_file;
mod nodes;
mod output_path;
mod png_out;
mod record;
mod robots;
mod shutdown;
mod stdout;
mod teleop;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Armstack: a Rust control stack for WidowX-style robot arms.
#[derive(Parser, Debug)]
#[command(name = "armstack", version, about, long_about = None)]
struct Cli {
    /// Robot name used in key expressions `armstack/<robot>/<topic>` (env ARMSTACK_ROBOT).
    #[arg(long, global = true)]
    robot_name: Option<String>,
    /// A zenoh JSON5 config file to span machines, e.g. the profiles in config/zenoh/ (env
    /// ARMSTACK_ZENOH_CONFIG).
    #[arg(long, global = true)]
    zenoh_config: Option<PathBuf>,
    /// Log filter, e.g. `info`, `debug`, `sim=debug`. When not given: the RUST_LOG environment
    /// variable if set, else `info,zenoh=warn,zenoh::net::routing=error,video=warn`.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job in one command: record noisy scripted demonstrations, train BC, fine-tune
    /// with CO-RFT, evaluate both, print a table and write a rollout video.
    Demo(cmd::demo::DemoArgs),
    /// Train a policy (behaviour cloning, CO-RFT offline RL, online EXPO / SAC / H2O, pre-training).
    #[command(subcommand)]
    Train(cmd::train::TrainCommand),
    /// Evaluate a policy in the sim: success rate with a 95% interval, episode length, video.
    Eval(cmd::eval::EvalArgs),
    /// Run a policy on the bus against a robot: inference thread, chunk executor, commands.
    Deploy(cmd::deploy::DeployArgs),
    /// Run the Dynamixel driver node for a WidowX-style arm (hardware or --emulate).
    Driver(cmd::driver::DriverCmdArgs),
    /// Calibrate a WidowX-style arm: homing offsets and joint ranges → a servo map file.
    Calibrate(cmd::calibrate::CalibrateArgs),
    /// Run the simulator node on the bus.
    Sim(cmd::sim::SimArgs),
    /// Start the nodes a launch file lists (one process, a thread per node).
    Launch(cmd::launch::LaunchArgs),
    /// Inspect the bus: list topics, echo messages, measure rates.
    #[command(subcommand)]
    Topics(cmd::topics::TopicsCommand),
    /// List and show scenes.
    #[command(subcommand)]
    Scene(cmd::scene::SceneCommand),
    /// Render a scene's cameras (RGB and depth, side by side) to a PNG.
    Render(cmd::render::RenderArgs),
    /// Teleoperate the robot (keyboard, gamepad or the scripted expert).
    Teleop(cmd::teleop::TeleopArgs),
    /// Teleoperate and record a LeRobot v3.0 dataset.
    Record(cmd::record::RecordArgs),
    /// Inspect, replay, export and rate datasets.
    #[command(subcommand)]
    Dataset(cmd::dataset::DatasetCommand),
    /// Action-free video for pre-training: ingest into frame stores.
    #[command(subcommand)]
    Video(cmd::video::VideoCommand),
    /// Learning curves of online runs (seeds × methods × scenes) as one PNG and CSV.
    Curves(cmd::curves::CurvesArgs),
    /// Benchmarks: print a table and JSON.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// The log filter when neither `--log` nor RUST_LOG is given.
const DEFAULT_LOG_FILTER: &str = "info,zenoh=warn,zenoh::net::routing=error,video=warn";

/// Logs to stderr with the `--log` filter; without one, RUST_LOG's, else [`DEFAULT_LOG_FILTER`].
fn init_tracing(flag: Option<&str>) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let env_filter = match flag {
        Some(filter) => EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("--log {filter}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// Lets every flag of every verb take a value that looks like a negative number (`--rate -5`),
/// so that the flag's range check reports it instead of "unexpected argument '-5'".
fn allow_negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let takes_value = arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.takes_values());
        arg.allow_negative_numbers(takes_value)
    })
    .mut_subcommands(allow_negative_numbers)
}

fn parse_cli() -> Cli {
    let matches = allow_negative_numbers(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let heap_set = heap::keep_freed_buffers();
    match run(parse_cli(), heap_set) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`armstack … | head`): stop quietly.
        Err(e) if stdout::is_closed_stdout(&e) => ExitCode::from(stdout::CLOSED_STDOUT_STATUS),
        Err(e) => {
            // The message and its causes, never a backtrace: these are the user's errors (a
            // missing file, a wrong flag), also when RUST_BACKTRACE is set. Panics still print one.
            eprintln!("Error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the verb of `cli`.
fn run(cli: Cli, heap_set: bool) -> Result<()> {
    init_tracing(cli.log.as_deref())?;
    if !heap_set {
        tracing::debug!("glibc refused a heap setting (mallopt); its defaults stay, which is only slower");
    }
    let mut bus_config = bus::BusConfig::from_env();
    if let Some(robot) = &cli.robot_name {
        bus_config.robot = robot.clone();
    }
    if let Some(path) = &cli.zenoh_config {
        bus_config.zenoh_config = Some(path.clone());
    }
    match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Train(c) => cmd::train::run(c),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Deploy(args) => cmd::deploy::run(args, &bus_config),
        Command::Driver(args) => cmd::driver::run(args, &bus_config),
        Command::Calibrate(args) => cmd::calibrate::run(args),
        Command::Sim(args) => cmd::sim::run(args, &bus_config),
        Command::Launch(args) => cmd::launch::run(args, &bus_config),
        Command::Topics(c) => cmd::topics::run(c, &bus_config),
        Command::Scene(c) => cmd::scene::run(c),
        Command::Render(args) => cmd::render::run(args),
        Command::Teleop(args) => cmd::teleop::run(args, &bus_config),
        Command::Record(args) => cmd::record::run(args, &bus_config),
        Command::Dataset(c) => cmd::dataset::run(c, &bus_config),
        Command::Video(c) => cmd::video::run(c),
        Command::Curves(args) => cmd::curves::run(args),
        Command::Bench(c) => bench::run(c),
    }
}
