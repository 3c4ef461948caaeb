//! The multi-host profile shipped in `config/zenoh/` on loopback: the robot host runs the sim node
//! with `robot-host.json5` (login + access control); peers connect with `operator.json5` or
//! `viewer.json5`. The files are the shipped ones with only the port, the credentials file's path
//! and the passwords substituted, so the documented profile is the tested one.
//!
//! A listed operator drives the arm and can e-stop it; a logged-in viewer receives every topic but
//! its commands and e-stops never reach the node; a wrong password or no login gets no
//! connection at all.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bus::{
    ActionChunk, ActionKind, Bus, BusConfig, EeDeltaCommand, Estop, JointCommand, JointState, NodeState, Status,
};

mod common;
use common::{arm_q, Harness};

/// The shipped profiles, relative to this crate.
const PROFILE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/zenoh");
/// Placeholders in the shipped files that each deployment (and this test) replaces.
const SHIPPED_LISTEN: &str = "tcp/0.0.0.0:7447";
const SHIPPED_ROBOT_HOST: &str = "tcp/robot-host.local:7447";
const SHIPPED_USERS_FILE: &str = "/etc/armstack/zenoh-users.txt";
const SHIPPED_PASSWORD_PREFIX: &str = "change-me-";

/// A joint target away from the reach scene's home pose, rad.
const TARGET_RAD: [f64; 6] = [0.3, -0.4, 0.6, 0.1, 0.9, -0.2];

/// The shipped profiles, instantiated in a temporary directory for one robot-host port.
struct Profiles {
    dir: tempfile::TempDir,
    port: u16,
    password_prefix: String,
}

impl Profiles {
    fn new() -> Profiles {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port();
        let password_prefix = format!("test-{}-{port}-", std::process::id());
        let profiles = Profiles { dir, port, password_prefix };
        // The credentials file: the shipped example's users, with this test's passwords.
        profiles.instantiate(
            "zenoh-users.example.txt",
            "zenoh-users.txt",
            &[(SHIPPED_PASSWORD_PREFIX, &profiles.password_prefix)],
        );
        profiles
    }

