//! Status packets: the error byte and the hardware error bits.

use super::packet::{Packet, STATUS_INSTRUCTION};

/// The error number in the low 7 bits of a status packet's error byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorNumber {
    /// 0x01: the instruction failed.
    ResultFail,
    /// 0x02: undefined instruction, or Action without RegWrite.
    Instruction,
    /// 0x03: the servo saw a CRC mismatch.
    Crc,
    /// 0x04: data out of range for the address.
    DataRange,
    /// 0x05: data shorter than the address's field.
    DataLength,
    /// 0x06: data outside the configured limit.
    DataLimit,
    /// 0x07: write to a read-only or torque-locked (EEPROM) address, or read of a write-only one.
    Access,
    /// Any other value.
    Other(u8),
}

impl ErrorNumber {
    /// From the low 7 bits of the error byte (None for 0: no error).
    pub fn from_byte(b: u8) -> Option<ErrorNumber> {
        use ErrorNumber::*;
        Some(match b & 0x7F {
            0 => return None,
            1 => ResultFail,
            2 => Instruction,
            3 => Crc,
            4 => DataRange,
            5 => DataLength,
            6 => DataLimit,
            7 => Access,
            n => Other(n),
        })
    }

    /// The code on the wire.
    pub fn code(self) -> u8 {
        use ErrorNumber::*;
        match self {
            ResultFail => 1,
            Instruction => 2,
            Crc => 3,
            DataRange => 4,
            DataLength => 5,
            DataLimit => 6,
            Access => 7,
            Other(n) => n & 0x7F,
        }
    }
}

/// A status packet's error byte, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusError {
    /// Bit 7: a hardware error is latched; read `Hardware_Error_Status` for which.
    pub alert: bool,
    /// The instruction's error, if any.
    pub error: Option<ErrorNumber>,
}

impl StatusError {
    /// Decodes the error byte.
    pub fn from_byte(b: u8) -> StatusError {
        StatusError { alert: b & 0x80 != 0, error: ErrorNumber::from_byte(b) }
    }

    /// Encodes the error byte.
    pub fn to_byte(self) -> u8 {
        (u8::from(self.alert) << 7) | self.error.map_or(0, ErrorNumber::code)
    }
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error {
            Some(e) => write!(f, "{e:?} error")?,
            None => write!(f, "no error")?,
        }
        if self.alert {
            write!(f, " (hardware alert)")?;
        }
        Ok(())
    }
}

/// Bits of the `Hardware_Error_Status` register (address 70).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardwareError(pub u8);

impl HardwareError {
    /// Bit 0: input voltage out of the configured range.
    pub const INPUT_VOLTAGE: u8 = 1 << 0;
    /// Bit 2: internal temperature above the limit.
    pub const OVERHEATING: u8 = 1 << 2;
    /// Bit 3: motor encoder malfunction.
    pub const MOTOR_ENCODER: u8 = 1 << 3;
    /// Bit 4: electrical shock on the circuit, or insufficient power.
    pub const ELECTRICAL_SHOCK: u8 = 1 << 4;
    /// Bit 5: persistent load above the maximum output.
    pub const OVERLOAD: u8 = 1 << 5;

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Human-readable names of the set bits.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::INPUT_VOLTAGE, "input voltage"),
            (Self::OVERHEATING, "overheating"),
            (Self::MOTOR_ENCODER, "motor encoder"),
            (Self::ELECTRICAL_SHOCK, "electrical shock"),
            (Self::OVERLOAD, "overload"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

impl std::fmt::Display for HardwareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", self.names().join(", "))
        }
    }
}

/// A status packet for servo `id` with `error` and `data` (used by the emulator).
pub fn status_packet(id: u8, error: StatusError, data: &[u8]) -> Packet {
    let mut params = Vec::with_capacity(data.len() + 1);
    params.push(error.to_byte());
    params.extend_from_slice(data);
    Packet { id, instruction: STATUS_INSTRUCTION, params }
}

/// A received status packet, split into error and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Replying servo.
    pub id: u8,
    /// Decoded error byte.
    pub error: StatusError,
    /// Data after the error byte.
    pub data: Vec<u8>,
}

impl Status {
    /// Splits a status packet; `None` when `p` is not one or has no error byte.
    pub fn from_packet(p: Packet) -> Option<Status> {
        if !p.is_status() || p.params.is_empty() {
            return None;
        }
        let mut params = p.params;
        let error = StatusError::from_byte(params.remove(0));
        Some(Status { id: p.id, error, data: params })
    }
}
