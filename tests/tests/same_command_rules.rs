//! The sim node and the driver node apply the same command rules: their arbiters, each built
//! from its node's real configuration (the sim's URDF-derived arm model and settings, the
//! driver's built-in WidowX 250 servo map), take the same scripted stream of commands and e-stop
//! messages and make the same decisions with the same counters.

use arm_command::{Arbiter, ArbiterConfig, Cycle, Decision, Inbox, Source};
use bus::{ActionChunk, ActionKind, Estop, Header, JointCommand, SCHEMA_VERSION};
use robot_driver::node::DriverNodeConfig;
use robot_driver::servo_map::ServoMap;
use sim::{load_scene, EnvConfig};

mod common;

const MS: u64 = 1_000_000;
/// Wall clock at cycle 0, ns since the UNIX epoch.
const T0: u64 = 1_800_000_000_000_000_000;
/// The driver's default cycle, ns (100 Hz); the sim runs at the same control rate here.
const CYCLE_NS: u64 = 10 * MS;

fn sim_config() -> ArbiterConfig {
    let mut env = EnvConfig::new(load_scene("reach").expect("scene"));
    env.control_hz = DriverNodeConfig::default().cycle_hz;
    sim::node::arbiter_config(&common::node_config(env))
}

fn driver_config() -> ArbiterConfig {
    robot_driver::safety::arbiter_config(&ServoMap::widowx250(), DriverNodeConfig::default().cycle_hz)
}

fn at(k: u64) -> u64 {
    T0 + k * CYCLE_NS
}

fn header(stamp_ns: u64) -> Header {
    Header { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 3 }
}

fn joint(q: [f64; 6], stamp_ns: u64) -> Inbox {
    Inbox {
        joint: Some(JointCommand { header: header(stamp_ns), position: q.to_vec(), gripper: 0.2, obs_stamp_ns: 0 }),
        ..Default::default()
    }
}

fn estops(messages: &[(bool, u64)]) -> Inbox {
    let estop = messages
        .iter()
        .map(|&(engaged, stamp_ns)| Estop { header: header(stamp_ns), engaged, reason: "script".into() })
        .collect();
    Inbox { estop, ..Default::default() }
}

/// The scripted stream: what arrives at each cycle (10 ms apart), and nothing in between.
fn script(k: u64) -> Inbox {
    const POSE: [f64; 6] = [0.3, -0.2, 0.4, 0.0, 0.5, 0.0];
    const FAR: [f64; 6] = [10.0, 10.0, -10.0, 10.0, 10.0, -10.0];
    match k {
        0 => joint(POSE, at(0)),
        5 => joint([0.0; 6], at(5) - 600 * MS),
        6 => joint([0.0; 6], at(6) + 3_600_000 * MS),
        40 => estops(&[(true, at(40)), (false, at(40) + 1)]),
        45 => estops(&[(false, at(45) - 600 * MS)]),
        50 => estops(&[(false, at(50))]),
        51 => joint([0.0; 6], at(49)),
        55 => joint(POSE, at(55)),
        60 => {
            // 5 rows 50 ms apart, stamped 20 ms before it arrives: rows due at cycles 60, 63,
            // 68, 73 and 78, by the wall clock.
            let values = (0..5).flat_map(|i| [0.3, -0.2, 0.4, 0.0, 0.5, 0.1 * i as f32, 1.0]).collect();
            let chunk = ActionChunk {
                header: header(at(60) - 20 * MS),
                kind: ActionKind::JointTarget,
                horizon: 5,
                dim: 7,
                period_ns: 50 * MS,
                values,
                obs_stamp_ns: 0,
            };
            Inbox { chunk: Some(chunk), ..Default::default() }
        }
        100..=300 if k % 10 == 0 => joint(FAR, at(k)),
        _ => Inbox::default(),
    }
}

/// Runs the script through an arbiter built from `config`; the arm is taken to reach each
/// target it is sent (measured = last target).
fn run(config: ArbiterConfig) -> (Vec<Decision>, arm_command::ArbiterCounts) {
    let start = [0.0, -1.0, 1.0, 0.0, 0.5, 0.0];
    let mut arbiter = Arbiter::new(config, start, 1.0).expect("usable limits");
    let mut measured = start;
    let mut decisions = Vec::new();
    for k in 0..400 {
        let cycle = Cycle { now_ns: at(k), control_ns: k * CYCLE_NS, measured_q_rad: measured, accept_commands: true };
        let d = arbiter.step(&cycle, script(k), None);
        measured = d.q_rad;
        decisions.push(d);
    }
    (decisions, arbiter.counts())
}

#[test]
fn the_sim_and_the_driver_configure_the_same_rules() {
    let (sim, driver) = (sim_config(), driver_config());
    for (i, (s, d)) in sim.limits.joints.iter().zip(&driver.limits.joints).enumerate() {
        assert_eq!(s, d, "joint {i}: the sim's URDF limits differ from the servo map's");
    }
    assert_eq!(sim, driver);
}

#[test]
fn one_scripted_stream_gets_the_same_decisions_in_the_sim_and_on_the_arm() {
    let (sim, sim_counts) = run(sim_config());
    let (driver, driver_counts) = run(driver_config());
    for (k, (s, d)) in sim.iter().zip(&driver).enumerate() {
        assert_eq!(s, d, "cycle {k}");
    }
    assert_eq!(sim_counts, driver_counts);
    // And they are the rules' decisions.
    let source = |k: usize| sim[k].source;
    assert_eq!(source(0), Source::Joint);
    assert_eq!((source(5), source(6)), (Source::Continue, Source::Continue), "stale and future commands ignored");
    assert_eq!(source(26), Source::WatchdogHold, "no fresh command for 250 ms after cycle 0");
    assert_eq!(source(40), Source::EstopHold, "a pulse within one cycle latches");
    assert_eq!(sim[44].q_rad, sim[40].q_rad, "held while engaged");
    assert_eq!(source(45), Source::EstopHold, "a stale release is refused");
    assert_eq!(source(50), Source::Idle, "a fresh release releases; the arm waits for a command");
    assert_eq!(source(51), Source::Idle, "a command from before the release does not move it");
    assert_eq!(source(55), Source::Joint);
    let rows: Vec<(usize, Source)> =
        (60..100).map(|k| (k, source(k))).filter(|(_, s)| matches!(s, Source::ChunkRow { .. })).collect();
    let expected: Vec<(usize, Source)> =
        [60, 63, 68, 73, 78].into_iter().zip(0..).map(|(k, index)| (k, Source::ChunkRow { index })).collect();
    assert_eq!(rows, expected, "chunk rows by the wall clock, back-dated by the chunk's age");
    // The extreme command: at most π rad/s × 10 ms per cycle, and it rests at the limits.
    let step = |k: usize| sim[k].q_rad.iter().zip(&sim[k - 1].q_rad).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!((100..400).all(|k| step(k) <= std::f64::consts::PI * 0.010 + 1e-12));
    assert_eq!(sim[300].q_rad, [3.14158, 1.990, -2.147, 3.14158, 2.147, -3.14158]);
    // Commands stop at cycle 300: the watchdog holds 250 ms later.
    assert_eq!(source(326), Source::WatchdogHold);
    assert_eq!(source(399), Source::Idle);
    assert_eq!(
        (
            sim_counts.commands_stale,
            sim_counts.estop.engaged,
            sim_counts.estop.released,
            sim_counts.estop.release_refused
        ),
        (3, 1, 1, 2)
    );
    assert_eq!((sim_counts.commands_applied, sim_counts.watchdog_holds), (2 + 5 + 21, 2));
}
