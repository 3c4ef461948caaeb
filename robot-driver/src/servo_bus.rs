//! The Dynamixel client: request/reply transactions over a [`Transport`] with timeouts computed
//! from packet lengths and the baud rate, retries on CRC errors and timeouts, and error counters.
//!
//! Reads are retried (a sync read retries only the servos that did not answer); writes that get a
//! status reply are retried on timeout (a write is idempotent); broadcast writes (sync/bulk write)
//! have no reply and are sent once. A status packet's hardware-alert bit is recorded per servo
//! ([`ServoBus::take_alerts`]) so the arm can read `Hardware_Error_Status` and stop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::control_table::Field;
use crate::protocol::{instruction as inst, Packet, PacketReader, Parsed, Status, StatusError};
use crate::transport::{wire_time, Transport};

/// Errors of a transaction.
#[derive(Debug, thiserror::Error)]
pub enum ServoBusError {
    /// The port failed.
    #[error("serial I/O on {port}: {source}")]
    Io {
        /// Port name.
        port: String,
        /// Cause.
        source: std::io::Error,
    },
    /// No valid reply in time, after every retry.
    #[error("servo {id}: no valid reply to {what} after {attempts} attempts")]
    NoReply {
        /// Servo.
        id: u8,
        /// The request, for the message.
        what: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// The servo answered with an error.
    #[error("servo {id}: {what} failed: {error}")]
    Status {
        /// Servo.
        id: u8,
        /// The request.
        what: &'static str,
        /// The decoded error byte.
        error: StatusError,
    },
    /// The reply had the wrong size.
    #[error("servo {id}: {what} returned {got} bytes, expected {expected}")]
    Length {
        /// Servo.
        id: u8,
        /// The request.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A sync write was given data of the wrong length.
    #[error("sync write of {expected} bytes per servo got {got} bytes for servo {id}")]
    BadRequest {
        /// Servo.
        id: u8,
        /// Bytes given.
        got: usize,
        /// Bytes per servo.
        expected: usize,
    },
}

/// Counters of the bus traffic (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Instruction packets sent.
    pub tx_packets: u64,
    /// Valid status packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Replies dropped for a bad CRC (or length/stuffing).
    pub crc_errors: u64,
    /// Expected replies that did not arrive in time.
    pub timeouts: u64,
    /// Retransmissions.
    pub retries: u64,
    /// Replies with an error number.
    pub status_errors: u64,
    /// Transactions that failed after every retry.
    pub failures: u64,
    /// Late replies to an earlier request (wrong data length), ignored.
    pub stale_replies: u64,
}

/// Client settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServoBusConfig {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Fixed allowance on top of the wire time for the USB adapter and the OS, per transaction.
    pub latency_margin: Duration,
    /// Servo return delay, per replying servo.
    pub return_delay: Duration,
}

impl Default for ServoBusConfig {
    fn default() -> Self {
        // DynamixelSDK allows 2 × latency timer + 2 ms; with the timer at 1 ms that is 4 ms.
        ServoBusConfig { retries: 3, latency_margin: Duration::from_millis(4), return_delay: Duration::from_micros(20) }
    }
}

/// A successful read: data and whether the servo flagged a hardware alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The bytes read.
    pub data: Vec<u8>,
    /// Hardware alert bit of the status packet.
    pub alert: bool,
}

/// The Dynamixel client.
pub struct ServoBus {
    port: Box<dyn Transport>,
    reader: PacketReader,
    config: ServoBusConfig,
    stats: BusStats,
    alerts: BTreeSet<u8>,
    buf: Vec<u8>,
}

/// Bytes of a status packet carrying `n` data bytes (no stuffing).
fn status_len(n: usize) -> usize {
    11 + n
}

impl ServoBus {
    /// A client on `port`.
    pub fn new(port: Box<dyn Transport>, config: ServoBusConfig) -> ServoBus {
        ServoBus {
            port,
            reader: PacketReader::new(),
            config,
            stats: BusStats::default(),
            alerts: BTreeSet::new(),
            buf: vec![0; 4096],
        }
    }

    /// The client settings.
    pub fn config(&self) -> ServoBusConfig {
        self.config
    }

