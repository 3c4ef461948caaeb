//! Real zenoh sessions on loopback: every message type round-trips, gaps, bad payloads, schema.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bus::{
    encode, ActionChunk, ActionKind, Bus, CameraFrame, CameraIntrinsics, EeDeltaCommand, EpisodeEvent,
    EpisodeEventKind, Estop, Header, ImageEncoding, JointCommand, JointState, Message, NodeState, Pose, Status, Task,
    SCHEMA_VERSION,
};
use common::{pair, publish_until_received, put_until};

/// Sends `msg` from `a` to `b` and checks the received value equals the sent one (after the
/// publisher filled the header).
fn round_trip<M: Message + Clone + PartialEq + std::fmt::Debug>(a: &Bus, b: &Bus, msg: M) {
    let publisher = a.publisher::<M>().expect("publisher");
    let sub = b.subscriber::<M>().expect("subscriber");
    let _ = publish_until_received(&publisher, &sub, &msg);
    let mut sent = msg.clone();
    sent.header_mut().stamp_ns = 1_700_000_000_123_456_789;
    publisher.publish(&mut sent).expect("publish");
    assert_eq!(sent.header().schema, SCHEMA_VERSION);
    assert_ne!(sent.header().source_id, 0);
    loop {
        let got = sub.recv_timeout(Duration::from_secs(5)).expect("message");
        if got.header().seq == sent.header().seq {
            assert_eq!(got, sent, "topic {}", M::TOPIC);
            break;
        }
    }
}

#[test]
fn every_message_type_round_trips() {
    let (_dir, a, b) = pair("rt");
    let pose = Pose { translation_m: [0.45, -0.01, 0.36], rotation_xyzw: [0.0, 0.6, 0.0, 0.8] };
    round_trip(
        &a,
        &b,
        JointState {
            header: Header::default(),
            name: vec!["waist".into(), "gripper".into()],
            position: vec![0.25, 0.8],
            velocity: vec![-0.5, 0.0],
            effort: vec![1.5, 0.1],
            ee_pose: Some(pose.clone()),
        },
    );
    round_trip(
        &a,
        &b,
        JointCommand { position: vec![0.0, -1.8, 1.55, 0.0, 0.8, 0.0], gripper: 1.0, ..Default::default() },
    );
    round_trip(
        &a,
        &b,
        EeDeltaCommand {
            delta_xyz_m: [0.01, 0.0, -0.02],
            delta_rpy_rad: [0.0, 0.1, 0.0],
            gripper: 0.3,
            ..Default::default()
        },
    );
    round_trip(
        &a,
        &b,
        ActionChunk {
            kind: ActionKind::EeDelta,
            horizon: 2,
            dim: 7,
            period_ns: 20_000_000,
            values: (0..14).map(|i| i as f32 * 0.5).collect(),
            obs_stamp_ns: 42,
            ..Default::default()
        },
    );
    let mut counters = BTreeMap::new();
    counters.insert("steps".to_string(), 12u64);
    round_trip(
        &a,
        &b,
        Status { node: "sim".into(), state: NodeState::Estopped, message: "ok".into(), counters, ..Default::default() },
    );
    round_trip(&a, &b, Estop { engaged: true, reason: "operator".into(), ..Default::default() });
    round_trip(
        &a,
        &b,
        EpisodeEvent {
            episode_index: 3,
            seed: 99,
            kind: EpisodeEventKind::End,
            step: 120,
            reward: 1.0,
            done: true,
            success: true,
            scene: "cube_in_bowl".into(),
            ..Default::default()
        },
    );
    round_trip(
        &a,
        &b,
        Task { instruction: "put the red cube in the bowl".into(), scene: "cube_in_bowl".into(), ..Default::default() },
    );

    // Cameras live on camera/<name>.
    let frame = CameraFrame {
        camera: "front".into(),
        width: 4,
        height: 2,
        encoding: ImageEncoding::Depth32F,
        data: (0..32u8).collect(),
        intrinsics: CameraIntrinsics { fx: 100.0, fy: 101.0, cx: 2.0, cy: 1.0 },
        extrinsics: pose,
        ..Default::default()
    };
    frame.validate().expect("valid frame");
    let publisher = a.camera_publisher("front").expect("camera publisher");
    assert_eq!(publisher.key(), a.key("camera/front"));
    let sub = b.camera_subscriber("front").expect("camera subscriber");
    let got = publish_until_received(&publisher, &sub, &frame);
    let mut expected = frame.clone();
    *expected.header_mut() = got.header().clone();
    assert_eq!(got, expected);
    assert!(got.header().stamp_ns > 0, "publisher stamps a zero stamp_ns");
}

#[test]
fn gaps_are_counted_per_source() {
    let (_dir, a, b) = pair("gap");
    let sub = b.subscriber::<Estop>().expect("subscriber");
    let key = a.key("estop");
    let source_id = 0xfeed;
    let msg = |seq: u64| {
        let m = Estop {
            header: Header { schema: SCHEMA_VERSION, stamp_ns: 1, seq, source_id },
            engaged: false,
            reason: String::new(),
        };
        encode(&m).expect("encode")
    };
    // Warm up with seq 0 until routed; then send 1..10 skipping 3, 4 and 7.
    put_until(&a, &key, &msg(0), || sub.stats().received > 0);
    let before = sub.stats();
    for seq in (1..10).filter(|s| ![3, 4, 7].contains(s)) {
        a.put_raw(&key, msg(seq)).expect("put");
    }
    // A second source with its own sequence must not interfere.
    let other =
        Estop { header: Header { schema: SCHEMA_VERSION, stamp_ns: 1, seq: 100, source_id: 7 }, ..Default::default() };
    a.put_raw(&key, encode(&other).expect("encode")).expect("put");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sub.stats().received < before.received + 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = sub.stats();
    assert_eq!(stats.received, before.received + 7);
    assert_eq!(stats.gaps_missed - before.gaps_missed, 3, "{stats:?}");
    assert_eq!(sub.latest().map(|m| m.header.seq), Some(100));
}

