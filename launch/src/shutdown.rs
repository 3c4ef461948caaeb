//! How runs end: the first Ctrl-C asks every node to stop cleanly, a second one exits; the
//! [`Supervisor`] stops every node of a run at its first failure and keeps the reason; the
//! [`StartBarrier`] lines the nodes up without waiting for one that failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Installs the Ctrl-C handler and returns the stop flag nodes poll.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("stopping… (Ctrl-C again to exit at once)");
    })?;
    Ok(stop)
}

/// How a run of several nodes ends: the stop flag they all poll, and the run's failure. The
/// first failure (a node's error or panic, or a fault a node reports on `status`) is kept as
/// the reason and stops every node; nodes that stop on the flag keep what they finished (the
/// recorder writes every finished episode).
#[derive(Clone)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<anyhow::Error>>>,
}

impl Supervisor {
    /// A supervisor over the nodes that poll `stop`.
    pub fn new(stop: Arc<AtomicBool>) -> Supervisor {
        Supervisor { stop, failure: Arc::default() }
    }

    /// The stop flag every node polls.
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Fails the run with `error` (unless it failed already: the first reason is kept) and
    /// stops every node.
    pub fn fail(&self, error: anyhow::Error) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if failure.is_none() {
            tracing::error!("{error:#}: stopping every node");
            *failure = Some(error);
        } else {
            tracing::debug!("after the first failure: {error:#}");
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Runs node `name`; an error or a panic fails the run (then `None`).
    pub fn run_node<T>(&self, name: &str, node: impl FnOnce() -> anyhow::Result<T>) -> Option<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(node)) {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.fail(e.context(format!("node `{name}` failed")));
                None
            }
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                self.fail(anyhow::anyhow!("node `{name}` panicked: {what}"));
                None
            }
        }
    }

    /// Watches `status` until the stop flag is set: one of this run's nodes (a publisher of this
    /// process, [`bus::is_local_source`]) reporting [`bus::NodeState::Error`] fails the run with
    /// its message. An `Error` status from another process (another run, or a peer forging one)
    /// is logged once per source and ignored: it cannot stop this run.
    pub fn watch_status(&self, statuses: &bus::Subscriber<bus::Status>) {
        let mut foreign = std::collections::HashSet::new();
        while !self.stop.load(Ordering::Relaxed) {
            if let Some(s) = statuses.recv_timeout(Duration::from_millis(50)) {
                if s.state != bus::NodeState::Error {
                    continue;
                }
                if bus::is_local_source(s.header.source_id) {
                    self.fail(anyhow::anyhow!("the {} node reported a fault: {}", s.node, s.message));
                } else if foreign.len() < 1024 && foreign.insert(s.header.source_id) {
                    tracing::warn!(
                        node = %s.node,
                        source_id = s.header.source_id,
                        message = %s.message,
                        "ignoring a fault status from outside this run"
                    );
                }
            }
        }
    }

    /// The run's failure, if any.
    pub fn take_failure(&self) -> Option<anyhow::Error> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The start line of a run's nodes: each waits here once its subscriptions are declared, so
/// that no node publishes before the others listen. Unlike `std::sync::Barrier` it gives up
/// when the run's stop flag is set, so a node that fails before reaching it (which fails the
/// run) cannot leave the others waiting forever.
pub struct StartBarrier {
    parties: usize,
    arrived: Mutex<usize>,
    all_in: Condvar,
    stop: Arc<AtomicBool>,
}

impl StartBarrier {
    /// A start line for `parties` nodes of the run stopped by `stop`.
    pub fn new(parties: usize, stop: Arc<AtomicBool>) -> StartBarrier {
        StartBarrier { parties, arrived: Mutex::new(0), all_in: Condvar::new(), stop }
    }