    /// Replaces the client settings (start-up uses more retries than the control loop).
    pub fn set_config(&mut self, config: ServoBusConfig) {
        self.config = config;
    }

    /// Traffic counters.
    pub fn stats(&self) -> BusStats {
        self.stats
    }

    /// The port's name.
    pub fn port_name(&self) -> String {
        self.port.name()
    }

    /// Servos whose replies carried the hardware-alert bit since the last call.
    pub fn take_alerts(&mut self) -> BTreeSet<u8> {
        std::mem::take(&mut self.alerts)
    }

    fn io(&self, source: std::io::Error) -> ServoBusError {
        ServoBusError::Io { port: self.port.name(), source }
    }

    fn timeout_for(&self, request_len: usize, reply_bytes: usize, replies: usize) -> Duration {
        wire_time(request_len + reply_bytes, self.port.baud()).mul_f64(1.5)
            + self.config.latency_margin
            + self.config.return_delay * replies as u32
    }

    fn send(&mut self, p: &Packet) -> Result<usize, ServoBusError> {
        let bytes = p.encode();
        self.port.clear_input().map_err(|e| self.io(e))?;
        self.reader.clear();
        self.port.write_all(&bytes).map_err(|e| self.io(e))?;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += bytes.len() as u64;
        Ok(bytes.len())
    }

    /// Sends `p` and collects status packets from `ids` (in any order) until all arrived or the
    /// timeout; returns one slot per ID. `reply_lens[k]` is the data length expected from
    /// `ids[k]`: a reply of another length without an error is a late reply to an earlier
    /// request (one that timed out, e.g. while the machine was busy) and is ignored.
    fn transact(&mut self, p: &Packet, ids: &[u8], reply_lens: &[usize]) -> Result<Vec<Option<Status>>, ServoBusError> {
        let sent = self.send(p)?;
        let expected_bytes: usize = reply_lens.iter().map(|&l| status_len(l)).sum();
        let timeout = self.timeout_for(sent, expected_bytes, ids.len());
        let deadline = Instant::now() + timeout;
        let mut got: Vec<Option<Status>> = vec![None; ids.len()];
        // Once every expected byte has arrived, a missing reply was damaged, not late: stop
        // waiting (the caller retries at once instead of after the timeout).
        let mut received = 0usize;
        while got.iter().any(Option::is_none) && received < expected_bytes {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let n = {
                let ServoBus { port, buf, .. } = self;
                port.read(buf, deadline - now)
            }
            .map_err(|e| self.io(e))?;
            if n == 0 {
                continue;
            }
            self.stats.rx_bytes += n as u64;
            received += n;
            self.reader.push(&self.buf[..n]);
            loop {
                match self.reader.next_packet() {
                    Parsed::Packet(pkt, _) => {
                        let Some(status) = Status::from_packet(pkt) else { continue };
                        self.stats.rx_packets += 1;
                        if let Some(slot) = ids.iter().position(|&id| id == status.id) {
                            if status.data.len() != reply_lens[slot] && status.error.error.is_none() {
                                self.stats.stale_replies += 1;
                                continue;
                            }
                            if status.error.alert {
                                self.alerts.insert(status.id);
                            }
                            got[slot] = Some(status);
                        }
                    }
                    Parsed::Error(_) => self.stats.crc_errors += 1,
                    Parsed::Incomplete => break,
                }
            }
        }
        self.stats.timeouts += got.iter().filter(|g| g.is_none()).count() as u64;
        Ok(got)
    }

    /// One addressed request with a reply, retried on timeout/CRC error.
    fn request(&mut self, p: &Packet, what: &'static str, data_len: usize) -> Result<Status, ServoBusError> {
        let attempts = 1 + self.config.retries;
        for attempt in 0..attempts {
            if attempt > 0 {
                self.stats.retries += 1;
            }
            if let Some(status) = self.transact(p, &[p.id], &[data_len])?.pop().flatten() {
                if status.error.error.is_some() {
                    self.stats.status_errors += 1;
                    return Err(ServoBusError::Status { id: p.id, what, error: status.error });
                }
                return Ok(status);
            }
        }
        self.stats.failures += 1;
        Err(ServoBusError::NoReply { id: p.id, what, attempts })
    }

