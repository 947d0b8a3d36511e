//! lvs-l7's request head parser (thin: one call; the parser is being rewritten strictly).
//! Invariant: no panic, and a complete head lies inside the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head_len, _upstream))) = lvs_l7::fuzzing::parse_request(data) {
        assert!(head_len <= data.len());
    }
});
