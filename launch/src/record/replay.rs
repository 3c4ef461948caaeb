//! The replay node: re-sends an episode's recorded actions over the bus, one per robot tick,
//! and records what the robot measured so the replay can be compared with the recording.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use bus::{
    Bus, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind, EpisodeRequest, JointCommand, JointState,
};

use super::align::ActionSource;

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayReport {
    /// Actions sent.
    pub actions_sent: u64,
    /// Measured joint positions at each tick (rad; gripper 0…1), tick 0 first.
    pub measured: Vec<Vec<f64>>,
    /// Whether the robot reported success at the end.
    pub success: bool,
}

/// Sends `actions` (rows of `dim`) one per `joint_state` tick, then asks the robot to stop.
pub fn run_replay(
    actions: &[f32],
    dim: usize,
    source: ActionSource,
    bus: &Bus,
    stop: &AtomicBool,
    ready: Option<&crate::shutdown::StartBarrier>,
) -> Result<ReplayReport> {
    let joint_state = bus.subscriber_with_capacity::<JointState>(bus::topics::JOINT_STATE, 4096)?;
    let episodes = bus.subscriber::<EpisodeEvent>()?;
    let ee = bus.publisher::<EeDeltaCommand>()?;
    let joint = bus.publisher::<JointCommand>()?;
    let control = bus.publisher::<EpisodeControl>()?;
    if let Some(b) = ready {
        b.wait();
    }
    let mut report = ReplayReport::default();
    let rows = actions.len() / dim.max(1);
    let mut ended = false;
    // Observations wait here until the episode's Start event (same stamp as its first
    // observation): a real arm publishes joint states while it moves to its start pose.
    let mut waiting: std::collections::VecDeque<JointState> = std::collections::VecDeque::new();
    let mut start_stamp: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) && !ended {
        if let Some(js) = joint_state.recv_timeout(Duration::from_millis(100)) {
            waiting.push_back(js);
        }
        while let Some(ev) = episodes.try_recv() {
            match ev.kind {
                EpisodeEventKind::Start if start_stamp.is_none() => start_stamp = Some(ev.header.stamp_ns),
                EpisodeEventKind::End if start_stamp.is_some() => {
                    ended = true;
                    report.success = ev.success;
                }
                _ => {}
            }
        }
        if ended {
            break;
        }
        let Some(start) = start_stamp else {
            // Keep the newest few: the Start event may trail its observation.
            while waiting.len() > 64 {
                waiting.pop_front();
            }
            continue;
        };
        while waiting.front().is_some_and(|j| j.header.stamp_ns < start) {
            waiting.pop_front();
        }
        let Some(js) = waiting.pop_front() else { continue };
        report.measured.push(js.position.clone());
        let k = report.actions_sent as usize;
        if k >= rows {
            break;
        }
        let a: Vec<f64> = actions[k * dim..(k + 1) * dim].iter().map(|x| f64::from(*x)).collect();
        match source {
            ActionSource::EeDelta if dim == 7 => {
                let mut m = EeDeltaCommand {
                    header: Default::default(),
                    delta_xyz_m: [a[0], a[1], a[2]],
                    delta_rpy_rad: [a[3], a[4], a[5]],
                    gripper: a[6],
                    obs_stamp_ns: js.header.stamp_ns,
                };
                ee.publish(&mut m)?;
            }
            _ => {
                let mut m = JointCommand {
                    header: Default::default(),
                    position: a[..dim - 1].to_vec(),
                    gripper: a[dim - 1],
                    obs_stamp_ns: js.header.stamp_ns,
                };
                joint.publish(&mut m)?;
            }
        }
        report.actions_sent += 1;
    }
    // Collect the End event if the robot ended the episode itself; otherwise end it.
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while !ended && std::time::Instant::now() < deadline {
        if let Some(ev) = episodes.recv_timeout(Duration::from_millis(50)) {
            if ev.kind == EpisodeEventKind::End {
                ended = true;
                report.success = ev.success;
            }
        }
    }
    let mut m = EpisodeControl { header: Default::default(), request: EpisodeRequest::Stop };
    control.publish(&mut m)?;
    Ok(report)
}
