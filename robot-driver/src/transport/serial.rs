//! The serial transport (serialport crate), and the Linux FTDI latency-timer hint.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort};

use super::Transport;

/// A serial port at a fixed baud rate, 8N1, no flow control.
pub struct SerialTransport {
    port: Box<dyn SerialPort>,
    path: String,
    baud: u32,
}

impl SerialTransport {
    /// Opens `path` at `baud` bit/s.
    pub fn open(path: &str, baud: u32) -> io::Result<SerialTransport> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(10))
            .data_bits(serialport::DataBits::Eight)
            .parity(serialport::Parity::None)
            .stop_bits(serialport::StopBits::One)
            .flow_control(serialport::FlowControl::None)
            .open()
            .map_err(|e| io::Error::other(format!("opening {path} at {baud} baud: {e}")))?;
        Ok(SerialTransport { port, path: path.to_string(), baud })
    }
}

impl Transport for SerialTransport {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.port.set_timeout(timeout.max(Duration::from_micros(100))).map_err(io::Error::other)?;
        match self.port.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn clear_input(&mut self) -> io::Result<()> {
        self.port.clear(ClearBuffer::Input).map_err(io::Error::other)
    }

    fn baud(&self) -> u32 {
        self.baud
    }

    fn name(&self) -> String {
        self.path.clone()
    }
}

/// What happened to the USB-serial latency timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LatencyTimer {
    /// Already at 1 ms.
    AlreadyLow,
    /// Lowered from this many ms to 1 ms.
    Lowered(u32),
    /// Not a USB-serial device (a pseudo-terminal, a native UART): nothing to set.
    NotApplicable,
    /// Could not be set; the message says how to set it by hand.
    Failed(String),
}

/// Sets the FTDI latency timer of the USB-serial device behind `port` (e.g. `/dev/ttyDXL` →
/// `ttyUSB0`) to 1 ms. The default 16 ms adds up to 16 ms to every reply.
pub fn set_low_latency(port: &Path) -> LatencyTimer {
    let real: PathBuf = std::fs::canonicalize(port).unwrap_or_else(|_| port.to_path_buf());
    let Some(tty) = real.file_name().and_then(|n| n.to_str()) else {
        return LatencyTimer::NotApplicable;
    };
    let file = PathBuf::from(format!("/sys/bus/usb-serial/devices/{tty}/latency_timer"));
    let Ok(current) = std::fs::read_to_string(&file) else {
        return LatencyTimer::NotApplicable;
    };
    let current: u32 = current.trim().parse().unwrap_or(16);
    if current <= 1 {
        return LatencyTimer::AlreadyLow;
    }
    match std::fs::write(&file, "1") {
        Ok(()) => LatencyTimer::Lowered(current),
        Err(e) => LatencyTimer::Failed(format!(
            "{}: latency timer is {current} ms and could not be set to 1 ms ({e}); run \
             `echo 1 | sudo tee {}` or add a udev rule with ATTR{{latency_timer}}=\"1\"",
            port.display(),
            file.display()
        )),
    }
}
