//! The emulator survives any register values a client writes, as the firmware does.

use std::time::Duration;

use crate::control_table::{self as ct, OperatingMode};
use crate::protocol::{ErrorNumber, StatusError};
use crate::servo_bus::{ServoBus, ServoBusConfig, ServoBusError};
use crate::servo_map::ServoMap;

use super::{Emulator, EmulatorConfig};

#[test]
fn min_position_limit_above_max_refuses_goals_and_holds_still() {
    let emu = Emulator::from_map(&ServoMap::widowx250(), EmulatorConfig::default());
    let mut bus = ServoBus::new(Box::new(emu.port()), ServoBusConfig::default());
    let get = |id: u8, f: ct::Field| emu.with_chain(|c| c.servo(id).map(|s| s.get(f))).expect("servo");
    // Servo 4 (elbow) in position mode, servo 9 (gripper, XL430) in PWM mode.
    for (id, mode) in [(4, OperatingMode::Position), (9, OperatingMode::Pwm)] {
        bus.write_field(id, ct::OPERATING_MODE, i64::from(mode.value())).expect("mode");
        // Each limit is within 0…4095 alone, so the firmware stores both.
        bus.write_field(id, ct::MIN_POSITION_LIMIT, 3000).expect("Min_Position_Limit in range");
        bus.write_field(id, ct::MAX_POSITION_LIMIT, 1000).expect("Max_Position_Limit in range");
        assert_eq!((get(id, ct::MIN_POSITION_LIMIT), get(id, ct::MAX_POSITION_LIMIT)), (3000, 1000));
        bus.write_field(id, ct::TORQUE_ENABLE, 1).expect("torque on");
        let before = emu.present_ticks(id).expect("present");
        // No goal position lies within empty limits: Data Range, nothing stored.
        let goal_before = get(id, ct::GOAL_POSITION);
        let e = bus.write_field(id, ct::GOAL_POSITION, 2000).expect_err("no goal is within the limits");
        let data_range = |e: &ServoBusError| {
            matches!(e, ServoBusError::Status { error: StatusError { error: Some(ErrorNumber::DataRange), .. }, .. })
        };
        assert!(data_range(&e), "servo {id}: {e}");
        assert_eq!(get(id, ct::GOAL_POSITION), goal_before, "servo {id}");
        if mode == OperatingMode::Pwm {
            bus.write_field(id, ct::GOAL_PWM, 300).expect("Goal_PWM within PWM_Limit");
        }
        std::thread::sleep(Duration::from_millis(30));
        // The dynamics advance without panicking, and the servo stays where it was.
        assert_eq!(emu.present_ticks(id), Some(before), "servo {id}");
        bus.write_field(id, ct::TORQUE_ENABLE, 0).expect("torque off");
    }
}
