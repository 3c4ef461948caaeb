//! Instruction codes and builders for the instruction packets the driver sends. Addresses and
//! lengths are little-endian 16-bit fields; data bytes are little-endian as in the control table.

use super::packet::{Packet, BROADCAST_ID};

/// Protocol 2.0 instruction codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Instruction {
    /// Is the servo there? The reply carries model number and firmware version.
    Ping = 0x01,
    /// Read `length` bytes from `address`.
    Read = 0x02,
    /// Write bytes at `address`.
    Write = 0x03,
    /// Stage a write, executed on `Action`.
    RegWrite = 0x04,
    /// Execute staged writes.
    Action = 0x05,
    /// Restore factory settings.
    FactoryReset = 0x06,
    /// Restart the servo (clears hardware errors; torque comes up off).
    Reboot = 0x08,
    /// One read of the same address range from several servos, answered in ID order.
    SyncRead = 0x82,
    /// One write of the same address range to several servos (no reply).
    SyncWrite = 0x83,
    /// Reads of different address ranges from several servos, answered in list order.
    BulkRead = 0x92,
    /// Writes of different address ranges to several servos (no reply).
    BulkWrite = 0x93,
}

impl Instruction {
    /// The instruction for a code, if known.
    pub fn from_code(code: u8) -> Option<Instruction> {
        use Instruction::*;
        Some(match code {
            0x01 => Ping,
            0x02 => Read,
            0x03 => Write,
            0x04 => RegWrite,
            0x05 => Action,
            0x06 => FactoryReset,
            0x08 => Reboot,
            0x82 => SyncRead,
            0x83 => SyncWrite,
            0x92 => BulkRead,
            0x93 => BulkWrite,
            _ => return None,
        })
    }
}

fn packet(id: u8, instruction: Instruction, params: Vec<u8>) -> Packet {
    Packet { id, instruction: instruction as u8, params }
}

fn addr_len(address: u16, length: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(4);
    p.extend_from_slice(&address.to_le_bytes());
    p.extend_from_slice(&length.to_le_bytes());
    p
}

/// Ping one servo (or every servo with [`BROADCAST_ID`]).
pub fn ping(id: u8) -> Packet {
    packet(id, Instruction::Ping, Vec::new())
}

/// Read `length` bytes at `address` from servo `id`.
pub fn read(id: u8, address: u16, length: u16) -> Packet {
    packet(id, Instruction::Read, addr_len(address, length))
}

/// Write `data` at `address` on servo `id`.
pub fn write(id: u8, address: u16, data: &[u8]) -> Packet {
    let mut p = address.to_le_bytes().to_vec();
    p.extend_from_slice(data);
    packet(id, Instruction::Write, p)
}

/// Stage `data` at `address` on servo `id` until [`action`].
pub fn reg_write(id: u8, address: u16, data: &[u8]) -> Packet {
    let mut p = address.to_le_bytes().to_vec();
    p.extend_from_slice(data);
    packet(id, Instruction::RegWrite, p)
}

/// Execute staged writes on `id` (usually [`BROADCAST_ID`]).
pub fn action(id: u8) -> Packet {
    packet(id, Instruction::Action, Vec::new())
}

/// Reboot servo `id`.
pub fn reboot(id: u8) -> Packet {
    packet(id, Instruction::Reboot, Vec::new())
}

/// Sync read of `length` bytes at `address` from `ids` (answered in this order).
pub fn sync_read(address: u16, length: u16, ids: &[u8]) -> Packet {
    let mut p = addr_len(address, length);
    p.extend_from_slice(ids);
    packet(BROADCAST_ID, Instruction::SyncRead, p)
}

/// Sync write of `length` bytes at `address`: one `(id, data)` per servo; every `data` must be
/// `length` bytes (checked by the caller, see `DxlBus::sync_write`).
pub fn sync_write(address: u16, length: u16, items: &[(u8, &[u8])]) -> Packet {
    let mut p = addr_len(address, length);
    for (id, data) in items {
        p.push(*id);
        p.extend_from_slice(data);
    }
    packet(BROADCAST_ID, Instruction::SyncWrite, p)
}

/// Bulk read: `(id, address, length)` per servo, answered in this order.
pub fn bulk_read(items: &[(u8, u16, u16)]) -> Packet {
    let mut p = Vec::with_capacity(items.len() * 5);
    for (id, address, length) in items {
        p.push(*id);
        p.extend_from_slice(&address.to_le_bytes());
        p.extend_from_slice(&length.to_le_bytes());
    }
    packet(BROADCAST_ID, Instruction::BulkRead, p)
}

/// Bulk write: `(id, address, data)` per servo.
pub fn bulk_write(items: &[(u8, u16, &[u8])]) -> Packet {
    let mut p = Vec::new();
    for (id, address, data) in items {
        p.push(*id);
        p.extend_from_slice(&address.to_le_bytes());
        p.extend_from_slice(&(data.len() as u16).to_le_bytes());
        p.extend_from_slice(data);
    }
    packet(BROADCAST_ID, Instruction::BulkWrite, p)
}
