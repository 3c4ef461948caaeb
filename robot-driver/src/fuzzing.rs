//! The body of the parser fuzz target (`robot-driver/fuzz`), here so the property tests run the
//! same checks on stable Rust in CI.

use crate::emulator::{EmulatedServo, ServoChain};
use crate::protocol::{PacketReader, Parsed, Status};

/// Feeds `data` to a [`PacketReader`] in chunks whose sizes come from the data itself; asserts
/// that each parsed packet re-encodes to its wire bytes, splits status packets, and executes
/// instruction packets on a small emulated chain. Panics on any violation.
pub fn parse_and_execute(data: &[u8]) {
    let chunk = data.first().map_or(1, |b| (*b as usize % 17) + 1);
    let model = &crate::control_table::MODELS[0];
    let mut chain = ServoChain { servos: (1..=3).map(|id| EmulatedServo::new(id, model, 2048.0)).collect() };
    let mut reader = PacketReader::new();
    for piece in data.chunks(chunk) {
        reader.push(piece);
        loop {
            match reader.next_packet() {
                Parsed::Packet(p, wire) => {
                    assert_eq!(p.encode(), wire, "a parsed packet re-encodes to its bytes");
                    if p.is_status() {
                        let _ = Status::from_packet(p);
                    } else {
                        for reply in chain.execute(&p) {
                            assert!(reply.is_status());
                        }
                        chain.step(0.001);
                    }
                }
                Parsed::Error(_) => {}
                Parsed::Incomplete => break,
            }
        }
    }
}