    /// Copies the shipped `name` to `as_name`, replacing each `(from, to)`; every `from` must be in
    /// the shipped file, so a changed profile fails here instead of silently testing something else.
    fn instantiate(&self, name: &str, as_name: &str, replacements: &[(&str, &str)]) -> PathBuf {
        let shipped = Path::new(PROFILE_DIR).join(name);
        let mut text = std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
        for (from, to) in replacements {
            assert!(
                text.contains(from),
                "{} no longer contains {from:?}: update this test and the docs",
                shipped.display()
            );
            text = text.replace(from, to);
        }
        let path = self.dir.path().join(as_name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn endpoint(&self) -> String {
        format!("tcp/127.0.0.1:{}", self.port)
    }

    fn robot_host(&self) -> PathBuf {
        let users = self.dir.path().join("zenoh-users.txt");
        let users = users.to_str().unwrap();
        self.instantiate(
            "robot-host.json5",
            "robot-host.json5",
            &[(SHIPPED_LISTEN, &self.endpoint()), (SHIPPED_USERS_FILE, users)],
        )
    }

    /// `operator.json5` or `viewer.json5` for `user`, logging in with `password` (`None`: the
    /// user's right password), plus extra replacements.
    fn peer(&self, shipped: &str, user: &str, password: Option<&str>, extra: &[(&str, &str)]) -> PathBuf {
        let right = format!("{}{user}", self.password_prefix);
        let shipped_password = format!("{SHIPPED_PASSWORD_PREFIX}{user}");
        let endpoint = self.endpoint();
        let mut replacements =
            vec![(SHIPPED_ROBOT_HOST, endpoint.as_str()), (shipped_password.as_str(), password.unwrap_or(&right))];
        replacements.extend_from_slice(extra);
        self.instantiate(
            shipped,
            &format!("{user}-{}-{}.json5", password.map_or("right", |_| "other"), extra.len()),
            &replacements,
        )
    }
}

fn config(robot: &str, file: PathBuf) -> BusConfig {
    BusConfig { robot: robot.to_string(), zenoh_config: Some(file), discovery_dir: None }
}

/// The sim node on a robot-host session opened from the shipped profile.
fn start_robot_host(robot: &str) -> (Profiles, Harness) {
    let profiles = Profiles::new();
    let robot_host = profiles.robot_host();
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start_on(dir, &config(robot, robot_host), 50.0, None);
    (profiles, harness)
}

fn joint_command() -> JointCommand {
    JointCommand { header: Default::default(), position: TARGET_RAD.to_vec(), gripper: 0.0, obs_stamp_ns: 0 }
}

fn at_target(js: &JointState) -> bool {
    arm_q(js).iter().zip(TARGET_RAD).all(|(q, t)| (q - t).abs() < 0.01)
}

/// Publishes every kind of arm command and an e-stop engage from `bus` for `duration`, freshly
/// stamped each round.
fn publish_every_command(bus: &Bus, duration: Duration) {
    let joint = bus.publisher::<JointCommand>().unwrap();
    let ee = bus.publisher::<EeDeltaCommand>().unwrap();
    let chunk = bus.publisher::<ActionChunk>().unwrap();
    let estop = bus.publisher::<Estop>().unwrap();
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        joint.publish(&mut joint_command()).unwrap();
        ee.publish(&mut EeDeltaCommand { delta_xyz_m: [0.0, 0.0, 0.01], gripper: 1.0, ..Default::default() }).unwrap();
        let mut rows = ActionChunk {
            kind: ActionKind::JointTarget,
            horizon: 1,
            dim: 7,
            period_ns: 20_000_000,
            values: TARGET_RAD.iter().map(|q| *q as f32).chain([0.0]).collect(),
            ..Default::default()
        };
        chunk.publish(&mut rows).unwrap();
        estop.publish(&mut Estop { engaged: true, reason: "not listed".into(), ..Default::default() }).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The robot host's own view: the node's latest status.
fn latest_status(h: &Harness) -> Status {
    let status = h.client.subscriber::<Status>().unwrap();
    status.recv_timeout(Duration::from_secs(5)).expect("the node publishes status")
}

/// Checks that no command or e-stop reached the node (none refused by it either: never
/// delivered), then stops it.
fn assert_node_received_nothing(h: Harness) {
    let status = latest_status(&h);
    assert_eq!(status.state, NodeState::Running, "an e-stop reached the node: {status:?}");
    let report = h.finish();
    assert_eq!(
        (report.commands.commands_applied, report.commands.commands_rejected, report.commands.commands_stale, report.commands.estop.engaged),
        (0, 0, 0, 0),
        "{report:?}"
    );
}

#[test]
fn listed_operator_drives_the_sim_and_a_viewer_sees_its_commands() {
    let robot = "acl_operator";
    let (profiles, h) = start_robot_host(robot);
    let operator =
        Bus::open(&config(robot, profiles.peer("operator.json5", "operator", None, &[]))).expect("operator logs in");
    let viewer = Bus::open(&config(robot, profiles.peer("viewer.json5", "viewer", None, &[]))).expect("viewer logs in");
    // Commands pass through the robot host to other logged-in clients (a recorder elsewhere).
    let seen_by_viewer = viewer.subscriber::<JointCommand>().unwrap();

    let publisher = operator.publisher::<JointCommand>().unwrap();
    let states = operator.subscriber::<JointState>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        publisher.publish(&mut joint_command()).unwrap();
        if states.recv_timeout(Duration::from_millis(50)).is_some_and(|js| at_target(&js)) {
            break;
        }
        assert!(Instant::now() < deadline, "the operator's joint commands never moved the arm");
    }
    let forwarded =
        seen_by_viewer.recv_timeout(Duration::from_secs(2)).expect("viewer receives the operator's commands");
    assert_eq!(forwarded.position, TARGET_RAD.to_vec());

    // The operator may also engage the e-stop.
    let estop = operator.publisher::<Estop>().unwrap();
    let status = h.client.subscriber::<Status>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        estop.publish(&mut Estop { engaged: true, reason: "operator".into(), ..Default::default() }).unwrap();
        if status.recv_timeout(Duration::from_millis(100)).is_some_and(|s| s.state == NodeState::Estopped) {
            break;
        }
        assert!(Instant::now() < deadline, "the operator's e-stop was not obeyed");
    }
    drop((operator, viewer));
    let report = h.finish();
    assert!(report.commands.commands_applied > 0, "{report:?}");
    assert!(report.commands.estop.engaged >= 1, "{report:?}");
}

#[test]
fn logged_in_viewer_reads_every_topic_but_cannot_command_or_estop() {
    let robot = "acl_viewer";
    let (profiles, h) = start_robot_host(robot);
    let viewer = Bus::open(&config(robot, profiles.peer("viewer.json5", "viewer", None, &[]))).expect("viewer logs in");
    let states = viewer.subscriber::<JointState>().unwrap();
    let before = states.recv_timeout(Duration::from_secs(10)).expect("the viewer receives joint states");
    assert!(!at_target(&before));

    publish_every_command(&viewer, Duration::from_millis(1500));

    let after = states.recv_timeout(Duration::from_secs(2)).expect("still receiving joint states");
    for (a, b) in arm_q(&after).iter().zip(arm_q(&before)) {
        assert!((a - b).abs() < 1e-3, "the viewer's commands moved the arm: {a} vs {b}");
    }
    drop(viewer);
    assert_node_received_nothing(h);
}

#[test]
fn wrong_password_or_no_login_gets_no_connection() {
    let robot = "acl_refused";
    let (profiles, h) = start_robot_host(robot);

    // The shipped operator profile fails at start with a wrong password.
    let wrong = profiles.peer("operator.json5", "operator", Some("wrong-password"), &[]);
    let err = Bus::open(&config(robot, wrong)).expect_err("a wrong password must not connect");
    let text = err.to_string();
    assert!(!text.contains("wrong-password"), "the error must not echo the password: {text}");
    assert!(text.contains("operator-other-0.json5") && text.contains("user name and password"), "{text}");

    // The robot host refuses them, even when a session stays open and keeps trying (a peer that
    // listens on nothing and keeps retrying): a wrong password, and a default session with no
    // login at all.
    let persistent_wrong = profiles.peer(
        "operator.json5",
        "operator",
        Some("wrong-password"),
        &[
            ("mode: \"client\",", "mode: \"peer\", listen: { endpoints: [] },"),
            ("exit_on_failure: true", "exit_on_failure: false"),
        ],
    );
    let wrong_bus = Bus::open(&config(robot, persistent_wrong)).expect("opens without a connection");
    let anonymous = Bus::open_with_endpoints(
        &BusConfig { robot: robot.to_string(), zenoh_config: None, discovery_dir: None },
        &[profiles.endpoint()],
    )
    .expect("opens without a connection");
    let outsiders = [&wrong_bus, &anonymous];
    let states: Vec<_> = outsiders.iter().map(|b| b.subscriber::<JointState>().unwrap()).collect();
    std::thread::scope(|s| {
        for bus in outsiders {
            s.spawn(|| publish_every_command(bus, Duration::from_millis(1500)));
        }
    });
    for sub in &states {
        assert!(sub.recv_timeout(Duration::from_millis(500)).is_none(), "{} received joint states", sub.key());
    }
    drop((wrong_bus, anonymous));
    assert_node_received_nothing(h);
}

/// The Python client of docs/wire-schema.md logs in to the robot host: as the viewer it receives
/// joint states but its e-stop is dropped; as the operator its e-stop is obeyed. Runs when
/// `ARMSTACK_PYTHON_TESTS=1`.
#[test]
fn python_client_logs_in_and_only_the_operator_estop_counts() {
    if std::env::var("ARMSTACK_PYTHON_TESTS").as_deref() != Ok("1") {
        eprintln!("python client test not requested (set ARMSTACK_PYTHON_TESTS=1)");
        return;
    }
    let robot = "acl_python";
    let (profiles, h) = start_robot_host(robot);
    let run = |user: &str| {
        let out = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/profile_client.py"))
            .env("ARMSTACK_ROBOT", robot)
            .env("ARMSTACK_ENDPOINT", profiles.endpoint())
            .env("ARMSTACK_ZENOH_USER", user)
            .env("ARMSTACK_ZENOH_PASSWORD", format!("{}{user}", profiles.password_prefix))
            .output()
            .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{user}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    };
    run("viewer");
    assert_eq!(latest_status(&h).state, NodeState::Running, "the viewer's e-stop reached the node");
    run("operator");
    let status = h.client.subscriber::<Status>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !status.recv_timeout(Duration::from_millis(200)).is_some_and(|s| s.state == NodeState::Estopped) {
        assert!(Instant::now() < deadline, "the operator's e-stop was not obeyed");
    }
    assert!(h.finish().commands.estop.engaged >= 1);
}
