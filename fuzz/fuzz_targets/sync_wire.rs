//! The connection-sync wire format (thin; the format is being changed). The first byte's low
//! bit chooses: the rest as a datagram as it came, or the rest as a body that the target seals
//! with the key first (HMAC-SHA256 over the body, as `Builder::seal`), so that mutations reach
//! the record decoding behind the MAC. Then `open`, every record, and the freshness check
//! (lvs-common's authdgram, with the echo challenge) twice: the second time is a replay.
//! Invariant: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_common::authdgram::{Freshness, PeerFloors};
use lvs_director::sync::wire::{AuthKey, open};
use lvs_fuzz::{WIRE_KEY, sealed};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let msg = sealed(rest, mode & 1 != 0);
    let key = AuthKey::from_bytes(WIRE_KEY).expect("a valid key");
    if let Ok(opened) = open(&msg, &key) {
        let n = opened.records().count();
        assert!(n <= usize::from(opened.header.count) + 1);
        let h = opened.header;
        let mut fresh = Freshness::with_challenge(PeerFloors::in_memory(), 7);
        let echo = h.echoes.get(1);
        if fresh
            .check_echo(h.sender, 0, h.generation, h.seq, echo)
            .is_ok()
        {
            assert!(
                fresh
                    .check_echo(h.sender, 0, h.generation, h.seq, echo)
                    .is_err(),
                "the same datagram accepted twice"
            );
        }
    }
});
