//! Byte transports under the Dynamixel client: a serial port (the U2D2 adapter, or the
//! emulator's pseudo-terminal) or the in-process emulator port.

mod serial;

use std::io;
use std::time::Duration;

pub use serial::{set_low_latency, LatencyTimer, SerialTransport};

/// A half-duplex byte pipe to a servo chain.
pub trait Transport: Send {
    /// Sends all bytes.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads what is available into `buf`, waiting up to `timeout` for the first byte;
    /// `Ok(0)` when nothing arrived in time.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Discards bytes received and not read yet.
    fn clear_input(&mut self) -> io::Result<()>;
    /// Baud rate, bit/s (for timeouts).
    fn baud(&self) -> u32;
    /// Where the bytes go (`/dev/ttyDXL`, `emulator`), for messages.
    fn name(&self) -> String;
}

/// Time on the wire for `bytes` at `baud` (8N1: 10 bits per byte).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 10.0 / baud.max(1) as f64)
}
