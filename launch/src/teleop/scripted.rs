//! The scripted teleop device: the scene's scripted expert drives, from what it reads on the bus
//! (`joint_state` plus the sim's privileged `scene_state`), with its noise knob. The way to
//! collect many demonstrations unattended. It needs a sim: a real robot publishes no scene state.

use anyhow::{bail, Result};
use sim::{Action, Expert, SceneSpec};

use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// The scripted expert as a teleop device.
pub struct ScriptedDevice {
    expert: Expert,
    step: u32,
    missing: u32,
}

impl ScriptedDevice {
    /// An expert for `scene` with action noise `noise` (0 clean … 1 very noisy).
    pub fn new(scene: &SceneSpec, noise: f64) -> ScriptedDevice {
        ScriptedDevice { expert: Expert::new(scene, noise, 0), step: 0, missing: 0 }
    }
}

impl TeleopDevice for ScriptedDevice {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn poll(&mut self, obs: &TeleopObservation) -> Result<DeviceOutput> {
        let Some(js) = obs.joint_state.as_ref() else { return Ok(DeviceOutput::default()) };
        if obs.scene_state.is_none() {
            self.missing += 1;
            if self.missing >= 10 {
                bail!("no scene_state on the bus for 10 ticks: the scripted device needs a sim (a real robot has none); use --device keyboard|gamepad");
            }
            // Hold this tick rather than act on a guess.
            return Ok(DeviceOutput { absolute_delta: Some(([0.0; 3], [0.0; 3])), ..DeviceOutput::default() });
        }
        self.missing = 0;
        let Some(o) = sim::node::observation_from_bus(js, obs.scene_state.as_ref(), &obs.instruction, self.step) else {
            bail!("joint_state lacks joints, gripper or end-effector pose");
        };
        self.step += 1;
        match self.expert.act(&o) {
            Action::EeDelta { xyz_m, rpy_rad, gripper } => {
                Ok(DeviceOutput { absolute_delta: Some((xyz_m, rpy_rad)), gripper, ..DeviceOutput::default() })
            }
            Action::Joint { .. } => {
                bail!("the scripted expert produced a joint action; teleop sends end-effector deltas")
            }
        }
    }

    fn needs_scene_state(&self) -> bool {
        true
    }

    fn on_episode_start(&mut self, _episode: u64, seed: u64) {
        self.expert.reset(seed);
        self.step = 0;
    }
}