#[test]
fn garbage_is_counted_and_the_next_valid_message_arrives() {
    let (_dir, a, b) = pair("bad");
    let sub = b.subscriber::<Task>().expect("subscriber");
    let key = a.key("task");
    put_until(&a, &key, &[0xff, 0xfe, 0x00, 0x42], || sub.stats().decode_errors > 0);
    // Drain possible duplicates of the garbage from the warm-up loop.
    let errors = sub.stats().decode_errors;
    assert!(errors >= 1);
    let publisher = a.publisher::<Task>().expect("publisher");
    let task = Task { instruction: "stack".into(), scene: "blocks".into(), ..Default::default() };
    let got = publish_until_received(&publisher, &sub, &task);
    assert_eq!(got.instruction, "stack");
    assert_eq!(sub.stats().decode_errors, errors, "no further errors");
}

#[test]
fn garbage_once_counts_exactly_one() {
    let (_dir, a, b) = pair("bad1");
    let sub = b.subscriber::<Task>().expect("subscriber");
    let publisher = a.publisher::<Task>().expect("publisher");
    let task = Task { instruction: "warm".into(), ..Default::default() };
    let _ = publish_until_received(&publisher, &sub, &task);
    a.put_raw(&a.key("task"), b"not cbor at all \xff".to_vec()).expect("put");
    let mut valid = task.clone();
    valid.instruction = "after".into();
    publisher.publish(&mut valid).expect("publish");
    let got = loop {
        let m = sub.recv_timeout(Duration::from_secs(5)).expect("valid message after garbage");
        if m.instruction == "after" {
            break m;
        }
    };
    assert_eq!(got, valid);
    assert_eq!(sub.stats().decode_errors, 1);
}

#[test]
fn newer_schema_is_rejected_and_counted() {
    let (_dir, a, b) = pair("schema");
    let sub = b.subscriber::<JointCommand>().expect("subscriber");
    let mut future = JointCommand { position: vec![0.0; 6], gripper: 0.5, ..Default::default() };
    future.header.schema = SCHEMA_VERSION + 1;
    let bytes = encode(&future).expect("encode");
    put_until(&a, &a.key("command/joint"), &bytes, || sub.stats().newer_schema > 0);
    let stats = sub.stats();
    assert_eq!(stats.received, 0);
    assert_eq!(stats.decode_errors, 0);
    assert!(sub.try_recv().is_none());
    let err = bus::decode::<JointCommand>(&bytes).expect_err("newer schema");
    let text = err.to_string();
    assert!(text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)), "{text}");
    assert!(text.contains(&format!("up to {SCHEMA_VERSION}")), "{text}");
}

/// A command written the way a Python client writes it (`cbor2.dumps` of Python ints where floats
/// are expected, no optional keys) is decoded, not dropped as a decode error.
#[test]
fn integers_where_floats_are_expected_are_decoded() {
    let (_dir, a, b) = pair("intfloat");
    let sub = b.subscriber::<JointCommand>().expect("subscriber");
    let text = |s: &str| bus::Value::Text(s.into());
    let int = |i: i64| bus::Value::Integer(i.into());
    let header = [("schema", 1), ("stamp_ns", 5), ("seq", 0), ("source_id", 4242)];
    let python_command = bus::Value::Map(vec![
        (text("header"), bus::Value::Map(header.iter().map(|(k, v)| (text(k), int(*v))).collect())),
        (text("position"), bus::Value::Array([0, 1, -1, 0, 2, 0].into_iter().map(int).collect())),
        (text("gripper"), int(1)),
    ]);
    let bytes = bus::encode_value(&python_command).expect("encode");
    put_until(&a, &a.key("command/joint"), &bytes, || sub.stats().received > 0);
    let got = sub.try_recv().expect("a decoded command");
    assert_eq!(got.position, [0.0, 1.0, -1.0, 0.0, 2.0, 0.0]);
    assert_eq!(got.gripper, 1.0);
    assert_eq!(sub.stats().decode_errors, 0);
}

#[test]
fn full_queue_keeps_the_newest() {
    let (_dir, a, b) = pair("full");
    let sub = b.subscriber_with_capacity::<Status>("status", 2).expect("subscriber");
    let publisher = a.publisher::<Status>().expect("publisher");
    let _ = publish_until_received(&publisher, &sub, &Status::default());
    while sub.try_recv().is_some() {}
    let before = sub.stats();
    for i in 0..5u64 {
        publisher.publish(&mut Status { node: format!("n{i}"), ..Default::default() }).expect("publish");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sub.stats().received < before.received + 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sub.stats().dropped - before.dropped, 3);
    assert_eq!(sub.latest().map(|s| s.node), Some("n4".to_string()));
}

#[test]
fn raw_subscriber_sees_keys_and_payloads() {
    let (_dir, a, b) = pair("raw");
    let raw = b.raw_subscriber(&format!("armstack/{}/**", b.robot())).expect("raw");
    let key = a.key("status");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let got = loop {
        a.put_raw(&key, vec![1, 2, 3]).expect("put");
        if let Some(s) = raw.recv_timeout(Duration::from_millis(20)) {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "raw sample not received");
    };
    assert_eq!(got.key, key);
    assert_eq!(got.payload, vec![1, 2, 3]);
    assert!(got.arrival_ns > 0);
}
