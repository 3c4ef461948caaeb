//! Property tests of the packet parser: encode/parse round trips, re-encoding of whatever parses,
//! and no panic on arbitrary bytes.

use proptest::prelude::*;
use robot_driver::fuzzing::parse_and_execute;
use robot_driver::protocol::{instruction, Packet, PacketReader, Parsed};

fn packet() -> impl Strategy<Value = Packet> {
    // Bias parameters towards FF and FD so stuffing is exercised often.
    let byte = prop_oneof![Just(0xFFu8), Just(0xFDu8), Just(0x00u8), any::<u8>()];
    (any::<u8>(), any::<u8>(), proptest::collection::vec(byte, 0..200)).prop_map(|(id, instruction, params)| Packet {
        id,
        instruction,
        params,
    })
}

/// Everything a reader yields from `bytes`: packets with their wire bytes, and the error count.
fn drain(bytes: &[u8], chunk: usize) -> (Vec<(Packet, Vec<u8>)>, usize) {
    let mut r = PacketReader::new();
    let (mut packets, mut errors) = (Vec::new(), 0);
    for piece in bytes.chunks(chunk.max(1)) {
        r.push(piece);
        loop {
            match r.next_packet() {
                Parsed::Packet(p, wire) => packets.push((p, wire)),
                Parsed::Error(_) => errors += 1,
                Parsed::Incomplete => break,
            }
        }
    }
    (packets, errors)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_parse_is_identity(p in packet(), chunk in 1usize..64) {
        let wire = p.encode();
        prop_assert_eq!(wire.len(), p.wire_len());
        let (packets, errors) = drain(&wire, chunk);
        prop_assert_eq!(errors, 0);
        prop_assert_eq!(packets.len(), 1);
        prop_assert_eq!(&packets[0].0, &p);
        prop_assert_eq!(&packets[0].1, &wire);
    }

    #[test]
    fn every_parsed_packet_reencodes_to_its_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let (packets, _) = drain(&bytes, chunk);
        for (p, wire) in packets {
            prop_assert_eq!(p.encode(), wire);
        }
    }

    #[test]
    fn packets_survive_surrounding_noise(p in packet(), noise in proptest::collection::vec(any::<u8>(), 0..40), q in packet()) {
        // Noise that cannot contain a header prefix is skipped; the packets after it parse.
        let noise: Vec<u8> = noise.into_iter().map(|b| if b == 0xFF { 0x00 } else { b }).collect();
        let mut bytes = noise.clone();
        bytes.extend(p.encode());
        bytes.extend(q.encode());
        let (packets, _) = drain(&bytes, 7);
        let got: Vec<Packet> = packets.into_iter().map(|(p, _)| p).collect();
        prop_assert_eq!(got, vec![p, q]);
    }

    #[test]
    fn corrupted_packets_never_panic(p in packet(), flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let mut wire = p.encode();
        let n = wire.len();
        for (at, mask) in flips {
            wire[at % n] ^= mask;
        }
        let (packets, _) = drain(&wire, 5);
        for (q, w) in packets {
            prop_assert_eq!(q.encode(), w);
        }
    }

    #[test]
    fn the_fuzz_body_holds_on_random_and_mutated_instruction_streams(
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        p in packet(),
        id in 0u8..4,
        addr in 0u16..300,
        len in 0u16..40,
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..3),
    ) {
        parse_and_execute(&noise);
        // Valid instructions of every kind the chain executes, then a random packet, with a few
        // bytes flipped: nothing may panic.
        let data: Vec<u8> = [0x00u8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00].into_iter().chain([
            instruction::ping(id),
            instruction::read(id, addr, len),
            instruction::write(id, addr, &noise[..noise.len().min(8)]),
            instruction::reg_write(id, addr, &[1, 2]),
            instruction::action(0xFE),
            instruction::sync_read(addr, len, &[1, 2, 3, 9]),
            instruction::sync_write(addr, 2, &[(1, &[1, 2][..]), (2, &[3, 4][..])]),
            instruction::bulk_read(&[(1, addr, len), (3, 0, 4)]),
            instruction::bulk_write(&[(2, addr, &[7, 7, 7][..])]),
            instruction::reboot(id),
            p,
        ].iter().flat_map(Packet::encode)).collect();
        let mut data = data;
        let n = data.len();
        for (at, mask) in flips {
            data[at % n] ^= mask;
        }
        parse_and_execute(&data);
    }
}
