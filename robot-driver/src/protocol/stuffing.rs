//! Byte stuffing of Protocol 2.0: inside the instruction and parameter field, every occurrence of
//! the header pattern `FF FF FD` is followed by an extra `FD`, so the header `FF FF FD 00` never
//! appears inside a packet body. The length field counts the stuffed bytes.

/// Appends `raw` to `out` with stuffing applied.
pub fn stuff_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut run = 0usize; // consecutive FF bytes just before this one (capped at 2)
    for &b in raw {
        out.push(b);
        if b == 0xFD && run >= 2 {
            out.push(0xFD);
            run = 0;
        } else if b == 0xFF {
            run = (run + 1).min(2);
        } else {
            run = 0;
        }
    }
}

/// Stuffed copy of `raw`.
pub fn stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3);
    stuff_into(raw, &mut out);
    out
}

/// Number of bytes `raw` takes once stuffed.
pub fn stuffed_len(raw: &[u8]) -> usize {
    let mut n = raw.len();
    let mut run = 0usize;
    for &b in raw {
        if b == 0xFD && run >= 2 {
            n += 1;
            run = 0;
        } else if b == 0xFF {
            run = (run + 1).min(2);
        } else {
            run = 0;
        }
    }
    n
}

/// Removes stuffing. Returns `None` when the input is not canonically stuffed (an `FF FF FD`
/// not followed by the stuffing `FD`), which a correct sender never produces.
pub fn unstuff(stuffed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stuffed.len());
    let mut run = 0usize;
    let mut i = 0;
    while i < stuffed.len() {
        let b = stuffed[i];
        out.push(b);
        if b == 0xFD && run >= 2 {
            if stuffed.get(i + 1) != Some(&0xFD) {
                return None;
            }
            i += 1; // skip the stuffing byte
            run = 0;
        } else if b == 0xFF {
            run = (run + 1).min(2);
        } else {
            run = 0;
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pattern_gets_one_extra_fd() {
        assert_eq!(stuff(&[0x01, 0xFF, 0xFF, 0xFD, 0x02]), vec![0x01, 0xFF, 0xFF, 0xFD, 0xFD, 0x02]);
        assert_eq!(stuff(&[0xFF, 0xFF, 0xFF, 0xFD]), vec![0xFF, 0xFF, 0xFF, 0xFD, 0xFD]);
        // Not the pattern: unchanged.
        assert_eq!(stuff(&[0xFF, 0xFD, 0xFF, 0xFD]), vec![0xFF, 0xFD, 0xFF, 0xFD]);
        // An FD after a stuffed FD starts no new pattern.
        assert_eq!(stuff(&[0xFF, 0xFF, 0xFD, 0xFD]), vec![0xFF, 0xFF, 0xFD, 0xFD, 0xFD]);
        assert_eq!(stuffed_len(&[0xFF, 0xFF, 0xFD, 0xFF, 0xFF, 0xFD]), 8);
    }

    #[test]
    fn round_trip_and_rejects_unstuffed_pattern() {
        let raw = [0xFF, 0xFF, 0xFD, 0xFD, 0xFF, 0xFF, 0xFD, 0x00, 0xFF];
        let s = stuff(&raw);
        assert_eq!(s.len(), stuffed_len(&raw));
        assert_eq!(unstuff(&s).as_deref(), Some(&raw[..]));
        assert_eq!(unstuff(&[0xFF, 0xFF, 0xFD, 0x00]), None);
        assert_eq!(unstuff(&[0xFF, 0xFF, 0xFD]), None);
    }
}
