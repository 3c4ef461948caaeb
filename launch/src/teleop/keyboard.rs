//! Keyboard teleoperation in a raw-mode terminal (crossterm).
//!
//! Terminals report key presses (and auto-repeats) but, in general, no key releases, so motion
//! keys are modelled as *held*: a press drives its axis at full scale for a hold window
//! ([`HOLD_WINDOW`]); auto-repeat keeps refreshing it while the key is held down, and the axis falls
//! back to 0 once the presses stop. Where the terminal does report releases (Windows consoles), a
//! release stops the axis at once.
//!
//! The key → command logic lives in [`KeyState`], which needs no terminal and is unit-tested;
//! [`KeyboardDevice`] only owns the terminal (raw mode on creation, restored on drop) and feeds
//! `KeyState` with the events it drains each tick.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::EpisodeRequest;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, ClearType};

use super::{DeviceOutput, TeleopDevice, TeleopObservation};

/// How long one key press keeps its axis driven (auto-repeat refreshes it while the key is held).
pub const HOLD_WINDOW: Duration = Duration::from_millis(150);
/// Factor applied to the speed multiplier by one speed-up (÷ by one slow-down) key press.
pub const SPEED_STEP: f64 = 1.25;
/// Lowest speed multiplier the speed keys reach.
pub const SPEED_MIN: f64 = 0.1;
/// Highest speed multiplier the speed keys reach.
pub const SPEED_MAX: f64 = 2.0;
/// Minimum time between two redraws of the status line.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// The key map, printed once when the device starts (`\r\n` line ends: the terminal is in raw mode).
pub const KEY_MAP: &str = "keyboard teleop (hold a key to move; terminal auto-repeat keeps it moving):\r\n\
    \x20 w / s      forward / back      (+x / -x)\r\n\
    \x20 a / d      left / right        (+y / -y)\r\n\
    \x20 e / c      up / down           (+z / -z; also PageUp / PageDown)\r\n\
    \x20 u / o      roll  + / -\r\n\
    \x20 i / k      pitch + / -\r\n\
    \x20 j / l      yaw   + / -\r\n\
    \x20 space      toggle gripper open / closed   (g = close, h = open)\r\n\
    \x20 + / -      speed x1.25 / /1.25            (also = / _; 0.1 .. 2.0)\r\n\
    \x20 -> or n    end episode (keep it, next seed)\r\n\
    \x20 <- or r    re-record episode (discard it, same seed)\r\n\
    \x20 Esc, q     stop recording     (also Ctrl-C)\r\n";

/// What one key means.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    /// Drive an axis in a direction (+1 or −1). Axis index into `linear ++ angular`: 0..3 are
    /// linear x, y, z, 3..6 are roll, pitch, yaw.
    Move(usize, f64),
    /// Toggle the gripper between open and closed.
    ToggleGripper,
    /// Set the gripper target (0 closed, 1 open).
    Gripper(f64),
    /// Multiply the speed by this factor.
    Speed(f64),
    /// Raise an episode-control request.
    Request(EpisodeRequest),
}

/// Maps a key (with its modifiers) to its action; `None` for unmapped keys.
fn action_for(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
    use Action::*;
    let axis = |i: usize, dir: f64| Some(Move(i, dir));
    match code {
        // Raw mode turns Ctrl-C into an ordinary key event instead of SIGINT.
        KeyCode::Char('c' | 'C') if modifiers.contains(KeyModifiers::CONTROL) => Some(Request(EpisodeRequest::Stop)),
        KeyCode::Char(ch) => match ch.to_ascii_lowercase() {
            'w' => axis(0, 1.0),
            's' => axis(0, -1.0),
            'a' => axis(1, 1.0),
            'd' => axis(1, -1.0),
            'e' => axis(2, 1.0),
            'c' => axis(2, -1.0),
            'u' => axis(3, 1.0),
            'o' => axis(3, -1.0),
            'i' => axis(4, 1.0),
            'k' => axis(4, -1.0),
            'j' => axis(5, 1.0),
            'l' => axis(5, -1.0),
            ' ' => Some(ToggleGripper),
            'g' => Some(Gripper(0.0)),
            'h' => Some(Gripper(1.0)),
            '+' | '=' => Some(Speed(SPEED_STEP)),
            '-' | '_' => Some(Speed(1.0 / SPEED_STEP)),
            'n' => Some(Request(EpisodeRequest::EndEpisode)),
            'r' => Some(Request(EpisodeRequest::Rerecord)),
            'q' => Some(Request(EpisodeRequest::Stop)),
            _ => None,
        },
        KeyCode::PageUp => axis(2, 1.0),
        KeyCode::PageDown => axis(2, -1.0),
        KeyCode::Right => Some(Request(EpisodeRequest::EndEpisode)),
        KeyCode::Left => Some(Request(EpisodeRequest::Rerecord)),
        KeyCode::Esc => Some(Request(EpisodeRequest::Stop)),
        _ => None,
    }
}

