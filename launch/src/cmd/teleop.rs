//! `armstack teleop`: drive the robot from a keyboard, a gamepad or the scripted expert.
//!
//! One process runs the robot node (the sim, or the Dynamixel driver for `--robot widowx`) and
//! the teleop node on the bus; `record` adds the recorder node, `deploy` the policy node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use robot_driver::episodes::EpisodeConfig;
use robot_driver::node::{run_driver_node, DriverNodeConfig};
use sim::node::{SimNode, SimNodeConfig};

use super::arg_ranges;
use super::demo_quality::QualityArg;
use crate::robots::widowx::{Connection, DriverArgs, SimKinematics};
use crate::shutdown::{StartBarrier, Supervisor};

use crate::teleop::gamepad::GamepadDevice;
use crate::teleop::keyboard::KeyboardDevice;
use crate::teleop::node::{run_teleop, TeleopNodeConfig, TeleopReport};
use crate::teleop::scripted::ScriptedDevice;
use crate::teleop::TeleopDevice;

/// Which robot the nodes drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RobotKind {
    /// The Rapier simulator, started in this process.
    Sim,
    /// A WidowX-style arm through the Dynamixel driver.
    Widowx,
}

/// Teleoperation input device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// Keys in this terminal (raw mode).
    Keyboard,
    /// A gamepad (gilrs).
    Gamepad,
    /// The scene's scripted expert (sim only), for unattended collection.
    Scripted,
    /// A scripted circle of the finger tip with the gripper opening and closing: needs no
    /// scene state, so it drives a real arm unattended (smoke tests, motion data).
    Circle,
}

/// Robot and device options shared by `teleop` and `record`.
#[derive(Args, Debug, Clone)]
pub struct RobotArgs {
    /// Robot to drive.
    #[arg(long, value_enum, default_value = "sim")]
    pub robot: RobotKind,
    /// Scene (sim): a built-in name or a scene TOML file.
    #[arg(long, default_value = "pick_cube")]
    pub scene: String,
    /// Input device.
    #[arg(long, value_enum, default_value = "keyboard")]
    pub device: DeviceKind,
    /// Scripted expert action noise in [0, 1] of the noisy level (the default level; 0: the
    /// fixed clean plan; the README has the success table per scene and level).
    #[arg(long, default_value_t = 0.0, value_parser = arg_ranges::unit_interval())]
    pub noise: f64,
    /// Scripted expert's demonstration quality: `expert` (clean, varied), `mixed` (a share
    /// --mistake-rate of episodes contain one recorded mistake) or `noisy` (--noise; default).
    #[arg(long, value_enum)]
    pub quality: Option<QualityArg>,
    /// Share of `--quality mixed` episodes that contain one mistake.
    #[arg(long, default_value_t = sim::expert::DEFAULT_MISTAKE_RATE, value_parser = arg_ranges::unit_interval())]
    pub mistake_rate: f64,
    /// Seed of the first episode (episode k uses seed + k; a re-recorded one keeps its seed).
    /// Default 0; `record --resume` continues after the seeds the dataset holds. At most
    /// 2^63 − 1: datasets store seeds in an int64 column.
    #[arg(long, value_parser = arg_ranges::int_range(0u64, i64::MAX as u64))]
    pub seed: Option<u64>,
    /// Camera image width and height, pixels.
    #[arg(long, default_value_t = 128, value_parser = arg_ranges::int_range(2u32, 4096))]
    pub image_size: u32,
    /// Pause between episodes, s (default: 0 for the scripted device, 2 for a person).
    #[arg(long, value_parser = arg_ranges::pause_s())]
    pub reset_s: Option<f64>,
    /// Run the sim in real time even with the scripted device (default: lockstep, as fast as
    /// the device answers).
    #[arg(long)]
    pub realtime: bool,
    /// Episode length on a real arm, s (it also ends when the operator ends it).
    #[arg(long, default_value_t = 30.0, value_parser = arg_ranges::duration_s())]
    pub episode_s: f64,
    /// The arm's connection (`--robot widowx`).
    #[command(flatten)]
    pub driver: DriverArgs,
}

