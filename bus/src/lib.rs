#![warn(missing_docs)]
//! Armstack message bus.
//!
//! Typed messages ([`messages`], whose float fields also accept CBOR integers: [`wire_float`]),
//! topic names and key expressions ([`topics`]), CBOR encoding ([`encoding`]), zenoh session
//! setup with local discovery ([`session`], [`discovery`]) and the refusal of network-reachable
//! configs without login or access control ([`exposure`]), typed publish/subscribe
//! ([`publisher`], [`subscriber`]), the stamp rules every node applies before a command may move
//! an arm (freshness: [`command_rules`]; the e-stop latch and the command arbiter that apply them
//! are in the `arm-command` crate) and a latency benchmark ([`bench`]). [`config_error`] places
//! errors of the project's config files (every crate that reads one depends on this one).
//!
//! Nothing outside this crate knows zenoh. The wire format is documented for non-Rust clients in
//! `docs/wire-schema.md` at the workspace root.

pub mod bench;
pub mod command_rules;
pub mod config_error;
pub mod discovery;
pub mod encoding;
pub mod error;
pub mod exposure;
pub mod header;
pub mod latency;
pub mod messages;
pub mod publisher;
pub mod session;
pub mod subscriber;
pub mod topics;
pub mod wire_float;

pub use command_rules::{Freshness, StampFault, ESTOP_QUEUE_CAPACITY};
pub use encoding::{decode, decode_value, encode, encode_value, value_to_json_string};
pub use error::{BusError, DecodeError};
pub use header::{now_ns, Header, Message, SCHEMA_VERSION};
pub use latency::Percentiles;
pub use messages::{
    ActionChunk, ActionKind, CameraFrame, CameraIntrinsics, EeDeltaCommand, EpisodeControl, EpisodeEvent,
    EpisodeEventKind, EpisodeRequest, Estop, ImageEncoding, JointCommand, JointState, NodeState, ObjectPose, Pose,
    SceneState, Status, Task,
};
pub use publisher::Publisher;
pub use session::{is_local_source, Bus, BusConfig};
pub use subscriber::{
    RawSample, RawSubscriber, Subscriber, SubscriberStats, DEFAULT_QUEUE_CAPACITY, STATUS_DECODE_ERRORS,
    STATUS_NEWER_SCHEMA,
};
pub use topics::{key, topic_names, validate_robot_name, DEFAULT_ROBOT};

/// Re-exported so tooling can inspect decoded values without depending on ciborium itself.
pub use ciborium::Value;
