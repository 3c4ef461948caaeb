//! Everything the CLI prints for the user goes through [`outln!`](crate::outln): a write error is
//! returned (not a panic), and when standard output was closed by the reader
//! (`armstack dataset info D | head`), `main` exits quietly with status 141, as a Unix tool
//! killed by SIGPIPE would.

use std::io::{ErrorKind, Write};

/// Standard output could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
pub struct StdoutError(#[source] pub std::io::Error);

/// The exit status after the reader closed standard output (128 + SIGPIPE).
pub const CLOSED_STDOUT_STATUS: u8 = 141;

/// Writes one line to standard output.
pub fn write_line(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).map_err(StdoutError)
}

/// Whether `error` (or one of its causes) is standard output closed by its reader.
pub fn is_closed_stdout(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.downcast_ref::<StdoutError>().is_some_and(|s| s.0.kind() == ErrorKind::BrokenPipe))
}

/// `println!` that returns a [`StdoutError`] instead of panicking: `outln!("{x}")?`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write_line(format_args!($($arg)*))
    };
}
