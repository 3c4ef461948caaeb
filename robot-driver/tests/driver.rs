//! The real driver code against the servo emulator: over a pseudo-terminal through the serial
#![allow(clippy::needless_range_loop)]
//! transport, and in process, with a real zenoh session on loopback for the node tests.

use std::time::{Duration, Instant};

use bus::{Estop, JointCommand, NodeState, Status};
use robot_driver::arm::{Arm, ArmError};
use robot_driver::control_table as ct;
use robot_driver::emulator::{Emulator, EmulatorConfig, Faults};
use robot_driver::protocol::{ErrorNumber, HardwareError, StatusError};
use robot_driver::servo_bus::{ServoBus, ServoBusConfig};
use robot_driver::servo_map::ServoMap;
use robot_driver::transport::SerialTransport;

mod common;
use common::{emulator, fast_cfg, in_process_arm, latest_state, stream, with_node, TARGET};

#[test]
fn sync_read_of_all_servos_over_a_pty_runs_above_100_hz() {
    let emu = emulator(Faults::default());
    let pty = emu.serve_pty().expect("pty");
    let port = SerialTransport::open(pty.path(), 1_000_000).expect("open pty");
    let mut bus = ServoBus::new(Box::new(port), ServoBusConfig::default());
    let ids: Vec<u8> = (1..=9).collect();
    let n = 300;
    let t0 = Instant::now();
    for _ in 0..n {
        let replies = bus.sync_read(ct::STATE_BLOCK.address, ct::STATE_BLOCK.size, &ids).expect("io");
        assert!(replies.iter().all(Result::is_ok));
    }
    let hz = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!("sync read of 9 servos × 10 bytes over a pty: {hz:.0} Hz");
    assert!(hz >= 100.0, "{hz:.0} Hz");
    assert_eq!(bus.stats().failures, 0);
}

#[test]
fn moves_reach_their_targets_over_the_serial_path() {
    let emu = emulator(Faults::default());
    let pty = emu.serve_pty().expect("pty");
    let port = SerialTransport::open(pty.path(), 1_000_000).expect("open pty");
    let arm = Arm::new(ServoBus::new(Box::new(port), ServoBusConfig::default()), ServoMap::widowx250());
    let (report, _) = with_node(arm, fast_cfg(), |bus| {
        // From the sleep pose the farthest joint (shoulder, 1.2 rad) needs ~0.4 s at π rad/s.
        let last = stream(bus, TARGET, 0.9, 1.5).expect("joint states");
        for i in 0..6 {
            assert!((last.position[i] - TARGET[i]).abs() < 0.02, "joint {i}: {} vs {}", last.position[i], TARGET[i]);
        }
        assert!((last.position[6] - 0.9).abs() < 0.05, "gripper {}", last.position[6]);
        // Shadows follow their primary through the Secondary ID.
        let (p, s) = (emu.present_ticks(2).expect("2"), emu.present_ticks(3).expect("3"));
        assert!((p - s).abs() < 5.0, "shoulder {p} vs shadow {s}");
    });
    let report = report.expect("node ran");
    assert!(report.commands.commands_applied > 50, "{report:?}");
    assert_eq!(report.fault, None);
    assert!(report.cycle_time.p99_ms < 10.0, "{:?}", report.cycle_time);
}

#[test]
fn watchdog_holds_position_when_commands_stop() {
    let emu = emulator(Faults::default());
    let (report, _) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        // Start towards a far waist target, then go silent after 0.2 s.
        stream(bus, [2.5, -1.8, 1.55, 0.0, 0.8, 0.0], 0.5, 0.2);
        std::thread::sleep(Duration::from_millis(600));
        let a = latest_state(bus, Duration::from_secs(1)).position[0];
        std::thread::sleep(Duration::from_millis(300));
        let b = latest_state(bus, Duration::from_secs(1)).position[0];
        assert!((a - b).abs() < 0.01, "waist kept moving after the watchdog: {a} → {b}");
        assert!(a < 1.5, "waist reached {a}: the watchdog did not stop the move to 2.5 rad");
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.watchdog_holds, 1, "{report:?}");
}

