//! `armstack bench bus`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::outln;

/// Arguments of `armstack bench bus`.
#[derive(Args, Debug)]
pub struct BusBenchArgs {
    /// Seconds per stream.
    #[arg(long, default_value_t = 5.0, value_parser = crate::cmd::arg_ranges::duration_s())]
    pub seconds: f64,
    /// Also write the JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the bus benchmark and prints the table and JSON.
pub fn run(args: BusBenchArgs) -> Result<()> {
    let cfg = bus::bench::BenchConfig { duration: Duration::from_secs_f64(args.seconds) };
    let rows = bus::bench::run(&cfg)?;
    outln!(
        "{:<28} {:<11} {:>8} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "stream",
        "path",
        "sent",
        "recv",
        "lost",
        "msg/s",
        "p50 µs",
        "p99 µs",
        "bytes"
    )?;
    for r in &rows {
        outln!(
            "{:<28} {:<11} {:>8} {:>8} {:>7} {:>10.1} {:>9.1} {:>9.1} {:>9}",
            r.name,
            r.path,
            r.sent,
            r.received,
            r.dropped,
            r.msgs_per_s,
            r.p50_us,
            r.p99_us,
            r.payload_bytes
        )?;
    }
    super::emit_json(&rows, args.json.as_ref())
}