/// The keyboard's command state: held motion axes, gripper target and speed. Pure logic, no
/// terminal: fed with key codes and timestamps.
#[derive(Clone, Debug)]
pub struct KeyState {
    /// Per axis (linear x, y, z, then roll, pitch, yaw): direction (±1) and the instant the hold
    /// expires.
    held: [Option<(f64, Instant)>; 6],
    /// Gripper target, 0 closed … 1 open.
    gripper: f64,
    /// Speed multiplier, `SPEED_MIN` … `SPEED_MAX`.
    speed: f64,
    /// How long one press keeps its axis driven.
    hold: Duration,
}

impl Default for KeyState {
    fn default() -> Self {
        KeyState::new()
    }
}

impl KeyState {
    /// Gripper open, speed 1.0, nothing held, hold window [`HOLD_WINDOW`].
    pub fn new() -> KeyState {
        KeyState::with_hold(HOLD_WINDOW)
    }

    /// Like [`KeyState::new`] with a custom hold window (longer suits terminals with a slow
    /// auto-repeat).
    pub fn with_hold(hold: Duration) -> KeyState {
        KeyState { held: [None; 6], gripper: 1.0, speed: 1.0, hold }
    }

    /// Applies one key press (or auto-repeat) at time `now`; returns the episode request the key
    /// raises, if any. Unmapped keys are ignored.
    pub fn press(&mut self, code: KeyCode, modifiers: KeyModifiers, now: Instant) -> Option<EpisodeRequest> {
        match action_for(code, modifiers)? {
            Action::Move(i, dir) => {
                self.held[i] = Some((dir, now + self.hold));
                None
            }
            Action::ToggleGripper => {
                self.gripper = if self.gripper > 0.5 { 0.0 } else { 1.0 };
                None
            }
            Action::Gripper(g) => {
                self.gripper = g;
                None
            }
            Action::Speed(factor) => {
                self.speed = (self.speed * factor).clamp(SPEED_MIN, SPEED_MAX);
                None
            }
            Action::Request(request) => Some(request),
        }
    }

    /// Applies a key release (only some terminals report them): a motion key stops its axis at
    /// once if that axis is still driven in the key's direction. Other keys ignore releases.
    pub fn release(&mut self, code: KeyCode, modifiers: KeyModifiers) {
        if let Some(Action::Move(i, dir)) = action_for(code, modifiers) {
            if matches!(self.held[i], Some((held_dir, _)) if held_dir == dir) {
                self.held[i] = None;
            }
        }
    }

    /// Stops all motion (held axes) and opens the gripper; the speed setting is kept. Used at the
    /// start of each episode.
    pub fn reset(&mut self) {
        self.held = [None; 6];
        self.gripper = 1.0;
    }

    /// The command at time `now`: held axes at ±1 (0 once their hold window has passed), the
    /// gripper target and the speed multiplier. `requests` is empty (the device adds the requests
    /// raised by this tick's presses).
    pub fn output(&self, now: Instant) -> DeviceOutput {
        let mut axes = [0.0; 6];
        for (value, held) in axes.iter_mut().zip(&self.held) {
            if let Some((dir, until)) = held {
                if now < *until {
                    *value = *dir;
                }
            }
        }
        DeviceOutput {
            linear: [axes[0], axes[1], axes[2]],
            angular: [axes[3], axes[4], axes[5]],
            gripper: self.gripper,
            speed: self.speed,
            requests: Vec::new(),
            absolute_delta: None,
        }
    }
}

