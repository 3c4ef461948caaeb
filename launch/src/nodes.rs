//! Node kinds the launcher can start, and the runtime that owns their threads.
//!
//! The runtime, not the node, owns threads and transport: each node gets its own bus session
//! and thread, and all of them watch one stop flag (Ctrl-C).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;

use bus::{Bus, BusConfig, JointCommand, RawSubscriber};
use sim::node::{SimNode, SimNodeConfig};
use sim::EnvConfig;

use crate::outln;
use crate::shutdown::Supervisor;

fn default_rate() -> f64 {
    10.0
}
fn default_physics_hz() -> f64 {
    500.0
}
fn default_true() -> bool {
    true
}
fn default_size() -> u32 {
    128
}
fn default_scene() -> String {
    "pick_cube".into()
}

/// The simulator node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNodeSpec {
    /// Node name (logs and status).
    #[serde(default = "sim_name")]
    pub name: String,
    /// Robot name for this node's keys (default: the launcher's).
    #[serde(default)]
    pub robot: Option<String>,
    /// Scene name or scene file path.
    #[serde(default = "default_scene")]
    pub scene: String,
    /// Control rate, Hz.
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    /// Physics rate, Hz.
    #[serde(default = "default_physics_hz")]
    pub physics_hz: f64,
    /// First episode seed.
    #[serde(default)]
    pub seed: u64,
    /// No sleeping between control steps.
    #[serde(default)]
    pub as_fast_as_possible: bool,
    /// Render and publish the front and wrist cameras.
    #[serde(default = "default_true")]
    pub cameras: bool,
    /// Image width, pixels.
    #[serde(default = "default_size")]
    pub width: u32,
    /// Image height, pixels.
    #[serde(default = "default_size")]
    pub height: u32,
    /// Stop after this many episodes.
    #[serde(default)]
    pub episodes: Option<u64>,
    /// Stop after this many control steps.
    #[serde(default)]
    pub steps: Option<u64>,
    /// The scene's scripted expert drives when no bus command arrives (value: its noise, 0–1).
    #[serde(default)]
    pub expert: Option<f64>,
    /// The scripted expert's demonstration quality, overriding `expert`'s noise (set by
    /// `armstack sim --expert expert|mixed`; launch files give a noise).
    #[serde(skip)]
    pub expert_quality: Option<sim::DemoQuality>,
}

fn sim_name() -> String {
    "sim".into()
}

/// A node that drives the arm through joint waypoints over the bus (a smoke test of a setup).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaypointsNodeSpec {
    /// Node name.
    #[serde(default = "waypoints_name")]
    pub name: String,
    /// Robot name for this node's keys.
    #[serde(default)]
    pub robot: Option<String>,
    /// Joint waypoints, rad (6 values each).
    pub waypoints_rad: Vec<[f64; 6]>,
    /// Gripper opening per waypoint in [0, 1] (default: open).
    #[serde(default)]
    pub gripper: Vec<f64>,
    /// Seconds each waypoint is held.
    #[serde(default = "default_hold")]
    pub hold_s: f64,
    /// Command publication rate, Hz.
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    /// Cycle through the waypoints until stopped (else stop after the last).
    #[serde(default)]
    pub repeat: bool,
}

fn waypoints_name() -> String {
    "waypoints".into()
}
fn default_hold() -> f64 {
    2.0
}

/// A node that logs the rate of every topic once per period.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorNodeSpec {
    /// Node name.
    #[serde(default = "monitor_name")]
    pub name: String,
    /// Robot name to watch (default: the launcher's).
    #[serde(default)]
    pub robot: Option<String>,
    /// Report period, seconds.
    #[serde(default = "default_period")]
    pub period_s: f64,
}

fn monitor_name() -> String {
    "monitor".into()
}
fn default_period() -> f64 {
    5.0
}

/// The Dynamixel driver node on a WidowX-style arm (`kind = "driver"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverNodeSpec {
    /// Node name (logs and status).
    #[serde(default = "driver_name")]
    pub name: String,
    /// Robot name for this node's keys (default: the launcher's).
    #[serde(default)]
    pub robot: Option<String>,
    /// Serial device (e.g. `/dev/ttyDXL`); omit with `emulate = true`.
    #[serde(default)]
    pub port: Option<String>,
    /// Run against the servo emulator on a pseudo-terminal.
    #[serde(default)]
    pub emulate: bool,
    /// Servo map TOML (default: the built-in WidowX 250 map).
    #[serde(default)]
    pub config: Option<std::path::PathBuf>,
    /// Baud rate, bit/s (default: the map's).
    #[serde(default)]
    pub baud: Option<u32>,
    /// Servo cycle rate, Hz.
    #[serde(default = "default_driver_hz")]
    pub rate_hz: f64,
    /// `joint_state` rate, Hz (default: the cycle rate).
    #[serde(default)]
    pub publish_hz: Option<f64>,
    /// Stop after this many cycles (the launch then ends).
    #[serde(default)]
    pub cycles: Option<u64>,
    /// Emulator fault injection: seconds after torque-on when a shadow servo's encoder slips.
    #[serde(default)]
    pub emulate_shadow_slip_s: Option<f64>,
}

