//! Protocol 2.0 packets and their wire form.
//!
//! ```text
//! FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM … (stuffed) | CRC_L CRC_H
//! ```
//! `LEN` counts the instruction byte, the stuffed parameters and the two CRC bytes. A status
//! packet is instruction `0x55` whose first parameter is the error byte. [`PacketReader`] finds
//! packets in a byte stream, resynchronising after noise, and is the one parser used by the driver
//! and the emulator alike.

use super::crc::crc16;
use super::stuffing::{stuff_into, stuffed_len, unstuff};

/// The packet header.
pub const HEADER: [u8; 4] = [0xFF, 0xFF, 0xFD, 0x00];
/// Bytes before the instruction: header, ID, length.
pub const PREFIX_LEN: usize = 7;
/// The broadcast ID (every servo executes; only sync/bulk reads are answered).
pub const BROADCAST_ID: u8 = 0xFE;
/// Largest `LEN` the reader accepts; longer claims are treated as noise. The largest packet the
/// driver exchanges (a bulk read of a full control table) is far below this.
pub const MAX_LEN_FIELD: usize = 1024;
/// Instruction byte of a status (reply) packet.
pub const STATUS_INSTRUCTION: u8 = 0x55;

/// One packet, stuffing removed. For a status packet `params[0]` is the error byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Servo ID (0–252), or [`BROADCAST_ID`].
    pub id: u8,
    /// Instruction code (see `Instruction`), or [`STATUS_INSTRUCTION`].
    pub instruction: u8,
    /// Parameters, unstuffed.
    pub params: Vec<u8>,
}

impl Packet {
    /// Appends the packet's wire bytes (stuffed, with CRC) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = stuffed_len(&self.params) + 3;
        out.extend_from_slice(&HEADER);
        out.push(self.id);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.push(self.instruction);
        stuff_into(&self.params, out);
        let crc = crc16(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// The packet's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PREFIX_LEN + self.params.len() + 8);
        self.encode_into(&mut out);
        out
    }

    /// Wire length of the packet, bytes.
    pub fn wire_len(&self) -> usize {
        PREFIX_LEN + stuffed_len(&self.params) + 3
    }

    /// Whether this is a status (reply) packet.
    pub fn is_status(&self) -> bool {
        self.instruction == STATUS_INSTRUCTION
    }
}

/// Why bytes did not form a packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The CRC did not match.
    #[error("CRC mismatch on a packet from ID {id}: computed {computed:#06x}, received {received:#06x}")]
    Crc {
        /// ID field of the damaged packet.
        id: u8,
        /// CRC over the received bytes.
        computed: u16,
        /// CRC field received.
        received: u16,
    },
    /// The length field is too small or larger than [`MAX_LEN_FIELD`].
    #[error("invalid length field {0}")]
    Length(usize),
    /// The body contains an unstuffed header pattern.
    #[error("invalid byte stuffing in a packet from ID {0}")]
    Stuffing(u8),
}

/// What [`PacketReader::next_packet`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete packet with its exact wire bytes.
    Packet(Packet, Vec<u8>),
    /// A damaged packet was dropped (the reader resynchronises on the next header).
    Error(ParseError),
    /// More bytes are needed.
    Incomplete,
}

/// Incremental packet parser over a byte stream.
#[derive(Debug, Default)]
pub struct PacketReader {
    buf: Vec<u8>,
    /// Bytes discarded while looking for a header.
    pub skipped_bytes: u64,
}

impl PacketReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything buffered.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Bytes buffered and not yet parsed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next packet (or error) from the buffer. Never panics, whatever the bytes.
    pub fn next_packet(&mut self) -> Parsed {
        // Align the buffer on a header (or a prefix of one at its end).
        let start = find_header(&self.buf);
        if start > 0 {
            self.skipped_bytes += start as u64;
            self.buf.drain(..start);
        }
        if self.buf.len() < PREFIX_LEN {
            return Parsed::Incomplete;
        }
        let id = self.buf[4];
        let len = u16::from_le_bytes([self.buf[5], self.buf[6]]) as usize;
        if !(3..=MAX_LEN_FIELD).contains(&len) {
            self.drop_header();
            return Parsed::Error(ParseError::Length(len));
        }
        let total = PREFIX_LEN + len;
        if self.buf.len() < total {
            return Parsed::Incomplete;
        }
        let computed = crc16(&self.buf[..total - 2]);
        let received = u16::from_le_bytes([self.buf[total - 2], self.buf[total - 1]]);
        if computed != received {
            self.drop_header();
            return Parsed::Error(ParseError::Crc { id, computed, received });
        }
        let instruction = self.buf[PREFIX_LEN];
        let Some(params) = unstuff(&self.buf[PREFIX_LEN + 1..total - 2]) else {
            self.drop_header();
            return Parsed::Error(ParseError::Stuffing(id));
        };
        let wire: Vec<u8> = self.buf.drain(..total).collect();
        Parsed::Packet(Packet { id, instruction, params }, wire)
    }

    /// Skips the first byte so the search restarts after a bad header.
    fn drop_header(&mut self) {
        self.skipped_bytes += 1;
        self.buf.drain(..1);
    }
}

/// Index of the first header in `buf`, or of a header prefix that reaches the end of `buf`
/// (more bytes may complete it), or `buf.len()`.
fn find_header(buf: &[u8]) -> usize {
    (0..buf.len())
        .find(|&i| {
            let tail = &buf[i..];
            let n = tail.len().min(HEADER.len());
            tail[..n] == HEADER[..n]
        })
        .unwrap_or(buf.len())
}

/// Parses exactly one packet from `bytes` (tests and tools).
pub fn parse_one(bytes: &[u8]) -> Result<Packet, ParseError> {
    let mut r = PacketReader::new();
    r.push(bytes);
    match r.next_packet() {
        Parsed::Packet(p, _) => Ok(p),
        Parsed::Error(e) => Err(e),
        Parsed::Incomplete => Err(ParseError::Length(bytes.len())),
    }
}
