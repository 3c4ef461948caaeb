//! Session setup: local discovery, config errors, robot names.

mod common;

use std::time::Duration;

use bus::{Bus, BusConfig, BusError, Estop};
use common::{publish_until_received, unique_robot};

#[test]
fn second_session_finds_the_first_through_the_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let robot = unique_robot("disc");
    let cfg = BusConfig::with_discovery_dir(&robot, dir.path());
    let a = Bus::open(&cfg).expect("open a");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("{}-{}", std::process::id(), a.zid())) && name.ends_with(".locator"), "{name}");
    let content = std::fs::read_to_string(dir.path().join(&name)).expect("read locator");
    assert_eq!(content.trim(), a.listen_locators()[0]);

    let b = Bus::open(&cfg).expect("open b");
    let sub = a.subscriber::<Estop>().expect("sub");
    let publisher = b.publisher::<Estop>().expect("pub");
    let got = publish_until_received(
        &publisher,
        &sub,
        &Estop { engaged: true, reason: "found".into(), ..Default::default() },
    );
    assert_eq!(got.reason, "found");

    let path_b = dir.path().join(format!("{}-{}.locator", std::process::id(), b.zid()));
    assert!(path_b.exists());
    drop(b);
    assert!(!path_b.exists(), "locator file removed on drop");
}

#[test]
fn stale_locator_file_is_removed_and_does_not_break_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    // pid above the Linux maximum (2^22): never alive. Port 1 on loopback refuses connections.
    let stale = dir.path().join("4194999-0123456789abcdef.locator");
    std::fs::write(&stale, "tcp/127.0.0.1:1\n").expect("write stale");
    let cfg = BusConfig::with_discovery_dir(&unique_robot("stale"), dir.path());
    let started = std::time::Instant::now();
    let a = Bus::open(&cfg).expect("open despite stale file");
    assert!(!stale.exists(), "stale file removed");
    assert!(started.elapsed() < Duration::from_secs(5), "open took {:?}", started.elapsed());
    drop(a);
}

#[test]
fn unreachable_endpoint_of_a_live_process_does_not_break_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Our own pid is alive, but nothing listens there.
    let bogus = dir.path().join(format!("{}-00000000000000000000000000000001.locator", std::process::id()));
    std::fs::write(&bogus, "tcp/127.0.0.1:1\nnot a locator\n").expect("write");
    let cfg = BusConfig::with_discovery_dir(&unique_robot("unreach"), dir.path());
    let started = std::time::Instant::now();
    let a = Bus::open(&cfg).expect("open");
    assert!(started.elapsed() < Duration::from_secs(5), "open took {:?}", started.elapsed());
    let b = Bus::open(&cfg).expect("open b");
    let sub = b.subscriber::<Estop>().expect("sub");
    let publisher = a.publisher::<Estop>().expect("pub");
    let _ = publish_until_received(&publisher, &sub, &Estop::default());
}

#[test]
fn explicit_endpoints_connect_isolated_sessions() {
    let robot = unique_robot("expl");
    let cfg = BusConfig { robot, zenoh_config: None, discovery_dir: None };
    let a = Bus::open(&cfg).expect("open a");
    let b = Bus::open_with_endpoints(&cfg, a.listen_locators()).expect("open b");
    let sub = b.subscriber::<Estop>().expect("sub");
    let publisher = a.publisher::<Estop>().expect("pub");
    let _ = publish_until_received(&publisher, &sub, &Estop::default());
}

#[test]
fn malformed_zenoh_config_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken-zenoh.json5");
    std::fs::write(&path, "{ mode: \"peer\", listen: { endpoints: [ ").expect("write");
    let cfg = BusConfig { robot: "arm0".into(), zenoh_config: Some(path.clone()), discovery_dir: None };
    let err = Bus::open(&cfg).expect_err("malformed config");
    assert!(matches!(err, BusError::ZenohConfigFile { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");

    let missing = dir.path().join("missing.json5");
    let cfg = BusConfig { zenoh_config: Some(missing.clone()), ..cfg };
    let err = Bus::open(&cfg).expect_err("missing config");
    assert!(err.to_string().contains("missing.json5"), "{err}");
}

#[test]
fn valid_zenoh_config_file_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zenoh.json5");
    std::fs::write(
        &path,
        r#"{ mode: "peer", listen: { endpoints: ["tcp/127.0.0.1:0"] },
             scouting: { multicast: { enabled: false }, gossip: { enabled: false } } }"#,
    )
    .expect("write");
    let cfg = BusConfig {
        robot: unique_robot("cfg"),
        zenoh_config: Some(path),
        discovery_dir: Some(dir.path().join("unused")),
    };
    let bus = Bus::open(&cfg).expect("open with config file");
    assert!(bus.listen_locators().is_empty());
    assert!(!dir.path().join("unused").exists(), "discovery skipped with a user config");
}

