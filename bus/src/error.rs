//! Error types of the bus.

use std::path::PathBuf;

/// Why a payload could not be turned into a typed message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The producer uses a newer wire schema than this build understands.
    #[error(
        "message uses schema version {got}, but this build supports schema versions up to \
         {supported}; upgrade armstack on this side"
    )]
    NewerSchema {
        /// `header.schema` found in the message.
        got: u16,
        /// [`crate::SCHEMA_VERSION`] of this build.
        supported: u16,
    },
    /// The bytes are not a valid CBOR encoding of the expected message.
    #[error("malformed {what} payload ({len} bytes): {reason}")]
    Malformed {
        /// What was expected (a topic name, or "CBOR value").
        what: &'static str,
        /// Payload length in bytes.
        len: usize,
        /// The decoder's description of the problem.
        reason: String,
    },
}

/// Errors of bus setup, publishing and subscribing.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A robot name that cannot be used as a key-expression segment.
    #[error("invalid robot name {name:?}: {reason} (use letters, digits, '_' or '-', e.g. \"arm0\")")]
    InvalidRobotName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A topic (or camera name) that cannot be used in a key expression.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A user-supplied zenoh configuration file could not be loaded.
    #[error("cannot load zenoh config file {}: {reason}", path.display())]
    ZenohConfigFile {
        /// The file that was given.
        path: PathBuf,
        /// zenoh's description of the problem.
        reason: String,
    },
    /// A zenoh config file that lets peers in from the network without a login or without
    /// access control (see [`crate::exposure`]).
    #[error(
        "refusing zenoh config file {}: it listens on {} (reachable from other hosts), but {}. \
         Use the robot-host profile (config/zenoh/robot-host.json5), listen on loopback only, or set \
         `metadata: {{ {}: true }}` in the file to accept this on a trusted network",
        path.display(),
        endpoints.join(", "),
        problems.join("; "),
        crate::exposure::ALLOW_UNAUTHENTICATED_KEY
    )]
    UnprotectedConfig {
        /// The config file.
        path: PathBuf,
        /// Its listen endpoints that other hosts can reach.
        endpoints: Vec<String>,
        /// What protection is missing, one sentence each.
        problems: Vec<String>,
    },
    /// The built-in zenoh configuration could not be assembled (a bug, or a bad locator).
    #[error("cannot build zenoh config (key {key}): {reason}")]
    ZenohConfig {
        /// The configuration key that was being set.
        key: String,
        /// zenoh's description of the problem.
        reason: String,
    },
    /// The zenoh session did not open.
    #[error("cannot open zenoh session: {0}")]
    Open(String),
    /// A zenoh operation (declare, put) failed.
    #[error("zenoh {op} on {key:?} failed: {reason}")]
    Zenoh {
        /// The operation ("declare publisher", "put", ...).
        op: &'static str,
        /// The key expression involved.
        key: String,
        /// zenoh's description of the problem.
        reason: String,
    },
    /// A message could not be encoded to CBOR.
    #[error("cannot encode {topic} message: {reason}")]
    Encode {
        /// The message's topic.
        topic: &'static str,
        /// The encoder's description of the problem.
        reason: String,
    },
    /// A payload could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The local-discovery directory could not be used.
    #[error("local discovery directory {}: {source}", path.display())]
    Discovery {
        /// The directory or file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An invalid message (e.g. an action chunk whose sizes disagree).
    #[error("invalid {topic} message: {reason}")]
    InvalidMessage {
        /// The message's topic.
        topic: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The benchmark could not run.
    #[error("bench: {0}")]
    Bench(String),
}
