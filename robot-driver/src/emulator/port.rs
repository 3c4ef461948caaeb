//! The in-process port: the driver's client talks to the emulator without a serial device.

use std::io;
use std::time::{Duration, Instant};

use crate::protocol::PacketReader;
use crate::transport::Transport;

use super::Emulator;

/// A [`Transport`] whose far end is an [`Emulator`].
pub struct EmulatedPort {
    emulator: Emulator,
    reader: PacketReader,
    pending: Vec<u8>,
    ready_at: Instant,
}

impl EmulatedPort {
    pub(super) fn new(emulator: Emulator) -> Self {
        EmulatedPort { emulator, reader: PacketReader::new(), pending: Vec::new(), ready_at: Instant::now() }
    }
}

impl Transport for EmulatedPort {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Each write is one whole packet: a servo's parser restarts after the inter-packet gap,
        // so a corrupted length field cannot swallow the next request.
        self.reader.clear();
        let (reply, busy) = self.emulator.exchange(bytes, &mut self.reader);
        self.pending.extend(reply);
        self.ready_at = Instant::now() + busy;
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let now = Instant::now();
        if self.pending.is_empty() || self.ready_at > now + timeout {
            std::thread::sleep(timeout);
            return Ok(0);
        }
        if self.ready_at > now {
            std::thread::sleep(self.ready_at - now);
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }

    fn clear_input(&mut self) -> io::Result<()> {
        self.pending.clear();
        Ok(())
    }

    fn baud(&self) -> u32 {
        self.emulator.config().baud
    }

    fn name(&self) -> String {
        "emulator (in process)".into()
    }
}
