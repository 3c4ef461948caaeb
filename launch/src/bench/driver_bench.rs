//! `armstack bench driver`: full servo cycles (one sync read of every servo's position, velocity
//! and current + one bulk write of every goal) through the real driver code, over the emulator's
//! pseudo-terminal at 1 Mbps (replies paced at the baud rate) or a real port.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use robot_driver::control_table as ct;
use serde::Serialize;

use super::emit_json;
use crate::outln;
use crate::robots::widowx::DriverArgs;

/// Arguments of `armstack bench driver`.
#[derive(Args, Debug)]
pub struct DriverBenchArgs {
    #[command(flatten)]
    pub conn: DriverArgs,
    /// Cycles per row.
    #[arg(long, default_value_t = 2000, value_parser = crate::cmd::arg_ranges::at_least(1usize))]
    pub cycles: usize,
    /// Write the rows as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One benchmark row.
#[derive(Debug, Serialize)]
pub struct DriverBenchRow {
    /// What one cycle does.
    pub cycle: String,
    /// Byte-corruption probability injected (emulator).
    pub corrupt_byte: f64,
    /// Cycles run.
    pub cycles: usize,
    /// Cycles per second.
    pub hz: f64,
    /// Cycle latency, ms.
    pub p50_ms: f64,
    /// Cycle latency, ms.
    pub p99_ms: f64,
    /// Cycle latency, ms.
    pub max_ms: f64,
    /// Bytes on the wire per cycle (both directions).
    pub bytes_per_cycle: f64,
    /// Retransmissions.
    pub retries: u64,
    /// Reads that failed after every retry.
    pub failed_reads: u64,
}

fn bench_row(conn_args: &DriverArgs, full: bool, corrupt: f64, cycles: usize) -> Result<DriverBenchRow> {
    let args = DriverArgs { emulate_corrupt: if conn_args.emulate { corrupt } else { 0.0 }, ..conn_args.clone() };
    let mut conn = args.connect()?;
    let arm = &mut conn.arm;
    arm.start()?;
    let mut state = arm.enable_torque()?;
    let base = state.q_rad;
    let stats0 = arm.bus_stats();
    let mut ms = Vec::with_capacity(cycles);
    let mut failed = 0;
    let ids = arm.ids();
    let t_all = Instant::now();
    for k in 0..cycles {
        let t0 = Instant::now();
        if full {
            match arm.read_state() {
                Ok(s) => state = s,
                Err(_) => failed += 1,
            }
            // A slow sinusoid around the start pose on every joint.
            let phase = k as f64 * 0.01;
            let q: [f64; 6] = std::array::from_fn(|i| base[i] + 0.1 * (phase + i as f64).sin());
            arm.write_goal(&q, 0.5, &state)?;
        } else {
            let replies = arm.bus_mut().sync_read(ct::STATE_BLOCK.address, ct::STATE_BLOCK.size, &ids)?;
            failed += replies.iter().filter(|r| r.is_err()).count() as u64;
        }
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let secs = t_all.elapsed().as_secs_f64();
    let stats = arm.bus_stats();
    let p = bus::Percentiles::of(&ms);
    Ok(DriverBenchRow {
        cycle: if full { "sync read + bulk write" } else { "sync read only" }.into(),
        corrupt_byte: args.emulate_corrupt,
        cycles,
        hz: cycles as f64 / secs,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
        max_ms: p.max_ms,
        bytes_per_cycle: ((stats.tx_bytes + stats.rx_bytes) - (stats0.tx_bytes + stats0.rx_bytes)) as f64
            / cycles as f64,
        retries: stats.retries - stats0.retries,
        failed_reads: failed,
    })
}

/// Runs `armstack bench driver`.
pub fn run(args: DriverBenchArgs) -> Result<()> {
    if args.cycles == 0 {
        bail!("--cycles must be positive");
    }
    if !args.conn.emulate && args.conn.port.is_none() {
        bail!("pass --emulate (the servo emulator on a pseudo-terminal) or --port for a real arm");
    }
    let map = args.conn.map()?;
    let baud = args.conn.baud.unwrap_or(map.baud);
    let mut rows =
        vec![bench_row(&args.conn, false, 0.0, args.cycles)?, bench_row(&args.conn, true, 0.0, args.cycles)?];
    if args.conn.emulate {
        rows.push(bench_row(&args.conn, true, 0.01, args.cycles)?);
    }
    let servos = map.servos().len();
    outln!(
        "{} servos at {baud} baud over {}",
        servos,
        if args.conn.emulate {
            "the emulator's pseudo-terminal (replies paced at the baud rate)"
        } else {
            "the serial port"
        }
    )?;
    outln!(
        "| cycle | corrupt bytes | cycles | Hz | p50 ms | p99 ms | max ms | bytes/cycle | retries | failed reads |"
    )?;
    outln!("|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &rows {
        outln!(
            "| {} | {:.0}% | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} |",
            r.cycle,
            r.corrupt_byte * 100.0,
            r.cycles,
            r.hz,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.bytes_per_cycle,
            r.retries,
            r.failed_reads
        )?;
    }
    emit_json(&rows, args.json.as_ref())
}