/// The robot node of a run: the sim, or the driver on a WidowX-style arm.
pub enum RobotNode {
    /// The simulator.
    Sim(Box<SimNodeConfig>),
    /// The Dynamixel driver.
    Widowx {
        /// The open arm (and its emulator, if emulated).
        conn: Box<Connection>,
        /// Driver node settings.
        node: Box<DriverNodeConfig>,
    },
}

/// What the robot node did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RobotReport {
    /// Control steps (sim) or published joint states (driver).
    pub steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Episodes that succeeded (sim only: a real arm does not know).
    pub successes: u64,
}

/// The driver node for `--robot widowx`, publishing at the control rate `rate_hz`.
pub fn widowx_node(driver: &DriverArgs, rate_hz: f64, episodes: EpisodeConfig) -> Result<RobotNode> {
    let cycle_hz = (rate_hz * (100.0 / rate_hz).ceil().max(1.0)).max(rate_hz);
    let mut node = super::driver::node_config(cycle_hz, rate_hz, episodes)?;
    // Episodes start from the sim scenes' ready pose, so sim-trained policies and teleop see the
    // same start (and the end-effector IK stays away from the folded sleep pose).
    node.ready_pose = Some(sim::scene::READY_POSE_RAD);
    let conn = driver.connect()?;
    Ok(RobotNode::Widowx { conn: Box::new(conn), node: Box::new(node) })
}

/// The robot node for teleop/record: the sim (real time for people, lockstep for the script)
/// or the driver (episodes of `--episode-s`, a reset pause between them).
pub fn robot_node(
    args: &RobotArgs,
    rate_hz: f64,
    cameras: bool,
    max_episodes: Option<u64>,
    task: Option<&str>,
) -> Result<RobotNode> {
    match args.robot {
        RobotKind::Sim => Ok(RobotNode::Sim(Box::new(sim_config(args, rate_hz, cameras, max_episodes)?))),
        RobotKind::Widowx => {
            if cameras {
                bail!("--robot widowx: armstack has no camera driver yet; record joint states and actions with --no-cameras");
            }
            if args.episode_s.is_nan() || args.episode_s <= 0.0 {
                bail!("--episode-s must be positive");
            }
            let episodes = EpisodeConfig {
                max_steps: Some((args.episode_s * rate_hz).round().max(1.0) as u64),
                reset_pause: Duration::from_secs_f64(args.reset_s.unwrap_or(2.0).max(0.0)),
                instruction: task.unwrap_or_default().to_string(),
                scene: "real".into(),
                max_episodes,
            };
            widowx_node(&args.driver, rate_hz, episodes)
        }
    }
}

/// Arguments of `armstack teleop`.
#[derive(Args, Debug)]
pub struct TeleopArgs {
    #[command(flatten)]
    pub robot: RobotArgs,
    /// Control rate, Hz.
    #[arg(long, default_value_t = 10.0, value_parser = arg_ranges::rate_hz())]
    pub rate: f64,
    /// Stop after this many episodes.
    #[arg(long, value_parser = arg_ranges::at_least(1u64))]
    pub episodes: Option<u64>,
}

impl RobotArgs {
    /// The scripted expert's demonstration quality these flags select. A flag that the chosen
    /// level does not use is refused rather than ignored: `--noise` belongs to the noisy level,
    /// `--mistake-rate` to the mixed one.
    pub fn demo_quality(&self) -> Result<sim::DemoQuality> {
        let level = self.quality.unwrap_or(QualityArg::Noisy);
        if self.noise != 0.0 && level != QualityArg::Noisy {
            bail!("--noise {} applies to --quality noisy only, not to --quality {}", self.noise, level.name());
        }
        if self.mistake_rate != sim::expert::DEFAULT_MISTAKE_RATE && level != QualityArg::Mixed {
            bail!(
                "--mistake-rate {} applies to --quality mixed only, not to --quality {}",
                self.mistake_rate,
                level.name()
            );
        }
        Ok(level.level(self.mistake_rate, self.noise))
    }
}

