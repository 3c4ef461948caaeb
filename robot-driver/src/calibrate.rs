//! Calibration, like `lerobot-calibrate`: with torque off, a person puts the arm in its home
//! pose (every joint at 0 rad), the driver writes homing offsets so each servo reads 2048 there;
//! then the person moves every joint through its range while the driver records it, checks the
//! ranges and produces an updated servo map (homing offsets, joint limits narrowed to what was
//! observed, gripper closed/open angles).
//!
//! The person is behind [`CalibrationOperator`]: the CLI prompts on the terminal; against the
//! emulator, [`EmulatedOperator`] moves the servos by hand.

use std::time::{Duration, Instant};

use crate::arm::{Arm, ArmError};
use crate::control_table::{self as ct, rad_to_ticks, ticks_to_rad, CENTER_TICK};
use crate::emulator::{Emulator, Hand};
use crate::servo_bus::decode_signed;
use crate::servo_map::{ServoMap, NUM_JOINTS};

/// The person (or script) moving the arm during calibration.
pub trait CalibrationOperator {
    /// Put the arm in its home pose (all joints 0 rad, gripper anywhere); returns when done.
    fn place_at_home(&mut self);
    /// Start moving every joint (and the gripper) through its full range.
    fn start_sweep(&mut self);
    /// Whether the sweep is finished, `elapsed` after it started.
    fn sweep_finished(&mut self, elapsed: Duration) -> bool;
}

/// Calibration settings.
#[derive(Clone, Copy, Debug)]
pub struct CalibrationConfig {
    /// Longest sweep, s.
    pub max_sweep_s: f64,
    /// Position sampling rate during the sweep, Hz.
    pub sample_hz: f64,
    /// Each joint must cover at least this fraction of its configured range.
    pub min_coverage: f64,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig { max_sweep_s: 60.0, sample_hz: 50.0, min_coverage: 0.8 }
    }
}

/// One joint's result.
#[derive(Clone, Debug, PartialEq)]
pub struct JointCalibration {
    /// Joint name.
    pub name: String,
    /// Homing offset written to the primary, ticks.
    pub homing_offset_ticks: i32,
    /// Homing offset written to the shadow, ticks.
    pub shadow_homing_offset_ticks: Option<i32>,
    /// Lowest angle seen, rad.
    pub observed_min_rad: f64,
    /// Highest angle seen, rad.
    pub observed_max_rad: f64,
    /// Observed span / configured span.
    pub coverage: f64,
    /// Largest primary–shadow disagreement during the sweep, rad.
    pub shadow_max_diff_rad: Option<f64>,
}

/// The calibration's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationReport {
    /// Per joint.
    pub joints: Vec<JointCalibration>,
    /// Gripper angles seen (min, max), rad.
    pub gripper_range_rad: (f64, f64),
    /// Samples recorded during the sweep.
    pub samples: usize,
    /// Problems that make the calibration unusable (empty: good).
    pub problems: Vec<String>,
    /// Notes that do not block (a joint past its configured limit, …).
    pub warnings: Vec<String>,
    /// The input map with the measured offsets and ranges.
    pub map: ServoMap,
}

