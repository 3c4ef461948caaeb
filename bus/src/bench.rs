//! Bus latency benchmark: two sessions in one process connected over loopback TCP, typed API
//! versus bare zenoh put/subscribe of the same bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use zenoh::bytes::ZBytes;
use zenoh::sample::Sample;
use zenoh::Wait;

use crate::encoding::encode;
use crate::error::BusError;
use crate::header::{now_ns, Header, Message};
use crate::messages::{CameraFrame, ImageEncoding, JointState, Pose};
use crate::session::{Bus, BusConfig};
use crate::subscriber::Subscriber;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Measurement time per case and path.
    pub duration: Duration,
}

impl Default for BenchConfig {
    /// 5 s per case and path.
    fn default() -> Self {
        Self { duration: Duration::from_secs(5) }
    }
}

/// One measured case.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Case name, e.g. `joint_state 500 Hz`.
    pub name: String,
    /// `"typed"` (Publisher/Subscriber) or `"bare zenoh"` (put/callback of the same bytes).
    pub path: String,
    /// Messages sent during the measurement.
    pub sent: u64,
    /// Messages received during the measurement.
    pub received: u64,
    /// Messages lost: queue drops + sequence gaps (typed) or sent − received (bare).
    pub dropped: u64,
    /// Received messages per second.
    pub msgs_per_s: f64,
    /// Median latency (receive wall time − `stamp_ns`), µs.
    pub p50_us: f64,
    /// 99th-percentile latency, µs.
    pub p99_us: f64,
    /// Encoded payload size, bytes.
    pub payload_bytes: usize,
}

/// Sleeps until `deadline`, spinning the last ~100 µs for precision.
fn pace_until(deadline: Instant) {
    let spin = Duration::from_micros(100);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > spin {
            std::thread::sleep(left - spin);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Latency percentile `p` (0…1) of sorted ns samples, in µs.
fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted_ns.len() - 1) as f64 * p).round() as usize;
    sorted_ns[idx.min(sorted_ns.len() - 1)] as f64 / 1e3
}

fn joint_state_sample() -> JointState {
    let names = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"];
    JointState {
        header: Header::default(),
        name: names.iter().map(|n| n.to_string()).collect(),
        position: vec![0.1; 7],
        velocity: vec![0.0; 7],
        effort: vec![0.0; 7],
        ee_pose: Some(Pose::default()),
    }
}

fn camera_sample(width: u32, height: u32) -> CameraFrame {
    CameraFrame {
        camera: "bench".into(),
        width,
        height,
        encoding: ImageEncoding::Rgb8,
        data: (0..(width * height * 3) as usize).map(|i| (i % 251) as u8).collect(),
        ..Default::default()
    }
}

/// Publishes through `publish` until `sub` yields a message or 5 s pass (subscription routing
/// takes a moment to propagate).
fn warm_up<M: Message>(sub: &Subscriber<M>, mut publish: impl FnMut() -> Result<(), BusError>) -> Result<(), BusError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        publish()?;
        if sub.recv_timeout(Duration::from_millis(20)).is_some() {
            while sub.try_recv().is_some() {}
            return Ok(());
        }
    }
    Err(BusError::Bench("subscription did not become routable within 5 s".into()))
}

