//! `armstack topics list | echo TOPIC | hz TOPIC`: inspect the bus like `ros2 topic`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;

use bus::{Bus, BusConfig};

/// `armstack topics …`
#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// List the keys that carry messages (listens for `--seconds`).
    List {
        /// How long to listen, seconds.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Every robot (`armstack/**`) instead of only this robot.
        #[arg(long)]
        all: bool,
    },
    /// Print messages on a topic (e.g. `joint_state`, `camera/front`) as JSON-like text.
    Echo {
        /// Topic (relative to `armstack/<robot>/`) or a full key expression starting with `armstack/`.
        topic: String,
        /// Stop after this many messages.
        #[arg(long, short = 'n')]
        count: Option<u64>,
    },
    /// Measure a topic's rate, period jitter and bandwidth.
    Hz {
        /// Topic or full key expression.
        topic: String,
        /// Measurement window, seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
}

fn key_for(bus: &Bus, topic: &str) -> String {
    if topic.starts_with("armstack/") {
        topic.to_string()
    } else {
        bus.key(topic.trim_start_matches('/'))
    }
}

/// Runs a topics subcommand.
pub fn run(cmd: TopicsCommand, config: &BusConfig) -> Result<()> {
    let bus = Bus::open(config)?;
    match cmd {
        TopicsCommand::List { seconds, all } => {
            let expr = if all { "armstack/**".to_string() } else { format!("armstack/{}/**", bus.robot()) };
            let sub = bus.raw_subscriber(&expr)?;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut seen: BTreeMap<String, (u64, usize)> = BTreeMap::new();
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if let Some(s) = sub.recv_timeout(left.min(Duration::from_millis(100))) {
                    let e = seen.entry(s.key).or_default();
                    e.0 += 1;
                    e.1 = s.payload.len();
                }
            }
            if seen.is_empty() {
                println!("no messages on {expr} in {seconds} s (is a node running? same --robot-name / zenoh config?)");
            }
            println!("{:<44} {:>8} {:>10}", "key", "hz", "bytes");
            for (key, (n, bytes)) in seen {
                println!("{key:<44} {:>8.1} {bytes:>10}", n as f64 / seconds);
            }
        }
        TopicsCommand::Echo { topic, count } => {
            let key = key_for(&bus, &topic);
            let sub = bus.raw_subscriber(&key)?;
            let stop = crate::shutdown::stop_flag()?;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && count.is_none_or(|c| n < c) {
                let Some(s) = sub.recv_timeout(Duration::from_millis(200)) else { continue };
                match bus::decode_value(&s.payload) {
                    Ok(v) => println!("{}: {}", s.key, bus::value_to_json_string(&v)),
                    Err(e) => println!("{}: <{} bytes that are not CBOR: {e}>", s.key, s.payload.len()),
                }
                n += 1;
            }
        }
        TopicsCommand::Hz { topic, seconds } => {
            let key = key_for(&bus, &topic);
            let sub = bus.raw_subscriber(&key)?;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut arrivals: Vec<u64> = Vec::new();
            let mut bytes = 0usize;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if let Some(s) = sub.recv_timeout(left.min(Duration::from_millis(100))) {
                    arrivals.push(s.arrival_ns);
                    bytes += s.payload.len();
                }
            }
            if arrivals.len() < 2 {
                println!("{key}: {} message(s) in {seconds} s", arrivals.len());
                return Ok(());
            }
            let periods: Vec<f64> = arrivals.windows(2).map(|w| (w[1].saturating_sub(w[0])) as f64 * 1e-6).collect();
            let mean = periods.iter().sum::<f64>() / periods.len() as f64;
            let std = (periods.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / periods.len() as f64).sqrt();
            let max = periods.iter().cloned().fold(0.0, f64::max);
            println!(
                "{key}: average rate {:.2} Hz, period mean {mean:.2} ms, std {std:.2} ms, max {max:.2} ms, {:.1} kB/s, {} messages",
                1000.0 / mean,
                bytes as f64 / seconds / 1000.0,
                arrivals.len()
            );
        }
    }
    Ok(())
}
