//! Typed subscribers with bounded queues, decode-error accounting and gap detection, and a raw
//! subscriber for tooling.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use zenoh::sample::Sample;
use zenoh::Wait;

use crate::encoding::decode;
use crate::error::{BusError, DecodeError};
use crate::header::{now_ns, Message};
use crate::messages::CameraFrame;
use crate::session::Bus;
use crate::topics::{camera_topic, validate_camera_name, validate_topic_pattern};

/// Queue capacity of subscribers created without an explicit capacity, messages.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

/// `status` counter: payloads a node's subscribers could not decode (see [`SubscriberStats`]).
pub const STATUS_DECODE_ERRORS: &str = "decode_errors";
/// `status` counter: messages a node's subscribers rejected for a newer schema version.
pub const STATUS_NEWER_SCHEMA: &str = "newer_schema";

/// A snapshot of a subscriber's counters (all counts of messages since creation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SubscriberStats {
    /// Messages decoded successfully (including ones later dropped from a full queue).
    pub received: u64,
    /// Payloads that were not a valid message of this type.
    pub decode_errors: u64,
    /// Messages rejected because their schema version is newer than this build's.
    pub newer_schema: u64,
    /// Messages missing according to per-source `seq` jumps (a jump by k > 1 counts k − 1).
    pub gaps_missed: u64,
    /// Messages discarded because the queue was full (the oldest queued one is discarded).
    pub dropped: u64,
}

impl SubscriberStats {
    /// Adds the receive-side faults to a node's `status` counters, under the names every node
    /// uses ([`STATUS_DECODE_ERRORS`], [`STATUS_NEWER_SCHEMA`]). `self` is usually the sum of
    /// all the node's subscribers' stats.
    pub fn add_to_status_counters(&self, counters: &mut BTreeMap<String, u64>) {
        for (name, count) in [(STATUS_DECODE_ERRORS, self.decode_errors), (STATUS_NEWER_SCHEMA, self.newer_schema)] {
            let counter = counters.entry(name.to_string()).or_default();
            *counter = counter.saturating_add(count);
        }
    }
}

impl std::ops::Add for SubscriberStats {
    type Output = SubscriberStats;

    /// Counter-wise sum (for a node's total over its subscribers), saturating at `u64::MAX`:
    /// `gaps_missed` follows `seq` from the wire, which a sender may jump by up to 2^64 − 1.
    fn add(self, other: SubscriberStats) -> SubscriberStats {
        SubscriberStats {
            received: self.received.saturating_add(other.received),
            decode_errors: self.decode_errors.saturating_add(other.decode_errors),
            newer_schema: self.newer_schema.saturating_add(other.newer_schema),
            gaps_missed: self.gaps_missed.saturating_add(other.gaps_missed),
            dropped: self.dropped.saturating_add(other.dropped),
        }
    }
}

impl std::iter::Sum for SubscriberStats {
    fn sum<I: Iterator<Item = SubscriberStats>>(iter: I) -> SubscriberStats {
        iter.fold(SubscriberStats::default(), |total, s| total + s)
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    decode_errors: AtomicU64,
    newer_schema: AtomicU64,
    gaps_missed: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SubscriberStats {
        SubscriberStats {
            received: self.received.load(Ordering::Relaxed),
            decode_errors: self.decode_errors.load(Ordering::Relaxed),
            newer_schema: self.newer_schema.load(Ordering::Relaxed),
            gaps_missed: self.gaps_missed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Adds `n` to `counter`, stopping at `u64::MAX` instead of wrapping (counts driven by the wire).
fn add_saturating(counter: &AtomicU64, n: u64) {
    // The closure always returns Some, so the update cannot fail.
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_add(n)));
}

/// Logs the 1st, 100th, 200th, … occurrence of a rejected payload.
fn warn_rate_limited(count: u64, key: &str, err: &DecodeError) {
    if count == 1 || count.is_multiple_of(100) {
        tracing::warn!(key, occurrences = count, error = %err, "dropping undecodable message");
    }
}

/// Pushes `item`, discarding the oldest queued item while the queue is full. Returns how many
/// items were discarded.
fn push_newest<T>(tx: &Sender<T>, rx: &Receiver<T>, mut item: T) -> u64 {
    let mut discarded = 0;
    loop {
        match tx.try_send(item) {
            Ok(()) => return discarded,
            Err(TrySendError::Full(back)) => {
                item = back;
                if rx.try_recv().is_ok() {
                    discarded += 1;
                }
            }
            Err(TrySendError::Disconnected(_)) => return discarded,
        }
    }
}

/// Receives messages of type `M` from one key expression into a bounded queue. Decoding runs in
/// zenoh's callback; bad payloads are counted and logged, never fatal.
pub struct Subscriber<M: Message> {
    _inner: zenoh::pubsub::Subscriber<()>,
    rx: Receiver<M>,
    counters: Arc<Counters>,
    key: String,
    _message: PhantomData<fn() -> M>,
}

impl<M: Message> std::fmt::Debug for Subscriber<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("key", &self.key).field("stats", &self.stats()).finish()
    }
}

