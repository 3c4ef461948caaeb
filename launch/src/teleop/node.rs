//! The teleop node: polls a [`TeleopDevice`] once per observation and publishes
//! `command/ee_delta` (and `command/episode` requests).
//!
//! Ticks follow the robot: each new `joint_state` is one control tick, so commands go out at the
//! robot's control rate and each answers a known observation (a lockstep sim waits for it).
//! Before answering, the node waits briefly for the tick's `episode` event and `scene_state`
//! (same stamp) when the robot publishes them, so a device never acts on a stale episode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use bus::{
    Bus, EeDeltaCommand, EpisodeControl, EpisodeEvent, EpisodeEventKind, EpisodeRequest, JointState, SceneState, Task,
};

use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// Teleop node settings.
#[derive(Clone, Debug)]
pub struct TeleopNodeConfig {
    /// End-effector translation per tick at full stick/key and speed 1, m.
    pub linear_step_m: f64,
    /// End-effector rotation per tick at full stick/key and speed 1, rad.
    pub angular_step_rad: f64,
    /// How long to wait for a tick's episode event and scene state, once seen on the bus.
    pub sync_wait: Duration,
}

impl Default for TeleopNodeConfig {
    fn default() -> Self {
        TeleopNodeConfig { linear_step_m: 0.01, angular_step_rad: 0.05, sync_wait: Duration::from_millis(30) }
    }
}

/// What the teleop node did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TeleopReport {
    /// Commands published.
    pub commands: u64,
    /// Episode-control requests published.
    pub requests: u64,
    /// Whether the device asked to stop.
    pub stopped_by_device: bool,
}

/// Per-tick translation and rotation of a device output, clamped to the sim's per-step limits.
pub fn ee_delta(out: &DeviceOutput, cfg: &TeleopNodeConfig) -> ([f64; 3], [f64; 3]) {
    let (mut xyz, mut rpy) = out.absolute_delta.unwrap_or_else(|| {
        let s = out.speed.clamp(0.1, 2.0);
        (
            out.linear.map(|v| v.clamp(-1.0, 1.0) * cfg.linear_step_m * s),
            out.angular.map(|v| v.clamp(-1.0, 1.0) * cfg.angular_step_rad * s),
        )
    });
    for v in &mut xyz {
        *v = v.clamp(-sim::env::MAX_DELTA_XYZ_M, sim::env::MAX_DELTA_XYZ_M);
    }
    for v in &mut rpy {
        *v = v.clamp(-sim::env::MAX_DELTA_RPY_RAD, sim::env::MAX_DELTA_RPY_RAD);
    }
    (xyz, rpy)
}

