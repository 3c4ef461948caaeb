//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bus::{Bus, BusConfig, Message, Publisher, Subscriber};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A robot name unique to this test process and call.
pub fn unique_robot(tag: &str) -> String {
    format!("{tag}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Two sessions discovering each other through a private temporary directory.
pub fn pair(tag: &str) -> (tempfile::TempDir, Bus, Bus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let robot = unique_robot(tag);
    let cfg = BusConfig::with_discovery_dir(&robot, dir.path());
    let a = Bus::open(&cfg).expect("open a");
    let b = Bus::open(&cfg).expect("open b");
    (dir, a, b)
}

/// Publishes clones of `msg` until `sub` receives one (subscription propagation takes a moment),
/// up to 5 s. Returns what was received.
pub fn publish_until_received<M: Message + Clone>(publisher: &Publisher<M>, sub: &Subscriber<M>, msg: &M) -> M {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        publisher.publish(&mut msg.clone()).expect("publish");
        if let Some(got) = sub.recv_timeout(Duration::from_millis(20)) {
            return got;
        }
    }
    panic!("no message on {} within 5 s", sub.key());
}

/// Puts raw `payload` on `key` until `probe` returns true, up to 5 s.
pub fn put_until(bus: &Bus, key: &str, payload: &[u8], mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        bus.put_raw(key, payload.to_vec()).expect("put_raw");
        std::thread::sleep(Duration::from_millis(20));
        if probe() {
            return;
        }
    }
    panic!("condition not met on {key} within 5 s");
}
