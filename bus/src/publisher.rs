//! Typed publishers and the QoS policy per topic.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use zenoh::bytes::ZBytes;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::Wait;

use crate::encoding::encode;
use crate::error::BusError;
use crate::header::{now_ns, Message, SCHEMA_VERSION};
use crate::messages::CameraFrame;
use crate::session::Bus;
use crate::topics::{self, camera_topic, validate_camera_name, validate_topic};

/// Delivery policy of a topic.
///
/// - `estop`: never dropped (`Block`: the publisher waits for room in the transmit queue),
///   highest priority (`RealTime`), not batched (`express`).
/// - `command/*`: never dropped, `InteractiveHigh`, express: a lost command is worse than a
///   briefly blocked policy loop.
/// - `joint_state`, `scene_state`: `Drop` (the newest state supersedes an old one; a slow consumer must never
///   stall the driver's control loop), `DataHigh`, express for low latency.
/// - `camera/*`: `Drop`, `Data`, batched: large, superseded 30 times a second.
/// - everything else (`status`, `episode`, `task`, custom): `Block`, `Data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    /// What zenoh does when the transmit queue is full.
    pub congestion: CongestionControl,
    /// Routing priority.
    pub priority: Priority,
    /// Send immediately instead of batching.
    pub express: bool,
}

/// The [`Qos`] of `topic` (the part after `armstack/<robot>/`).
pub fn qos_for(topic: &str) -> Qos {
    let (congestion, priority, express) = if topic == topics::ESTOP {
        (CongestionControl::Block, Priority::RealTime, true)
    } else if topic.starts_with("command/") {
        (CongestionControl::Block, Priority::InteractiveHigh, true)
    } else if topic == topics::JOINT_STATE || topic == topics::SCENE_STATE {
        (CongestionControl::Drop, Priority::DataHigh, true)
    } else if topic == topics::CAMERA || topic.starts_with("camera/") {
        (CongestionControl::Drop, Priority::Data, false)
    } else {
        (CongestionControl::Block, Priority::Data, false)
    };
    Qos { congestion, priority, express }
}

/// Publishes messages of type `M` on one key. Fills `header.schema`, `header.seq` (monotonic
/// from 0 per publisher) and `header.source_id` (random per publisher); sets `header.stamp_ns`
/// to [`now_ns`] only if the producer left it 0.
pub struct Publisher<M: Message> {
    inner: zenoh::pubsub::Publisher<'static>,
    key: String,
    seq: AtomicU64,
    source_id: u64,
    _message: PhantomData<fn(M)>,
}

impl<M: Message> std::fmt::Debug for Publisher<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("key", &self.key)
            .field("source_id", &self.source_id)
            .field("next_seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

impl<M: Message> Publisher<M> {
    /// Stamps, encodes and sends `msg`. The header fields set are visible in `msg` afterwards.
    pub fn publish(&self, msg: &mut M) -> Result<(), BusError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let header = msg.header_mut();
        header.schema = SCHEMA_VERSION;
        header.seq = seq;
        header.source_id = self.source_id;
        if header.stamp_ns == 0 {
            header.stamp_ns = now_ns();
        }
        let bytes = encode(msg)?;
        self.put_encoded(bytes)
    }

    /// Sends an already encoded payload as is (the Vec is handed to zenoh without a copy).
    pub(crate) fn put_encoded(&self, bytes: Vec<u8>) -> Result<(), BusError> {
        self.inner.put(ZBytes::from(bytes)).wait().map_err(|e| BusError::Zenoh {
            op: "put",
            key: self.key.clone(),
            reason: e.to_string(),
        })
    }

    /// Full key expression this publisher writes to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This publisher's `source_id`.
    pub fn source_id(&self) -> u64 {
        self.source_id
    }

    /// The `seq` the next message will carry.
    pub fn next_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
}

impl Bus {
    /// Publisher of `M` on `armstack/<robot>/<M::TOPIC>`. For cameras use
    /// [`Bus::camera_publisher`].
    pub fn publisher<M: Message>(&self) -> Result<Publisher<M>, BusError> {
        self.publisher_on::<M>(M::TOPIC)
    }

    /// Publisher of camera `name`'s frames on `armstack/<robot>/camera/<name>`.
    pub fn camera_publisher(&self, name: &str) -> Result<Publisher<CameraFrame>, BusError> {
        validate_camera_name(name)?;
        self.publisher_on::<CameraFrame>(&camera_topic(name))
    }

    /// Publisher of `M` on `armstack/<robot>/<topic>` (no wildcards), with [`qos_for`]`(topic)`.
    pub fn publisher_on<M: Message>(&self, topic: &str) -> Result<Publisher<M>, BusError> {
        validate_topic(topic)?;
        let key = self.key(topic);
        let inner = self.declare_zenoh_publisher(&key, topic)?;
        Ok(Publisher { inner, key, seq: AtomicU64::new(0), source_id: self.new_source_id(), _message: PhantomData })
    }
}

impl Bus {
    /// A zenoh publisher on the full key `key` with the delivery policy of `topic`
    /// ([`qos_for`]); shared by the typed publisher and the bare-zenoh benchmark baseline.
    pub(crate) fn declare_zenoh_publisher(
        &self,
        key: &str,
        topic: &str,
    ) -> Result<zenoh::pubsub::Publisher<'static>, BusError> {
        let qos = qos_for(topic);
        self.session
            .declare_publisher(key.to_string())
            .congestion_control(qos.congestion)
            .priority(qos.priority)
            .express(qos.express)
            .wait()
            .map_err(|e| BusError::Zenoh { op: "declare publisher", key: key.to_string(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_policy() {
        assert_eq!(qos_for("estop").priority, Priority::RealTime);
        assert_eq!(qos_for("command/chunk").congestion, CongestionControl::Block);
        assert_eq!(qos_for("camera/front").congestion, CongestionControl::Drop);
        assert_eq!(qos_for("joint_state").congestion, CongestionControl::Drop);
        assert_eq!(qos_for("status").congestion, CongestionControl::Block);
    }
}
