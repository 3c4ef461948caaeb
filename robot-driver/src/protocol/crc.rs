//! CRC-16 of Dynamixel Protocol 2.0 (CRC-16/BUYPASS: polynomial 0x8005, initial value 0, no
//! reflection, no final XOR), computed over every byte of a packet from the header up to the last
//! parameter, after byte stuffing.

/// The 256-entry table for polynomial 0x8005 (MSB first), built at compile time.
const TABLE: [u16; 256] = build_table();

const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x8005 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Updates `crc` with `bytes`; start from 0.
pub fn update(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        let idx = ((crc >> 8) as u8 ^ b) as usize;
        crc = (crc << 8) ^ TABLE[idx];
    }
    crc
}

/// CRC of `bytes` from an initial value of 0.
pub fn crc16(bytes: &[u8]) -> u16 {
    update(0, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_crc16_buypass() {
        // The catalogue check value of CRC-16/BUYPASS over ASCII "123456789".
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }

    #[test]
    fn ping_example_from_the_specification() {
        // e-Manual, Protocol 2.0, Ping example: FF FF FD 00 01 03 00 01 | CRC 19 4E (low byte first).
        let body = [0xFF, 0xFF, 0xFD, 0x00, 0x01, 0x03, 0x00, 0x01];
        assert_eq!(crc16(&body), 0x4E19);
    }

    #[test]
    fn incremental_update_equals_one_pass() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(update(update(0, &bytes[..100]), &bytes[100..]), crc16(&bytes));
    }
}
