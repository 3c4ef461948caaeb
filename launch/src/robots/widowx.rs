//! A WidowX-style arm through the Dynamixel driver: the CLI options shared by `driver`,
//! `calibrate`, `teleop`, `record` and `deploy`, the connection (a serial port, or the servo
//! emulator on a pseudo-terminal), and the sim crate's kinematics for end-effector commands.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use robot_driver::arm::Arm;
use robot_driver::control_table::HOMING_OFFSET;
use robot_driver::emulator::{Emulator, EmulatorConfig, Faults, PtyServer};
use robot_driver::node::ArmKinematics;
use robot_driver::servo_bus::{ServoBus, ServoBusConfig};
use robot_driver::servo_map::{ServoMap, NUM_JOINTS};
use robot_driver::transport::{set_low_latency, LatencyTimer, SerialTransport};

/// How to reach the arm.
#[derive(Args, Debug, Clone, Default)]
pub struct DriverArgs {
    /// Serial device of the servo bus (e.g. /dev/ttyDXL, /dev/ttyUSB0).
    #[arg(long)]
    pub port: Option<String>,
    /// Baud rate, bit/s (default: the servo map's, 1 Mbps for the WidowX).
    #[arg(long, value_parser = crate::cmd::arg_ranges::at_least(1u32))]
    pub baud: Option<u32>,
    /// Servo map TOML (default: the built-in WidowX 250 6DOF map).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run against the servo emulator on a pseudo-terminal instead of hardware (the real
    /// driver code, serial path included).
    #[arg(long, conflicts_with = "port")]
    pub emulate: bool,
    /// Emulator fault injection: probability of a corrupted byte on the wire.
    #[arg(long, default_value_t = 0.0, requires = "emulate", value_parser = crate::cmd::arg_ranges::unit_interval())]
    pub emulate_corrupt: f64,
    /// Emulator fault injection: probability that a servo's reply is lost.
    #[arg(long, default_value_t = 0.0, requires = "emulate", value_parser = crate::cmd::arg_ranges::unit_interval())]
    pub emulate_drop: f64,
    /// The emulated arm's encoders are mounted off-centre, as on an arm that was never
    /// calibrated (`calibrate --emulate` always emulates this arm; its map drives it).
    #[arg(long, requires = "emulate")]
    pub emulate_uncalibrated: bool,
    /// Emulator fault injection: this many seconds of driver work after the driver enabled
    /// torque (counted in its state reads, 100 per second: a busy host delays the fault as much
    /// as the driver's progress), a shadow servo's encoder slips so that it disagrees with its
    /// primary (a driver fault).
    #[arg(long, requires = "emulate")]
    pub emulate_shadow_slip_s: Option<f64>,
    /// Read/write retries per transaction.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// Allowance per transaction for the emulated servos' replies on top of the wire time. They
/// answer from a thread of this process through a pseudo-terminal, so their latency is the host's
/// scheduling latency: tens of milliseconds on a loaded machine, where a USB adapter's 4 ms
/// allowance (the servo bus default, kept for real arms) timed out start-up pings and writes
/// after every retry. A reply that comes in time ends the wait at once.
pub const EMULATOR_LATENCY_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// An open connection: the arm, and the emulator serving it when emulated.
pub struct Connection {
    /// The arm on its servo bus.
    pub arm: Arm,
    /// The emulated chain (fault injection, inspection), when `--emulate`.
    pub emulator: Option<Emulator>,
    /// Serves the emulator until dropped.
    _pty: Option<PtyServer>,
}

impl DriverArgs {
    /// The servo map (file or built-in).
    pub fn map(&self) -> Result<ServoMap> {
        Ok(ServoMap::load(self.config.as_deref())?)
    }

    /// Opens the port (or starts the emulator and opens its pty) with `emulator` settings.
    pub fn connect_with(&self, emulator: EmulatorConfig) -> Result<Connection> {
        let map = self.map()?;
        let baud = self.baud.unwrap_or(map.baud);
        let (path, pty, emu) = if self.emulate {
            for (name, p) in [("--emulate-corrupt", self.emulate_corrupt), ("--emulate-drop", self.emulate_drop)] {
                if !(0.0..=1.0).contains(&p) {
                    bail!("{name} must be a probability in [0, 1], got {p}");
                }
            }
            let faults = Faults { corrupt_byte: self.emulate_corrupt, drop_reply: self.emulate_drop, seed: 1 };
            let mut cfg = EmulatorConfig { baud, faults, ..emulator };
            if self.emulate_uncalibrated {
                cfg.mount_offset_ticks = uncalibrated_mount_offsets(&map);
            }
            let emu = Emulator::from_map(&map, cfg);
            if let Some(after_s) = self.emulate_shadow_slip_s {
                slip_shadow_after(&emu, &map, after_s)?;
            }
            let pty = emu.serve_pty().context("starting the servo emulator on a pseudo-terminal")?;
            (pty.path().to_string(), Some(pty), Some(emu))
        } else {
            let Some(port) = &self.port else {
                bail!("--robot widowx needs --port /dev/ttyXXX (the U2D2 adapter), or --emulate to run against the servo emulator");
            };
            match set_low_latency(std::path::Path::new(port)) {
                LatencyTimer::Lowered(from) => {
                    tracing::info!(port = %port, from_ms = from, "USB latency timer set to 1 ms")
                }
                LatencyTimer::Failed(msg) => tracing::warn!("{msg}"),
                LatencyTimer::AlreadyLow | LatencyTimer::NotApplicable => {}
            }
            (port.clone(), None, None)
        };
        let transport = SerialTransport::open(&path, baud)?;
        let mut bus_config = ServoBusConfig { retries: self.retries, ..Default::default() };
        if emu.is_some() {
            bus_config.latency_margin = EMULATOR_LATENCY_MARGIN;
        }
        let bus = ServoBus::new(Box::new(transport), bus_config);
        Ok(Connection { arm: Arm::new(bus, map), emulator: emu, _pty: pty })
    }

