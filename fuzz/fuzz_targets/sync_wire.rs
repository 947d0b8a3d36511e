//! The connection-sync wire format (thin; the format is being changed). The first byte's low
//! bit chooses: the rest as a datagram as it came, or the rest as a body that the target seals
//! with the key first (HMAC-SHA256 over the body, as `Builder::seal`), so that mutations reach
//! the record decoding behind the MAC. Then `open`, every record, and the replay window.
//! Invariant: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_director::sync::wire::{AuthKey, Replay, open};
use lvs_fuzz::{WIRE_KEY, sealed};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let msg = sealed(rest, mode & 1 != 0);
    let key = AuthKey::from_bytes(WIRE_KEY);
    if let Ok(opened) = open(&msg, &key) {
        let n = opened.records().count();
        assert!(n <= usize::from(opened.header.count) + 1);
        let mut replay = Replay::default();
        let _ = replay.check(opened.header.boot_id, opened.header.seq);
        let _ = replay.check(opened.header.boot_id, opened.header.seq);
    }
});