/// Runs the calibration. Torque is off throughout; homing offsets are written to the servos
/// (EEPROM) after the home pose is read. The caller saves `report.map` when `problems` is empty.
pub fn calibrate(
    arm: &mut Arm,
    op: &mut dyn CalibrationOperator,
    cfg: &CalibrationConfig,
) -> Result<CalibrationReport, ArmError> {
    arm.check_servos()?;
    let silent = arm.disable_torque();
    if let Some(id) = silent.first() {
        return Err(ArmError::Startup(vec![format!("servo {id} did not acknowledge torque off")]));
    }
    let ids = arm.ids();
    // Clear offsets and open the limits so raw positions read through.
    for &id in &ids {
        arm.write_register(id, ct::HOMING_OFFSET, 0)?;
        arm.write_register(id, ct::MIN_POSITION_LIMIT, 0)?;
        arm.write_register(id, ct::MAX_POSITION_LIMIT, i64::from(ct::MAX_TURN_TICK))?;
    }
    op.place_at_home();
    let home = read_positions(arm, &ids)?;
    let offsets: Vec<i32> = home.iter().map(|&raw| (CENTER_TICK as i64 - raw) as i32).collect();
    let map = arm.map().clone();
    let gripper_k = ids.iter().position(|&id| id == map.gripper.id).unwrap_or(0);
    // The gripper keeps its offset (its angles are measured, not homed).
    let homing: Vec<(u8, i64)> =
        ids.iter().enumerate().map(|(k, &id)| (id, if k == gripper_k { 0 } else { i64::from(offsets[k]) })).collect();
    // Every offset is checked against Homing_Offset's range before the first is written, so a
    // bad home reading leaves no servo half calibrated.
    for &(id, offset) in &homing {
        arm.check_register(id, ct::HOMING_OFFSET, offset)?;
    }
    for &(id, offset) in &homing {
        arm.write_register(id, ct::HOMING_OFFSET, offset)?;
    }
    op.start_sweep();
    let started = Instant::now();
    let period = Duration::from_secs_f64(1.0 / cfg.sample_hz.max(1.0));
    let mut lo = vec![i64::MAX; ids.len()];
    let mut hi = vec![i64::MIN; ids.len()];
    let mut shadow_diff = [0.0f64; NUM_JOINTS];
    let mut samples = 0;
    let index = |id: u8| ids.iter().position(|&i| i == id).unwrap_or(0);
    loop {
        let elapsed = started.elapsed();
        if op.sweep_finished(elapsed) || elapsed.as_secs_f64() > cfg.max_sweep_s {
            break;
        }
        if let Ok(pos) = read_positions(arm, &ids) {
            samples += 1;
            for k in 0..ids.len() {
                lo[k] = lo[k].min(pos[k]);
                hi[k] = hi[k].max(pos[k]);
            }
            for (i, j) in map.joints.iter().enumerate() {
                if let Some(s) = j.shadow_id {
                    let d = (pos[index(s)] - pos[index(j.id)]).abs() as f64 * ct::RAD_PER_TICK;
                    shadow_diff[i] = shadow_diff[i].max(d);
                }
            }
        }
        std::thread::sleep(period);
    }
    let mut report = CalibrationReport {
        joints: Vec::new(),
        gripper_range_rad: (0.0, 0.0),
        samples,
        problems: Vec::new(),
        warnings: Vec::new(),
        map: map.clone(),
    };
    if samples < 2 {
        report.problems.push("no positions were read during the sweep".into());
        return Ok(report);
    }
    for (i, j) in map.joints.iter().enumerate() {
        let k = index(j.id);
        let (min_rad, max_rad) = (ticks_to_rad(lo[k] as i32), ticks_to_rad(hi[k] as i32));
        let span = j.max_rad - j.min_rad;
        let coverage = (max_rad.min(j.max_rad) - min_rad.max(j.min_rad)).max(0.0) / span;
        if coverage < cfg.min_coverage {
            report.problems.push(format!(
                "joint {} moved only through [{min_rad:.2}, {max_rad:.2}] rad, {:.0}% of its range [{}, {}]: move it end to end",
                j.name,
                coverage * 100.0,
                j.min_rad,
                j.max_rad
            ));
        }
        if min_rad < j.min_rad - 0.05 || max_rad > j.max_rad + 0.05 {
            report.warnings.push(format!(
                "joint {} reached [{min_rad:.2}, {max_rad:.2}] rad, beyond its configured limits [{}, {}]: was it at 0 rad when you confirmed the home pose?",
                j.name, j.min_rad, j.max_rad
            ));
        }
        let shadow = j.shadow_id.map(|s| offsets[index(s)]);
        if j.shadow_id.is_some() && shadow_diff[i] > map.safety.shadow_tolerance_rad {
            report.problems.push(format!(
                "joint {}: the shadow servo disagreed with the primary by up to {:.3} rad during the sweep",
                j.name, shadow_diff[i]
            ));
        }
        let m = &mut report.map.joints[i];
        m.homing_offset_ticks = offsets[k];
        m.shadow_homing_offset_ticks = shadow.unwrap_or(0);
        // Never widen a limit: keep the intersection of the configured and the observed range.
        m.min_rad = j.min_rad.max(min_rad);
        m.max_rad = j.max_rad.min(max_rad);
        report.joints.push(JointCalibration {
            name: j.name.clone(),
            homing_offset_ticks: offsets[k],
            shadow_homing_offset_ticks: shadow,
            observed_min_rad: min_rad,
            observed_max_rad: max_rad,
            coverage,
            shadow_max_diff_rad: j.shadow_id.map(|_| shadow_diff[i]),
        });
    }
    let (glo, ghi) = (ticks_to_rad(lo[gripper_k] as i32), ticks_to_rad(hi[gripper_k] as i32));
    report.gripper_range_rad = (glo, ghi);
    if ghi - glo < 0.2 {
        report.problems.push(format!("the gripper moved only {:.2} rad: open and close it fully", ghi - glo));
    } else {
        let g = &mut report.map.gripper;
        if g.closed_rad < g.open_rad {
            (g.closed_rad, g.open_rad) = (glo, ghi);
        } else {
            (g.closed_rad, g.open_rad) = (ghi, glo);
        }
    }
    if let Err(reason) = report.map.validate() {
        report.problems.push(format!("the calibrated map is invalid: {reason}"));
    }
    Ok(report)
}