    /// Opens the port, or the emulator at the sleep pose.
    pub fn connect(&self) -> Result<Connection> {
        self.connect_with(EmulatorConfig::default())
    }
}

/// Encoder slip of an emulated shadow servo, ticks (about 0.6 rad: far past any shadow tolerance).
const SHADOW_SLIP_TICKS: i64 = 400;
/// Driver state reads (sync reads, one per cycle) per second of `--emulate-shadow-slip-s`: the
/// driver's default cycle rate, Hz.
const SLIP_READS_PER_S: f64 = 100.0;

/// `after_s` seconds of driver work after the driver enabled torque ([`SLIP_READS_PER_S`]
/// state reads per second), shifts the encoder of the first shadow servo of `map` on `emu` by
/// [`SHADOW_SLIP_TICKS`], as a slipped horn would. Counting the driver's reads rather than wall
/// time keeps the fault at the same point of the run (after the same episodes) on a busy host.
fn slip_shadow_after(emu: &Emulator, map: &ServoMap, after_s: f64) -> Result<()> {
    if !after_s.is_finite() || after_s < 0.0 {
        bail!("--emulate-shadow-slip-s must be a time in seconds ≥ 0, got {after_s}");
    }
    let Some(shadow) = map.joints.iter().find_map(|j| j.shadow_id) else {
        bail!("--emulate-shadow-slip-s: the servo map has no shadow servo");
    };
    let emu = emu.clone();
    std::thread::Builder::new()
        .name("emulated-slip".into())
        .spawn(move || {
            let torque_on = || emu.with_chain(|c| c.servo(shadow).is_some_and(|s| s.torque_on()));
            while !torque_on() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let due = emu.stats().sync_reads + (after_s * SLIP_READS_PER_S).round() as u64;
            while emu.stats().sync_reads < due {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            tracing::info!(servo = shadow, "emulator: the shadow servo's encoder slips");
            emu.with_chain(|c| {
                if let Some(s) = c.servo_mut(shadow) {
                    let offset = s.get(HOMING_OFFSET);
                    s.set(HOMING_OFFSET, offset + SHADOW_SLIP_TICKS);
                    s.refresh_present();
                }
            });
        })
        .context("starting the emulated fault")?;
    Ok(())
}

/// Encoder mount offsets of the emulated uncalibrated arm (servo ID → ticks, within ±150; a
/// joint's shadow differs from its primary), fixed so every command emulates the same arm.
pub fn uncalibrated_mount_offsets(map: &ServoMap) -> std::collections::BTreeMap<u8, i32> {
    map.servos().iter().enumerate().map(|(k, s)| (s.id, ((k as i32 * 97) % 301) - 150)).collect()
}

/// The sim crate's analytic WidowX 250 kinematics behind the driver's [`ArmKinematics`]. Deltas
/// are limited per command like the sim's (`MAX_DELTA_XYZ_M`, `MAX_DELTA_RPY_RAD`): the sim node's
/// own solver.
pub struct SimKinematics {
    solver: sim::node::IkSolver,
}

impl SimKinematics {
    /// The WidowX 250 6DOF model.
    pub fn widowx250() -> SimKinematics {
        SimKinematics { solver: sim::node::IkSolver::widowx250() }
    }
}

impl ArmKinematics for SimKinematics {
    fn ee_pose(&self, q_rad: &[f64; NUM_JOINTS]) -> bus::Pose {
        sim::node::pose_msg(&self.solver.kinematics().fk(q_rad))
    }

    fn apply_ee_delta(
        &self,
        q_rad: &[f64; NUM_JOINTS],
        xyz_m: [f64; 3],
        rpy_rad: [f64; 3],
    ) -> Option<[f64; NUM_JOINTS]> {
        Some(self.solver.solve(q_rad, xyz_m, rpy_rad))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Emulated servos that answer 60 ms late, as a busy host serves the emulator's thread, are
    /// still read: the servo bus waits for the emulator as long as the host's scheduling may take.
    /// With a USB adapter's 4 ms allowance every attempt timed out and the arm did not start.
    #[test]
    fn emulated_servos_answering_late_under_load_are_still_read() {
        let latency = Duration::from_millis(60);
        let args = DriverArgs { emulate: true, retries: 3, ..Default::default() };
        let mut conn = args
            .connect_with(EmulatorConfig { reply_latency: latency, ..Default::default() })
            .expect("the emulator on a pseudo-terminal");
        let started = Instant::now();
        let servos = conn.arm.check_servos().expect("every servo answers its ping");
        assert_eq!(servos.len(), conn.arm.servos().len());
        assert!(started.elapsed() >= latency, "the replies were late: {:?}", started.elapsed());
        conn.arm.read_state().expect("a sync read of every servo");
        assert_eq!(conn.arm.bus_stats().failures, 0, "{:?}", conn.arm.bus_stats());
    }
}
