//! Gamepad teleoperation (gilrs).
//!
//! Mapping (gilrs normalises sticks so that up and right are positive on every platform):
//!
//! | input                        | command                                                  |
//! |------------------------------|----------------------------------------------------------|
//! | left stick up / down         | linear x + / − (forward / back)                          |
//! | left stick left / right      | linear y + / − (left / right)                            |
//! | right stick up / down        | linear z + / − (up / down)                               |
//! | right stick left / right     | yaw + / − (counter-clockwise / clockwise seen from above) |
//! | D-pad left / right           | roll + / −                                               |
//! | D-pad up / down              | pitch + / −                                              |
//! | right trigger (R2, analog)   | close the gripper: target ≤ 1 − pull                     |
//! | left trigger (L2, analog)    | open the gripper: target ≥ pull                          |
//! | right / left bumper (R1, L1) | speed × / ÷ 1.25 (0.1 … 2.0)                             |
//! | South (A / cross)            | end episode                                              |
//! | East (B / circle)            | re-record episode                                        |
//! | Start                        | stop recording                                           |
//!
//! Sticks have a dead zone of [`STICK_DEADZONE`] per axis, rescaled so that full deflection still
//! gives full scale. The gripper target is latched: pulling the right trigger fully closes the
//! gripper and it stays closed after the trigger is let go, until the left trigger opens it again.
//!
//! The input → command logic lives in [`PadState`], which is fed with gilrs [`Axis`] / [`Button`]
//! values and needs no device; [`GamepadDevice`] drains gilrs events into it each tick.

use bus::EpisodeRequest;
use gilrs::{Axis, Button, EventType, Gilrs};

use super::keyboard::StatusLine;
use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// Stick dead zone, as a fraction of full deflection (applied per axis).
pub const STICK_DEADZONE: f64 = 0.1;
/// Trigger pulls below this fraction are ignored (resting triggers are often slightly off 0).
pub const TRIGGER_DEADZONE: f64 = 0.05;
/// Factor applied to the speed multiplier by one bumper press (R1 ×, L1 ÷).
pub const SPEED_STEP: f64 = 1.25;
/// Lowest speed multiplier the bumpers reach.
pub const SPEED_MIN: f64 = 0.1;
/// Highest speed multiplier the bumpers reach.
pub const SPEED_MAX: f64 = 2.0;

/// The button map, printed once when the device starts.
pub const BUTTON_MAP: &str = "gamepad teleop:\n\
    \x20 left stick     forward/back (x), left/right (y)\n\
    \x20 right stick    up/down (z), yaw (left/right)\n\
    \x20 D-pad          roll (left/right), pitch (up/down)\n\
    \x20 R2 / L2        close / open gripper (proportional to the pull; stays closed until L2)\n\
    \x20 R1 / L1        speed x1.25 / /1.25 (0.1 .. 2.0)\n\
    \x20 A (South)      end episode (keep it, next seed)\n\
    \x20 B (East)       re-record episode (discard it, same seed)\n\
    \x20 Start          stop recording\n";

/// Applies the stick dead zone: |v| ≤ [`STICK_DEADZONE`] gives 0, beyond it the value is rescaled
/// linearly so that ±1 still gives ±1. Non-finite input gives 0; the result is in −1…1.
pub fn stick_deadzone(value: f32) -> f64 {
    // Compared in f32 so that a reading of exactly 0.1 (as f32) counts as inside the dead zone.
    if !value.is_finite() || value.abs() <= STICK_DEADZONE as f32 {
        return 0.0;
    }
    let v = f64::from(value);
    (v.signum() * (v.abs() - STICK_DEADZONE) / (1.0 - STICK_DEADZONE)).clamp(-1.0, 1.0)
}

/// The gamepad's command state: stick and D-pad positions, gripper target and speed. Pure logic,
/// no device: fed with gilrs axis and button values.
#[derive(Clone, Debug, PartialEq)]
pub struct PadState {
    /// Stick positions after the dead zone, −1…1, up/right positive.
    left_x: f64,
    left_y: f64,
    right_x: f64,
    right_y: f64,
    /// D-pad buttons held: left, right, up, down.
    dpad: [bool; 4],
    /// D-pad reported as axes (some pads, when gilrs does not turn them into buttons): right/up
    /// positive, −1…1.
    dpad_axis_x: f64,
    dpad_axis_y: f64,
    /// Gripper target, 0 closed … 1 open.
    gripper: f64,
    /// Speed multiplier, `SPEED_MIN` … `SPEED_MAX`.
    speed: f64,
}