#[test]
fn estop_holds_and_ignores_commands_until_released() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let estop = bus.publisher::<Estop>().expect("pub");
        stream(bus, TARGET, 0.5, 0.1);
        estop.publish(&mut Estop { engaged: true, reason: "test".into(), ..Default::default() }).expect("estop");
        std::thread::sleep(Duration::from_millis(100));
        let held = latest_state(bus, Duration::from_secs(1)).position;
        let later = stream(bus, [0.0; 6], 0.5, 0.5).expect("states").position;
        for i in 0..6 {
            assert!((held[i] - later[i]).abs() < 0.01, "joint {i} moved under e-stop: {} → {}", held[i], later[i]);
        }
        estop.publish(&mut Estop { engaged: false, ..Default::default() }).expect("release");
        std::thread::sleep(Duration::from_millis(50));
        let moved = stream(bus, [0.0; 6], 0.5, 1.2).expect("states").position;
        assert!(moved[..6].iter().all(|q| q.abs() < 0.03), "after release the arm follows again: {moved:?}");
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.estop.engaged, 1);
    assert!(statuses.iter().any(|s| s.state == NodeState::Estopped && s.message.contains("holding")), "{statuses:?}");
}

#[test]
fn targets_beyond_limits_are_clamped_and_nan_is_rejected() {
    let emu = emulator(Faults::default());
    let (report, _) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let last = stream(bus, [0.0, 3.0, -3.0, 0.0, 0.0, 0.0], 0.5, 1.5).expect("states").position;
        assert!((last[1] - 1.990).abs() < 0.02, "shoulder {}", last[1]);
        assert!((last[2] + 2.147).abs() < 0.02, "elbow {}", last[2]);
        let before = latest_state(bus, Duration::from_secs(1)).position;
        let after = stream(bus, [f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0], 0.5, 0.4).expect("states").position;
        for i in 0..6 {
            assert!((before[i] - after[i]).abs() < 0.01, "NaN command moved joint {i}");
        }
    });
    let report = report.expect("node ran");
    assert!(report.commands.commands_clamped > 0 && report.commands.commands_rejected >= 10, "{report:?}");
    // The servos never saw a goal outside the limits.
    let (lo, hi) = ServoMap::widowx250().limit_ticks(1);
    let goal = emu.with_chain(|c| c.servo(2).map(|s| s.get(ct::GOAL_POSITION))).expect("servo 2");
    assert!((lo as i64..=hi as i64).contains(&goal), "goal {goal} outside [{lo}, {hi}]");
}

#[test]
fn one_percent_corrupted_bytes_are_survived_with_retries() {
    let emu = emulator(Faults { corrupt_byte: 0.01, drop_reply: 0.0, seed: 7 });
    let (report, _) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let last = stream(bus, TARGET, 0.5, 2.0).expect("joint states (did start-up fail?)");
        for i in 0..6 {
            assert!((last.position[i] - TARGET[i]).abs() < 0.03, "joint {i}: {}", last.position[i]);
        }
    });
    let report = report.expect("the node survives corruption");
    assert!(report.cycles > 120, "{report:?}");
    assert_eq!(report.fault, None, "{report:?}");
    let stats = emu.stats();
    assert!(stats.corrupted_bytes > 100, "{stats:?}");
    eprintln!("corruption: {stats:?}; node: {report:?}");
}

#[test]
fn a_servo_that_disappears_stops_the_arm_with_a_status_error() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        stream(bus, TARGET, 0.5, 0.2);
        emu.set_answering(4, false);
        std::thread::sleep(Duration::from_millis(200));
        let waist = emu.present_ticks(1).expect("1");
        stream(bus, [0.0; 6], 0.5, 0.5);
        let waist_after = emu.present_ticks(1).expect("1");
        assert!((waist - waist_after).abs() < 3.0, "the other joints must hold: {waist} → {waist_after}");
    });
    let report = report.expect("node ran");
    let fault = report.fault.expect("a fault");
    assert!(fault.contains("servo 4 (elbow) stopped answering"), "{fault}");
    assert!(
        statuses.iter().any(|s| s.state == NodeState::Error && s.message.contains("servo 4 (elbow)")),
        "{statuses:?}"
    );
}

