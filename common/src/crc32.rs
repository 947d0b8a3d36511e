//! CRC-32 (IEEE 802.3: the one of zlib and Ethernet; reflected polynomial 0xEDB88320, initial
//! value and final XOR all ones). Both on-disk and on-wire formats that carry one (heartbeatd's
//! serial frames, the lock manager's WAL and snapshots) rely on exactly these parameters, so
//! changing any of them breaks every file and peer already out there.

/// The byte-at-a-time table, computed at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i: u32 = 0;
    while i < 256 {
        let mut c = i;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i as usize] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_parts(&[data])
}

/// CRC-32 of `parts` concatenated, without copying them into one buffer first.
pub fn crc32_parts(parts: &[&[u8]]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            let low = c.to_le_bytes()[0];
            c = TABLE[usize::from(low ^ b)] ^ (c >> 8);
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_parts(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32_parts(&[]), 0);
    }

    proptest! {
        #[test]
        fn parts_are_the_crc_of_their_concatenation(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cut in any::<prop::sample::Index>(),
        ) {
            let at = cut.index(data.len() + 1);
            let (a, b) = data.split_at(at);
            prop_assert_eq!(crc32_parts(&[a, b]), crc32(&data));
        }
    }
}
