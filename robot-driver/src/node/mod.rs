//! The driver node: the arm on the bus, with the same interface as the sim node.
//!
//! Inputs: `command/joint`, `command/ee_delta` (through an [`ArmKinematics`] the caller provides),
//! `command/chunk` (rows played one per chunk period), `command/episode`, `estop`. Outputs:
//! `joint_state` at the publish rate, `episode` and `task` (see [`crate::episodes`]), `status`
//! once a second and whenever the node's state changes.
//!
//! Every cycle: one sync read of all servos, command arbitration and the safety filter, one bulk
//! write. Arbitration and safety are the rules the sim node applies too ([`arm_command::Arbiter`],
//! configured from the servo map by [`crate::safety::arbiter_config`]), so a policy validated in
//! the sim meets the same rules here: the newest direct command wins, else the chunk row due now
//! (rows played by the wall clock, a chunk's start back-dated by its age); NaN/inf and malformed
//! commands are rejected, and so are commands that are not fresh (older than
//! `max_command_age_ms`, or more than 100 ms ahead of this clock); targets are clamped into the
//! joint limits and rate-limited to each joint's `max_velocity_rad_s`; the watchdog holds position
//! when commands stop for `watchdog_ms`; every `estop` message of a cycle feeds the e-stop latch
//! (an engage followed by a release within one cycle still latches, and so does a message lost
//! from a full queue), which holds or drops torque as configured, drops the playing chunk,
//! releases only on a fresh release newer than the engage, and then needs a command stamped after
//! the release. A servo that stops answering, a latched hardware error or a shadow disagreement
//! stops the arm (the servos that still answer hold where they are) and the node reports `Error`
//! with the reason.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use arm_command::{Arbiter, ArbiterCounts, Cycle, EeDeltaSolver};
use bus::{
    now_ns, ActionChunk, Bus, BusError, EeDeltaCommand, EpisodeControl, EpisodeEvent, Estop, JointCommand, JointState,
    Message, NodeState, Percentiles, Pose, Status, Task, ESTOP_QUEUE_CAPACITY,
};

use crate::arm::{Arm, ArmError, ArmState};

mod commands;
use crate::episodes::{EpisodeConfig, Episodes};
use crate::safety::arbiter_config;
use crate::servo_map::{EstopAction, NUM_JOINTS};
use commands::{drain_inbox, Solver};

