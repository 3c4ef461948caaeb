//! The circle device: the finger tip traces a horizontal circle (radius 4 cm, one lap per
//! 40 ticks) while the gripper opens and closes every 20 ticks. It needs no scene state, so it
//! drives a real arm or the emulator unattended: a hardware smoke test and a way to record
//! motion data without a person.

use anyhow::Result;

use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// Ticks per lap.
const LAP_TICKS: f64 = 40.0;
/// Circle radius, m.
const RADIUS_M: f64 = 0.04;

/// The circle device.
#[derive(Default)]
pub struct CircleDevice {
    tick: u64,
}

impl TeleopDevice for CircleDevice {
    fn name(&self) -> &'static str {
        "circle"
    }

    fn poll(&mut self, obs: &TeleopObservation) -> Result<DeviceOutput> {
        if obs.joint_state.is_none() {
            return Ok(DeviceOutput::default());
        }
        // Velocity along the circle: the derivative of r·(cos θ, sin θ) per tick.
        let w = std::f64::consts::TAU / LAP_TICKS;
        let theta = self.tick as f64 * w;
        let step = RADIUS_M * w;
        let xyz = [-step * theta.sin(), step * theta.cos(), 0.0];
        let gripper = if (self.tick / 20).is_multiple_of(2) { 1.0 } else { 0.0 };
        self.tick += 1;
        Ok(DeviceOutput { absolute_delta: Some((xyz, [0.0; 3])), gripper, ..DeviceOutput::default() })
    }

    fn on_episode_start(&mut self, _episode: u64, _seed: u64) {
        self.tick = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lap_returns_to_the_start() {
        let mut d = CircleDevice::default();
        let obs = TeleopObservation { joint_state: Some(Default::default()), ..Default::default() };
        let mut sum = [0.0; 3];
        for _ in 0..LAP_TICKS as usize {
            let (xyz, _) = d.poll(&obs).expect("poll").absolute_delta.expect("delta");
            (0..3).for_each(|i| sum[i] += xyz[i]);
        }
        assert!(sum.iter().all(|v| v.abs() < 1e-9), "{sum:?}");
    }
}