impl Default for PadState {
    fn default() -> Self {
        PadState::new()
    }
}

impl PadState {
    /// Sticks centred, nothing held, gripper open, speed 1.0.
    pub fn new() -> PadState {
        PadState {
            left_x: 0.0,
            left_y: 0.0,
            right_x: 0.0,
            right_y: 0.0,
            dpad: [false; 4],
            dpad_axis_x: 0.0,
            dpad_axis_y: 0.0,
            gripper: 1.0,
            speed: 1.0,
        }
    }

    /// Applies an axis value (gilrs range −1…1, up/right positive). Sticks get the dead zone;
    /// unmapped axes (LeftZ, RightZ, Unknown) are ignored.
    pub fn axis_changed(&mut self, axis: Axis, value: f32) {
        match axis {
            Axis::LeftStickX => self.left_x = stick_deadzone(value),
            Axis::LeftStickY => self.left_y = stick_deadzone(value),
            Axis::RightStickX => self.right_x = stick_deadzone(value),
            Axis::RightStickY => self.right_y = stick_deadzone(value),
            Axis::DPadX => self.dpad_axis_x = finite_clamped(value, -1.0),
            Axis::DPadY => self.dpad_axis_y = finite_clamped(value, -1.0),
            _ => {}
        }
    }

    /// Applies an analog button value (gilrs range 0…1). Only the analog triggers use it: the right
    /// trigger (R2) lowers the gripper target to at most `1 − value`, the left trigger (L2) raises
    /// it to at least `value`; pulls under [`TRIGGER_DEADZONE`] are ignored.
    pub fn button_changed(&mut self, button: Button, value: f32) {
        let v = finite_clamped(value, 0.0);
        if v < TRIGGER_DEADZONE {
            return;
        }
        match button {
            Button::RightTrigger2 => self.gripper = self.gripper.min(1.0 - v),
            Button::LeftTrigger2 => self.gripper = self.gripper.max(v),
            _ => {}
        }
    }

    /// Applies a (digital) button press; returns the episode request it raises, if any. The analog
    /// triggers are handled by [`PadState::button_changed`] and ignored here.
    pub fn button_pressed(&mut self, button: Button) -> Option<EpisodeRequest> {
        match button {
            Button::South => return Some(EpisodeRequest::EndEpisode),
            Button::East => return Some(EpisodeRequest::Rerecord),
            Button::Start => return Some(EpisodeRequest::Stop),
            Button::RightTrigger => self.speed = (self.speed * SPEED_STEP).clamp(SPEED_MIN, SPEED_MAX),
            Button::LeftTrigger => self.speed = (self.speed / SPEED_STEP).clamp(SPEED_MIN, SPEED_MAX),
            Button::DPadLeft => self.dpad[0] = true,
            Button::DPadRight => self.dpad[1] = true,
            Button::DPadUp => self.dpad[2] = true,
            Button::DPadDown => self.dpad[3] = true,
            _ => {}
        }
        None
    }

    /// Applies a button release (only the D-pad buttons, which are held, care).
    pub fn button_released(&mut self, button: Button) {
        match button {
            Button::DPadLeft => self.dpad[0] = false,
            Button::DPadRight => self.dpad[1] = false,
            Button::DPadUp => self.dpad[2] = false,
            Button::DPadDown => self.dpad[3] = false,
            _ => {}
        }
    }

    /// Applies one gilrs event; returns the episode request it raises, if any. A disconnection
    /// stops all motion (see [`PadState::release_all`]).
    pub fn event(&mut self, event: &EventType) -> Option<EpisodeRequest> {
        match *event {
            EventType::AxisChanged(axis, value, _) => self.axis_changed(axis, value),
            EventType::ButtonChanged(button, value, _) => self.button_changed(button, value),
            EventType::ButtonPressed(button, _) => return self.button_pressed(button),
            EventType::ButtonReleased(button, _) => self.button_released(button),
            EventType::Disconnected => self.release_all(),
            _ => {}
        }
        None
    }

