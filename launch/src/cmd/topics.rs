//! `armstack topics list | echo TOPIC | hz TOPIC`: inspect the bus like `ros2 topic`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bus::{Bus, BusConfig, RawSubscriber};
use clap::Subcommand;

use super::arg_ranges;
use crate::outln;

/// How long `topics echo` waits for a first message before naming the live topics.
const ECHO_HINT_AFTER: Duration = Duration::from_secs(2);

/// `armstack topics …`
#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// List the keys that carry messages (listens for `--seconds`).
    List {
        /// How long to listen, seconds.
        #[arg(long, default_value_t = 2.0, value_parser = arg_ranges::duration_s())]
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
        #[arg(long, short = 'n', value_parser = arg_ranges::at_least(1u64))]
        count: Option<u64>,
        /// Fail if no message arrives within this many seconds (default: wait until Ctrl-C;
        /// after 2 s of silence the live topics are listed on stderr).
        #[arg(long, value_parser = arg_ranges::duration_s())]
        timeout: Option<f64>,
    },
    /// Measure a topic's rate, period jitter and bandwidth.
    Hz {
        /// Topic or full key expression.
        topic: String,
        /// Measurement window, seconds.
        #[arg(long, default_value_t = 5.0, value_parser = arg_ranges::duration_s())]
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

/// Keys seen on the bus: messages and the size of the last one, bytes.
#[derive(Default)]
struct LiveKeys(BTreeMap<String, (u64, usize)>);

impl LiveKeys {
    fn count(&mut self, sample: &bus::RawSample) {
        let e = self.0.entry(sample.key.clone()).or_default();
        e.0 += 1;
        e.1 = sample.payload.len();
    }

    /// The keys, one per line, or a note that nothing is published.
    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "nothing is published on armstack/** (is a node running? same --robot-name / zenoh config?)"
                .to_string();
        }
        let keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
        format!("live topics:\n  {}", keys.join("\n  "))
    }
}

/// `topics echo`: prints the messages on `topic`; when none arrives for [`ECHO_HINT_AFTER`],
/// names the live topics (a misspelt topic waits forever otherwise), and fails after `timeout_s`.
fn echo(bus: &Bus, topic: &str, count: Option<u64>, timeout_s: Option<f64>) -> Result<()> {
    let key = key_for(bus, topic);
    let sub = bus.raw_subscriber(&key)?;
    // Everything on the bus, until the first message on `key`: the live topics for the hint.
    let mut everything: Option<RawSubscriber> = Some(bus.raw_subscriber("armstack/**")?);
    let mut live = LiveKeys::default();
    let mut hinted = false;
    let started = Instant::now();
    let stop = crate::shutdown::stop_flag()?;
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && count.is_none_or(|c| n < c) {
        if n == 0 {
            if let Some(all) = &everything {
                while let Some(s) = all.try_recv() {
                    live.count(&s);
                }
            }
            let waited = started.elapsed();
            if let Some(limit) = timeout_s.filter(|t| waited.as_secs_f64() >= *t) {
                bail!("no message on {key} in {limit} s; {}", live.describe());
            }
            if !hinted && waited >= ECHO_HINT_AFTER {
                eprintln!("no message on {key} yet (still waiting); {}", live.describe());
                hinted = true;
            }
        }
        let Some(s) = sub.recv_timeout(Duration::from_millis(200)) else { continue };
        everything = None;
        match bus::decode_value(&s.payload) {
            Ok(v) => outln!("{}: {}", s.key, bus::value_to_json_string(&v))?,
            Err(e) => outln!("{}: <{} bytes that are not CBOR: {e}>", s.key, s.payload.len())?,
        }
        n += 1;
    }
    Ok(())
}

/// Runs a topics subcommand.
pub fn run(cmd: TopicsCommand, config: &BusConfig) -> Result<()> {
    let bus = Bus::open(config)?;
    match cmd {
        TopicsCommand::List { seconds, all } => {
            let expr = if all { "armstack/**".to_string() } else { format!("armstack/{}/**", bus.robot()) };
            let sub = bus.raw_subscriber(&expr)?;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut seen = LiveKeys::default();
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if let Some(s) = sub.recv_timeout(left.min(Duration::from_millis(100))) {
                    seen.count(&s);
                }
            }
            let seen = seen.0;
            if seen.is_empty() {
                outln!("no messages on {expr} in {seconds} s (is a node running? same --robot-name / zenoh config?)")?;
            }
            outln!("{:<44} {:>8} {:>10}", "key", "hz", "bytes")?;
            for (key, (n, bytes)) in seen {
                outln!("{key:<44} {:>8.1} {bytes:>10}", n as f64 / seconds)?;
            }
        }
        TopicsCommand::Echo { topic, count, timeout } => echo(&bus, &topic, count, timeout)?,
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
                outln!("{key}: {} message(s) in {seconds} s", arrivals.len())?;
                return Ok(());
            }
            let periods: Vec<f64> = arrivals.windows(2).map(|w| (w[1].saturating_sub(w[0])) as f64 * 1e-6).collect();
            let mean = periods.iter().sum::<f64>() / periods.len() as f64;
            let std = (periods.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / periods.len() as f64).sqrt();
            let max = periods.iter().cloned().fold(0.0, f64::max);
            outln!(
                "{key}: average rate {:.2} Hz, period mean {mean:.2} ms, std {std:.2} ms, max {max:.2} ms, {:.1} kB/s, {} messages",
                1000.0 / mean,
                bytes as f64 / seconds / 1000.0,
                arrivals.len()
            )?;
        }
    }
    Ok(())
}
