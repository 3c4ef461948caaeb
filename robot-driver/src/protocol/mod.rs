//! Dynamixel Protocol 2.0: packets, CRC, byte stuffing, instructions and status decoding. Pure
//! data transformations, no I/O.

pub mod crc;
pub mod instruction;
pub mod packet;
pub mod status;
pub mod stuffing;

pub use instruction::Instruction;
pub use packet::{parse_one, Packet, PacketReader, ParseError, Parsed, BROADCAST_ID, HEADER, STATUS_INSTRUCTION};
pub use status::{status_packet, ErrorNumber, HardwareError, Status, StatusError};

#[cfg(test)]
mod spec_examples;
