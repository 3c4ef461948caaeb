//! Fuzzes the Protocol 2.0 parser and the emulator's instruction handling: arbitrary bytes, fed
//! in arbitrary chunks, must never panic; every packet parsed must re-encode to the exact bytes
//! it came from; every parsed instruction must execute on the emulated chain without panicking.
//!
//! Run: `cd robot-driver/fuzz && cargo +nightly fuzz run packet_parser`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use robot_driver::fuzzing::parse_and_execute;

fuzz_target!(|data: &[u8]| {
    parse_and_execute(data);
});