/// Keyboard teleop device: reads keys from the controlling terminal in raw mode.
///
/// Creating it switches the terminal to raw mode (keys arrive unbuffered, Ctrl-C arrives as a key
/// and is mapped to [`EpisodeRequest::Stop`]); dropping it restores the terminal.
pub struct KeyboardDevice {
    keys: KeyState,
    status: StatusLine,
}

/// A one-line status display on stderr, redrawn in place (`\r`, clear line, text) at most every
/// [`STATUS_INTERVAL`]. Shared by the interactive devices.
#[derive(Debug, Default)]
pub(crate) struct StatusLine {
    /// When the line was last drawn (None before the first draw).
    last: Option<Instant>,
}

impl StatusLine {
    /// Redraws the line unless the last draw was less than [`STATUS_INTERVAL`] ago. The text is cut
    /// to the terminal width (so it never wraps) and stripped of control characters. Best effort:
    /// write errors are ignored.
    pub(crate) fn show(&mut self, line: &str) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < STATUS_INTERVAL) {
            return;
        }
        self.last = Some(now);
        // A terminal that reports no size (0 columns, e.g. a bare pty) gets 80.
        let width = match terminal::size() {
            Ok((cols, _)) if cols >= 2 => usize::from(cols),
            _ => 80,
        };
        let text: String = line.chars().filter(|c| !c.is_control()).take(width - 1).collect();
        let mut err = std::io::stderr().lock();
        let _ = crossterm::queue!(err, crossterm::style::Print('\r'), terminal::Clear(ClearType::CurrentLine));
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

impl KeyboardDevice {
    /// Puts the terminal in raw mode and prints the key map to stderr.
    ///
    /// Fails when stdin is not an interactive terminal or raw mode cannot be enabled.
    pub fn new() -> anyhow::Result<KeyboardDevice> {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!("keyboard teleop needs an interactive terminal; use --device scripted");
        }
        terminal::enable_raw_mode()
            .context("cannot switch the terminal to raw mode (keyboard teleop needs an interactive terminal)")?;
        // From here on, Drop restores the terminal even if something below fails.
        let device = KeyboardDevice { keys: KeyState::new(), status: StatusLine::default() };
        let mut err = std::io::stderr().lock();
        // The UI is best effort: a failed write to stderr must not stop teleoperation.
        let _ = err.write_all(KEY_MAP.as_bytes());
        let _ = err.flush();
        Ok(device)
    }
}

impl Drop for KeyboardDevice {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        // End the status line so the shell prompt (or later logs) start on a fresh line.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(b"\n");
        let _ = err.flush();
    }
}