    /// Pings `id`: model number and firmware version.
    pub fn ping(&mut self, id: u8) -> Result<(u16, u8), ServoBusError> {
        let s = self.request(&inst::ping(id), "ping", 3)?;
        match s.data[..] {
            [lo, hi, fw] => Ok((u16::from_le_bytes([lo, hi]), fw)),
            _ => Err(ServoBusError::Length { id, what: "ping", got: s.data.len(), expected: 3 }),
        }
    }

    /// Reads `len` bytes at `address` from `id`.
    pub fn read(&mut self, id: u8, address: u16, len: u16) -> Result<Reply, ServoBusError> {
        let s = self.request(&inst::read(id, address, len), "read", len as usize)?;
        if s.data.len() != len as usize {
            return Err(ServoBusError::Length { id, what: "read", got: s.data.len(), expected: len as usize });
        }
        Ok(Reply { data: s.data, alert: s.error.alert })
    }

    /// Reads a field as a signed integer.
    pub fn read_field(&mut self, id: u8, f: Field) -> Result<i64, ServoBusError> {
        Ok(decode_signed(&self.read(id, f.address, f.size)?.data))
    }

    /// Writes `data` at `address` on `id` and waits for the acknowledgement.
    pub fn write(&mut self, id: u8, address: u16, data: &[u8]) -> Result<(), ServoBusError> {
        self.request(&inst::write(id, address, data), "write", 0).map(|_| ())
    }

    /// Writes a field from an integer (truncated to the field's size).
    pub fn write_field(&mut self, id: u8, f: Field, value: i64) -> Result<(), ServoBusError> {
        let bytes = (value as i32).to_le_bytes();
        self.write(id, f.address, &bytes[..f.size as usize])
    }

    /// Stages a write on `id` until [`ServoBus::action`].
    pub fn reg_write(&mut self, id: u8, address: u16, data: &[u8]) -> Result<(), ServoBusError> {
        self.request(&inst::reg_write(id, address, data), "reg write", 0).map(|_| ())
    }

    /// Executes staged writes on every servo (broadcast, no reply).
    pub fn action(&mut self) -> Result<(), ServoBusError> {
        self.send(&inst::action(crate::protocol::BROADCAST_ID)).map(|_| ())
    }

    /// Reboots `id` (clears hardware errors; torque comes back off).
    pub fn reboot(&mut self, id: u8) -> Result<(), ServoBusError> {
        self.request(&inst::reboot(id), "reboot", 0).map(|_| ())
    }

    /// Sync read of `len` bytes at `address` from `ids`: one result per ID. Servos that did not
    /// answer are asked again (alone in a new sync read) up to the retry limit.
    pub fn sync_read(
        &mut self,
        address: u16,
        len: u16,
        ids: &[u8],
    ) -> Result<Vec<Result<Reply, ServoBusError>>, ServoBusError> {
        let mut out: Vec<Option<Result<Reply, ServoBusError>>> = (0..ids.len()).map(|_| None).collect();
        let attempts = 1 + self.config.retries;
        for attempt in 0..attempts {
            let missing: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            if attempt > 0 {
                self.stats.retries += 1;
            }
            let ask: Vec<u8> = missing.iter().map(|&i| ids[i]).collect();
            let replies = self.transact(&inst::sync_read(address, len, &ask), &ask, &vec![len as usize; ask.len()])?;
            for (slot, reply) in missing.into_iter().zip(replies) {
                let Some(s) = reply else { continue };
                out[slot] = Some(if s.error.error.is_some() {
                    self.stats.status_errors += 1;
                    Err(ServoBusError::Status { id: s.id, what: "sync read", error: s.error })
                } else if s.data.len() != len as usize {
                    Err(ServoBusError::Length {
                        id: s.id,
                        what: "sync read",
                        got: s.data.len(),
                        expected: len as usize,
                    })
                } else {
                    Ok(Reply { data: s.data, alert: s.error.alert })
                });
            }
        }
        Ok(out
            .into_iter()
            .zip(ids)
            .map(|(r, &id)| {
                r.unwrap_or_else(|| {
                    self.stats.failures += 1;
                    Err(ServoBusError::NoReply { id, what: "sync read", attempts })
                })
            })
            .collect())
    }

