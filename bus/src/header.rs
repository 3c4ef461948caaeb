//! The header every message carries, the schema version, and the [`Message`] trait.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Wire schema version written into every message's `header.schema`.
///
/// Rule: adding an optional field keeps the version; renaming, removing or re-typing a field, or
/// changing units or frames, bumps it. A reader rejects messages whose version is newer than its own.
pub const SCHEMA_VERSION: u16 = 1;

/// In every message. `stamp_ns`: nanoseconds since the UNIX epoch on the producer's clock (or sim
/// clock), set by the producer; `seq` and `source_id` are set by the [`crate::Publisher`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Header {
    /// Wire schema version ([`SCHEMA_VERSION`] of the producer).
    pub schema: u16,
    /// Time of the data, ns since the UNIX epoch (producer's wall clock or sim clock).
    pub stamp_ns: u64,
    /// Per-publisher sequence number, monotonic from 0; gaps mean lost messages.
    pub seq: u64,
    /// Random identifier of the publisher that sent the message (scope of `seq`).
    pub source_id: u64,
}

impl Header {
    /// A header with the current schema and the given stamp (ns since the UNIX epoch).
    pub fn stamped(stamp_ns: u64) -> Self {
        Self { schema: SCHEMA_VERSION, stamp_ns, seq: 0, source_id: 0 }
    }
}

/// Wall clock: nanoseconds since the UNIX epoch (0 if the clock is before 1970).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Implemented by every message type.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// Topic below `armstack/<robot>/` (e.g. `"joint_state"`); cameras add `/<name>`.
    const TOPIC: &'static str;
    /// The message's header.
    fn header(&self) -> &Header;
    /// The message's header, mutable (the publisher fills `schema`, `seq`, `source_id`).
    fn header_mut(&mut self) -> &mut Header;
    /// About how many bytes the CBOR encoding takes, so the encoder allocates once (large
    /// payloads otherwise regrow their buffer a dozen times, faulting in fresh pages each time).
    fn encoded_len_hint(&self) -> usize {
        256
    }
}

/// Implements [`Message`] for a struct with a `header: Header` field.
macro_rules! impl_message {
    ($ty:ty, $topic:expr) => {
        impl_message!($ty, $topic, |_msg: &$ty| 256);
    };
    ($ty:ty, $topic:expr, $hint:expr) => {
        impl $crate::header::Message for $ty {
            const TOPIC: &'static str = $topic;
            fn header(&self) -> &$crate::header::Header {
                &self.header
            }
            fn header_mut(&mut self) -> &mut $crate::header::Header {
                &mut self.header
            }
            fn encoded_len_hint(&self) -> usize {
                ($hint)(self)
            }
        }
    };
}
pub(crate) use impl_message;