fn driver_name() -> String {
    "driver".into()
}
fn default_driver_hz() -> f64 {
    100.0
}

impl DriverNodeSpec {
    fn connection(&self) -> crate::robots::widowx::DriverArgs {
        crate::robots::widowx::DriverArgs {
            port: self.port.clone(),
            baud: self.baud,
            config: self.config.clone(),
            emulate: self.emulate,
            emulate_shadow_slip_s: self.emulate_shadow_slip_s,
            retries: 3,
            ..Default::default()
        }
    }
}

/// One node of a launch file, tagged by `kind`.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeSpec {
    /// `kind = "sim"`.
    Sim(SimNodeSpec),
    /// `kind = "waypoints"`.
    Waypoints(WaypointsNodeSpec),
    /// `kind = "monitor"`.
    Monitor(MonitorNodeSpec),
    /// `kind = "driver"`.
    Driver(DriverNodeSpec),
}

impl NodeSpec {
    /// The node's name.
    pub fn name(&self) -> &str {
        match self {
            NodeSpec::Sim(s) => &s.name,
            NodeSpec::Waypoints(s) => &s.name,
            NodeSpec::Monitor(s) => &s.name,
            NodeSpec::Driver(s) => &s.name,
        }
    }

    fn robot(&self) -> Option<&String> {
        match self {
            NodeSpec::Sim(s) => s.robot.as_ref(),
            NodeSpec::Waypoints(s) => s.robot.as_ref(),
            NodeSpec::Monitor(s) => s.robot.as_ref(),
            NodeSpec::Driver(s) => s.robot.as_ref(),
        }
    }
}

/// Builds the sim node's config from its spec (validates the scene and rates).
pub fn sim_node_config(spec: &SimNodeSpec) -> Result<SimNodeConfig> {
    let scene = sim::load_scene(&spec.scene)?;
    let mut env = EnvConfig::new(scene);
    env.control_hz = spec.rate_hz;
    env.physics.physics_hz = spec.physics_hz;
    if spec.cameras {
        env = env.with_cameras(spec.width, spec.height);
    }
    env.substeps()?;
    Ok(SimNodeConfig {
        env,
        seed: spec.seed,
        as_fast_as_possible: spec.as_fast_as_possible,
        max_episodes: spec.episodes,
        max_steps: spec.steps,
        name: spec.name.clone(),
        lockstep: None,
        reset_pause: std::time::Duration::ZERO,
        expert: spec.expert_quality.or(spec.expert.map(sim::DemoQuality::noisy)),
    })
}

fn run_waypoints(spec: &WaypointsNodeSpec, bus: &Bus, stop: &AtomicBool) -> Result<()> {
    let publisher = bus.publisher::<JointCommand>()?;
    let period = Duration::from_secs_f64(1.0 / spec.rate_hz.max(0.1));
    let start = Instant::now();
    let n = spec.waypoints_rad.len().max(1);
    while !stop.load(Ordering::Relaxed) {
        let k = (start.elapsed().as_secs_f64() / spec.hold_s.max(0.01)) as usize;
        if k >= n && !spec.repeat {
            break;
        }
        let i = k % n;
        let Some(q) = spec.waypoints_rad.get(i) else { break };
        let gripper = spec.gripper.get(i).copied().unwrap_or(1.0);
        let mut cmd = JointCommand { header: Default::default(), position: q.to_vec(), gripper, obs_stamp_ns: 0 };
        publisher.publish(&mut cmd)?;
        std::thread::sleep(period);
    }
    Ok(())
}

fn run_monitor(spec: &MonitorNodeSpec, bus: &Bus, stop: &AtomicBool) -> Result<()> {
    let sub: RawSubscriber = bus.raw_subscriber(&format!("armstack/{}/**", bus.robot()))?;
    let period = Duration::from_secs_f64(spec.period_s.max(0.1));
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut window = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(sample) = sub.recv_timeout(Duration::from_millis(100)) {
            *counts.entry(sample.key).or_default() += 1;
        }
        if window.elapsed() >= period {
            let secs = window.elapsed().as_secs_f64();
            for (key, n) in &counts {
                tracing::info!(node = %spec.name, key = %key, hz = format!("{:.1}", *n as f64 / secs), "rate");
            }
            counts.clear();
            window = Instant::now();
        }
    }
    Ok(())
}

