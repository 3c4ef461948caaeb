//! The emulator on a pseudo-terminal: the driver opens the slave side as a serial port, so the
//! serialport transport, timeouts and retries all run for real.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::protocol::PacketReader;

use super::Emulator;

/// A running pty server; stops when dropped.
pub struct PtyServer {
    path: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    // Keeps the slave open, so the master never sees a hang-up between driver sessions.
    _slave: OwnedFd,
}

fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

impl PtyServer {
    pub(super) fn start(emulator: Emulator) -> io::Result<PtyServer> {
        // SAFETY: plain libc calls on descriptors this function owns; each result is checked.
        let (master, slave, path) = unsafe {
            let m = check(libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY), "posix_openpt")?;
            let master = OwnedFd::from_raw_fd(m);
            check(libc::grantpt(m), "grantpt")?;
            check(libc::unlockpt(m), "unlockpt")?;
            let mut name = [0 as libc::c_char; 128];
            check(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), "ptsname_r")?;
            let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned();
            let cpath = std::ffi::CString::new(path.clone()).map_err(io::Error::other)?;
            let s = check(libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NOCTTY), "opening the pty slave")?;
            let slave = OwnedFd::from_raw_fd(s);
            // Raw mode on both ends: no echo, no line editing, no CR/LF translation.
            for fd in [m, s] {
                let mut t: libc::termios = std::mem::zeroed();
                check(libc::tcgetattr(fd, &mut t), "tcgetattr")?;
                libc::cfmakeraw(&mut t);
                check(libc::tcsetattr(fd, libc::TCSANOW, &t), "tcsetattr")?;
            }
            (master, slave, path)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("servo-emulator".into())
            .spawn(move || serve(&emulator, &master, &flag))?;
        tracing::info!(path = %path, "servo emulator serving on a pseudo-terminal");
        Ok(PtyServer { path, stop, thread: Some(thread), _slave: slave })
    }

    /// The serial device path to open (`/dev/pts/N`).
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for PtyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(emulator: &Emulator, master: &OwnedFd, stop: &AtomicBool) {
    let fd = master.as_raw_fd();
    let mut reader = PacketReader::new();
    let mut buf = [0u8; 4096];
    let mut last_rx = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 20) };
        if ready <= 0 || pfd.revents & libc::POLLIN == 0 {
            continue;
        }
        // SAFETY: reading into a buffer we own, its length passed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        // A servo's parser restarts after an inter-byte gap (a corrupted length field must not
        // swallow the next request); the host writes a packet in one go, well within 2 ms.
        if last_rx.elapsed() > std::time::Duration::from_millis(2) {
            reader.clear();
        }
        last_rx = std::time::Instant::now();
        let (reply, busy) = emulator.exchange(&buf[..n as usize], &mut reader);
        if !busy.is_zero() {
            std::thread::sleep(busy);
        }
        let mut written = 0;
        while written < reply.len() {
            // SAFETY: writing from a buffer we own, within its length.
            let w = unsafe { libc::write(fd, reply[written..].as_ptr().cast(), reply.len() - written) };
            if w <= 0 {
                break;
            }
            written += w as usize;
        }
    }
}