impl<M: Message> Subscriber<M> {
    /// Blocks until a message arrives; `None` once the subscription has ended.
    pub fn recv(&self) -> Option<M> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for a message.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<M> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The oldest queued message, if any, without waiting.
    pub fn try_recv(&self) -> Option<M> {
        self.rx.try_recv().ok()
    }

    /// Drains the queue and returns the newest message, if any, without waiting.
    pub fn latest(&self) -> Option<M> {
        self.rx.try_iter().last()
    }

    /// Takes every message queued now, oldest first, without waiting (messages arriving meanwhile
    /// stay for the next call). For topics where every message counts, such as `estop`, where
    /// [`Subscriber::latest`] would keep only the newest.
    pub fn drain(&self) -> Vec<M> {
        let queued = self.rx.len();
        self.rx.try_iter().take(queued).collect()
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SubscriberStats {
        self.counters.snapshot()
    }

    /// The underlying channel, for `crossbeam_channel::select!` over several subscribers.
    pub fn receiver(&self) -> &Receiver<M> {
        &self.rx
    }

    /// The key expression subscribed to.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// One undecoded sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSample {
    /// The full key it was published on.
    pub key: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Arrival time, ns since the UNIX epoch (this host's clock).
    pub arrival_ns: u64,
}

/// Receives undecoded payloads from any key expression (tooling: `topics echo`, `topics hz`).
pub struct RawSubscriber {
    _inner: zenoh::pubsub::Subscriber<()>,
    rx: Receiver<RawSample>,
    dropped: Arc<AtomicU64>,
}

impl RawSubscriber {
    /// Blocks until a sample arrives; `None` once the subscription has ended.
    pub fn recv(&self) -> Option<RawSample> {
        self.rx.recv().ok()
    }

    /// Waits up to `timeout` for a sample.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<RawSample> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The oldest queued sample, if any, without waiting.
    pub fn try_recv(&self) -> Option<RawSample> {
        self.rx.try_recv().ok()
    }

    /// Samples discarded because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Bus {
    /// Subscriber of `M` on `armstack/<robot>/<M::TOPIC>` with [`DEFAULT_QUEUE_CAPACITY`].
    pub fn subscriber<M: Message>(&self) -> Result<Subscriber<M>, BusError> {
        self.subscriber_with_capacity::<M>(M::TOPIC, DEFAULT_QUEUE_CAPACITY)
    }

    /// Subscriber of `M` on `armstack/<robot>/<topic>`; `topic` may contain `*` / `**` segments
    /// (e.g. `camera/*` for every camera).
    pub fn subscriber_on<M: Message>(&self, topic: &str) -> Result<Subscriber<M>, BusError> {
        self.subscriber_with_capacity::<M>(topic, DEFAULT_QUEUE_CAPACITY)
    }

    /// Subscriber of camera `name`'s frames (`armstack/<robot>/camera/<name>`).
    pub fn camera_subscriber(&self, name: &str) -> Result<Subscriber<CameraFrame>, BusError> {
        validate_camera_name(name)?;
        self.subscriber_on::<CameraFrame>(&camera_topic(name))
    }

    /// Subscriber of `M` on `armstack/<robot>/<topic>` whose queue holds `capacity` messages
    /// (at least 1); when full, the oldest queued message is discarded and counted as `dropped`.
    pub fn subscriber_with_capacity<M: Message>(
        &self,
        topic: &str,
        capacity: usize,
    ) -> Result<Subscriber<M>, BusError> {
        validate_topic_pattern(topic)?;
        let key = self.key(topic);
        let (tx, rx) = crossbeam_channel::bounded::<M>(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let last_seq: Mutex<HashMap<u64, u64>> = Mutex::new(HashMap::new());
        let (cb_counters, cb_rx, cb_key) = (Arc::clone(&counters), rx.clone(), key.clone());
        let callback = move |sample: Sample| {
            let bytes = sample.payload().to_bytes();
            let msg = match decode::<M>(&bytes) {
                Ok(msg) => msg,
                Err(err) => {
                    let counter = match err {
                        DecodeError::NewerSchema { .. } => &cb_counters.newer_schema,
                        DecodeError::Malformed { .. } => &cb_counters.decode_errors,
                    };
                    let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    warn_rate_limited(count, &cb_key, &err);
                    return;
                }
            };
            cb_counters.received.fetch_add(1, Ordering::Relaxed);
            let header = msg.header();
            if let Ok(mut seqs) = last_seq.lock() {
                if let Some(prev) = seqs.insert(header.source_id, header.seq) {
                    if header.seq > prev.saturating_add(1) {
                        add_saturating(&cb_counters.gaps_missed, header.seq - prev - 1);
                    }
                }
            }
            let discarded = push_newest(&tx, &cb_rx, msg);
            if discarded > 0 {
                cb_counters.dropped.fetch_add(discarded, Ordering::Relaxed);
            }
        };
        let inner = self
            .session
            .declare_subscriber(key.clone())
            .callback(callback)
            .wait()
            .map_err(|e| BusError::Zenoh { op: "declare subscriber", key: key.clone(), reason: e.to_string() })?;
        Ok(Subscriber { _inner: inner, rx, counters, key, _message: PhantomData })
    }

    /// Raw subscriber on the full key expression `key_expr` (e.g. `armstack/**`), queue
    /// capacity [`DEFAULT_QUEUE_CAPACITY`] × 4, oldest discarded when full.
    pub fn raw_subscriber(&self, key_expr: &str) -> Result<RawSubscriber, BusError> {
        let (tx, rx) = crossbeam_channel::bounded::<RawSample>(DEFAULT_QUEUE_CAPACITY * 4);
        let dropped = Arc::new(AtomicU64::new(0));
        let (cb_rx, cb_dropped) = (rx.clone(), Arc::clone(&dropped));
        let callback = move |sample: Sample| {
            let item = RawSample {
                key: sample.key_expr().as_str().to_string(),
                payload: sample.payload().to_bytes().into_owned(),
                arrival_ns: now_ns(),
            };
            let discarded = push_newest(&tx, &cb_rx, item);
            if discarded > 0 {
                cb_dropped.fetch_add(discarded, Ordering::Relaxed);
            }
        };
        let inner = self.session.declare_subscriber(key_expr.to_string()).callback(callback).wait().map_err(|e| {
            BusError::Zenoh { op: "declare subscriber", key: key_expr.to_string(), reason: e.to_string() }
        })?;
        Ok(RawSubscriber { _inner: inner, rx, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_subscribers_sum_into_its_status_counters() {
        let joint = SubscriberStats { received: 5, decode_errors: 2, newer_schema: 1, ..Default::default() };
        let estop = SubscriberStats { received: 1, decode_errors: 3, newer_schema: 4, gaps_missed: 1, dropped: 0 };
        let total: SubscriberStats = [joint, estop].into_iter().sum();
        assert_eq!(
            total,
            SubscriberStats { received: 6, decode_errors: 5, newer_schema: 5, gaps_missed: 1, dropped: 0 }
        );
        let mut counters = BTreeMap::from([("steps".to_string(), 9)]);
        total.add_to_status_counters(&mut counters);
        assert_eq!(counters.get(STATUS_DECODE_ERRORS), Some(&5));
        assert_eq!(counters.get(STATUS_NEWER_SCHEMA), Some(&5));
        assert_eq!(counters.get("steps"), Some(&9));
    }

    /// `seq` jumping from 0 to 2^64 − 1 on two topics gives two gap counts near `u64::MAX`; their
    /// sum saturates instead of overflowing (which killed the sim node).
    #[test]
    fn wire_driven_counts_saturate_instead_of_overflowing() {
        let jump = SubscriberStats { gaps_missed: u64::MAX - 1, decode_errors: u64::MAX, ..Default::default() };
        let total: SubscriberStats = [jump.clone(), jump].into_iter().sum();
        assert_eq!(total.gaps_missed, u64::MAX);
        let mut counters = BTreeMap::from([(STATUS_DECODE_ERRORS.to_string(), 5)]);
        total.add_to_status_counters(&mut counters);
        assert_eq!(counters.get(STATUS_DECODE_ERRORS), Some(&u64::MAX));
        let gaps = AtomicU64::new(u64::MAX - 1);
        add_saturating(&gaps, u64::MAX - 1);
        assert_eq!(gaps.load(Ordering::Relaxed), u64::MAX);
    }
}
