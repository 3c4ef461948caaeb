//! `armstack teleop`: drive the robot from a keyboard, a gamepad or the scripted expert.
//!
//! One process runs the robot node (the sim, or the Dynamixel driver for `--robot widowx`) and
//! the teleop node on the bus; `record` adds the recorder node, `deploy` the policy node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use robot_driver::episodes::EpisodeConfig;
use robot_driver::node::{run_driver_node, DriverNodeConfig};
use sim::node::{SimNode, SimNodeConfig};

use super::arg_ranges;
use crate::robots::widowx::{Connection, DriverArgs, SimKinematics};

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
    /// Scripted expert action noise in [0, 1] (0: clean; ~0.3: about half fail).
    #[arg(long, default_value_t = 0.0, value_parser = arg_ranges::unit_interval())]
    pub noise: f64,
    /// Seed of the first episode (episode k uses seed + k; a re-recorded one keeps its seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
            Box::new(ScriptedDevice::new(scene, args.noise))
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
        seed: args.seed,
        as_fast_as_possible: false,
        max_episodes,
        max_steps: None,
        name: "sim".into(),
        expert_noise: None,
        lockstep: lockstep.then_some(Duration::from_secs(2)),
        reset_pause: Duration::from_secs_f64(reset_s.max(0.0)),
    })
}

/// A node run beside the robot: gets the bus, the stop flag and the start barrier.
pub type ExtraNode<'a, T> = Box<dyn FnOnce(&bus::Bus, &Arc<AtomicBool>, &Barrier) -> Result<T> + Send + 'a>;

/// Runs the robot node, the teleop node and (optionally) one more node on one bus session.
/// The robot runs on the calling thread once the others subscribed; when `extra` returns, the
/// others are stopped. A driver fault (a servo lost, a hardware error) is returned as an error
/// after every node stopped.
pub fn run_with_robot<T: Send>(
    bus_config: &bus::BusConfig,
    robot: RobotNode,
    device: Option<Box<dyn TeleopDevice>>,
    stop: Arc<AtomicBool>,
    extra: Option<ExtraNode<'_, T>>,
) -> Result<(RobotReport, TeleopReport, Option<T>)> {
    let bus = bus::Bus::open(bus_config).context("opening the bus")?;
    let parties = 1 + usize::from(device.is_some()) + usize::from(extra.is_some());
    let ready = Barrier::new(parties);
    std::thread::scope(|s| {
        let (bus, stop, ready) = (&bus, &stop, &ready);
        let teleop = device.map(|mut device| {
            s.spawn(move || {
                let r = run_teleop(device.as_mut(), &TeleopNodeConfig::default(), bus, stop, Some(ready));
                if r.is_err() {
                    stop.store(true, Ordering::SeqCst);
                }
                r
            })
        });
        let extra_handle = extra.map(|f| {
            s.spawn(move || {
                let r = f(bus, stop, ready);
                stop.store(true, Ordering::SeqCst);
                r
            })
        });
        ready.wait();
        // Subscribers are declared: start the robot.
        std::thread::sleep(Duration::from_millis(50));
        let mut fault = None;
        let robot_result: Result<RobotReport> = match robot {
            RobotNode::Sim(cfg) => SimNode::new(*cfg)
                .and_then(|mut n| n.run(bus, stop))
                .map_err(Into::into)
                .map(|r| RobotReport { steps: r.steps, episodes: r.episodes, successes: r.successes }),
            RobotNode::Widowx { mut conn, node } => {
                let kin = SimKinematics::widowx250();
                run_driver_node(&mut conn.arm, Some(&kin), bus, &node, stop, None).map_err(Into::into).map(|r| {
                    fault = r.fault.clone();
                    RobotReport { steps: r.published, episodes: r.episodes, successes: 0 }
                })
            }
        };
        if robot_result.is_err() {
            stop.store(true, Ordering::SeqCst);
        }
        // The sim ended (a Stop request, a limit or Ctrl-C): the recorder gets a few seconds to
        // write the last episode, then everything stops.
        let ended = std::time::Instant::now();
        if let Some(h) = extra_handle.as_ref() {
            while !h.is_finished() {
                if ended.elapsed() > Duration::from_secs(10) {
                    stop.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let extra_result = extra_handle.map(|h| h.join());
        stop.store(true, Ordering::SeqCst);
        let teleop_result = match teleop {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("the teleop node panicked"))?,
            None => Ok(TeleopReport::default()),
        };
        let extra = match extra_result {
            Some(Ok(r)) => Some(r?),
            Some(Err(_)) => bail!("a node panicked"),
            None => None,
        };
        let robot_report = robot_result?;
        if let Some(f) = fault {
            bail!("the driver stopped the arm: {f}");
        }
        Ok((robot_report, teleop_result?, extra))
    })
}

/// Runs `armstack teleop`.
pub fn run(args: TeleopArgs, bus_config: &bus::BusConfig) -> Result<()> {
    let robot = robot_node(&args.robot, args.rate, args.robot.robot == RobotKind::Sim, args.episodes, None)?;
    let device = make_device(&args.robot, &robot)?;
    let stop = crate::shutdown::stop_flag()?;
    let (sim, teleop, _) = run_with_robot::<()>(bus_config, robot, Some(device), stop, None)?;
    eprintln!();
    println!(
        "teleop: {} episodes ({} successful), {} steps, {} commands, {} episode requests",
        sim.episodes, sim.successes, sim.steps, teleop.commands, teleop.requests
    );
    Ok(())
}