    /// Centres the sticks and releases the D-pad (motion stops); gripper target and speed are kept.
    pub fn release_all(&mut self) {
        *self = PadState { gripper: self.gripper, speed: self.speed, ..PadState::new() };
    }

    /// Opens the gripper target (a new episode starts with the gripper open). Stick and D-pad
    /// state, which mirror the physical controls, and the speed are kept.
    pub fn reset_episode(&mut self) {
        self.gripper = 1.0;
    }

    /// The command: normalised twist in the robot base frame (x forward, y left, z up; roll,
    /// pitch, yaw about those axes), each in −1…1, plus gripper target and speed. `requests` is
    /// empty (the device adds the requests raised this tick).
    pub fn output(&self) -> DeviceOutput {
        let held = |b: bool| if b { 1.0 } else { 0.0 };
        let [left, right, up, down] = self.dpad;
        let roll = (held(left) - held(right) - self.dpad_axis_x).clamp(-1.0, 1.0);
        let pitch = (held(up) - held(down) + self.dpad_axis_y).clamp(-1.0, 1.0);
        DeviceOutput {
            linear: [self.left_y, -self.left_x, self.right_y],
            angular: [roll, pitch, -self.right_x],
            gripper: self.gripper,
            speed: self.speed,
            requests: Vec::new(),
            absolute_delta: None,
        }
    }
}

/// `value` as f64 clamped to `lo`…1; non-finite values give 0.
fn finite_clamped(value: f32, lo: f64) -> f64 {
    let v = f64::from(value);
    if v.is_finite() {
        v.clamp(lo, 1.0)
    } else {
        0.0
    }
}

/// Gamepad teleop device: any connected gamepad drives the arm (see the module docs for the map).
pub struct GamepadDevice {
    gilrs: Gilrs,
    pad: PadState,
    status: StatusLine,
}

impl GamepadDevice {
    /// Opens gilrs and checks that at least one gamepad is connected; prints the button map to
    /// stderr.
    pub fn new() -> anyhow::Result<GamepadDevice> {
        // gilrs::Error is not Send + Sync (one variant holds a Gilrs), so it is formatted here.
        let gilrs = Gilrs::new()
            .map_err(|e| anyhow::anyhow!("cannot open gamepad input (gilrs: {e}); use --device keyboard|scripted"))?;
        let names: Vec<String> = gilrs.gamepads().map(|(id, pad)| format!("{} (#{id})", pad.name())).collect();
        if names.is_empty() {
            anyhow::bail!("no gamepad found (gilrs saw none); connect one or use --device keyboard|scripted");
        }
        eprint!("gamepad: {}\n{BUTTON_MAP}", names.join(", "));
        Ok(GamepadDevice { gilrs, pad: PadState::new(), status: StatusLine::default() })
    }
}