#[test]
fn an_overload_error_bit_stops_the_arm_and_is_reported() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        stream(bus, TARGET, 0.5, 0.2);
        emu.raise_hardware_error(7, HardwareError::OVERLOAD);
        std::thread::sleep(Duration::from_millis(200));
    });
    let fault = report.expect("node ran").fault.expect("a fault");
    assert!(fault.contains("servo 7 (wrist_angle): overload"), "{fault}");
    assert!(statuses.iter().any(|s| s.state == NodeState::Error && s.message.contains("overload")));
}

#[test]
fn startup_refuses_torque_and_names_the_servo() {
    // A missing servo.
    let emu = emulator(Faults::default());
    emu.set_answering(8, false);
    let mut arm = in_process_arm(&emu);
    let e = arm.start().expect_err("servo 8 is missing");
    assert!(e.to_string().contains("servo 8 (wrist_rotate) did not answer a ping"), "{e}");
    // The wrong model: a map that says XM430 where the arm has an XL430.
    let emu = emulator(Faults::default());
    let text = robot_driver::servo_map::WIDOWX250_TOML.replacen("model = \"XL430-W250\"", "model = \"XM430-W350\"", 1);
    let map = ServoMap::from_toml(&text, "test").expect("valid map");
    let mut arm = Arm::new(ServoBus::new(Box::new(emu.port()), ServoBusConfig::default()), map);
    let e = arm.start().expect_err("model mismatch");
    assert!(
        e.to_string().contains("servo 8 (wrist_rotate) is a XL430-W250 (model 1060); the servo map says XM430-W350"),
        "{e}"
    );
    // A joint resting outside its limits (elbow at 2.5 rad > 1.606).
    let emu = Emulator::from_map(
        &ServoMap::widowx250(),
        EmulatorConfig { pose_rad: [0.0, -1.8, 2.5, 0.0, 0.8, 0.0], ..Default::default() },
    );
    let mut arm = in_process_arm(&emu);
    match arm.start() {
        Err(ArmError::Startup(p)) => assert!(p.iter().any(|m| m.contains("joint elbow is at 2.500 rad")), "{p:?}"),
        other => panic!("expected a start-up refusal, got {other:?}"),
    }
    // Torque stayed off everywhere.
    assert!(emu.with_chain(|c| c.servos.iter().all(|s| !s.torque_on())));
    // A latched hardware error.
    let emu = emulator(Faults::default());
    emu.raise_hardware_error(1, HardwareError::OVERHEATING);
    let e = in_process_arm(&emu).start().expect_err("overheated");
    assert!(e.to_string().contains("servo 1 (waist) has a latched hardware error: overheating"), "{e}");
}

#[test]
fn startup_configures_the_servos_from_the_map() {
    let emu = emulator(Faults::default());
    let mut arm = in_process_arm(&emu);
    arm.start().expect("a healthy arm starts");
    emu.with_chain(|c| {
        let shadow = c.servo(3).expect("3");
        assert_eq!(shadow.get(ct::SECONDARY_ID), 2);
        assert_eq!(shadow.get(ct::DRIVE_MODE) & 1, 1);
        assert_eq!(c.servo(2).expect("2").get(ct::DRIVE_MODE) & 1, 0);
        assert_eq!(c.servo(9).expect("9").get(ct::OPERATING_MODE), 16);
        assert_eq!(c.servo(4).expect("4").get(ct::MIN_POSITION_LIMIT), ct::rad_to_ticks(-2.147) as i64);
    });
    let state = arm.enable_torque().expect("torque on");
    assert!((state.q_rad[1] + 1.80).abs() < 0.01 && (state.q_rad[4] - 0.8).abs() < 0.01, "{state:?}");
}

