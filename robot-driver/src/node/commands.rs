//! Command arbitration of the driver node: the newest direct command (`command/joint`,
//! `command/ee_delta`) wins; otherwise the current chunk's row for this moment, one row per chunk
//! period; commands the e-stop latch does not admit (not fresh, or from before a release) and
//! malformed or non-finite ones are counted and ignored.

use std::time::{Duration, Instant};

use bus::{now_ns, ActionChunk, ActionKind, EeDeltaCommand, JointCommand};

use super::{ArmKinematics, Control, DriverReport, Io};
use crate::servo_map::NUM_JOINTS;

/// A chunk being played: rows, when it arrived, the row period.
pub(super) struct Playing {
    pub(super) rows: Vec<([f64; NUM_JOINTS], f64)>,
    pub(super) kind: ActionKind,
    pub(super) start: Instant,
    pub(super) period: Duration,
    pub(super) next: usize,
}

/// Joint targets (rad) and gripper opening.
type Target = ([f64; NUM_JOINTS], f64);

/// Reads the command topics and updates the desired target.
pub(super) fn take_commands(
    io: &Io,
    ctl: &mut Control,
    report: &mut DriverReport,
    kin: Option<&dyn ArmKinematics>,
    accepting: bool,
) {
    let joint = io.joint_cmd.latest();
    let ee = io.ee_cmd.latest();
    let chunk = io.chunk_cmd.latest();
    if !accepting {
        return;
    }
    let now = now_ns();
    let t = Instant::now();
    if let Some(c) = chunk.filter(|c| ctl.estop.admit_command(c.header.stamp_ns, now, &mut report.commands_stale)) {
        match parse_chunk(&c) {
            Some(rows) => {
                let age = Duration::from_nanos(now.saturating_sub(c.header.stamp_ns));
                ctl.chunk = Some(Playing {
                    rows,
                    kind: c.kind,
                    start: t.checked_sub(age).unwrap_or(t),
                    period: Duration::from_nanos(c.period_ns.max(1)),
                    next: 0,
                });
            }
            None => report.commands_rejected += 1,
        }
    }
    // The newest direct command wins over the chunk.
    let direct: Option<(u64, Option<Target>)> = match (joint, ee) {
        (Some(j), Some(e)) if e.header.stamp_ns > j.header.stamp_ns => {
            Some((e.header.stamp_ns, ee_target(&e, kin, ctl)))
        }
        (Some(j), _) => Some((j.header.stamp_ns, joint_target(&j))),
        (None, Some(e)) => Some((e.header.stamp_ns, ee_target(&e, kin, ctl))),
        (None, None) => None,
    };
    let mut target = None;
    if let Some((stamp, t)) = direct {
        if ctl.estop.admit_command(stamp, now, &mut report.commands_stale) {
            ctl.chunk = None;
            match t {
                Some(t) => target = Some(t),
                None => report.commands_rejected += 1,
            }
        }
    } else if let Some(p) = ctl.chunk.as_mut() {
        let due = (t.saturating_duration_since(p.start).as_nanos() / p.period.as_nanos().max(1)) as usize;
        if due >= p.rows.len() {
            ctl.chunk = None;
        } else if due >= p.next {
            p.next = due + 1;
            let (row, g) = p.rows[due];
            target = match p.kind {
                ActionKind::JointTarget => Some((row, g)),
                ActionKind::EeDelta => {
                    let e = EeDeltaCommand {
                        delta_xyz_m: [row[0], row[1], row[2]],
                        delta_rpy_rad: [row[3], row[4], row[5]],
                        gripper: g,
                        ..Default::default()
                    };
                    let r = ee_target(&e, kin, ctl);
                    report.commands_rejected += u64::from(r.is_none());
                    r
                }
            };
        }
    }
    if let Some((q, g)) = target {
        ctl.desired = q;
        ctl.gripper = g.clamp(0.0, 1.0);
        ctl.watchdog.feed(Instant::now());
        report.commands_applied += 1;
    }
}

fn joint_target(c: &JointCommand) -> Option<([f64; NUM_JOINTS], f64)> {
    let q: [f64; NUM_JOINTS] = c.position.as_slice().try_into().ok()?;
    (q.iter().all(|v| v.is_finite()) && c.gripper.is_finite()).then_some((q, c.gripper))
}

fn ee_target(c: &EeDeltaCommand, kin: Option<&dyn ArmKinematics>, ctl: &Control) -> Option<([f64; NUM_JOINTS], f64)> {
    let finite = c.delta_xyz_m.iter().chain(&c.delta_rpy_rad).all(|v| v.is_finite()) && c.gripper.is_finite();
    if !finite {
        return None;
    }
    let Some(kin) = kin else {
        tracing::warn!("command/ee_delta needs kinematics; this driver was started without them");
        return None;
    };
    // Deltas accumulate on the desired target, so a stream of small steps is not lost to lag.
    let q = kin.apply_ee_delta(&ctl.desired, c.delta_xyz_m, c.delta_rpy_rad)?;
    q.iter().all(|v| v.is_finite()).then_some((q, c.gripper))
}

/// Rows of a valid chunk (6 joint values or 6 delta values, then the gripper).
fn parse_chunk(c: &ActionChunk) -> Option<Vec<([f64; NUM_JOINTS], f64)>> {
    if c.validate().is_err() || c.dim as usize != NUM_JOINTS + 1 {
        return None;
    }
    (0..c.horizon as usize)
        .map(|i| {
            let r = c.row(i)?;
            Some((std::array::from_fn(|k| r[k] as f64), r[NUM_JOINTS] as f64))
        })
        .collect()
}
