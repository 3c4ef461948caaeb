//! Packets from the ROBOTIS Protocol 2.0 e-Manual's worked examples, byte for byte.

use super::instruction as inst;
use super::*;

fn status(bytes: &[u8]) -> Status {
    Status::from_packet(parse_one(bytes).expect("example parses")).expect("a status packet")
}

#[test]
fn ping_instruction_and_status() {
    assert_eq!(inst::ping(1).encode(), [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01, 0x19, 0x4E]);
    // ID 1 answers model 1030 (0x0406, XM430-W210), firmware 0x26.
    let s = status(&[0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x07, 0x00, 0x55, 0x00, 0x06, 0x04, 0x26, 0x65, 0x5D]);
    assert_eq!((s.id, s.error, s.data.as_slice()), (1, StatusError::default(), &[0x06, 0x04, 0x26][..]));
}

#[test]
fn read_present_position() {
    assert_eq!(
        inst::read(1, 132, 4).encode(),
        [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x07, 0x00, 0x02, 0x84, 0x00, 0x04, 0x00, 0x1D, 0x15]
    );
    let s = status(&[0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x08, 0x00, 0x55, 0x00, 0xA6, 0x00, 0x00, 0x00, 0x8C, 0xC0]);
    assert_eq!(u32::from_le_bytes(s.data.try_into().expect("4 bytes")), 166);
}

#[test]
fn write_goal_position() {
    assert_eq!(
        inst::write(1, 116, &512u32.to_le_bytes()).encode(),
        [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x09, 0x00, 0x03, 0x74, 0x00, 0x00, 0x02, 0x00, 0x00, 0xCA, 0x89]
    );
    let s = status(&[0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x04, 0x00, 0x55, 0x00, 0xA1, 0x0C]);
    assert!(s.data.is_empty() && s.error == StatusError::default());
}

#[test]
fn reboot() {
    assert_eq!(inst::reboot(1).encode(), [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x08, 0x2F, 0x4E]);
}

#[test]
fn reg_write_and_action() {
    assert_eq!(
        inst::reg_write(1, 104, &200u32.to_le_bytes()).encode(),
        [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x09, 0x00, 0x04, 0x68, 0x00, 0xC8, 0x00, 0x00, 0x00, 0xAE, 0x8E]
    );
    assert_eq!(inst::action(1).encode(), [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x05, 0x02, 0xCE]);
}

#[test]
fn sync_read_and_sync_write() {
    assert_eq!(
        inst::sync_read(132, 4, &[1, 2]).encode(),
        [0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x09, 0x00, 0x82, 0x84, 0x00, 0x04, 0x00, 0x01, 0x02, 0xCE, 0xFA]
    );
    let s = status(&[0xFF, 0xFF, 0xFD, 0x00, 0x02, 0x08, 0x00, 0x55, 0x00, 0x1F, 0x08, 0x00, 0x00, 0xBA, 0xBE]);
    assert_eq!((s.id, u32::from_le_bytes(s.data.try_into().expect("4 bytes"))), (2, 2079));
    let (a, b) = (150u32.to_le_bytes(), 170u32.to_le_bytes());
    assert_eq!(
        inst::sync_write(116, 4, &[(1, &a[..]), (2, &b[..])]).encode(),
        [
            0xFF, 0xFF, 0xFD, 0x00, 0xFE, 0x11, 0x00, 0x83, 0x74, 0x00, 0x04, 0x00, 0x01, 0x96, 0x00, 0x00, 0x00, 0x02,
            0xAA, 0x00, 0x00, 0x00, 0x82, 0x87
        ]
    );
}

#[test]
fn status_error_byte() {
    let e = StatusError::from_byte(0x87);
    assert!(e.alert);
    assert_eq!(e.error, Some(ErrorNumber::Access));
    assert_eq!(e.to_byte(), 0x87);
    assert_eq!(StatusError::from_byte(0x80), StatusError { alert: true, error: None });
    assert_eq!(HardwareError(0x24).names(), ["overheating", "overload"]);
}

#[test]
fn stuffed_packet_round_trips_with_stuffed_length() {
    // Writing FF FF FD xx puts the header pattern in the body: one FD is stuffed, LEN grows by 1.
    let p = inst::write(7, 116, &[0xFF, 0xFF, 0xFD, 0x01]);
    let wire = p.encode();
    assert_eq!(u16::from_le_bytes([wire[5], wire[6]]), 3 + 2 + 4 + 1);
    assert_eq!(&wire[8..15], &[0x74, 0x00, 0xFF, 0xFF, 0xFD, 0xFD, 0x01]);
    assert_eq!(parse_one(&wire), Ok(p));
}

#[test]
fn reader_resynchronises_after_noise_and_crc_errors() {
    let good = inst::ping(3).encode();
    let mut bad = inst::ping(4).encode();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    let mut r = PacketReader::new();
    r.push(&[0x00, 0xFF, 0x12]);
    r.push(&bad);
    r.push(&good[..5]);
    assert!(matches!(r.next_packet(), Parsed::Error(ParseError::Crc { id: 4, .. })));
    assert_eq!(r.next_packet(), Parsed::Incomplete);
    r.push(&good[5..]);
    match r.next_packet() {
        Parsed::Packet(p, wire) => {
            assert_eq!(p.id, 3);
            assert_eq!(wire, good);
        }
        other => panic!("expected the ping, got {other:?}"),
    }
    assert_eq!(r.next_packet(), Parsed::Incomplete);
}
