//! `armstack driver`: the Dynamixel driver node on the bus, on hardware (`--port`) or against the
//! servo emulator (`--emulate`).

use anyhow::{bail, Result};
use clap::Args;
use robot_driver::episodes::EpisodeConfig;
use robot_driver::node::{run_driver_node, DriverNodeConfig, DriverReport};

use super::arg_ranges;
use crate::outln;
use crate::robots::widowx::{DriverArgs, SimKinematics};

/// Arguments of `armstack driver`.
#[derive(Args, Debug)]
pub struct DriverCmdArgs {
    #[command(flatten)]
    pub conn: DriverArgs,
    /// Servo cycle rate (one read of every servo + one write), Hz.
    #[arg(long, default_value_t = 100.0, value_parser = arg_ranges::rate_hz())]
    pub rate: f64,
    /// `joint_state` rate, Hz (default: the cycle rate).
    #[arg(long, value_parser = arg_ranges::rate_hz())]
    pub publish_hz: Option<f64>,
    /// Stop after this many cycles (default: until Ctrl-C).
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub cycles: Option<u64>,
    /// Instruction published on `task` at each episode start.
    #[arg(long, default_value = "")]
    pub task: String,
}

/// The node config for a driver publishing at `publish_hz`.
pub fn node_config(cycle_hz: f64, publish_hz: f64, episodes: EpisodeConfig) -> Result<DriverNodeConfig> {
    if !(cycle_hz > 0.0 && cycle_hz <= 1000.0) {
        bail!("the driver cycle rate must be in (0, 1000] Hz, got {cycle_hz}");
    }
    if !(publish_hz > 0.0 && publish_hz <= cycle_hz) {
        bail!("the joint_state rate must be in (0, {cycle_hz}] Hz (the cycle rate), got {publish_hz}");
    }
    Ok(DriverNodeConfig { name: "driver".into(), cycle_hz, publish_hz, max_cycles: None, episodes, ready_pose: None })
}

/// Prints a driver report.
pub fn print_report(r: &DriverReport, bus: &robot_driver::servo_bus::BusStats) -> Result<()> {
    outln!(
        "driver: {} cycles, cycle time p50 {:.2} ms p99 {:.2} ms, {} overruns, {} joint states",
        r.cycles,
        r.cycle_time.p50_ms,
        r.cycle_time.p99_ms,
        r.overruns,
        r.published
    )?;
    outln!(
        "commands: {} applied, {} rejected, {} stale, {} clamped; watchdog holds {}, e-stops {}, read errors {}",
        r.commands.commands_applied,
        r.commands.commands_rejected,
        r.commands.commands_stale,
        r.commands.commands_clamped,
        r.commands.watchdog_holds,
        r.commands.estop.engaged,
        r.read_errors
    )?;
    outln!(
        "servo bus: {} packets out, {} in, {} CRC errors, {} timeouts, {} retries, {} failed transactions",
        bus.tx_packets,
        bus.rx_packets,
        bus.crc_errors,
        bus.timeouts,
        bus.retries,
        bus.failures
    )?;
    Ok(())
}

/// Runs `armstack driver`.
pub fn run(args: DriverCmdArgs, bus_config: &bus::BusConfig) -> Result<()> {
    let episodes = EpisodeConfig { instruction: args.task.clone(), ..Default::default() };
    let mut cfg = node_config(args.rate, args.publish_hz.unwrap_or(args.rate), episodes)?;
    cfg.max_cycles = args.cycles;
    let mut conn = args.conn.connect()?;
    let stop = crate::shutdown::stop_flag()?;
    let bus = bus::Bus::open(bus_config)?;
    let kin = SimKinematics::widowx250();
    let result = run_driver_node(&mut conn.arm, Some(&kin), &bus, &cfg, &stop, None);
    let stats = conn.arm.bus_stats();
    let report = result?;
    print_report(&report, &stats)?;
    if let Some(fault) = report.fault {
        bail!("the driver stopped the arm: {fault}");
    }
    Ok(())
}
