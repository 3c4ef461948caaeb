//! The nodes a fuzz run attacks, started in this process exactly as their commands start them:
//! the sim node (`armstack sim`, with its scripted autopilot), the driver node on the servo
//! emulator (`armstack driver --emulate`), and a recording session (`armstack record` with the
//! scripted device, writing a real dataset).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bus::BusConfig;
use clap::ValueEnum;
use robot_driver::episodes::EpisodeConfig;
use robot_driver::node::{run_driver_node, DriverNodeConfig};
use serde::Serialize;
use sim::node::{SimNode, SimNodeConfig};

use super::watch::Limits;
use crate::cmd::record::{record_session, RecordArgs};
use crate::cmd::teleop::{DeviceKind, RobotArgs, RobotKind};
use crate::nodes::{sim_node_config, SimNodeSpec};
use crate::record::recorder::RecorderReport;
use crate::robots::widowx::{Connection, DriverArgs, SimKinematics};
use crate::shutdown::Supervisor;

/// Camera image size of the recording target, pixels (small: the fuzz is about the messages).
const RECORD_IMAGE_SIZE: u32 = 32;

/// What a fuzz run attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The sim node at 10 Hz with its scripted autopilot (`armstack sim --expert 0.3`).
    Sim,
    /// The driver node on the servo emulator (`armstack driver --emulate`).
    Driver,
    /// A recording session: the sim in lockstep, the scripted device and the recorder writing a
    /// dataset (`armstack record --device scripted`).
    Record,
}

impl Target {
    /// The target's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Target::Sim => "sim",
            Target::Driver => "driver",
            Target::Record => "record",
        }
    }

    /// The `status` name of the robot node.
    pub fn robot_node(self) -> &'static str {
        match self {
            Target::Driver => "driver",
            Target::Sim | Target::Record => "sim",
        }
    }

    /// Topics the target's nodes subscribe to (the recorder listens to the robot's outputs too).
    pub fn input_topics(self, cameras: &[(String, u32, u32)]) -> Vec<String> {
        let mut topics: Vec<String> = [
            bus::topics::COMMAND_JOINT,
            bus::topics::COMMAND_EE_DELTA,
            bus::topics::COMMAND_CHUNK,
            bus::topics::COMMAND_EPISODE,
            bus::topics::ESTOP,
        ]
        .map(String::from)
        .into();
        if self == Target::Record {
            for t in [
                bus::topics::JOINT_STATE,
                bus::topics::SCENE_STATE,
                bus::topics::EPISODE,
                bus::topics::TASK,
                bus::topics::STATUS,
            ] {
                topics.push(t.into());
            }
            topics.extend(cameras.iter().map(|c| c.0.clone()));
        }
        topics
    }
}

/// A target ready to start.
pub enum Prepared {
    /// The sim node.
    Sim(Box<SimNodeConfig>),
    /// The driver node and its emulated arm.
    Driver {
        /// The emulated arm.
        conn: Box<Connection>,
        /// The node's settings.
        cfg: Box<DriverNodeConfig>,
    },
    /// A recording session.
    Record(Box<RecordArgs>),
}

/// A prepared target with what the fuzzer needs to know of it.
pub struct Setup {
    /// The nodes to start.
    pub prepared: Prepared,
    /// The robot's joint limits.
    pub limits: Limits,
    /// Camera topics the robot publishes and the recorder records, with their size, pixels.
    pub cameras: Vec<(String, u32, u32)>,
}

/// How a target's nodes ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// A node's error or panic (a crash), if any.
    pub failure: Option<String>,
    /// The refusal the run provoked on purpose (the recorder stopping at a second commander).
    pub expected_refusal: Option<String>,
    /// The recorder's report (record target).
    pub recorder: Option<RecorderReport>,
}

/// The sim's joint limits (the URDF's), as the sim node enforces them.
fn sim_limits() -> Limits {
    let spec = sim::arm::ArmSpec::default();
    Limits {
        lower_rad: std::array::from_fn(|i| spec.joints[i].lower_rad),
        upper_rad: std::array::from_fn(|i| spec.joints[i].upper_rad),
        velocity_rad_s: std::array::from_fn(|i| spec.joints[i].velocity_limit_rad_s),
    }
}

