//! `armstack bench fuzz`: a bounded fuzz run against the real nodes on an isolated loopback bus.
//!
//! Each target (the sim node, the driver node on the servo emulator, a recording session writing
//! a real dataset) is started in this process as its command starts it, with its own bus
//! discovery folder in a work directory, and a fuzzer session sends every kind of hostile message
//! ([`kinds::Kind`]) on every topic the target listens to, in an order drawn from `--seed`. While
//! it sends, the robot's own messages are checked ([`watch`]); afterwards the nodes must stop and
//! the dataset must open. The run reports, per target: crashes (a node's error or panic, an early
//! end, a node that does not stop), joint-limit and joint-speed violations, e-stop pulses missed,
//! motion while the e-stop holds, releases obeyed too early or not at all, lost episodes (finished
//! by the robot, not kept by the recorder), memory growth, the messages sent per kind and the
//! nodes' rejection counters; it exits non-zero when any of those invariants is violated.

mod kinds;
mod report;
mod session;
mod shapes;
mod targets;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cmd::arg_ranges;
use report::FuzzRow;
use session::Session;
use targets::Target;
use watch::{memory_mb, Tolerances, Watch};

/// How long a target's robot has to publish its first joint state.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long nodes have to stop once asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Arguments of `armstack bench fuzz`.
#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Hostile messages to send in all, split evenly between the targets (the e-stop probes
    /// come on top when the messages run out first).
    #[arg(long, default_value_t = 30000, value_parser = arg_ranges::at_least(1u64))]
    pub messages: u64,
    /// Seed of every random choice (payloads, their order, stamps): a run is repeatable.
    #[arg(long, default_value_t = 0, value_parser = arg_ranges::at_least(0u64))]
    pub seed: u64,
    /// Targets, in order (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Sim, Target::Driver, Target::Record])]
    pub targets: Vec<Target>,
    /// Scene of the sim and the recording.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// E-stop pulses per target (each followed by a hold check and a fresh release).
    #[arg(long, default_value_t = 3, value_parser = arg_ranges::int_range(0u32, 1000))]
    pub estop_pulses: u32,
    /// The largest payload, MB.
    #[arg(long, default_value_t = 10.0, value_parser = arg_ranges::positive("MB"))]
    pub max_payload_mb: f64,
    /// How far past a joint's position limit a measurement may be, rad.
    #[arg(long, default_value_t = 0.02, value_parser = arg_ranges::non_negative("rad"))]
    pub limit_tolerance_rad: f64,
    /// How far above a joint's velocity limit a measurement may be, as a fraction of the limit.
    #[arg(long, default_value_t = 0.1, value_parser = arg_ranges::non_negative(""))]
    pub velocity_tolerance: f64,
    /// How far the arm may move while the e-stop holds, rad.
    #[arg(long, default_value_t = 0.02, value_parser = arg_ranges::non_negative("rad"))]
    pub hold_tolerance_rad: f64,
    /// How much this process's resident memory may grow during one target, MB.
    #[arg(long, default_value_t = 512.0, value_parser = arg_ranges::positive("MB"))]
    pub max_memory_growth_mb: f64,
    /// Work directory (bus discovery, the recorded dataset), kept afterwards; default: a fresh
    /// temporary directory, removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the rows as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the fuzz run, prints the table and the JSON, and fails when an invariant was violated.
pub fn run(args: FuzzArgs) -> Result<()> {
    let interrupted = crate::shutdown::stop_flag()?;
    let (work, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("armstack-fuzz-{}-{}", std::process::id(), bus::now_ns())), true),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating the work directory {}", work.display()))?;
    let mut targets = args.targets.clone();
    targets.dedup();
    let per_target = (args.messages / targets.len().max(1) as u64).max(1);
    let mut rows = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        eprintln!("bench fuzz: {} ({per_target} messages, {} e-stop pulses)…", target.name(), args.estop_pulses);
        // Below 2^62: episode seeds count up from it and datasets store them as int64.
        let seed = args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64 + 1) >> 2;
        let dir = work.join(target.name());
        let attack = Attack { messages: per_target, pulses: args.estop_pulses, ending: Ending::StopRequest };
        let mut row = fuzz_target(*target, &args, attack, seed, &dir, &interrupted)?;
        if *target == Target::Record && !interrupted.load(Ordering::Relaxed) {
            // A second commander ends a recording with an error (by design), so it gets a
            // recording of its own.
            let attack = Attack { messages: 0, pulses: 0, ending: Ending::SecondCommander };
            let second = fuzz_target(*target, &args, attack, seed, &dir.join("second_commander"), &interrupted)?;
            row.merge_second_commander(second);
        }
        rows.push(row);
    }
    report::print(&rows)?;
    super::emit_json(&rows, args.json.as_ref())?;
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let violations: u64 = rows.iter().map(FuzzRow::violations).sum();
    if violations > 0 {
        bail!("bench fuzz: {violations} invariant violations (see the table and the examples above)");
    }
    if interrupted.load(Ordering::Relaxed) {
        bail!("bench fuzz: interrupted");
    }
    Ok(())
}