/// Builds the device.
pub fn make_device(args: &RobotArgs, robot: &RobotNode) -> Result<Box<dyn TeleopDevice>> {
    Ok(match args.device {
        DeviceKind::Keyboard => Box::new(KeyboardDevice::new()?),
        DeviceKind::Gamepad => Box::new(GamepadDevice::new()?),
        DeviceKind::Circle => Box::new(crate::teleop::circle::CircleDevice::default()),
        DeviceKind::Scripted => {
            let RobotNode::Sim(cfg) = robot else {
                bail!("--device scripted needs --robot sim (the expert reads the sim's scene state)");
            };
            let scene = &cfg.env.scene;
            if !(0.0..=1.0).contains(&args.noise) {
                bail!("--noise must be in [0, 1], got {}", args.noise);
            }
            Box::new(ScriptedDevice::new(scene, args.demo_quality()?))
        }
    })
}

/// The sim node config for teleop/record: real time for people, lockstep for the script.
pub fn sim_config(args: &RobotArgs, rate_hz: f64, cameras: bool, max_episodes: Option<u64>) -> Result<SimNodeConfig> {
    if args.robot == RobotKind::Widowx {
        bail!("--robot widowx runs the driver, not the sim");
    }
    let scene = sim::load_scene(&args.scene)?;
    let mut env = sim::EnvConfig::new(scene);
    env.control_hz = rate_hz;
    if cameras {
        if !args.image_size.is_multiple_of(2) {
            bail!("--image-size must be even (H.264 yuv420p), got {}", args.image_size);
        }
        env = env.with_cameras(args.image_size, args.image_size);
    }
    env.substeps()?;
    let scripted = args.device == DeviceKind::Scripted;
    let lockstep = scripted && !args.realtime;
    let reset_s = args.reset_s.unwrap_or(if scripted { 0.0 } else { 2.0 });
    Ok(SimNodeConfig {
        env,
        seed: args.seed.unwrap_or(0),
        as_fast_as_possible: false,
        max_episodes,
        max_steps: None,
        name: "sim".into(),
        expert: None,
        lockstep: lockstep.then_some(Duration::from_secs(2)),
        reset_pause: Duration::from_secs_f64(reset_s.max(0.0)),
    })
}

/// A node run beside the robot: gets the bus, the stop flag and the start line (which it
/// passes once subscribed).
pub type ExtraNode<'a, T> = Box<dyn FnOnce(&bus::Bus, &Arc<AtomicBool>, &StartBarrier) -> Result<T> + Send + 'a>;

/// A node run beside the robot ([`supervise_robot`]).
pub struct Extra<'a, T> {
    /// Its name, for errors.
    pub name: &'static str,
    /// The node.
    pub run: ExtraNode<'a, T>,
    /// How long it may go on after the robot ended before it is stopped: the recorder writes its
    /// last episode; a policy node has nothing left to do.
    pub grace: Duration,
}

/// The grace a node that finishes the robot's last episode gets ([`Extra::grace`]).
pub const FINISH_GRACE: Duration = Duration::from_secs(10);

/// How long the robot gets to end the run itself after the device asked to stop.
const STOP_REQUEST_GRACE: Duration = Duration::from_secs(3);

/// What the nodes of one run did, and why the run failed, if it did.
pub struct RunOutcome<T> {
    /// The robot node's report (default when it failed).
    pub robot: RobotReport,
    /// The teleop node's report (default without a device, or when it failed).
    pub teleop: TeleopReport,
    /// The extra node's result (None without one, or when it failed).
    pub extra: Option<T>,
    /// The first failure (a node's error or panic, a fault a node reported): every node was
    /// stopped because of it.
    pub failure: Option<anyhow::Error>,
}

