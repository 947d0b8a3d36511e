//! lvs-l7's response head parser (thin: one call; the parser is being rewritten strictly).
//! The first byte chooses a HEAD request and the head size limit. Invariant: no panic, and a
//! complete head lies inside the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, buf)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(first >> 1) * 64;
    if let Ok(Some(head_len)) = lvs_l7::fuzzing::parse_response(buf, first & 1 != 0, max) {
        assert!(head_len <= buf.len());
    }
});
