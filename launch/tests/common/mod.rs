//! Helpers shared by the CLI tests: the `armstack` binary in a temp folder with a private bus.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `armstack` running in `dir`, its bus sessions discovering each other in `dir/bus`.
pub fn armstack(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_armstack"));
    c.current_dir(dir).env("ARMSTACK_BUS_DIR", dir.join("bus")).env("RUST_LOG", "warn");
    c
}

/// Runs `cmd`, asserts success, returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run armstack");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "failed: {cmd:?}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cmd`, asserts failure, returns stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run armstack");
    assert!(!out.status.success(), "expected a failure: {cmd:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The bytes of the checkpoint `path` with each parameter's random id (a MessagePack string under
/// the key "id", written beside its bytes) zeroed: two trainings that computed the same weights
/// give the same result.
pub fn checkpoint_bytes_without_ids(path: &Path) -> Vec<u8> {
    let mut b = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut i = 0;
    while i + 4 < b.len() {
        if &b[i..i + 3] == b"\xa2id" && (0xa0..=0xbf).contains(&b[i + 3]) {
            let len = usize::from(b[i + 3] & 0x1f);
            let end = (i + 4 + len).min(b.len());
            b[i + 4..end].fill(0);
            i = end;
        } else {
            i += 1;
        }
    }
    b
}