#[test]
fn estop_can_drop_torque_and_restores_it_on_release() {
    let emu = emulator(Faults::default());
    let text = robot_driver::servo_map::WIDOWX250_TOML.replace("on_estop = \"hold\"", "on_estop = \"torque_off\"");
    let map = ServoMap::from_toml(&text, "test").expect("valid");
    let arm = Arm::new(ServoBus::new(Box::new(emu.port()), ServoBusConfig::default()), map);
    let (report, statuses) = with_node(arm, fast_cfg(), |bus| {
        let estop = bus.publisher::<Estop>().expect("pub");
        stream(bus, TARGET, 0.5, 0.2);
        estop.publish(&mut Estop { engaged: true, reason: "test".into(), ..Default::default() }).expect("estop");
        std::thread::sleep(Duration::from_millis(150));
        assert!(emu.with_chain(|c| c.servos.iter().all(|s| !s.torque_on())), "torque must be off");
        estop.publish(&mut Estop { engaged: false, ..Default::default() }).expect("release");
        std::thread::sleep(Duration::from_millis(150));
        assert!(emu.with_chain(|c| c.servos.iter().all(|s| s.torque_on())), "torque must be back on");
        let last = stream(bus, TARGET, 0.5, 1.0).expect("states");
        assert!((last.position[0] - TARGET[0]).abs() < 0.02, "follows again: {:?}", last.position);
    });
    assert_eq!(report.expect("node ran").commands.estop.engaged, 1);
    assert!(
        statuses.iter().any(|s| s.state == NodeState::Estopped && s.message.contains("torque off")),
        "{statuses:?}"
    );
}

#[test]
fn stale_commands_never_move_the_arm() {
    let emu = emulator(Faults::default());
    let (report, _) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let cmd = bus.publisher::<JointCommand>().expect("pub");
        let before = latest_state(bus, Duration::from_secs(1)).position;
        for _ in 0..25 {
            let mut c = JointCommand { position: TARGET.to_vec(), gripper: 0.5, ..Default::default() };
            // Stamped one second ago (the publisher keeps a non-zero stamp).
            c.header.stamp_ns = bus::now_ns() - 1_000_000_000;
            cmd.publish(&mut c).expect("publish");
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = latest_state(bus, Duration::from_secs(1)).position;
        for i in 0..6 {
            assert!((before[i] - after[i]).abs() < 0.01, "a stale command moved joint {i}");
        }
    });
    let report = report.expect("node ran");
    assert!(report.commands.commands_stale >= 20 && report.commands.commands_applied == 0, "{report:?}");
}

#[test]
fn dropped_replies_are_retried_over_the_serial_path() {
    let emu = emulator(Faults { drop_reply: 0.05, corrupt_byte: 0.0, seed: 3 });
    let pty = emu.serve_pty().expect("pty");
    let port = SerialTransport::open(pty.path(), 1_000_000).expect("open pty");
    let arm = Arm::new(ServoBus::new(Box::new(port), ServoBusConfig::default()), ServoMap::widowx250());
    let (report, statuses) = with_node(arm, fast_cfg(), |bus| {
        let last = stream(bus, TARGET, 0.5, 1.5).expect("states");
        assert!((last.position[1] - TARGET[1]).abs() < 0.03, "{:?}", last.position);
    });
    let report = report.expect("node ran");
    assert_eq!(report.fault, None);
    assert!(emu.stats().dropped_replies > 20, "{:?}", emu.stats());
    let retries = statuses.iter().filter_map(|s| s.counters.get("bus_retries")).max().copied().unwrap_or(0);
    assert!(retries > 10, "retries on status: {retries}");
}

/// Whether `e` is the servo's Data Range error.
fn is_data_range(e: &robot_driver::servo_bus::ServoBusError) -> bool {
    matches!(
        e,
        robot_driver::servo_bus::ServoBusError::Status {
            error: StatusError { error: Some(ErrorNumber::DataRange), .. },
            ..
        }
    )
}