    /// Bulk read: `(id, address, len)` per servo; one result per item (no retries: a bulk read
    /// serves configuration checks, where the caller reports what is missing).
    pub fn bulk_read(&mut self, items: &[(u8, u16, u16)]) -> Result<Vec<Result<Reply, ServoBusError>>, ServoBusError> {
        let ids: Vec<u8> = items.iter().map(|i| i.0).collect();
        let lens: Vec<usize> = items.iter().map(|i| i.2 as usize).collect();
        let replies = self.transact(&inst::bulk_read(items), &ids, &lens)?;
        Ok(replies
            .into_iter()
            .zip(items)
            .map(|(r, &(id, _, len))| match r {
                None => {
                    self.stats.failures += 1;
                    Err(ServoBusError::NoReply { id, what: "bulk read", attempts: 1 })
                }
                Some(s) if s.error.error.is_some() => {
                    Err(ServoBusError::Status { id, what: "bulk read", error: s.error })
                }
                Some(s) if s.data.len() != len as usize => {
                    Err(ServoBusError::Length { id, what: "bulk read", got: s.data.len(), expected: len as usize })
                }
                Some(s) => Ok(Reply { data: s.data, alert: s.error.alert }),
            })
            .collect())
    }

    /// Sync write of `len` bytes at `address` (broadcast, no reply).
    pub fn sync_write(&mut self, address: u16, len: u16, items: &[(u8, &[u8])]) -> Result<(), ServoBusError> {
        if let Some((id, d)) = items.iter().find(|(_, d)| d.len() != len as usize) {
            return Err(ServoBusError::BadRequest { id: *id, got: d.len(), expected: len as usize });
        }
        self.send(&inst::sync_write(address, len, items)).map(|_| ())
    }

    /// Bulk write: `(id, address, data)` per servo (broadcast, no reply).
    pub fn bulk_write(&mut self, items: &[(u8, u16, &[u8])]) -> Result<(), ServoBusError> {
        self.send(&inst::bulk_write(items)).map(|_| ())
    }
}

/// Little-endian signed decode of 1, 2 or 4 bytes.
pub fn decode_signed(b: &[u8]) -> i64 {
    match b.len() {
        1 => b[0] as i64,
        2 => i16::from_le_bytes([b[0], b[1]]) as i64,
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::status::{status_packet, StatusError};

    /// A port whose every request is answered by `replies` (bytes queued at once).
    struct Scripted {
        replies: Vec<u8>,
        pending: Vec<u8>,
    }

    impl Transport for Scripted {
        fn write_all(&mut self, _bytes: &[u8]) -> std::io::Result<()> {
            self.pending.extend_from_slice(&self.replies);
            Ok(())
        }
        fn read(&mut self, buf: &mut [u8], _timeout: Duration) -> std::io::Result<usize> {
            let n = self.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
        fn clear_input(&mut self) -> std::io::Result<()> {
            self.pending.clear();
            Ok(())
        }
        fn baud(&self) -> u32 {
            1_000_000
        }
        fn name(&self) -> String {
            "scripted".into()
        }
    }

    #[test]
    fn a_late_reply_to_an_earlier_write_is_not_taken_for_the_read() {
        // Servo 2's acknowledgement of an earlier write (no data) arrives just after the read
        // request went out, then the read's own reply (1 byte: 250).
        let ok = StatusError { alert: false, error: None };
        let mut replies = status_packet(2, ok, &[]).encode();
        replies.extend(status_packet(2, ok, &[250]).encode());
        let mut bus = ServoBus::new(Box::new(Scripted { replies, pending: Vec::new() }), ServoBusConfig::default());
        let reply = bus.read(2, 9, 1).expect("read");
        assert_eq!(reply.data, vec![250]);
        assert_eq!(bus.stats().stale_replies, 1);
        assert_eq!(bus.stats().retries, 0);
    }
}