    /// Waits until every node arrived (true) or the run was stopped first (false).
    pub fn wait(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap_or_else(|p| p.into_inner());
        *arrived += 1;
        if *arrived >= self.parties {
            self.all_in.notify_all();
            return true;
        }
        loop {
            if *arrived >= self.parties {
                return true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            // The stop flag has no condition variable: look at it every few milliseconds.
            arrived = self.all_in.wait_timeout(arrived, Duration::from_millis(10)).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_line_releases_its_nodes_when_one_fails_before_it() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let ready = StartBarrier::new(3, sup.stop_flag().clone());
        let started = std::time::Instant::now();
        let waited = std::thread::scope(|s| {
            let waiter = s.spawn(|| ready.wait());
            // The third node fails while subscribing, before the start line.
            assert_eq!(sup.run_node::<()>("recorder", || Err(anyhow::anyhow!("no such topic"))), None);
            let mine = ready.wait();
            (waiter.join().ok(), mine)
        });
        assert_eq!(waited, (Some(false), false), "both nodes that arrived are released, not started");
        assert!(started.elapsed() < Duration::from_secs(2), "released promptly: {:?}", started.elapsed());
    }

    #[test]
    fn the_start_line_starts_when_every_node_arrived() {
        let ready = StartBarrier::new(2, Arc::new(AtomicBool::new(false)));
        let waited = std::thread::scope(|s| {
            let other = s.spawn(|| ready.wait());
            (ready.wait(), other.join().ok())
        });
        assert_eq!(waited, (true, Some(true)));
    }

    #[test]
    fn the_first_failure_stops_the_run_and_is_kept() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        assert_eq!(sup.run_node("teleop", || Ok(3)), Some(3));
        assert!(!sup.stop_flag().load(Ordering::SeqCst), "a node that returns stops nothing");
        assert_eq!(sup.run_node::<()>("recorder", || Err(anyhow::anyhow!("disk full"))), None);
        assert!(sup.stop_flag().load(Ordering::SeqCst), "an error stops every node");
        assert_eq!(sup.run_node::<()>("teleop", || panic!("device gone")), None);
        let failure = sup.take_failure().map(|e| format!("{e:#}"));
        assert_eq!(failure.as_deref(), Some("node `recorder` failed: disk full"), "the first reason is kept");
    }

    #[test]
    fn a_panicking_node_stops_the_run_with_its_message() {
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        assert_eq!(sup.run_node::<()>("policy", || panic!("shape mismatch {}", 7)), None);
        assert!(sup.stop_flag().load(Ordering::SeqCst));
        let failure = sup.take_failure().map(|e| e.to_string());
        assert_eq!(failure.as_deref(), Some("node `policy` panicked: shape mismatch 7"));
    }

    /// A forged `Error` status from another process (a raw put with a made-up source id) does not
    /// stop the run; the same status from a publisher of this process does.
    #[test]
    fn only_this_processs_nodes_can_fail_the_run_through_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = bus::BusConfig::with_discovery_dir("supervised", dir.path());
        let bus = bus::Bus::open(&config).expect("bus");
        let statuses = bus.subscriber::<bus::Status>().expect("subscriber");
        let sup = Supervisor::new(Arc::new(AtomicBool::new(false)));
        let fault = |header| bus::Status {
            header,
            node: "sim".into(),
            state: bus::NodeState::Error,
            message: "forged".into(),
            counters: Default::default(),
        };
        std::thread::scope(|s| {
            s.spawn(|| sup.watch_status(&statuses));
            let forged = bus::Header { schema: bus::SCHEMA_VERSION, stamp_ns: bus::now_ns(), seq: 0, source_id: 42 };
            for _ in 0..20 {
                bus.put_raw(&bus.key("status"), bus::encode(&fault(forged.clone())).expect("encode")).expect("put");
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!sup.stop_flag().load(Ordering::SeqCst), "a forged status stopped the run");
            let publisher = bus.publisher::<bus::Status>().expect("publisher");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !sup.stop_flag().load(Ordering::SeqCst) {
                assert!(std::time::Instant::now() < deadline, "this process's fault status never stopped the run");
                publisher.publish(&mut fault(Default::default())).expect("publish");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let failure = sup.take_failure().map(|e| e.to_string());
        assert_eq!(failure.as_deref(), Some("the sim node reported a fault: forged"));
    }
}
