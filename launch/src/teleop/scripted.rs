//! The scripted teleop device: the scene's scripted expert drives, from what it reads on the bus
//! (`joint_state` plus the sim's privileged `scene_state`), at a demonstration quality. The way to
//! collect many demonstrations unattended. It needs a sim: a real robot publishes no scene state.

use anyhow::{bail, Result};
use bus::EpisodeRequest;
use sim::{Action, DemoQuality, Expert, SceneSpec};

use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// The scripted expert as a teleop device.
pub struct ScriptedDevice {
    expert: Expert,
    step: u32,
    missing: u32,
    /// Consecutive ticks whose `joint_state` the expert could not use.
    unusable: u32,
    /// The expert's last gripper command (a held tick keeps it).
    gripper: f64,
    /// The expert ended this episode's recording (its plan is done and the episode still runs,
    /// so it failed): the end was requested once, and the arm holds until the next episode.
    end_requested: bool,
}

impl ScriptedDevice {
    /// An expert for `scene` demonstrating at `quality` (each episode drawn from its seed).
    pub fn new(scene: &SceneSpec, quality: DemoQuality) -> ScriptedDevice {
        ScriptedDevice {
            expert: Expert::with_quality(scene, quality, 0),
            step: 0,
            missing: 0,
            unusable: 0,
            gripper: 1.0,
            end_requested: false,
        }
    }
}

impl ScriptedDevice {
    /// A tick without motion, the gripper as last commanded.
    fn hold(&self) -> DeviceOutput {
        DeviceOutput { absolute_delta: Some(([0.0; 3], [0.0; 3])), gripper: self.gripper, ..DeviceOutput::default() }
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
            return Ok(self.hold());
        }
        self.missing = 0;
        let usable = js.ee_pose.is_some() && js.position.iter().all(|x| x.is_finite());
        let o = usable
            .then(|| sim::node::observation_from_bus(js, obs.scene_state.as_ref(), &obs.instruction, self.step))
            .flatten();
        let Some(o) = o else {
            // One malformed message is dropped (the arm holds); a robot that never sends a
            // usable one is a setup fault.
            self.unusable += 1;
            tracing::warn!(joints = js.position.len(), ee_pose = js.ee_pose.is_some(), "unusable joint_state: holding");
            if self.unusable >= 10 {
                bail!("joint_state lacks joints, gripper or end-effector pose for 10 ticks");
            }
            return Ok(self.hold());
        };
        self.unusable = 0;
        if self.end_requested {
            return Ok(self.hold());
        }
        self.step += 1;
        match self.expert.act(&o) {
            Action::EeDelta { xyz_m, rpy_rad, gripper } => {
                self.gripper = gripper;
                // The attempt is over: end the recording as a person does (`n` on the keyboard),
                // rather than record the arm standing still until the time limit.
                let requests = if self.expert.stopped() {
                    self.end_requested = true;
                    vec![EpisodeRequest::EndEpisode]
                } else {
                    Vec::new()
                };
                Ok(DeviceOutput { absolute_delta: Some((xyz_m, rpy_rad)), gripper, requests, ..DeviceOutput::default() })
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
        self.gripper = 1.0;
        self.end_requested = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_joint_state_holds_the_arm_and_only_a_persistent_one_fails() {
        let scene = sim::load_scene("pick_cube").expect("scene");
        let mut device = ScriptedDevice::new(&scene, DemoQuality::noisy(0.0));
        let five_joints =
            bus::JointState { position: vec![0.0; 5], ee_pose: Some(bus::Pose::default()), ..Default::default() };
        let no_pose = bus::JointState { position: vec![0.0; 7], ee_pose: None, ..Default::default() };
        for js in [five_joints.clone(), no_pose, five_joints.clone()] {
            let obs = TeleopObservation {
                joint_state: Some(js),
                scene_state: Some(bus::SceneState::default()),
                ..Default::default()
            };
            let out = device.poll(&obs).expect("one malformed joint_state is not fatal");
            assert_eq!(out.absolute_delta, Some(([0.0; 3], [0.0; 3])), "the arm holds");
        }
        let obs = TeleopObservation {
            joint_state: Some(five_joints),
            scene_state: Some(bus::SceneState::default()),
            ..Default::default()
        };
        let outcomes: Vec<bool> = (0..7).map(|_| device.poll(&obs).is_ok()).collect();
        assert_eq!(outcomes, vec![true, true, true, true, true, true, false], "the tenth in a row fails");
    }
}
