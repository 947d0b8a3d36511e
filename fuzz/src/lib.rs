//! What the targets share: the checks on every configuration loader's answer, the sealing of
//! wire-format inputs, and the `packet` target's parameter block.

mod packet;

pub use packet::{
    FLAG_CSUM_PARTIAL, FLAG_CUT, FLAG_FIX_CHECKSUMS, FLAG_IPV6, FLAG_MIXED_TUNNEL,
    PACKET_PARAMS_LEN, PacketParams, fix_checksums, packet_input,
};

use lvs_common::ConfigError;

/// The file name the targets give the loaders.
pub const PATH: &str = "fuzz.toml";

/// A refusal is what `ConfigError` promises a sysadmin: one line (no control character from
/// the file either, which could rewrite the line shown), naming the file, pointing inside the
/// text when it points at all.
pub fn check_error(text: &str, e: &ConfigError) {
    let shown = e.to_string();
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\t'),
        "a configuration error must be one line, without control characters: {shown:?}"
    );
    assert!(
        shown.starts_with(PATH),
        "the error names another file: {shown:?}"
    );
    if let Some(l) = e.location() {
        let lines = text.split('\n').count();
        assert!(
            l.line >= 1 && l.line <= lines && l.column >= 1,
            "location {l:?} outside a text of {lines} lines: {shown:?}"
        );
        let line = text.split('\n').nth(l.line - 1).unwrap_or("");
        assert!(
            l.column <= line.chars().count() + 1,
            "column {} beyond line {} ({} characters): {shown:?}",
            l.column,
            l.line,
            line.chars().count()
        );
    }
}

/// Runs `load` on the input as text, checking its refusals.
pub fn fuzz_loader<T>(data: &[u8], load: impl FnOnce(&str) -> Result<T, ConfigError>) -> Option<T> {
    let text = std::str::from_utf8(data).ok()?;
    match load(text) {
        Ok(c) => Some(c),
        Err(e) => {
            check_error(text, &e);
            None
        }
    }
}

/// The key the wire-format targets seal and open with.
pub const WIRE_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The message a wire-format target opens: with `seal`, `body` followed by its HMAC-SHA256
/// under [`WIRE_KEY`] (how both heartbeats and sync datagrams are sealed), so that mutations
/// get past the MAC to the decoding; without, `body` as it came.
pub fn sealed(body: &[u8], seal: bool) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut msg = body.to_vec();
    if seal {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WIRE_KEY).expect("any key length");
        mac.update(body);
        msg.extend_from_slice(&mac.finalize().into_bytes());
    }
    msg
}
