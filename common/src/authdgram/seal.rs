//! Sealing and opening: the tag is HMAC-SHA256 of everything before it and fills the last
//! [`MAC_LEN`] bytes of the datagram.

use hmac::Mac;

use super::AuthKey;

/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;

/// Why [`open`] refused a datagram (before anything of its body was parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than the magic and the tag.
    #[error("too short")]
    TooShort,
    /// Another protocol's datagram (the magic is public: checked before the MAC, so that
    /// strangers are counted apart from forgeries).
    #[error("bad magic")]
    BadMagic,
    /// The tag does not match: another key, forged or corrupted.
    #[error("bad MAC")]
    BadMac,
    /// Authentic, but of an older layout version than the one asked for (a peer not yet
    /// upgraded, or a replay of one): refused.
    #[error("old version")]
    OldVersion,
    /// Authentic, but of a newer (unknown) layout version.
    #[error("unknown version")]
    NewVersion,
}

/// The tag of `body`.
pub fn tag(key: &AuthKey, body: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = key.mac();
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The tag of the concatenation of `parts`, for a stream protocol that MACs a frame with
/// data it does not send (a sequence number, handshake nonces) without copying it together.
pub fn tag_parts(key: &AuthKey, parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac = key.mac();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `t` is the tag of the concatenation of `parts`, compared in constant time.
pub fn verify_parts(key: &AuthKey, parts: &[&[u8]], t: &[u8]) -> bool {
    let mut mac = key.mac();
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(t).is_ok()
}

/// Writes the tag of `buf[..body_len]` into `buf[body_len..body_len + MAC_LEN]` and returns
/// the sealed datagram. `buf` must have room for the tag.
pub fn seal_in_place<'a>(key: &AuthKey, buf: &'a mut [u8], body_len: usize) -> &'a [u8] {
    let t = tag(key, &buf[..body_len]);
    buf[body_len..body_len + MAC_LEN].copy_from_slice(&t);
    &buf[..body_len + MAC_LEN]
}

/// The authentic body of `bytes` (everything before the tag) whose layout version, the
/// byte right after `magic`, is `version`; or why not. Only the length and the public
/// `magic` are looked at before the tag is compared (in constant time); the caller parses
/// the body only after this succeeded. Never panics.
pub fn open<'a>(
    key: &AuthKey,
    magic: &[u8],
    version: u8,
    bytes: &'a [u8],
) -> Result<&'a [u8], OpenError> {
    let body = open_any(key, magic, bytes)?;
    match body.get(magic.len()) {
        Some(&v) if v == version => Ok(body),
        Some(&v) if v < version => Err(OpenError::OldVersion),
        _ => Err(OpenError::NewVersion),
    }
}

fn open_any<'a>(key: &AuthKey, magic: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], OpenError> {
    if bytes.len() < magic.len() + MAC_LEN {
        return Err(OpenError::TooShort);
    }
    if !bytes.starts_with(magic) {
        return Err(OpenError::BadMagic);
    }
    let (body, t) = bytes.split_at(bytes.len() - MAC_LEN);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(t).map_err(|_| OpenError::BadMac)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> AuthKey {
        AuthKey::from_bytes(b"0123456789abcdef-shared").unwrap()
    }

    #[test]
    fn round_trip_and_refusals() {
        let mut buf = [0u8; 64];
        buf[..4].copy_from_slice(b"TEST");
        buf[4..10].copy_from_slice(b"hello!");
        let sealed = seal_in_place(&key(), &mut buf, 10).to_vec();
        assert_eq!(sealed.len(), 10 + MAC_LEN);
        let k = key();
        // Byte 4, right after the magic, is the version: `h`.
        let open_v = |v: u8, bytes: &[u8]| open(&k, b"TEST", v, bytes).map(<[u8]>::to_vec);
        assert_eq!(open_v(b'h', &sealed), Ok(sealed[..10].to_vec()));
        assert_eq!(open_v(b'i', &sealed), Err(OpenError::OldVersion));
        assert_eq!(open_v(b'g', &sealed), Err(OpenError::NewVersion));
        assert_eq!(open_v(b'h', &sealed[..35]), Err(OpenError::TooShort));
        assert_eq!(open(&k, b"XXXX", b'h', &sealed), Err(OpenError::BadMagic));
        let other = AuthKey::from_bytes(b"another key of 16+ bytes").unwrap();
        assert_eq!(open(&other, b"TEST", b'h', &sealed), Err(OpenError::BadMac));
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(open_v(b'h', &longer), Err(OpenError::BadMac));
    }

    #[test]
    fn parts_tag_their_concatenation() {
        let k = key();
        let t = tag_parts(&k, &[b"seq", b"payload"]);
        assert_eq!(t, tag(&k, b"seqpayload"));
        assert!(verify_parts(&k, &[b"seqpay", b"load"], &t));
        assert!(!verify_parts(&k, &[b"seq", b"payloae"], &t));
        assert!(!verify_parts(&k, &[b"seq", b"payload"], &t[..31]));
    }

    proptest! {
        #[test]
        fn any_bit_flip_after_the_magic_is_a_bad_mac(bit in 32usize..(42 * 8)) {
            let mut buf = [0u8; 42];
            buf[..4].copy_from_slice(b"TEST");
            let mut sealed = seal_in_place(&key(), &mut buf, 10).to_vec();
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(open(&key(), b"TEST", 0, &sealed), Err(OpenError::BadMac));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(open(&key(), b"", 1, &bytes).is_err());
        }
    }
}