/// Forward and differential kinematics the node needs for `command/ee_delta` and `ee_pose`
/// (the launch layer provides the sim crate's solver; the driver does not depend on it).
pub trait ArmKinematics: Send + Sync {
    /// Finger-tip pose in the base frame at `q_rad`.
    fn ee_pose(&self, q_rad: &[f64; NUM_JOINTS]) -> Pose;
    /// Joint targets that move the finger tip by the delta from `q_rad`; `None` when unreachable.
    fn apply_ee_delta(
        &self,
        q_rad: &[f64; NUM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> Option<[f64; NUM_JOINTS]>;
}

/// Errors of the driver node.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The arm failed at start-up (torque stays off).
    #[error(transparent)]
    Arm(#[from] ArmError),
    /// The servo map's limits are unusable for the safety filter.
    #[error("servo map limits: {0}")]
    Limits(#[from] arm_command::LimitsError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Driver node settings.
#[derive(Clone, Debug)]
pub struct DriverNodeConfig {
    /// Node name in `status`.
    pub name: String,
    /// Servo cycle rate (read + write), Hz.
    pub cycle_hz: f64,
    /// `joint_state` rate, Hz (≤ `cycle_hz`; teleop and policies tick on it).
    pub publish_hz: f64,
    /// Stop after this many cycles.
    pub max_cycles: Option<u64>,
    /// Episodes.
    pub episodes: EpisodeConfig,
    /// Pose every episode starts from, rad: between episodes the arm moves there (at the safety
    /// filter's speed, gripper open) and commands are ignored. `None`: episodes start where the
    /// arm is.
    pub ready_pose: Option<[f64; NUM_JOINTS]>,
}

impl Default for DriverNodeConfig {
    fn default() -> Self {
        DriverNodeConfig {
            name: "driver".into(),
            cycle_hz: 100.0,
            publish_hz: 100.0,
            max_cycles: None,
            episodes: EpisodeConfig::default(),
            ready_pose: None,
        }
    }
}

/// What the driver node did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriverReport {
    /// Servo cycles.
    pub cycles: u64,
    /// `joint_state` messages published.
    pub published: u64,
    /// Command arbitration and safety counters (applied, rejected, stale, clamped, watchdog
    /// holds, stale episode requests, e-stop transitions), as the arbiter counted them.
    pub commands: ArbiterCounts,
    /// Cycles whose state read failed transiently (retries exhausted once).
    pub read_errors: u64,
    /// Cycles that started late by more than one period.
    pub overruns: u64,
    /// Read + write time per cycle.
    pub cycle_time: Percentiles,
    /// The fault that stopped the arm, if any.
    pub fault: Option<String>,
    /// Episodes kept.
    pub episodes: u64,
}

struct Io {
    joint_state: bus::Publisher<JointState>,
    episode: bus::Publisher<EpisodeEvent>,
    task: bus::Publisher<Task>,
    status: bus::Publisher<Status>,
    joint_cmd: bus::Subscriber<JointCommand>,
    ee_cmd: bus::Subscriber<EeDeltaCommand>,
    chunk_cmd: bus::Subscriber<ActionChunk>,
    control: bus::Subscriber<EpisodeControl>,
    estop: bus::Subscriber<Estop>,
}

impl Io {
    /// Counters of every subscriber of the node, summed (what arrived and what was refused).
    fn receive_stats(&self) -> bus::SubscriberStats {
        [self.joint_cmd.stats(), self.ee_cmd.stats(), self.chunk_cmd.stats(), self.control.stats(), self.estop.stats()]
            .into_iter()
            .sum()
    }
}

/// The node's live state.
struct Control {
    /// Command arbitration and the safety filter (e-stop latch, freshness, watchdog, limits).
    arbiter: Arbiter,
    torque_off: bool,
    fault: Option<String>,
}

/// Runs the driver node: starts the arm (checks, configuration, torque on at the measured pose),
/// then cycles until `stop`, `max_cycles`, or an episode `Stop` request.
pub fn run_driver_node(
    arm: &mut Arm,
    kinematics: Option<&dyn ArmKinematics>,
    bus: &Bus,
    cfg: &DriverNodeConfig,
    stop: &AtomicBool,
    ready: Option<&Barrier>,
) -> Result<DriverReport, DriverError> {
    let io = Io {
        joint_state: bus.publisher()?,
        episode: bus.publisher()?,
        task: bus.publisher()?,
        status: bus.publisher()?,
        joint_cmd: bus.subscriber()?,
        ee_cmd: bus.subscriber()?,
        chunk_cmd: bus.subscriber()?,
        control: bus.subscriber()?,
        estop: bus.subscriber_with_capacity(Estop::TOPIC, ESTOP_QUEUE_CAPACITY)?,
    };
    if let Some(b) = ready {
        b.wait();
    }
    let names = arm.map().state_names();
    let safety = arm.map().safety.clone();
    let publish_status = |state: NodeState, message: &str, report: &DriverReport, arm: &Arm| -> Result<(), BusError> {
        let mut counters = BTreeMap::new();
        let b = arm.bus_stats();
        for (k, v) in [
            ("cycles", report.cycles),
            ("read_errors", report.read_errors),
            ("overruns", report.overruns),
            ("bus_tx_packets", b.tx_packets),
            ("bus_rx_packets", b.rx_packets),
            ("bus_crc_errors", b.crc_errors),
            ("bus_timeouts", b.timeouts),
            ("bus_retries", b.retries),
            ("bus_failures", b.failures),
        ] {
            counters.insert(k.to_string(), v);
        }
        report.commands.add_to_status_counters(&mut counters);
        io.receive_stats().add_to_status_counters(&mut counters);
        io.status.publish(&mut Status {
            header: Default::default(),
            node: cfg.name.clone(),
            state,
            message: message.to_string(),
            counters,
        })
    };
    let mut report = DriverReport::default();
    let arbiter_cfg = arbiter_config(arm.map(), cfg.cycle_hz);
    if let Err(e) = arbiter_cfg.limits.validate() {
        publish_status(NodeState::Error, &e.to_string(), &report, arm)?;
        return Err(e.into());
    }
    let started = arm.start().and_then(|r| {
        tracing::info!(servos = r.servos.len(), voltage_v = r.min_voltage_v, port = %arm.bus_mut().port_name(), "arm checks passed");
        arm.enable_torque()
    });
    let mut state = match started {
        Ok(s) => s,
        Err(e) => {
            publish_status(NodeState::Error, &e.to_string(), &report, arm)?;
            return Err(e.into());
        }
    };
    let arbiter = Arbiter::new(arbiter_cfg, state.q_rad, state.gripper_opening)?;
    let mut ctl = Control { arbiter, torque_off: false, fault: None };
    let solver = kinematics.map(Solver);
    let solver = solver.as_ref().map(|s| s as &dyn EeDeltaSolver);
    // The control clock: ns since the node started (chunk rows, watchdog, velocity limit).
    let started_at = Instant::now();
    let period = Duration::from_secs_f64(1.0 / cfg.cycle_hz.max(1.0));
    let publish_every = Duration::from_secs_f64(1.0 / cfg.publish_hz.clamp(0.1, cfg.cycle_hz.max(1.0)));
    let mut episodes = Episodes::new(cfg.episodes.clone());
    let mut cycle_ms = Vec::new();
    let mut next_tick = Instant::now();
    let mut next_publish = Instant::now();
    let mut last_status = Instant::now();
    let mut last_state_name = NodeState::Running;
    publish_status(NodeState::Running, "", &report, arm)?;
    tracing::info!(cycle_hz = cfg.cycle_hz, publish_hz = cfg.publish_hz, "driver node running");
    while !stop.load(Ordering::Relaxed) && cfg.max_cycles.is_none_or(|m| report.cycles < m) {
        let t0 = Instant::now();
        report.cycles += 1;
        // 1. Measure.
        let mut measured = true;
        match arm.read_state() {
            Ok(s) => {
                if !s.alerts.is_empty() && ctl.fault.is_none() {
                    let hw = arm.hardware_errors(&s.alerts);
                    fault(&mut ctl, arm, &s, ArmError::Hardware(hw).to_string());
                }
                state = s;
            }
            Err(e @ ArmError::Bus(_)) => {
                report.read_errors += 1;
                measured = false;
                tracing::debug!(error = %e, "state read failed; retrying next cycle");
            }
            Err(e) => {
                measured = false;
                if ctl.fault.is_none() {
                    fault(&mut ctl, arm, &state, e.to_string());
                }
            }
        }
        // 2. Arbitration (between episodes with a ready pose: move there instead of commands).
        // Every e-stop message of the cycle goes through the arbiter's latch (which logs each
        // transition with its source), so an engage followed by a release still stops the arm.
        let resetting = cfg.ready_pose.is_some() && episodes.resetting();
        if let (Some(ready), true) = (cfg.ready_pose, resetting && !ctl.arbiter.is_engaged() && ctl.fault.is_none()) {
            ctl.arbiter.set_target(ready, 1.0);
        }
        let was_engaged = ctl.arbiter.is_engaged();
        let cycle = Cycle {
            now_ns: now_ns(),
            control_ns: t0.saturating_duration_since(started_at).as_nanos() as u64,
            measured_q_rad: state.q_rad,
            accept_commands: ctl.fault.is_none() && measured && !resetting,
        };
        let decision = ctl.arbiter.step(&cycle, drain_inbox(&io), solver);
        report.commands = ctl.arbiter.counts();
        let engaged = ctl.arbiter.is_engaged();
        if engaged != was_engaged {
            if engaged {
                tracing::warn!(action = ?safety.on_estop, "e-stop: stopping the arm");
                match safety.on_estop {
                    EstopAction::Hold => {}
                    EstopAction::TorqueOff => {
                        let silent = arm.disable_torque();
                        ctl.torque_off = true;
                        if !silent.is_empty() {
                            tracing::error!(?silent, "servos did not acknowledge torque off");
                        }
                    }
                }
            } else {
                if ctl.torque_off && ctl.fault.is_none() {
                    match arm.enable_torque() {
                        Ok(s) => {
                            state = s;
                            ctl.torque_off = false;
                        }
                        Err(err) => fault(&mut ctl, arm, &state, format!("re-enabling torque after the e-stop: {err}")),
                    }
                }
                ctl.arbiter.hold_at(state.q_rad, state.gripper_opening);
            }
        }
        // 3. Act: the arbiter's safe target.
        if measured && ctl.fault.is_none() && !ctl.torque_off {
            if let Err(e) = arm.write_goal(&decision.q_rad, decision.gripper, &state) {
                tracing::warn!(error = %e, "goal write failed");
            }
        }
        cycle_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        // 4. Publish.
        let now = Instant::now();
        if now >= next_publish && measured {
            next_publish += publish_every;
            if next_publish < now {
                next_publish = now + publish_every;
            }
            let stamp = now_ns();
            io.joint_state.publish(&mut joint_state_msg(&state, &names, kinematics, stamp))?;
            report.published += 1;
            let ready = cfg.ready_pose.is_none_or(|r| r.iter().zip(&state.q_rad).all(|(a, b)| (a - b).abs() < 0.03));
            let request = io.control.latest().and_then(|c| ctl.arbiter.admit_episode_request(&c, now_ns()));
            report.commands = ctl.arbiter.counts();
            let out = episodes.on_step(now, stamp, request, ready);
            if let Some(mut t) = out.task {
                io.task.publish(&mut t)?;
            }
            for mut ev in out.events {
                io.episode.publish(&mut ev)?;
            }
            if out.stop {
                break;
            }
        }
        let node_state = if ctl.fault.is_some() {
            NodeState::Error
        } else if engaged {
            NodeState::Estopped
        } else {
            NodeState::Running
        };
        if node_state != last_state_name || last_status.elapsed() >= Duration::from_secs(1) {
            let msg = match (&ctl.fault, engaged) {
                (Some(f), _) => f.clone(),
                (None, true) => {
                    format!("e-stop engaged: {}", if ctl.torque_off { "torque off" } else { "holding position" })
                }
                _ => String::new(),
            };
            publish_status(node_state, &msg, &report, arm)?;
            last_status = Instant::now();
            last_state_name = node_state;
        }
        // 5. Pace.
        next_tick += period;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else if now - next_tick > period {
            report.overruns += 1;
            next_tick = now;
        }
    }
    report.cycle_time = Percentiles::of(&cycle_ms);
    report.fault = ctl.fault.clone();
    report.episodes = episodes.kept();
    let final_state = if ctl.fault.is_some() { NodeState::Error } else { NodeState::Stopped };
    publish_status(final_state, ctl.fault.as_deref().unwrap_or(""), &report, arm)?;
    tracing::info!(cycles = report.cycles, fault = ?report.fault, "driver node stopped (servos keep holding their last goal)");
    Ok(report)
}

/// Enters the fault state: the servos that still answer hold where `state` measured them.
fn fault(ctl: &mut Control, arm: &mut Arm, state: &ArmState, reason: String) {
    tracing::error!(%reason, "driver fault: stopping the arm");
    ctl.arbiter.hold_at(state.q_rad, state.gripper_opening);
    if let Err(e) = arm.hold(state) {
        tracing::error!(error = %e, "could not send the hold goal");
    }
    ctl.fault = Some(reason);
}

/// The `joint_state` message of a measurement.
pub fn joint_state_msg(s: &ArmState, names: &[String], kin: Option<&dyn ArmKinematics>, stamp_ns: u64) -> JointState {
    let mut m = JointState {
        header: Default::default(),
        name: names.to_vec(),
        position: s.q_rad.iter().copied().chain(std::iter::once(s.gripper_opening)).collect(),
        velocity: s.dq_rad_s.iter().copied().chain(std::iter::once(s.gripper_rate)).collect(),
        effort: s.effort_nm.iter().copied().chain(std::iter::once(0.0)).collect(),
        ee_pose: kin.map(|k| k.ee_pose(&s.q_rad)),
    };
    m.header.stamp_ns = stamp_ns;
    m
}