#[test]
fn the_emulator_answers_writes_outside_the_documented_range_with_data_range() {
    let emu = emulator(Faults::default());
    let mut bus = ServoBus::new(Box::new(emu.port()), ServoBusConfig::default());
    let get = |id: u8, f: ct::Field| emu.with_chain(|c| c.servo(id).map(|s| s.get(f))).expect("servo");
    // One past the turn: refused, nothing stored; the last tick is accepted.
    let e = bus.write_field(1, ct::MAX_POSITION_LIMIT, 4096).expect_err("4096 is out of range");
    assert!(is_data_range(&e), "{e}");
    assert_eq!(get(1, ct::MAX_POSITION_LIMIT), 4095);
    bus.write_field(1, ct::MAX_POSITION_LIMIT, 3000).expect("in range");
    bus.write_field(1, ct::MAX_POSITION_LIMIT, 4095).expect("the last tick");
    // Model-specific: the XL430 (servo 8) has neither current modes nor 16 V limits.
    assert!(is_data_range(&bus.write_field(8, ct::OPERATING_MODE, 5).expect_err("no current mode")));
    assert!(is_data_range(&bus.write_field(8, ct::MAX_VOLTAGE_LIMIT, 160).expect_err("XL430 tops at 14 V")));
    bus.write_field(1, ct::MAX_VOLTAGE_LIMIT, 160).expect("an XM430 takes 16 V");
    for (field, bad) in
        [(ct::HOMING_OFFSET, 1_044_480), (ct::PROFILE_VELOCITY, 32_768), (ct::DRIVE_MODE, 2), (ct::ID, 253)]
    {
        assert!(is_data_range(&bus.write_field(4, field, bad).expect_err(field.name)), "{}", field.name);
    }
    // Goals are bounded by the limit registers as they stand.
    bus.write_field(4, ct::MIN_POSITION_LIMIT, 1000).expect("limit");
    bus.write_field(4, ct::MAX_POSITION_LIMIT, 3000).expect("limit");
    let before = get(4, ct::GOAL_POSITION);
    assert!(is_data_range(&bus.write_field(4, ct::GOAL_POSITION, 3001).expect_err("past Max_Position_Limit")));
    assert_eq!(get(4, ct::GOAL_POSITION), before);
    bus.write_field(4, ct::GOAL_POSITION, 3000).expect("at the limit");
    bus.write_field(9, ct::PWM_LIMIT, 300).expect("limit");
    assert!(is_data_range(&bus.write_field(9, ct::GOAL_PWM, -301).expect_err("past PWM_Limit")));
    // A broadcast write has no reply: the out-of-range value is simply not stored.
    bus.sync_write(ct::GOAL_POSITION.address, 4, &[(4, &5000i32.to_le_bytes()[..])]).expect("sent");
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(get(4, ct::GOAL_POSITION), 3000);
}

#[test]
fn startup_writes_half_turn_limits_as_the_ends_of_the_tick_range() {
    // The built-in map's ±3.14158 rad joints (servos 1, 6, 8), then limits of exactly ±π.
    let exact = robot_driver::servo_map::WIDOWX250_TOML.replace("3.14158", &std::f64::consts::PI.to_string());
    for map in [ServoMap::widowx250(), ServoMap::from_toml(&exact, "±π").expect("valid")] {
        let emu = Emulator::from_map(&map, EmulatorConfig::default());
        let mut arm = Arm::new(ServoBus::new(Box::new(emu.port()), ServoBusConfig::default()), map.clone());
        arm.start().expect("the arm starts");
        emu.with_chain(|c| {
            for id in [1, 6, 8] {
                let s = c.servo(id).expect("servo");
                assert_eq!((s.get(ct::MIN_POSITION_LIMIT), s.get(ct::MAX_POSITION_LIMIT)), (0, 4095), "servo {id}");
            }
        });
        let state = arm.enable_torque().expect("torque on");
        // Goals at the limits (and past them) land on the limit ticks, which the servo stores.
        let goal = |id: u8| emu.with_chain(|c| c.servo(id).map(|s| s.get(ct::GOAL_POSITION))).expect("servo");
        let mut q = state.q_rad;
        (q[0], q[3], q[5]) = (map.joints[0].max_rad, map.joints[3].min_rad, 4.0);
        arm.write_goal(&q, 0.5, &state).expect("legal goals");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((goal(1), goal(6), goal(8)), (4095, 0, 4095));
        q[2] = 3.0; // elbow: upper limit 1.606 rad
        arm.write_goal(&q, 0.5, &state).expect("clamped to the limit");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(goal(4), i64::from(ct::rad_to_turn_ticks(1.606)));
    }
}