/// Runs one node; returns a one-line summary for the user.
fn run_one(spec: NodeSpec, bus_config: BusConfig, stop: Arc<AtomicBool>) -> Result<String> {
    let mut config = bus_config;
    if let Some(robot) = spec.robot() {
        config.robot = robot.clone();
    }
    let bus = Bus::open(&config).with_context(|| format!("node `{}`: opening the bus", spec.name()))?;
    let summary = match &spec {
        NodeSpec::Sim(s) => {
            let mut node = SimNode::new(sim_node_config(s)?)?;
            let r = node.run(&bus, &stop)?;
            tracing::info!(node = %s.name, ?r, "node finished");
            let rate = if r.episodes > 0 { 100.0 * r.successes as f64 / r.episodes as f64 } else { 0.0 };
            format!(
                "{} ({}): {} control steps, {} episodes, {} successes ({rate:.0}%), {} commands applied, {} rejected, {} clamped, {} overruns",
                s.name, s.scene, r.steps, r.episodes, r.successes, r.commands.commands_applied, r.commands.commands_rejected, r.commands.commands_clamped, r.overruns
            )
        }
        NodeSpec::Waypoints(s) => {
            run_waypoints(s, &bus, &stop)?;
            format!("{}: done", s.name)
        }
        NodeSpec::Monitor(s) => {
            run_monitor(s, &bus, &stop)?;
            format!("{}: done", s.name)
        }
        NodeSpec::Driver(s) => {
            let episodes = robot_driver::episodes::EpisodeConfig::default();
            let mut cfg = crate::cmd::driver::node_config(s.rate_hz, s.publish_hz.unwrap_or(s.rate_hz), episodes)?;
            cfg.name = s.name.clone();
            cfg.max_cycles = s.cycles;
            let mut conn = s.connection().connect()?;
            let kin = crate::robots::widowx::SimKinematics::widowx250();
            let r = robot_driver::node::run_driver_node(&mut conn.arm, Some(&kin), &bus, &cfg, &stop, None)?;
            if let Some(f) = r.fault {
                anyhow::bail!("the driver stopped the arm: {f}");
            }
            format!(
                "{}: {} cycles, cycle time p50 {:.2} ms p99 {:.2} ms, {} commands applied, {} clamped, {} watchdog holds",
                s.name, r.cycles, r.cycle_time.p50_ms, r.cycle_time.p99_ms, r.commands.commands_applied, r.commands.commands_clamped, r.commands.watchdog_holds
            )
        }
    };
    Ok(summary)
}

/// Starts every node on its own thread, stops them all on Ctrl-C, when every finite node has
/// finished, or at the first failure (a node's error or panic, or any node reporting a fault on
/// `status`), and returns that failure.
pub fn run_nodes(specs: Vec<NodeSpec>, bus_config: &BusConfig) -> Result<()> {
    // Validate everything before starting anything.
    for spec in &specs {
        if let NodeSpec::Sim(s) = spec {
            sim_node_config(s).with_context(|| format!("node `{}`", s.name))?;
        }
    }
    let supervisor = Supervisor::new(crate::shutdown::stop_flag()?);
    let stop = supervisor.stop_flag().clone();
    // Every robot the nodes drive: a fault one of its nodes reports stops the launch.
    let robots: std::collections::BTreeSet<String> =
        specs.iter().map(|s| s.robot().cloned().unwrap_or_else(|| bus_config.robot.clone())).collect();
    let mut watchers = Vec::new();
    for robot in robots {
        let mut config = bus_config.clone();
        config.robot = robot.clone();
        let bus = Bus::open(&config).with_context(|| format!("opening the bus of robot `{robot}`"))?;
        let statuses = bus.subscriber::<bus::Status>().context("subscribing to node status")?;
        let sup = supervisor.clone();
        let watcher = std::thread::Builder::new()
            .name(format!("status-{robot}"))
            .spawn(move || {
                let _session = bus;
                sup.watch_status(&statuses);
            })
            .context("spawning the status watcher")?;
        watchers.push(watcher);
    }
    let mut handles = Vec::new();
    for spec in specs {
        let name = spec.name().to_string();
        let finite = match &spec {
            NodeSpec::Sim(s) => s.episodes.is_some() || s.steps.is_some(),
            NodeSpec::Driver(d) => d.cycles.is_some(),
            _ => false,
        };
        let (bus_config, stop_for_node, sup) = (bus_config.clone(), stop.clone(), supervisor.clone());
        let node_name = name.clone();
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || sup.run_node(&node_name, || run_one(spec, bus_config, stop_for_node)))
            .with_context(|| format!("spawning node `{name}`"))?;
        handles.push((finite, handle));
    }
    // When every finite node is done, stop the others too.
    let any_finite = handles.iter().any(|(f, _)| *f);
    loop {
        let finite_running = handles.iter().any(|(f, h)| *f && !h.is_finished());
        let all_done = handles.iter().all(|(_, h)| h.is_finished());
        if all_done || (any_finite && !finite_running) || stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    // run_node catches panics, so joins succeed; a failed node has no summary.
    for (_, handle) in handles {
        if let Ok(Some(summary)) = handle.join() {
            outln!("{summary}")?;
        }
    }
    for watcher in watchers {
        let _ = watcher.join();
    }
    match supervisor.take_failure() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