impl TeleopDevice for GamepadDevice {
    fn name(&self) -> &'static str {
        "gamepad"
    }

    /// Drains every pending gilrs event (never blocks) and returns the resulting command.
    fn poll(&mut self, _obs: &TeleopObservation) -> anyhow::Result<DeviceOutput> {
        let mut requests = Vec::new();
        while let Some(ev) = self.gilrs.next_event() {
            match ev.event {
                EventType::Disconnected => {
                    eprint!("\ngamepad #{} disconnected: motion stopped\n", ev.id);
                }
                EventType::Connected => {
                    eprint!("\ngamepad #{} connected: {}\n", ev.id, self.gilrs.gamepad(ev.id).name());
                }
                _ => {}
            }
            if let Some(request) = self.pad.event(&ev.event) {
                requests.push(request);
            }
        }
        let mut out = self.pad.output();
        out.requests = requests;
        Ok(out)
    }

    fn on_episode_start(&mut self, _episode: u64, _seed: u64) {
        self.pad.reset_episode();
    }

    /// Redraws the status line on stderr, at most every 100 ms.
    fn show_status(&mut self, line: &str) {
        self.status.show(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn deadzone_zeroes_small_deflections_and_rescales_the_rest() {
        assert_eq!(stick_deadzone(0.0), 0.0);
        assert_eq!(stick_deadzone(0.05), 0.0);
        assert_eq!(stick_deadzone(-0.1), 0.0);
        assert!(close(stick_deadzone(0.55), 0.5));
        assert!(close(stick_deadzone(-0.55), -0.5));
        assert!(close(stick_deadzone(0.19), 0.1));
        assert_eq!(stick_deadzone(1.0), 1.0);
        assert_eq!(stick_deadzone(-1.0), -1.0);
        assert_eq!(stick_deadzone(1.5), 1.0);
        assert_eq!(stick_deadzone(f32::NAN), 0.0);
    }

    #[test]
    fn starts_idle_open_at_unit_speed() {
        assert_eq!(PadState::new().output(), DeviceOutput::default());
    }

    #[test]
    fn left_stick_up_is_forward_and_left_is_plus_y() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::LeftStickY, 1.0);
        assert_eq!(pad.output().linear, [1.0, 0.0, 0.0]);
        pad.axis_changed(Axis::LeftStickY, -0.55);
        assert!(close(pad.output().linear[0], -0.5));
        pad.axis_changed(Axis::LeftStickY, 0.0);
        pad.axis_changed(Axis::LeftStickX, -1.0);
        assert_eq!(pad.output().linear, [0.0, 1.0, 0.0]);
        pad.axis_changed(Axis::LeftStickX, 1.0);
        assert_eq!(pad.output().linear, [0.0, -1.0, 0.0]);
        pad.axis_changed(Axis::LeftStickX, 0.08);
        assert_eq!(pad.output().linear, [0.0, 0.0, 0.0]);
    }

    #[test]
    fn right_stick_is_z_and_yaw() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::RightStickY, 1.0);
        pad.axis_changed(Axis::RightStickX, -1.0);
        let out = pad.output();
        assert_eq!(out.linear, [0.0, 0.0, 1.0]);
        assert_eq!(out.angular, [0.0, 0.0, 1.0]);
        pad.axis_changed(Axis::RightStickY, -0.55);
        pad.axis_changed(Axis::RightStickX, 0.55);
        let out = pad.output();
        assert!(close(out.linear[2], -0.5));
        assert!(close(out.angular[2], -0.5));
    }

    #[test]
    fn unmapped_axes_are_ignored() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::LeftZ, 1.0);
        pad.axis_changed(Axis::RightZ, -1.0);
        pad.axis_changed(Axis::Unknown, 1.0);
        assert_eq!(pad.output(), DeviceOutput::default());
    }

    #[test]
    fn dpad_buttons_drive_roll_and_pitch_while_held() {
        let mut pad = PadState::new();
        assert_eq!(pad.button_pressed(Button::DPadLeft), None);
        assert_eq!(pad.output().angular, [1.0, 0.0, 0.0]);
        pad.button_released(Button::DPadLeft);
        pad.button_pressed(Button::DPadRight);
        assert_eq!(pad.output().angular, [-1.0, 0.0, 0.0]);
        pad.button_released(Button::DPadRight);
        pad.button_pressed(Button::DPadUp);
        assert_eq!(pad.output().angular, [0.0, 1.0, 0.0]);
        pad.button_released(Button::DPadUp);
        pad.button_pressed(Button::DPadDown);
        assert_eq!(pad.output().angular, [0.0, -1.0, 0.0]);
        pad.button_released(Button::DPadDown);
        assert_eq!(pad.output().angular, [0.0, 0.0, 0.0]);
        assert_eq!(pad.output().linear, [0.0, 0.0, 0.0]);
    }

    #[test]
    fn dpad_axes_match_the_dpad_buttons() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::DPadX, -1.0);
        pad.axis_changed(Axis::DPadY, 1.0);
        assert_eq!(pad.output().angular, [1.0, 1.0, 0.0]);
        pad.axis_changed(Axis::DPadX, 1.0);
        pad.axis_changed(Axis::DPadY, -1.0);
        assert_eq!(pad.output().angular, [-1.0, -1.0, 0.0]);
        // Button and axis reporting the same press do not exceed full scale.
        pad.button_pressed(Button::DPadRight);
        assert_eq!(pad.output().angular[0], -1.0);
    }

    #[test]
    fn right_trigger_closes_proportionally_and_the_target_latches() {
        let mut pad = PadState::new();
        pad.button_changed(Button::RightTrigger2, 0.3);
        assert!(close(pad.output().gripper, 0.7));
        pad.button_changed(Button::RightTrigger2, 1.0);
        assert_eq!(pad.output().gripper, 0.0);
        // Letting go keeps the gripper closed.
        pad.button_changed(Button::RightTrigger2, 0.4);
        pad.button_changed(Button::RightTrigger2, 0.0);
        assert_eq!(pad.output().gripper, 0.0);
    }

    #[test]
    fn left_trigger_opens_proportionally() {
        let mut pad = PadState::new();
        pad.button_changed(Button::RightTrigger2, 1.0);
        pad.button_changed(Button::LeftTrigger2, 0.5);
        assert!(close(pad.output().gripper, 0.5));
        pad.button_changed(Button::LeftTrigger2, 0.2);
        assert!(close(pad.output().gripper, 0.5));
        pad.button_changed(Button::LeftTrigger2, 1.0);
        pad.button_changed(Button::LeftTrigger2, 0.0);
        assert_eq!(pad.output().gripper, 1.0);
    }

    #[test]
    fn trigger_noise_below_the_deadzone_is_ignored() {
        let mut pad = PadState::new();
        pad.button_changed(Button::RightTrigger2, 0.04);
        assert_eq!(pad.output().gripper, 1.0);
        pad.button_changed(Button::RightTrigger2, f32::NAN);
        assert_eq!(pad.output().gripper, 1.0);
        // Other buttons' analog values do not touch the gripper.
        pad.button_changed(Button::South, 1.0);
        pad.button_changed(Button::RightTrigger, 1.0);
        assert_eq!(pad.output().gripper, 1.0);
    }

    #[test]
    fn face_and_start_buttons_raise_requests() {
        let mut pad = PadState::new();
        assert_eq!(pad.button_pressed(Button::South), Some(EpisodeRequest::EndEpisode));
        assert_eq!(pad.button_pressed(Button::East), Some(EpisodeRequest::Rerecord));
        assert_eq!(pad.button_pressed(Button::Start), Some(EpisodeRequest::Stop));
        assert_eq!(pad.button_pressed(Button::North), None);
        assert_eq!(pad.button_pressed(Button::West), None);
        assert_eq!(pad.button_pressed(Button::Select), None);
        assert_eq!(pad.output(), DeviceOutput::default());
    }

    #[test]
    fn bumpers_step_speed_by_1_25_and_clamp() {
        let mut pad = PadState::new();
        assert_eq!(pad.button_pressed(Button::RightTrigger), None);
        assert!(close(pad.output().speed, 1.25));
        pad.button_pressed(Button::RightTrigger);
        pad.button_pressed(Button::RightTrigger);
        assert!(close(pad.output().speed, 1.953125));
        pad.button_pressed(Button::RightTrigger);
        assert_eq!(pad.output().speed, 2.0);
        pad.button_pressed(Button::LeftTrigger);
        assert!(close(pad.output().speed, 1.6));
        for _ in 0..20 {
            pad.button_pressed(Button::LeftTrigger);
        }
        assert_eq!(pad.output().speed, 0.1);
        assert_eq!(pad.output().speed, 0.1);
        // The analog triggers' digital presses do not change speed.
        pad.button_pressed(Button::RightTrigger2);
        assert_eq!(pad.output().speed, 0.1);
    }

    #[test]
    fn release_all_stops_motion_but_keeps_gripper_and_speed() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::LeftStickY, 1.0);
        pad.axis_changed(Axis::RightStickX, 1.0);
        pad.button_pressed(Button::DPadUp);
        pad.button_changed(Button::RightTrigger2, 1.0);
        pad.button_pressed(Button::RightTrigger);
        pad.release_all();
        let out = pad.output();
        assert_eq!((out.linear, out.angular), ([0.0; 3], [0.0; 3]));
        assert_eq!(out.gripper, 0.0);
        assert!(close(out.speed, 1.25));
    }

    #[test]
    fn disconnect_event_stops_motion() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::LeftStickX, 1.0);
        assert_eq!(pad.event(&EventType::Disconnected), None);
        assert_eq!(pad.output().linear, [0.0; 3]);
    }

    #[test]
    fn episode_reset_opens_the_gripper_and_keeps_the_sticks() {
        let mut pad = PadState::new();
        pad.axis_changed(Axis::LeftStickY, 1.0);
        pad.button_changed(Button::RightTrigger2, 1.0);
        pad.reset_episode();
        let out = pad.output();
        assert_eq!(out.gripper, 1.0);
        assert_eq!(out.linear, [1.0, 0.0, 0.0]);
    }
}