/// Runs the teleop node until `stop`, or the device asks to stop.
pub fn run_teleop(
    device: &mut dyn TeleopDevice,
    cfg: &TeleopNodeConfig,
    bus: &Bus,
    stop: &AtomicBool,
    ready: Option<&crate::shutdown::StartBarrier>,
) -> Result<TeleopReport> {
    let joint_state = bus.subscriber::<JointState>()?;
    let scene_state = bus.subscriber::<SceneState>()?;
    let episodes = bus.subscriber::<EpisodeEvent>()?;
    let tasks = bus.subscriber::<Task>()?;
    let command = bus.publisher::<EeDeltaCommand>()?;
    let control = bus.publisher::<EpisodeControl>()?;
    if let Some(b) = ready {
        b.wait();
    }
    let mut report = TeleopReport::default();
    let mut obs = TeleopObservation::default();
    let mut last_event_stamp = 0u64;
    let mut seen_events = false;
    let mut seen_scene = false;
    let mut pending_scene: Option<SceneState> = None;
    let mut terminal_stamp = 0u64;
    tracing::info!(device = device.name(), "teleop running");
    while !stop.load(Ordering::Relaxed) {
        let js = joint_state.recv_timeout(Duration::from_millis(50));
        let Some(mut js) = js else {
            // No robot tick: still read the device so that stop/re-record keys work.
            let out = device.poll(&obs)?;
            if publish_requests(&control, &out, &mut report)? {
                break;
            }
            continue;
        };
        while let Some(newer) = joint_state.try_recv() {
            js = newer;
        }
        let stamp = js.header.stamp_ns;
        let needs_scene = device.needs_scene_state();
        let deadline = Instant::now() + if needs_scene { cfg.sync_wait * 20 } else { cfg.sync_wait };
        loop {
            while let Some(ev) = episodes.try_recv() {
                seen_events = true;
                last_event_stamp = last_event_stamp.max(ev.header.stamp_ns);
                match ev.kind {
                    EpisodeEventKind::Start => {
                        device.on_episode_start(ev.episode_index, ev.seed);
                        obs.episode = Some((ev.episode_index, 0));
                    }
                    EpisodeEventKind::Step => {
                        obs.episode = Some((ev.episode_index, ev.step));
                        if ev.done {
                            terminal_stamp = ev.header.stamp_ns;
                        }
                    }
                    EpisodeEventKind::End => {}
                }
            }
            while let Some(s) = scene_state.try_recv() {
                seen_scene = true;
                if s.header.stamp_ns <= stamp {
                    pending_scene = Some(s);
                }
            }
            let events_ok = !seen_events || last_event_stamp >= stamp;
            let scene_ok =
                !(seen_scene || needs_scene) || pending_scene.as_ref().is_some_and(|s| s.header.stamp_ns == stamp);
            if (events_ok && scene_ok) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if let Some(t) = tasks.latest() {
            obs.instruction = t.instruction;
        }
        obs.scene_state = pending_scene.clone();
        obs.joint_state = Some(js);
        let out = device.poll(&obs)?;
        if stamp == terminal_stamp {
            // The episode ended at this observation: nothing to answer (the robot resets).
            if publish_requests(&control, &out, &mut report)? {
                break;
            }
            continue;
        }
        let (xyz, rpy) = ee_delta(&out, cfg);
        let mut cmd = EeDeltaCommand {
            header: Default::default(),
            delta_xyz_m: xyz,
            delta_rpy_rad: rpy,
            gripper: out.gripper.clamp(0.0, 1.0),
            obs_stamp_ns: stamp,
        };
        command.publish(&mut cmd)?;
        report.commands += 1;
        if let Some(pose) = obs.joint_state.as_ref().and_then(|j| j.ee_pose.as_ref()) {
            let [x, y, z] = pose.translation_m;
            let (ep, step) = obs.episode.unwrap_or((0, 0));
            device.show_status(&format!(
                "ee x {x:+.3} y {y:+.3} z {z:+.3} m | gripper {:.2} | speed {:.2} | episode {ep} step {step}",
                cmd.gripper, out.speed
            ));
        }
        if publish_requests(&control, &out, &mut report)? {
            break;
        }
    }
    Ok(report)
}

/// Publishes the device's episode requests; true when one of them is `Stop`.
fn publish_requests(
    control: &bus::Publisher<EpisodeControl>,
    out: &DeviceOutput,
    report: &mut TeleopReport,
) -> Result<bool> {
    let mut stop = false;
    for r in &out.requests {
        let mut msg = EpisodeControl { header: Default::default(), request: *r };
        control.publish(&mut msg)?;
        report.requests += 1;
        tracing::info!(request = ?r, "episode request");
        if *r == EpisodeRequest::Stop {
            stop = true;
            report.stopped_by_device = true;
        }
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_output_scales_and_clamps() {
        let cfg = TeleopNodeConfig::default();
        let out = DeviceOutput { linear: [1.0, -0.5, 0.0], angular: [0.0, 0.0, 1.0], speed: 2.0, ..Default::default() };
        let (xyz, rpy) = ee_delta(&out, &cfg);
        assert!((xyz[0] - 0.02).abs() < 1e-12 && (xyz[1] + 0.01).abs() < 1e-12);
        assert!((rpy[2] - 0.1).abs() < 1e-12);
        let scripted = DeviceOutput { absolute_delta: Some(([0.2, 0.0, 0.0], [0.0; 3])), ..Default::default() };
        assert_eq!(ee_delta(&scripted, &cfg).0[0], sim::env::MAX_DELTA_XYZ_M);
    }
}