impl<T> RunOutcome<T> {
    /// The reports, or the failure.
    pub fn into_result(self) -> Result<(RobotReport, TeleopReport, Option<T>)> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok((self.robot, self.teleop, self.extra)),
        }
    }
}

/// [`supervise_robot`] with the extra node called `extra` (given [`FINISH_GRACE`]); a failure
/// is the error.
pub fn run_with_robot<T: Send>(
    bus_config: &bus::BusConfig,
    robot: RobotNode,
    device: Option<Box<dyn TeleopDevice>>,
    stop: Arc<AtomicBool>,
    extra: Option<ExtraNode<'_, T>>,
) -> Result<(RobotReport, TeleopReport, Option<T>)> {
    let extra = extra.map(|run| Extra { name: "extra", run, grace: FINISH_GRACE });
    supervise_robot(bus_config, robot, device, stop, extra)?.into_result()
}

/// Runs the robot node, the teleop node and (optionally) one more node, named for errors, on
/// one bus session. The robot runs on the calling thread once the others subscribed; when the
/// extra node returns, the others are stopped. The first failure stops every node at once: a
/// node's error or panic, a driver fault, or any node reporting `Error` on `status`; it is
/// returned in the outcome with whatever the nodes finished (the recorder keeps its finished
/// episodes). A node that fails before the start line releases the others from it (the run is
/// stopped before it started). When the device asks to stop, the robot gets
/// [`STOP_REQUEST_GRACE`] to end the run itself before everything is stopped.
pub fn supervise_robot<T: Send>(
    bus_config: &bus::BusConfig,
    robot: RobotNode,
    device: Option<Box<dyn TeleopDevice>>,
    stop: Arc<AtomicBool>,
    extra: Option<Extra<'_, T>>,
) -> Result<RunOutcome<T>> {
    let bus = bus::Bus::open(bus_config).context("opening the bus")?;
    let statuses = bus.subscriber::<bus::Status>().context("subscribing to node status")?;
    let parties = 1 + usize::from(device.is_some()) + usize::from(extra.is_some());
    let ready = StartBarrier::new(parties, stop.clone());
    let supervisor = Supervisor::new(stop);
    let robot_name = match &robot {
        RobotNode::Sim(cfg) => cfg.name.clone(),
        RobotNode::Widowx { node, .. } => node.name.clone(),
    };
    let (robot, teleop, extra) = std::thread::scope(|s| {
        let (bus, sup, ready, statuses) = (&bus, &supervisor, &ready, &statuses);
        let stop = sup.stop_flag();
        s.spawn(move || sup.watch_status(statuses));
        let teleop = device.map(|mut device| {
            s.spawn(move || {
                let cfg = TeleopNodeConfig::default();
                let report = sup.run_node("teleop", || run_teleop(device.as_mut(), &cfg, bus, stop, Some(ready)));
                if report.as_ref().is_some_and(|r| r.stopped_by_device) {
                    // The robot ends the run on the Stop request; one that cannot (a faulted
                    // arm ignores requests) is stopped.
                    let asked = std::time::Instant::now();
                    while !stop.load(Ordering::Relaxed) && asked.elapsed() < STOP_REQUEST_GRACE {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    if !stop.swap(true, Ordering::SeqCst) {
                        tracing::warn!("the robot did not end the run on the stop request: stopping it");
                    }
                }
                report
            })
        });
        let grace = extra.as_ref().map_or(Duration::ZERO, |e| e.grace);
        let extra_handle = extra.map(|Extra { name, run, .. }| {
            s.spawn(move || {
                let r = sup.run_node(name, || run(bus, stop, ready));
                stop.store(true, Ordering::SeqCst);
                r
            })
        });
        // Subscribers are declared: start the robot (which ends at once when a node failed
        // before the start line).
        if ready.wait() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let robot_report = sup.run_node(&robot_name, || match robot {
            RobotNode::Sim(cfg) => {
                let r = SimNode::new(*cfg).and_then(|mut n| n.run(bus, stop))?;
                Ok(RobotReport { steps: r.steps, episodes: r.episodes, successes: r.successes })
            }
            RobotNode::Widowx { mut conn, node } => {
                let kin = SimKinematics::widowx250();
                let r = run_driver_node(&mut conn.arm, Some(&kin), bus, &node, stop, None)?;
                if let Some(f) = &r.fault {
                    sup.fail(anyhow::anyhow!("the driver stopped the arm: {f}"));
                }
                Ok(RobotReport { steps: r.published, episodes: r.episodes, successes: 0 })
            }
        });
        // The robot ended (a Stop request, a limit, Ctrl-C or a failure): the extra node gets its
        // grace to finish (the recorder writes the last episode), then everything stops.
        let ended = std::time::Instant::now();
        if let Some(h) = extra_handle.as_ref() {
            while !h.is_finished() {
                if ended.elapsed() >= grace {
                    stop.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // run_node catches panics, so joins succeed.
        let extra = extra_handle.and_then(|h| h.join().ok().flatten());
        stop.store(true, Ordering::SeqCst);
        let teleop = teleop.and_then(|h| h.join().ok().flatten());
        (robot_report, teleop, extra)
    });
    Ok(RunOutcome {
        robot: robot.unwrap_or_default(),
        teleop: teleop.unwrap_or_default(),
        extra,
        failure: supervisor.take_failure(),
    })
}

/// Runs `armstack teleop`.
pub fn run(args: TeleopArgs, bus_config: &bus::BusConfig) -> Result<()> {
    let robot = robot_node(&args.robot, args.rate, args.robot.robot == RobotKind::Sim, args.episodes, None)?;
    let device = make_device(&args.robot, &robot)?;
    let stop = crate::shutdown::stop_flag()?;
    let run = supervise_robot::<()>(bus_config, robot, Some(device), stop, None)?;
    let (sim, teleop) = (&run.robot, &run.teleop);
    eprintln!();
    println!(
        "teleop: {} episodes ({} successful), {} steps, {} commands, {} episode requests",
        sim.episodes, sim.successes, sim.steps, teleop.commands, teleop.requests
    );
    run.into_result().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        robot: RobotArgs,
    }

    /// Runs the sim (real time, no cameras, no device) with `extra` beside it, named `recorder`;
    /// the outcome and how long the run took.
    fn run_beside_sim(extra: ExtraNode<'_, ()>) -> (RunOutcome<()>, Duration) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cli = Cli::parse_from(["armstack"]);
        let robot = robot_node(&cli.robot, 10.0, false, None, None).expect("sim node");
        let bus_config = bus::BusConfig::with_discovery_dir("arm0", tmp.path());
        let started = std::time::Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let extra = Extra { name: "recorder", run: extra, grace: FINISH_GRACE };
        let outcome = supervise_robot(&bus_config, robot, None, stop, Some(extra)).expect("bus");
        (outcome, started.elapsed())
    }

    #[test]
    fn a_node_failing_before_the_start_line_ends_the_run_promptly() {
        let (outcome, took) = run_beside_sim(Box::new(|_, _, _| Err(anyhow::anyhow!("cannot subscribe"))));
        let failure = outcome.failure.map(|e| format!("{e:#}"));
        assert_eq!(failure.as_deref(), Some("node `recorder` failed: cannot subscribe"));
        assert!(took < Duration::from_secs(10), "the robot was stopped at once: {took:?}");
    }

    #[test]
    fn a_node_panicking_mid_run_stops_every_node_promptly() {
        let (outcome, took) = run_beside_sim(Box::new(|_, _, ready| {
            assert!(ready.wait());
            std::thread::sleep(Duration::from_millis(300));
            panic!("range start is greater than range end");
        }));
        let failure = outcome.failure.map(|e| format!("{e:#}"));
        assert_eq!(failure.as_deref(), Some("node `recorder` panicked: range start is greater than range end"));
        assert!(took < Duration::from_secs(10), "the robot was stopped at once: {took:?}");
    }
}