#[test]
fn invalid_robot_name_is_a_clear_error() {
    let cfg = BusConfig { robot: "arm/1".into(), zenoh_config: None, discovery_dir: None };
    let err = Bus::open(&cfg).expect_err("invalid robot");
    let text = err.to_string();
    assert!(text.contains("invalid robot name \"arm/1\"") && text.contains("'/'"), "{text}");
    let cfg = BusConfig { robot: String::new(), ..cfg };
    assert!(Bus::open(&cfg).expect_err("empty").to_string().contains("empty"));
}

#[test]
fn invalid_topics_and_camera_names_are_rejected() {
    let bus =
        Bus::open(&BusConfig { robot: unique_robot("topic"), zenoh_config: None, discovery_dir: None }).expect("open");
    assert!(bus.camera_publisher("front cam").is_err());
    assert!(bus.publisher_on::<Estop>("estop/*").is_err());
    assert!(bus.subscriber_on::<Estop>("estop/*").is_ok());
}

#[test]
fn from_env_defaults() {
    // Only reads; the variables are not set in the test environment unless a user set them.
    let cfg = BusConfig::from_env();
    assert!(cfg.discovery_dir.is_some());
    if std::env::var_os("ARMSTACK_ROBOT").is_none() {
        assert_eq!(cfg.robot, bus::DEFAULT_ROBOT);
    }
}

#[test]
fn sessions_opened_concurrently_all_find_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = BusConfig::with_discovery_dir(&unique_robot("conc"), dir.path());
    let buses: Vec<Bus> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| Bus::open(&cfg).expect("open"))).collect();
        handles.into_iter().map(|h| h.join().expect("join")).collect()
    });
    let publisher = buses[0].publisher::<Estop>().expect("pub");
    for other in &buses[1..] {
        let sub = other.subscriber::<Estop>().expect("sub");
        let _ = publish_until_received(&publisher, &sub, &Estop::default());
    }
    let publisher = buses[2].publisher::<Estop>().expect("pub");
    let sub = buses[1].subscriber::<Estop>().expect("sub");
    let _ = publish_until_received(&publisher, &sub, &Estop::default());
}

/// A config file that listens on a fixed port (the robot-host profile) can be opened by several
/// nodes of one process (`armstack sim` opens a node session and a status watcher): they share
/// one zenoh session, and the last one to go closes it, freeing the port at once.
#[test]
fn sessions_from_one_config_file_share_it_and_the_last_closes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("probe").local_addr().expect("addr").port();
    let path = dir.path().join("fixed-port.json5");
    std::fs::write(
        &path,
        format!(
            r#"{{ mode: "peer", listen: {{ endpoints: ["tcp/127.0.0.1:{port}"] }},
                 scouting: {{ multicast: {{ enabled: false }}, gossip: {{ enabled: false }} }} }}"#
        ),
    )
    .expect("write");
    let cfg = BusConfig { robot: unique_robot("shared"), zenoh_config: Some(path.clone()), discovery_dir: None };
    let a = Bus::open(&cfg).expect("open a");
    let other_robot = BusConfig { robot: unique_robot("shared"), ..cfg.clone() };
    let b = Bus::open(&other_robot).expect("the second session of the file binds nothing again");
    assert_eq!(a.zid(), b.zid());
    assert_ne!(a.key("estop"), b.key("estop"), "each keeps its robot name");
    drop(a);
    let sub = b.subscriber::<Estop>().expect("sub");
    let publisher = b.publisher::<Estop>().expect("the shared session outlives the first bus");
    let _ = publish_until_received(&publisher, &sub, &Estop::default());
    let zid_b = b.zid();
    drop((sub, publisher, b));
    let c = Bus::open(&cfg).expect("the port is free again right after the last bus closed");
    assert_ne!(c.zid(), zid_b, "a fresh session");
    // A peer on another session of this process reaches it through the file's endpoint.
    let client = Bus::open_with_endpoints(
        &BusConfig { robot: cfg.robot.clone(), zenoh_config: None, discovery_dir: None },
        &[format!("tcp/127.0.0.1:{port}")],
    )
    .expect("open client");
    let sub = client.subscriber::<Estop>().expect("sub");
    let publisher = c.publisher::<Estop>().expect("pub");
    let _ = publish_until_received(&publisher, &sub, &Estop::default());
}

/// A config that other hosts can reach without login or access control is refused at open,
/// naming the file and what is missing (the rules are unit-tested in `bus::exposure`).
#[test]
fn network_reachable_config_without_login_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("open-to-all.json5");
    std::fs::write(&path, r#"{ mode: "peer", listen: { endpoints: ["tcp/0.0.0.0:0"] } }"#).expect("write");
    let cfg = BusConfig { robot: unique_robot("exposed"), zenoh_config: Some(path.clone()), discovery_dir: None };
    let err = Bus::open(&cfg).expect_err("refused");
    assert!(matches!(err, BusError::UnprotectedConfig { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("open-to-all.json5") && text.contains("tcp/0.0.0.0:0"), "{text}");
    assert!(text.contains("no credentials file") && text.contains("access control is off"), "{text}");
}
