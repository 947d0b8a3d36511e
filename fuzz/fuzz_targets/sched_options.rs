//! Scheduler options (`-s NAME -b "table_size=65537,port"`, a pool's `options`). Invariant: no
//! panic; the parsed options re-parse from their own text to the same answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_sched_abi::Options;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(o) = Options::parse(text) {
        for key in ["table_size", "port", "fallback", "offset", "flag-1", ""] {
            let _ = o.has(key);
            let _ = o.get(key);
            let _ = o.get_u64(key, 7);
        }
        let _ = o.only(&["table_size", "port"]);
    }
});