/// How a target's run ends once the messages are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// A fresh `Stop` request: the nodes must stop (the recorder writes its last episode).
    StopRequest,
    /// Valid commands from a second publisher during an episode: the recorder must refuse to
    /// go on.
    SecondCommander,
}

/// What is sent to one target.
#[derive(Clone, Copy, Debug)]
struct Attack {
    /// Hostile messages.
    messages: u64,
    /// E-stop probes.
    pulses: u32,
    /// How the run ends.
    ending: Ending,
}

/// Waits up to `timeout` for `done()`; whether it came.
fn wait_until(done: &dyn Fn() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Starts `target`'s nodes in `dir`, runs `attack` on them, stops them and checks what they left.
fn fuzz_target(
    target: Target,
    args: &FuzzArgs,
    attack: Attack,
    seed: u64,
    dir: &Path,
    interrupted: &AtomicBool,
) -> Result<FuzzRow> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bus_config = bus::BusConfig::with_discovery_dir("fuzz", dir.join("bus"));
    let setup = targets::prepare(target, &args.scene, seed, dir)?;
    let memory_before_mb = memory_mb("VmRSS:").unwrap_or(0.0);
    let stop = Arc::new(AtomicBool::new(false));
    // Owned threads, not scoped ones: a node that never stops must not hang the report.
    let node = {
        let (prepared, config, stop) = (setup.prepared, bus_config.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("fuzz-{}", target.name()))
            .spawn(move || targets::run(prepared, &config, stop))
            .context("spawning the target's nodes")?
    };
    let node_ended = || node.is_finished();
    let bus = bus::Bus::open(&bus_config).context("opening the fuzzer's bus session")?;
    let tol = Tolerances {
        position_rad: args.limit_tolerance_rad,
        velocity_fraction: args.velocity_tolerance,
        hold_rad: args.hold_tolerance_rad,
    };
    let watch = Watch::new(target.robot_node(), setup.limits, tol);
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let subs = Watch::subscribe(&bus)?;
        let (watch, stop) = (watch.clone(), watch_stop.clone());
        std::thread::Builder::new()
            .name("fuzz-watch".into())
            .spawn(move || watch.run(&subs, &stop))
            .context("spawning the watcher")?
    };
    let mut row = FuzzRow::new(target, attack.messages);
    let max_payload_bytes = (args.max_payload_mb * 1e6) as usize;
    let mut session = Session::new(&bus, &watch, target, seed, max_payload_bytes, setup.cameras)?;
    let mut ended_early = false;
    let mut run_attack = || -> Result<()> {
        if !watch.wait_for_robot(START_TIMEOUT) {
            row.crash(format!("the robot published no joint state and no episode step within {START_TIMEOUT:?}"));
            return Ok(());
        }
        watch.stop_learning();
        session.fuzz(attack.messages, attack.pulses, &node_ended, interrupted)?;
        if node_ended() {
            ended_early = true;
        } else if attack.ending == Ending::SecondCommander {
            row.second_commander_refused = Some(session.second_commander(&node_ended, STOP_TIMEOUT)?);
        } else {
            session.request_stop()?;
            row.stop_obeyed = Some(wait_until(&node_ended, STOP_TIMEOUT));
        }
        Ok(())
    };
    // The nodes are stopped whatever happened to the fuzzer.
    let attacked = run_attack();
    stop.store(true, Ordering::SeqCst);
    if !wait_until(&node_ended, STOP_TIMEOUT) {
        row.crash(format!("the nodes did not stop within {STOP_TIMEOUT:?} of the stop flag"));
    }
    watch_stop.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    if node.is_finished() {
        match node.join() {
            Ok(mut ended) => {
                if attack.ending == Ending::StopRequest {
                    if let Some(refusal) = ended.expected_refusal.take() {
                        row.crash(format!("the recording refused to go on while the fuzzer was sending: {refusal}"));
                    }
                }
                if ended_early && ended.failure.is_none() && row.crashes.is_empty() {
                    row.crash("a node ended while the fuzzer was sending".into());
                }
                row.ended(ended);
            }
            Err(_) => row.crash("the target's thread panicked outside its nodes".into()),
        }
    }
    attacked?;
    row.take_observed(watch.observed(), watch.status_counters(), memory_before_mb, args.max_memory_growth_mb);
    row.take_sent(&session);
    if target == Target::Record && attack.ending == Ending::StopRequest {
        row.dataset(&dir.join("dataset"));
    }
    Ok(row)
}
