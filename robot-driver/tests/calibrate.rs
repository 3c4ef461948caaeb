//! Calibration against the emulator: an arm whose encoders are mounted off-centre is homed and
//! its ranges recorded; the calibrated map then drives the arm to true angles.

use std::collections::BTreeMap;
use std::time::Duration;

use robot_driver::arm::Arm;
use robot_driver::calibrate::{calibrate, CalibrationConfig, CalibrationOperator, EmulatedOperator};
use robot_driver::control_table::{self as ct, rad_to_ticks};
use robot_driver::emulator::{Emulator, EmulatorConfig};
use robot_driver::servo_bus::{ServoBus, ServoBusConfig};
use robot_driver::servo_map::ServoMap;

fn mounted_off_centre() -> (Emulator, BTreeMap<u8, i32>) {
    let mount: BTreeMap<u8, i32> =
        [(1, 37), (2, -120), (3, -117), (4, 200), (5, 204), (6, -15), (7, 64), (8, 5), (9, 0)].into();
    let cfg = EmulatorConfig { mount_offset_ticks: mount.clone(), ..Default::default() };
    (Emulator::from_map(&ServoMap::widowx250(), cfg), mount)
}

fn arm(emu: &Emulator, map: ServoMap) -> Arm {
    Arm::new(ServoBus::new(Box::new(emu.port()), ServoBusConfig::default()), map)
}

#[test]
fn recovers_mount_offsets_and_ranges_then_drives_true_angles() {
    let (emu, mount) = mounted_off_centre();
    let mut a = arm(&emu, ServoMap::widowx250());
    let mut op = EmulatedOperator::new(emu.clone(), ServoMap::widowx250(), 1.0);
    let report = calibrate(&mut a, &mut op, &CalibrationConfig::default()).expect("calibration runs");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.samples > 30, "{}", report.samples);
    for (j, cal) in ServoMap::widowx250().joints.iter().zip(&report.joints) {
        assert_eq!(cal.homing_offset_ticks, -mount[&j.id], "joint {}", j.name);
        if let Some(s) = j.shadow_id {
            assert_eq!(cal.shadow_homing_offset_ticks, Some(-mount[&s]), "shadow of {}", j.name);
        }
        assert!(cal.coverage > 0.97, "{cal:?}");
        assert!(
            (cal.observed_min_rad - j.min_rad).abs() < 0.01 && (cal.observed_max_rad - j.max_rad).abs() < 0.01,
            "{cal:?}"
        );
    }
    let g = &report.map.gripper;
    assert!((g.closed_rad + 0.60).abs() < 0.01 && (g.open_rad - 0.85).abs() < 0.01, "{g:?}");
    // The calibrated map round-trips through TOML and drives the arm to true angles.
    let map = ServoMap::from_toml(&report.map.to_toml(), "calibrated").expect("valid map");
    let mut a = arm(&emu, map);
    emu.with_chain(|c| c.servos.iter_mut().for_each(|s| s.hand = robot_driver::emulator::Hand::Hold(s.raw_ticks)));
    a.start().expect("starts with the calibrated map");
    let state = a.enable_torque().expect("torque");
    let zero = [0.0; 6];
    // From wherever the sweep left it (up to π rad away) at the servo's π rad/s: 1.6 s.
    for _ in 0..160 {
        a.write_goal(&zero, 0.5, &state).expect("goal");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Joint 0 rad on the calibrated arm is the encoder's 2048 + mount offset.
    for (id, m) in [(1u8, 37), (2, -120), (4, 200), (7, 64)] {
        let raw = emu.with_chain(|c| c.servo(id).map(|s| s.raw_ticks)).expect("servo");
        assert!((raw - (rad_to_ticks(0.0) + m) as f64).abs() < 2.0, "servo {id} raw {raw}");
    }
}

struct Lazy(EmulatedOperator);

impl CalibrationOperator for Lazy {
    fn place_at_home(&mut self) {
        self.0.place_at_home()
    }
    fn start_sweep(&mut self) {
        self.0.start_sweep()
    }
    fn sweep_finished(&mut self, elapsed: Duration) -> bool {
        // Stops a quarter of the way through the sweep.
        elapsed >= Duration::from_millis(250)
    }
}

#[test]
fn a_short_sweep_is_refused_with_the_joint_named() {
    let (emu, _) = mounted_off_centre();
    let mut a = arm(&emu, ServoMap::widowx250());
    let mut op = Lazy(EmulatedOperator::new(emu.clone(), ServoMap::widowx250(), 1.0));
    let report = calibrate(&mut a, &mut op, &CalibrationConfig::default()).expect("runs");
    assert!(report.problems.iter().any(|p| p.contains("joint waist moved only through")), "{:?}", report.problems);
}

#[test]
fn a_homing_offset_outside_its_range_is_refused_before_any_is_written() {
    // Servo 8's encoder reads about 1.05 million ticks at home (a multi-turn position): its
    // offset would be below Homing_Offset's −1,044,479, so no servo gets an offset at all.
    let mount: BTreeMap<u8, i32> = [(1, 37), (8, 1_050_000)].into();
    let cfg = EmulatorConfig { mount_offset_ticks: mount, ..Default::default() };
    let emu = Emulator::from_map(&ServoMap::widowx250(), cfg);
    let mut a = arm(&emu, ServoMap::widowx250());
    let mut op = EmulatedOperator::new(emu.clone(), ServoMap::widowx250(), 1.0);
    let e = calibrate(&mut a, &mut op, &CalibrationConfig::default()).expect_err("offset out of range");
    assert!(e.to_string().contains("servo 8 (wrist_rotate): refusing to write Homing_Offset = -1050000"), "{e}");
    let offsets = emu.with_chain(|c| c.servos.iter().map(|s| s.get(ct::HOMING_OFFSET)).collect::<Vec<_>>());
    assert!(offsets.iter().all(|&o| o == 0), "{offsets:?}");
}