#[test]
fn the_driver_refuses_out_of_range_values_before_sending_them() {
    let emu = emulator(Faults::default());
    let mut arm = in_process_arm(&emu);
    let sent = || emu.stats().packets;
    let before = sent();
    let e = arm.write_register(1, ct::MAX_POSITION_LIMIT, 4096).expect_err("one past the turn");
    assert_eq!(
        e.to_string(),
        "servo 1 (waist): refusing to write Max_Position_Limit = 4096: outside its documented range 0…4095"
    );
    let e = arm.write_register(9, ct::GOAL_CURRENT, 10).expect_err("the XL430 gripper has no current control");
    assert!(e.to_string().contains("Goal_Current: not a writable register of the XL430-W250"), "{e}");
    assert_eq!(sent(), before, "nothing was sent");
    // After start-up the goals are checked against the limits the servos were configured with.
    arm.start().expect("starts");
    let elbow = arm.limit_registers(4).expect("servo 4");
    assert_eq!(elbow.max_position_ticks, i64::from(ct::rad_to_turn_ticks(1.606)));
    assert_eq!(elbow.current_limit, 1193, "read from the servo");
    assert_eq!(arm.limit_registers(9).expect("gripper").pwm_limit, 350);
    let e = arm.write_register(4, ct::GOAL_POSITION, elbow.max_position_ticks + 1).expect_err("past the limit");
    assert!(e.to_string().contains("servo 4 (elbow): refusing to write Goal_Position"), "{e}");
    let state = arm.read_state().expect("state");
    let before = sent();
    let mut q = state.q_rad;
    q[1] = f64::NAN;
    let e = arm.write_goal(&q, 0.5, &state).expect_err("NaN");
    assert!(e.to_string().contains("shoulder = NaN"), "{e}");
    assert_eq!(sent(), before, "nothing was sent");
}

/// What the node's subscribers refuse is counted on its `status`, on every topic it subscribes
/// to: a newer-schema command as `newer_schema`, garbage on `command/episode` as `decode_errors`.
#[test]
fn refused_messages_are_counted_on_status() {
    let emu = emulator(Faults::default());
    let (report, statuses) = with_node(in_process_arm(&emu), fast_cfg(), |bus| {
        let status = bus.subscriber::<Status>().expect("status sub");
        let mut future = JointCommand { position: TARGET.to_vec(), gripper: 1.0, ..Default::default() };
        future.header.schema = bus::SCHEMA_VERSION + 1;
        let future = bus::encode(&future).expect("encode");
        let counted = |s: &Status, name: &str| s.counters.get(name).copied().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            bus.put_raw(&bus.key("command/joint"), future.clone()).expect("put");
            bus.put_raw(&bus.key("command/episode"), vec![0xff, 0x00, 0x13]).expect("put");
            if let Some(s) = status.recv_timeout(Duration::from_millis(100)) {
                if counted(&s, bus::STATUS_NEWER_SCHEMA) > 0 && counted(&s, bus::STATUS_DECODE_ERRORS) > 0 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "refused messages never counted on status");
        }
    });
    let report = report.expect("node ran");
    assert_eq!(report.commands.commands_applied, 0, "a newer-schema command must not be applied: {report:?}");
    let last = statuses.last().expect("a final status");
    assert!(last.counters.get(bus::STATUS_NEWER_SCHEMA).is_some_and(|&n| n > 0), "{last:?}");
}