/// Present positions of `ids`, ticks (one sync read).
fn read_positions(arm: &mut Arm, ids: &[u8]) -> Result<Vec<i64>, ArmError> {
    let replies = arm.bus_mut().sync_read(ct::PRESENT_POSITION.address, ct::PRESENT_POSITION.size, ids)?;
    replies.into_iter().map(|r| Ok(decode_signed(&r?.data))).collect()
}

/// Moves the emulator's servos by hand: the home pose, then one sinusoidal sweep of every joint
/// over its configured range (and of the gripper between closed and open).
pub struct EmulatedOperator {
    emulator: Emulator,
    map: ServoMap,
    sweep_s: f64,
}

impl EmulatedOperator {
    /// An operator on `emulator` for the arm in `map`; one sweep takes `sweep_s` seconds.
    pub fn new(emulator: Emulator, map: ServoMap, sweep_s: f64) -> Self {
        EmulatedOperator { emulator, map, sweep_s }
    }

    fn raw(&self, id: u8, rad: f64) -> f64 {
        let mount = self.emulator.config().mount_offset_ticks.get(&id).copied().unwrap_or(0);
        (rad_to_ticks(rad) + mount) as f64
    }

    fn each_servo(&self, mut f: impl FnMut(u8, f64, f64)) {
        for j in &self.map.joints {
            for id in std::iter::once(j.id).chain(j.shadow_id) {
                f(id, j.min_rad, j.max_rad);
            }
        }
        f(self.map.gripper.id, self.map.gripper.closed_rad, self.map.gripper.open_rad);
    }
}

impl CalibrationOperator for EmulatedOperator {
    fn place_at_home(&mut self) {
        let mut holds = Vec::new();
        self.each_servo(|id, lo, hi| holds.push((id, if id == self.map.gripper.id { (lo + hi) / 2.0 } else { 0.0 })));
        for (id, rad) in holds {
            self.emulator.set_hand(id, Hand::Hold(self.raw(id, rad)));
        }
        // Let the servos get there before the pose is read.
        std::thread::sleep(Duration::from_millis(20));
    }

    fn start_sweep(&mut self) {
        let mut sweeps = Vec::new();
        self.each_servo(|id, lo, hi| sweeps.push((id, lo, hi)));
        for (id, lo, hi) in sweeps {
            let (a, b) = (self.raw(id, lo), self.raw(id, hi));
            self.emulator.set_hand(id, Hand::Sweep { lo: a.min(b), hi: a.max(b), period_s: self.sweep_s });
        }
    }

    fn sweep_finished(&mut self, elapsed: Duration) -> bool {
        elapsed.as_secs_f64() >= self.sweep_s * 1.02
    }
}