/// Prepares `target` for scene `scene` with episode seeds from `seed`; the recording goes into
/// `dir/dataset`.
pub fn prepare(target: Target, scene: &str, seed: u64, dir: &Path) -> Result<Setup> {
    Ok(match target {
        Target::Sim => {
            let spec = SimNodeSpec {
                name: "sim".into(),
                robot: None,
                scene: scene.into(),
                rate_hz: 10.0,
                physics_hz: 500.0,
                seed,
                as_fast_as_possible: false,
                cameras: false,
                width: RECORD_IMAGE_SIZE,
                height: RECORD_IMAGE_SIZE,
                episodes: None,
                steps: None,
                expert: Some(0.3),
                expert_quality: None,
            };
            Setup {
                prepared: Prepared::Sim(Box::new(sim_node_config(&spec)?)),
                limits: sim_limits(),
                cameras: Vec::new(),
            }
        }
        Target::Driver => {
            let conn = DriverArgs { emulate: true, retries: 3, ..Default::default() }.connect()?;
            let joints = &conn.arm.map().joints;
            let limits = Limits {
                lower_rad: std::array::from_fn(|i| joints[i].min_rad),
                upper_rad: std::array::from_fn(|i| joints[i].max_rad),
                velocity_rad_s: std::array::from_fn(|i| joints[i].max_velocity_rad_s),
            };
            let episodes =
                EpisodeConfig { max_steps: Some(100), reset_pause: Duration::from_millis(200), ..Default::default() };
            let cfg = crate::cmd::driver::node_config(100.0, 50.0, episodes)?;
            Setup {
                prepared: Prepared::Driver { conn: Box::new(conn), cfg: Box::new(cfg) },
                limits,
                cameras: Vec::new(),
            }
        }
        Target::Record => {
            let robot = RobotArgs {
                robot: RobotKind::Sim,
                scene: scene.into(),
                device: DeviceKind::Scripted,
                noise: 0.3,
                quality: None,
                mistake_rate: sim::expert::DEFAULT_MISTAKE_RATE,
                seed: Some(seed),
                image_size: RECORD_IMAGE_SIZE,
                reset_s: None,
                realtime: false,
                episode_s: 30.0,
                driver: DriverArgs::default(),
            };
            let args = RecordArgs {
                dataset: dir.join("dataset"),
                robot,
                task: None,
                episodes: 1_000_000,
                fps: 10.0,
                resume: false,
                reuse_seeds: false,
                no_cameras: false,
                crf: 30,
            };
            let cameras = ["front", "wrist"]
                .iter()
                .map(|c| (bus::topics::camera_topic(c), RECORD_IMAGE_SIZE, RECORD_IMAGE_SIZE))
                .collect();
            Setup { prepared: Prepared::Record(Box::new(args)), limits: sim_limits(), cameras }
        }
    })
}

/// Whether `failure` is the recorder's refusal of a second command source.
fn is_second_commander_refusal(failure: &str) -> bool {
    failure.contains("the robot executed commands the dataset would not hold")
}

/// Runs the prepared nodes on `bus_config` until they end (`stop`, a `Stop` request, a
/// refusal or a crash); every error and panic is caught and returned.
pub fn run(prepared: Prepared, bus_config: &BusConfig, stop: Arc<AtomicBool>) -> Ended {
    let sup = Supervisor::new(stop.clone());
    let mut ended = Ended::default();
    match prepared {
        Prepared::Sim(cfg) => {
            sup.run_node("sim", || {
                let bus = bus::Bus::open(bus_config)?;
                let mut node = SimNode::new(*cfg)?;
                Ok(node.run(&bus, &stop)?)
            });
        }
        Prepared::Driver { mut conn, cfg } => {
            sup.run_node("driver", || {
                let bus = bus::Bus::open(bus_config)?;
                let kin = SimKinematics::widowx250();
                let report = run_driver_node(&mut conn.arm, Some(&kin), &bus, &cfg, &stop, None)?;
                match report.fault {
                    Some(f) => anyhow::bail!("the driver stopped the arm: {f}"),
                    None => Ok(report),
                }
            });
        }
        Prepared::Record(args) => {
            if let Some(session) = sup.run_node("record", || record_session(&args, bus_config, stop.clone())) {
                ended.recorder = Some(session.report);
                if let Some(failure) = session.failure.map(|e| format!("{e:#}")) {
                    if is_second_commander_refusal(&failure) {
                        ended.expected_refusal = Some(failure);
                    } else {
                        ended.failure = Some(failure);
                    }
                }
            }
        }
    }
    if let Some(e) = sup.take_failure() {
        ended.failure = Some(format!("{e:#}"));
    }
    ended
}
