//! Helpers shared by the driver's integration tests: the servo emulator, an in-process arm, and
//! the driver node on a fresh loopback bus driven by a test script.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bus::{Bus, BusConfig, JointCommand, JointState, Status};
use robot_driver::arm::Arm;
use robot_driver::emulator::{Emulator, EmulatorConfig, Faults};
use robot_driver::node::{run_driver_node, DriverError, DriverNodeConfig, DriverReport};
use robot_driver::servo_bus::{ServoBus, ServoBusConfig};
use robot_driver::servo_map::ServoMap;

/// The emulated WidowX 250 chain with `faults`.
pub fn emulator(faults: Faults) -> Emulator {
    Emulator::from_map(&ServoMap::widowx250(), EmulatorConfig { faults, ..Default::default() })
}

/// An arm talking to `emu` in process (no serial port).
pub fn in_process_arm(emu: &Emulator) -> Arm {
    Arm::new(ServoBus::new(Box::new(emu.port()), ServoBusConfig::default()), ServoMap::widowx250())
}

/// Runs the driver node on a fresh bus while `script` drives it; returns the node's result and
/// every status seen.
pub fn with_node(
    mut arm: Arm,
    cfg: DriverNodeConfig,
    script: impl FnOnce(&Bus) + Send,
) -> (Result<DriverReport, DriverError>, Vec<Status>) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Each test discovers peers only in its own temp folder, so one robot name serves all.
    let bus = Bus::open(&BusConfig::with_discovery_dir("drv", dir.path())).expect("bus");
    let statuses = bus.subscriber::<Status>().expect("status sub");
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(2);
    let result = std::thread::scope(|s| {
        let node = s.spawn(|| run_driver_node(&mut arm, None, &bus, &cfg, &stop, Some(&ready)));
        ready.wait();
        let scripted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| script(&bus)));
        stop.store(true, Ordering::SeqCst);
        let result = node.join().expect("node thread");
        if let Err(p) = scripted {
            eprintln!("the test script failed; the node returned {result:?}");
            std::panic::resume_unwind(p);
        }
        result
    });
    let mut all = Vec::new();
    while let Some(s) = statuses.try_recv() {
        all.push(s);
    }
    (result, all)
}

/// Streams joint targets at 50 Hz for `secs`, returning the last joint state seen.
pub fn stream(bus: &Bus, target: [f64; 6], gripper: f64, secs: f64) -> Option<JointState> {
    let cmd = bus.publisher::<JointCommand>().expect("pub");
    let js = bus.subscriber::<JointState>().expect("sub");
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut last = None;
    while Instant::now() < until {
        cmd.publish(&mut JointCommand { position: target.to_vec(), gripper, ..Default::default() }).expect("publish");
        std::thread::sleep(Duration::from_millis(20));
        while let Some(m) = js.try_recv() {
            last = Some(m);
        }
    }
    last
}

/// The next joint state published within `wait`.
pub fn latest_state(bus: &Bus, wait: Duration) -> JointState {
    let js = bus.subscriber::<JointState>().expect("sub");
    js.recv_timeout(wait).expect("a joint state")
}

/// 100 Hz cycle, 50 Hz joint states.
pub fn fast_cfg() -> DriverNodeConfig {
    DriverNodeConfig { cycle_hz: 100.0, publish_hz: 50.0, ..Default::default() }
}

/// A pose inside every joint's limits, away from the sleep pose, rad.
pub const TARGET: [f64; 6] = [0.4, -0.6, 0.7, -0.3, 0.5, 0.2];