fn typed_case<M: Message + Clone>(
    name: &str,
    a: &Bus,
    b: &Bus,
    topic: &str,
    template: &M,
    hz: f64,
    duration: Duration,
) -> Result<BenchRow, BusError> {
    let publisher = a.publisher_on::<M>(topic)?;
    let subscriber = b.subscriber_with_capacity::<M>(topic, 4096)?;
    warm_up(&subscriber, || publisher.publish(&mut template.clone()))?;
    let before = subscriber.stats();
    let start_ns = now_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let payload_bytes = encode(&stamped_probe(template))?.len();
    let (sent, latencies) = std::thread::scope(|scope| -> Result<(u64, Vec<u64>), BusError> {
        let stop_rx = Arc::clone(&stop);
        let sub = &subscriber;
        let receiver = scope.spawn(move || {
            let mut lat = Vec::new();
            loop {
                match sub.recv_timeout(Duration::from_millis(50)) {
                    Some(msg) if msg.header().stamp_ns >= start_ns => {
                        lat.push(now_ns().saturating_sub(msg.header().stamp_ns))
                    }
                    Some(_) => {}
                    None if stop_rx.load(Ordering::Relaxed) => return lat,
                    None => {}
                }
            }
        });
        let sent = paced_send(hz, duration, || {
            let mut msg = template.clone();
            msg.header_mut().stamp_ns = now_ns();
            publisher.publish(&mut msg)
        });
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let lat = receiver.join().map_err(|_| BusError::Bench("receiver thread panicked".into()))?;
        Ok((sent?, lat))
    })?;
    let after = subscriber.stats();
    let lost = (after.dropped - before.dropped) + (after.gaps_missed - before.gaps_missed);
    Ok(row(name, "typed", sent, latencies, lost, duration, payload_bytes))
}

/// Sends at `hz` for `duration`; returns how many were sent.
fn paced_send(hz: f64, duration: Duration, mut send: impl FnMut() -> Result<(), BusError>) -> Result<u64, BusError> {
    let period = Duration::from_secs_f64(1.0 / hz);
    let start = Instant::now();
    let mut sent = 0u64;
    loop {
        let deadline = start + period.mul_f64(sent as f64);
        if deadline > start + duration {
            return Ok(sent);
        }
        pace_until(deadline);
        send()?;
        sent += 1;
    }
}

/// Sentinel `stamp_ns` whose CBOR encoding is searched for in [`stamp_offset`].
const STAMP_SENTINEL: u64 = 0x1122_3344_5566_7788;

/// `template` with a header like the typed publisher writes (full-width stamp and source id),
/// the stamp being [`STAMP_SENTINEL`], so both paths carry payloads of the same size.
fn stamped_probe<M: Message + Clone>(template: &M) -> M {
    let mut probe = template.clone();
    *probe.header_mut() = Header {
        schema: crate::header::SCHEMA_VERSION,
        stamp_ns: STAMP_SENTINEL,
        seq: 0,
        source_id: 0x0123_4567_89ab_cdef,
    };
    probe
}

/// Offset of the 8-byte big-endian `stamp_ns` inside the encoding of `template` (found by
/// encoding a sentinel stamp, which CBOR writes as 0x1b + 8 bytes).
fn stamp_offset<M: Message + Clone>(template: &M) -> Result<usize, BusError> {
    let bytes = encode(&stamped_probe(template))?;
    let mut needle = vec![0x1b];
    needle.extend_from_slice(&STAMP_SENTINEL.to_be_bytes());
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|p| p + 1)
        .ok_or_else(|| BusError::Bench("stamp not found in encoding".into()))
}

