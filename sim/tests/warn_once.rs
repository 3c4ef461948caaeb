//! "Warned once" means once per process: several envs (as `demo` and the vectorised env run
//! them, on several threads) clamping or rejecting actions log each warning once, while every
//! env still counts its own.
//!
//! A test binary of its own: the warning flags are process-wide, and this test installs the
//! process's tracing subscriber (one that counts warnings).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sim::{load_scene, Action, Env, EnvConfig};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Counts warnings whose message contains "clamped" or "rejected".
#[derive(Default)]
struct WarningCounter {
    clamped: AtomicU64,
    rejected: AtomicU64,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

struct Counting(Arc<WarningCounter>);

impl Subscriber for Counting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        if m.0.contains("clamped") {
            self.0.clamped.fetch_add(1, Ordering::SeqCst);
        }
        if m.0.contains("rejected") {
            self.0.rejected.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn out_of_range_and_nan_warnings_are_logged_once_per_process() {
    let counter = Arc::new(WarningCounter::default());
    tracing::subscriber::set_global_default(Counting(counter.clone())).expect("the only subscriber");
    let scene = load_scene("pick_cube").expect("scene");
    let too_far = Action::EeDelta { xyz_m: [0.0, 0.0, 1.0], rpy_rad: [0.0; 3], gripper: 3.0 };
    let nan = Action::EeDelta { xyz_m: [f64::NAN, 0.0, 0.0], rpy_rad: [0.0; 3], gripper: 1.0 };
    let envs: Vec<_> = (0..4)
        .map(|i| {
            let scene = scene.clone();
            std::thread::spawn(move || {
                let mut env = Env::new(EnvConfig::new(scene)).expect("env");
                env.reset(i).expect("reset");
                for _ in 0..3 {
                    assert!(env.step(&too_far).expect("step").clamped);
                    assert!(env.step(&nan).expect("step").rejected);
                }
                env.counters()
            })
        })
        .collect();
    for handle in envs {
        let counters = handle.join().expect("env thread");
        assert_eq!((counters.clamped_actions, counters.rejected_actions), (3, 3), "each env counts its own");
    }
    assert_eq!(counter.clamped.load(Ordering::SeqCst), 1, "the clamp warning, once for 4 envs");
    assert_eq!(counter.rejected.load(Ordering::SeqCst), 1, "the NaN warning, once for 4 envs");
}
