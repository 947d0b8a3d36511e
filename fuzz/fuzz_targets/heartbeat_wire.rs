//! heartbeatd's wire format (thin; the format is being changed). The first byte's low bit
//! chooses: the rest as a datagram as it came, or the rest as a body that the target seals with
//! the key first (HMAC-SHA256 over the body, as `Heartbeat::seal`), so that mutations reach
//! the decoding behind the MAC. Then `Heartbeat::open` and a peer's `Verifier::verify`.
//! Invariant: no panic; what `open` accepts seals back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_fuzz::{WIRE_KEY, sealed};
use lvs_heartbeatd::Medium;
use lvs_heartbeatd::wire::{AuthKey, Heartbeat, Verifier};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let msg = sealed(rest, mode & 1 != 0);
    let key = AuthKey::from_bytes(WIRE_KEY).expect("a valid key");
    if let Ok(hb) = Heartbeat::open(&msg, &key) {
        assert_eq!(&hb.seal(&key)[..], &msg[..], "open/seal round trip");
    }
    let mut v = Verifier::new(key, 1, &[2, 3]);
    let medium = if mode & 2 != 0 {
        Medium::Serial
    } else {
        Medium::Udp
    };
    let _ = v.verify(medium, &msg);
});