fn bare_case<M: Message + Clone>(
    name: &str,
    a: &Bus,
    b: &Bus,
    topic: &str,
    template: &M,
    hz: f64,
    duration: Duration,
) -> Result<BenchRow, BusError> {
    let key = a.key(&format!("{topic}/bare"));
    let offset = stamp_offset(template)?;
    let encoded = encode(&stamped_probe(template))?;
    let payload_bytes = encoded.len();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let cb_lat = Arc::clone(&latencies);
    let measure_from = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let cb_from = Arc::clone(&measure_from);
    let zerr = |op: &'static str, e: zenoh::Error| BusError::Zenoh { op, key: key.clone(), reason: e.to_string() };
    // Like the typed subscriber, the bare baseline hands each payload from zenoh's callback to
    // a consumer thread through a bounded queue and measures there: the comparison then shows
    // what typing adds (CBOR encode/decode, sequence and stats bookkeeping), not the hand-off.
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(crate::subscriber::DEFAULT_QUEUE_CAPACITY);
    let consumer = std::thread::spawn(move || {
        while let Ok(bytes) = rx.recv() {
            let now = now_ns();
            let Some(stamp) = bytes.get(offset..offset + 8).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                continue;
            };
            let stamp = u64::from_be_bytes(stamp);
            if let Ok(mut lat) = cb_lat.lock() {
                if stamp >= cb_from.load(Ordering::Relaxed) {
                    lat.push(now.saturating_sub(stamp));
                } else {
                    lat.push(u64::MAX); // warm-up marker
                }
            }
        }
    });
    let sub = b
        .session
        .declare_subscriber(key.clone())
        .callback(move |sample: Sample| {
            let _ = tx.try_send(sample.payload().to_bytes().into_owned());
        })
        .wait()
        .map_err(|e| zerr("declare subscriber", e))?;
    let publisher = a.declare_zenoh_publisher(&key, topic)?;
    let send = || -> Result<(), BusError> {
        let mut bytes = encoded.clone();
        bytes[offset..offset + 8].copy_from_slice(&now_ns().to_be_bytes());
        publisher.put(ZBytes::from(bytes)).wait().map_err(|e| zerr("put", e))
    };
    // Warm up until the subscription is routed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        send()?;
        std::thread::sleep(Duration::from_millis(20));
        let got = latencies.lock().map(|l| !l.is_empty()).unwrap_or(false);
        if got {
            break;
        }
        if Instant::now() > deadline {
            return Err(BusError::Bench("bare subscription did not become routable within 5 s".into()));
        }
    }
    measure_from.store(now_ns(), Ordering::Relaxed);
    let sent = paced_send(hz, duration, send)?;
    std::thread::sleep(Duration::from_millis(300));
    // Undeclaring drops the callback and its sender, which ends the consumer.
    drop(sub);
    let _ = consumer.join();
    let lat: Vec<u64> =
        latencies.lock().map(|l| l.iter().copied().filter(|&v| v != u64::MAX).collect()).unwrap_or_default();
    let lost = sent.saturating_sub(lat.len() as u64);
    Ok(row(name, "bare zenoh", sent, lat, lost, duration, payload_bytes))
}

fn row(
    name: &str,
    path: &str,
    sent: u64,
    mut lat: Vec<u64>,
    dropped: u64,
    duration: Duration,
    payload_bytes: usize,
) -> BenchRow {
    lat.sort_unstable();
    BenchRow {
        name: name.to_string(),
        path: path.to_string(),
        sent,
        received: lat.len() as u64,
        dropped,
        msgs_per_s: lat.len() as f64 / duration.as_secs_f64(),
        p50_us: percentile_us(&lat, 0.5),
        p99_us: percentile_us(&lat, 0.99),
        payload_bytes,
    }
}

/// Runs every case (joint_state 500 Hz, camera 128×128 and 640×480 RGB at 30 Hz), typed and bare,
/// each for `cfg.duration`, between two isolated sessions connected over loopback TCP.
pub fn run(cfg: &BenchConfig) -> Result<Vec<BenchRow>, BusError> {
    let robot = format!("bench{}", std::process::id());
    let a = Bus::open(&BusConfig { robot: robot.clone(), zenoh_config: None, discovery_dir: None })?;
    let b =
        Bus::open_with_endpoints(&BusConfig { robot, zenoh_config: None, discovery_dir: None }, a.listen_locators())?;
    let d = cfg.duration;
    let js = joint_state_sample();
    let small = camera_sample(128, 128);
    let large = camera_sample(640, 480);
    let mut rows = Vec::new();
    let name = "joint_state 500 Hz";
    tracing::info!(case = name, "bench");
    rows.push(typed_case(name, &a, &b, "joint_state", &js, 500.0, d)?);
    rows.push(bare_case(name, &a, &b, "joint_state", &js, 500.0, d)?);
    for (name, frame) in [("camera 128x128 rgb8 30 Hz", &small), ("camera 640x480 rgb8 30 Hz", &large)] {
        tracing::info!(case = name, "bench");
        let topic = format!("camera/bench{}", frame.width);
        rows.push(typed_case(name, &a, &b, &topic, frame, 30.0, d)?);
        rows.push(bare_case(name, &a, &b, &topic, frame, 30.0, d)?);
    }
    Ok(rows)
}
