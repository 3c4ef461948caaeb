//! Ctrl-C handling: the first Ctrl-C asks every node to stop cleanly; a second one exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the Ctrl-C handler and returns the stop flag nodes poll.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second Ctrl-C: exiting now");
            std::process::exit(130);
        }
        eprintln!("stopping… (Ctrl-C again to exit at once)");
    })?;
    Ok(stop)
}