impl TeleopDevice for KeyboardDevice {
    fn name(&self) -> &'static str {
        "keyboard"
    }

    /// Drains every pending terminal event without blocking and returns the resulting command.
    fn poll(&mut self, _obs: &TeleopObservation) -> anyhow::Result<DeviceOutput> {
        let mut requests = Vec::new();
        while event::poll(Duration::ZERO).context("reading the terminal")? {
            let now = Instant::now();
            if let Event::Key(key) = event::read().context("reading the terminal")? {
                match key.kind {
                    KeyEventKind::Press | KeyEventKind::Repeat => {
                        if let Some(request) = self.keys.press(key.code, key.modifiers, now) {
                            requests.push(request);
                        }
                    }
                    KeyEventKind::Release => self.keys.release(key.code, key.modifiers),
                }
            }
        }
        let mut out = self.keys.output(Instant::now());
        out.requests = requests;
        Ok(out)
    }

    fn on_episode_start(&mut self, _episode: u64, _seed: u64) {
        self.keys.reset();
    }

    /// Redraws the status line on stderr (`\r`, clear line, text), at most every 100 ms; the text
    /// is cut to the terminal width so it never wraps.
    fn show_status(&mut self, line: &str) {
        self.status.show(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: KeyModifiers = KeyModifiers::NONE;

    fn ch(c: char) -> KeyCode {
        KeyCode::Char(c)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_idle_open_at_unit_speed() {
        let keys = KeyState::new();
        let out = keys.output(Instant::now());
        assert_eq!(out, DeviceOutput::default());
    }

    #[test]
    fn w_drives_x_forward_then_decays_after_the_hold_window() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        assert_eq!(keys.press(ch('w'), NONE, t0), None);
        assert_eq!(keys.output(t0).linear, [1.0, 0.0, 0.0]);
        assert_eq!(keys.output(t0 + ms(149)).linear, [1.0, 0.0, 0.0]);
        assert_eq!(keys.output(t0 + ms(150)).linear, [0.0, 0.0, 0.0]);
        assert_eq!(keys.output(t0 + ms(1000)).linear, [0.0, 0.0, 0.0]);
    }

    #[test]
    fn auto_repeat_refreshes_the_hold() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('w'), NONE, t0);
        keys.press(ch('w'), NONE, t0 + ms(100));
        keys.press(ch('w'), NONE, t0 + ms(200));
        assert_eq!(keys.output(t0 + ms(340)).linear[0], 1.0);
        assert_eq!(keys.output(t0 + ms(350)).linear[0], 0.0);
    }

    #[test]
    fn every_motion_key_drives_its_axis_with_its_sign() {
        let cases: [(KeyCode, [f64; 3], [f64; 3]); 14] = [
            (ch('w'), [1.0, 0.0, 0.0], [0.0; 3]),
            (ch('s'), [-1.0, 0.0, 0.0], [0.0; 3]),
            (ch('a'), [0.0, 1.0, 0.0], [0.0; 3]),
            (ch('d'), [0.0, -1.0, 0.0], [0.0; 3]),
            (ch('e'), [0.0, 0.0, 1.0], [0.0; 3]),
            (ch('c'), [0.0, 0.0, -1.0], [0.0; 3]),
            (KeyCode::PageUp, [0.0, 0.0, 1.0], [0.0; 3]),
            (KeyCode::PageDown, [0.0, 0.0, -1.0], [0.0; 3]),
            (ch('u'), [0.0; 3], [1.0, 0.0, 0.0]),
            (ch('o'), [0.0; 3], [-1.0, 0.0, 0.0]),
            (ch('i'), [0.0; 3], [0.0, 1.0, 0.0]),
            (ch('k'), [0.0; 3], [0.0, -1.0, 0.0]),
            (ch('j'), [0.0; 3], [0.0, 0.0, 1.0]),
            (ch('l'), [0.0; 3], [0.0, 0.0, -1.0]),
        ];
        let t0 = Instant::now();
        for (code, linear, angular) in cases {
            let mut keys = KeyState::new();
            assert_eq!(keys.press(code, NONE, t0), None, "{code:?}");
            let out = keys.output(t0 + ms(10));
            assert_eq!((out.linear, out.angular), (linear, angular), "{code:?}");
        }
    }

    #[test]
    fn shifted_letters_act_like_lower_case() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('W'), KeyModifiers::SHIFT, t0);
        keys.press(ch('D'), KeyModifiers::SHIFT, t0);
        assert_eq!(keys.output(t0).linear, [1.0, -1.0, 0.0]);
    }

    #[test]
    fn axes_combine_and_the_opposite_key_overrides() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('w'), NONE, t0);
        keys.press(ch('a'), NONE, t0 + ms(50));
        keys.press(ch('j'), NONE, t0 + ms(50));
        let out = keys.output(t0 + ms(100));
        assert_eq!(out.linear, [1.0, 1.0, 0.0]);
        assert_eq!(out.angular, [0.0, 0.0, 1.0]);
        // w's hold ends at 150 ms, a's at 200 ms.
        assert_eq!(keys.output(t0 + ms(160)).linear, [0.0, 1.0, 0.0]);
        keys.press(ch('s'), NONE, t0 + ms(160));
        assert_eq!(keys.output(t0 + ms(170)).linear, [-1.0, 1.0, 0.0]);
    }

    #[test]
    fn release_stops_the_axis_at_once_but_only_in_its_direction() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('w'), NONE, t0);
        keys.release(ch('s'), NONE);
        assert_eq!(keys.output(t0).linear[0], 1.0);
        keys.release(ch('w'), NONE);
        assert_eq!(keys.output(t0).linear[0], 0.0);
    }

    #[test]
    fn speed_keys_step_by_1_25_and_clamp() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('+'), NONE, t0);
        assert!((keys.output(t0).speed - 1.25).abs() < 1e-12);
        keys.press(ch('='), NONE, t0);
        assert!((keys.output(t0).speed - 1.5625).abs() < 1e-12);
        keys.press(ch('+'), NONE, t0);
        assert!((keys.output(t0).speed - 1.953125).abs() < 1e-12);
        keys.press(ch('+'), NONE, t0);
        assert_eq!(keys.output(t0).speed, 2.0);
        keys.press(ch('+'), NONE, t0);
        assert_eq!(keys.output(t0).speed, 2.0);
        keys.press(ch('-'), NONE, t0);
        assert!((keys.output(t0).speed - 1.6).abs() < 1e-12);
        for _ in 0..20 {
            keys.press(ch('_'), NONE, t0);
        }
        assert_eq!(keys.output(t0).speed, 0.1);
        keys.press(ch('+'), NONE, t0);
        assert!((keys.output(t0).speed - 0.125).abs() < 1e-12);
        assert!((keys.output(t0).speed - 0.125).abs() < 1e-12);
    }

    #[test]
    fn space_toggles_the_gripper_and_g_h_set_it() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        assert_eq!(keys.output(t0).gripper, 1.0);
        keys.press(ch(' '), NONE, t0);
        assert_eq!(keys.output(t0).gripper, 0.0);
        keys.press(ch(' '), NONE, t0);
        assert_eq!(keys.output(t0).gripper, 1.0);
        keys.press(ch('g'), NONE, t0);
        assert_eq!(keys.output(t0).gripper, 0.0);
        keys.press(ch('g'), NONE, t0);
        assert_eq!(keys.output(t0).gripper, 0.0);
        keys.press(ch('h'), NONE, t0);
        assert_eq!(keys.output(t0).gripper, 1.0);
        // The gripper target is not a held key: it stays after any time.
        keys.press(ch('g'), NONE, t0);
        assert_eq!(keys.output(t0 + Duration::from_secs(10)).gripper, 0.0);
    }

    #[test]
    fn episode_keys_raise_requests() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        assert_eq!(keys.press(KeyCode::Right, NONE, t0), Some(EpisodeRequest::EndEpisode));
        assert_eq!(keys.press(ch('n'), NONE, t0), Some(EpisodeRequest::EndEpisode));
        assert_eq!(keys.press(KeyCode::Left, NONE, t0), Some(EpisodeRequest::Rerecord));
        assert_eq!(keys.press(ch('r'), NONE, t0), Some(EpisodeRequest::Rerecord));
        assert_eq!(keys.press(KeyCode::Esc, NONE, t0), Some(EpisodeRequest::Stop));
        assert_eq!(keys.press(ch('q'), NONE, t0), Some(EpisodeRequest::Stop));
        assert_eq!(keys.press(ch('c'), KeyModifiers::CONTROL, t0), Some(EpisodeRequest::Stop));
        // Request keys do not move the arm.
        assert_eq!(keys.output(t0), DeviceOutput::default());
    }

    #[test]
    fn plain_c_moves_down_while_ctrl_c_stops() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        assert_eq!(keys.press(ch('c'), NONE, t0), None);
        assert_eq!(keys.output(t0).linear, [0.0, 0.0, -1.0]);
    }

    #[test]
    fn unmapped_keys_do_nothing() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        for code in [ch('x'), ch('1'), KeyCode::Up, KeyCode::Enter, KeyCode::Tab, KeyCode::F(1)] {
            assert_eq!(keys.press(code, NONE, t0), None, "{code:?}");
        }
        assert_eq!(keys.output(t0), DeviceOutput::default());
    }

    #[test]
    fn reset_stops_motion_opens_gripper_and_keeps_speed() {
        let t0 = Instant::now();
        let mut keys = KeyState::new();
        keys.press(ch('w'), NONE, t0);
        keys.press(ch('g'), NONE, t0);
        keys.press(ch('+'), NONE, t0);
        keys.reset();
        let out = keys.output(t0);
        assert_eq!(out.linear, [0.0; 3]);
        assert_eq!(out.gripper, 1.0);
        assert!((out.speed - 1.25).abs() < 1e-12);
    }

    #[test]
    fn custom_hold_window() {
        let t0 = Instant::now();
        let mut keys = KeyState::with_hold(ms(600));
        keys.press(ch('e'), NONE, t0);
        assert_eq!(keys.output(t0 + ms(599)).linear[2], 1.0);
        assert_eq!(keys.output(t0 + ms(600)).linear[2], 0.0);
    }
}
