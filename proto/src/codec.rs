//! The only place that talks to bincode.
//!
//! Bodies are `bincode::config::standard()` (little-endian, varint integers) with a byte limit
//! equal to the connection's [`FrameLimit`]: bincode counts every byte it reads and every
//! container it is about to allocate against that limit, so a small frame that claims a huge
//! string or vector fails instead of allocating.

use bincode::config;
use bincode::{Decode, Encode};

use crate::error::{ProtoError, Result};
use crate::frame::{self, FrameLimit, HEADER_LEN};

/// Appends `msg` as one complete frame (header and body) to `out`.
///
/// On error `out` is left as it was.
pub fn encode_frame<T: Encode>(msg: &T, limit: FrameLimit, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = bincode::encode_into_std_write(msg, out, config::standard()) {
        out.truncate(start);
        return Err(ProtoError::Encode(e.to_string()));
    }
    let len = out.len() - start - HEADER_LEN;
    if len > limit.bytes() {
        out.truncate(start);
        return Err(ProtoError::Encode(format!(
            "message of {len} bytes exceeds the maximum frame of {} bytes",
            limit.bytes()
        )));
    }
    let header: &mut [u8; HEADER_LEN] = (&mut out[start..start + HEADER_LEN])
        .try_into()
        .expect("slice of HEADER_LEN bytes");
    frame::write_header(header, len);
    Ok(())
}

/// Encodes `msg` as a frame in a new buffer.
pub fn to_frame<T: Encode>(msg: &T, limit: FrameLimit) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_frame(msg, limit, &mut out)?;
    Ok(out)
}

/// Decodes one message from a whole frame body. Trailing bytes are an error: a body is exactly
/// one message.
pub fn decode_body<T: Decode<()>>(body: &[u8], limit: FrameLimit) -> Result<T> {
    let (msg, used) = decode_prefix::<T>(body, limit)?;
    if used != body.len() {
        return Err(ProtoError::Decode(format!(
            "{} unexpected bytes after the message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// The version field of a body that starts like a [`crate::message::ClientFrame::Hello`], or
/// `None` if it does not.
///
/// Reads only the variant index and the first field, which every protocol version keeps in
/// place; so a newer client's Hello is understood well enough to answer "wrong version".
pub fn peek_hello_version(body: &[u8]) -> Option<u32> {
    #[derive(Decode)]
    struct HelloPrefix {
        variant: u32,
        version: u32,
    }
    match decode_prefix::<HelloPrefix>(body, FrameLimit::MIN) {
        Ok((
            HelloPrefix {
                variant: 0,
                version,
            },
            _,
        )) => Some(version),
        _ => None,
    }
}

fn decode_prefix<T: Decode<()>>(body: &[u8], limit: FrameLimit) -> Result<(T, usize)> {
    decode_limited(body, limit).map_err(|e| ProtoError::Decode(describe(&e)))
}

/// bincode's limit is a const generic, so pick the instantiation matching the runtime limit;
/// [`FrameLimit`] guarantees it is one of these powers of two.
fn decode_limited<T: Decode<()>>(
    body: &[u8],
    limit: FrameLimit,
) -> Result<(T, usize), bincode::error::DecodeError> {
    fn with<T: Decode<()>, const N: usize>(
        body: &[u8],
    ) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::decode_from_slice(body, config::standard().with_limit::<N>())
    }
    macro_rules! dispatch {
        ($($shift:literal)*) => {
            match limit.bytes().trailing_zeros() {
                $($shift => with::<T, { 1 << $shift }>(body),)*
                other => unreachable!("FrameLimit of 2^{other} bytes is out of range"),
            }
        };
    }
    dispatch!(8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26)
}

/// bincode's messages name internal types; keep the ones a sysadmin can act on readable.
fn describe(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match e {
        E::UnexpectedEnd { .. } => "message ends too early".to_owned(),
        E::LimitExceeded => "message claims more memory than the frame limit allows".to_owned(),
        E::UnexpectedVariant {
            type_name, found, ..
        } => {
            let name = type_name.rsplit("::").next().unwrap_or(type_name);
            format!("unknown {name} variant {found} (peer built from a newer version?)")
        }
        E::Utf8 { .. } => "text is not valid UTF-8".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;

    #[test]
    fn round_trip_client_and_server_frames() {
        let limit = FrameLimit::DEFAULT;
        let msgs = vec![
            ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                role: Role::Lvsadm,
            }),
            ClientFrame::Request {
                id: u64::MAX,
                request: Request::Subscribe {
                    topics: Topic::ALL.to_vec(),
                },
            },
        ];
        for m in msgs {
            let f = to_frame(&m, limit).unwrap();
            assert_eq!(
                decode_body::<ClientFrame>(&f[HEADER_LEN..], limit).unwrap(),
                m
            );
        }
        let ev = ServerFrame::Event(Event::ServerDown {
            service: "tcp 10.0.0.1:80".into(),
            server: "192.168.1.10:80".into(),
            reason: "connection refused".into(),
        });
        let f = to_frame(&ev, limit).unwrap();
        assert_eq!(
            decode_body::<ServerFrame>(&f[HEADER_LEN..], limit).unwrap(),
            ev
        );
    }

    #[test]
    fn hello_version_is_readable_without_full_decode() {
        let f = to_frame(
            &ClientFrame::Hello(Hello {
                version: 2,
                role: Role::Director,
            }),
            FrameLimit::DEFAULT,
        )
        .unwrap();
        // A future version may append fields: the prefix must still read.
        let mut body = f[HEADER_LEN..].to_vec();
        body.extend_from_slice(b"future fields");
        assert_eq!(peek_hello_version(&body), Some(2));
        let req = to_frame(
            &ClientFrame::Request {
                id: 0,
                request: Request::Ping,
            },
            FrameLimit::DEFAULT,
        )
        .unwrap();
        assert_eq!(peek_hello_version(&req[HEADER_LEN..]), None);
    }

    #[test]
    fn trailing_bytes_and_unknown_variants_are_refused() {
        let f = to_frame(&Request::Ping, FrameLimit::DEFAULT).unwrap();
        let mut body = f[HEADER_LEN..].to_vec();
        body.push(0);
        let err = decode_body::<Request>(&body, FrameLimit::DEFAULT).unwrap_err();
        assert!(err.to_string().contains("1 unexpected bytes"), "{err}");
        let err = decode_body::<Request>(&[200], FrameLimit::DEFAULT).unwrap_err();
        assert!(
            err.to_string().contains("unknown Request variant 200"),
            "{err}"
        );
    }

    #[test]
    fn huge_claimed_string_hits_the_limit_not_the_allocator() {
        // Variant ServerUp (0), then a string length of 2^40 as a u64 varint (tag 253).
        let mut body = vec![3u8, 0, 253];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let err = decode_body::<ServerFrame>(&body, FrameLimit::DEFAULT).unwrap_err();
        assert!(err.to_string().contains("frame limit"), "{err}");
    }

    #[test]
    fn encode_respects_limit_and_leaves_buffer_alone() {
        let big = Event::ConfigChanged {
            path: "x".repeat(300),
            generation: 1,
        };
        let mut out = vec![1, 2, 3];
        assert!(encode_frame(&big, FrameLimit::MIN, &mut out).is_err());
        assert_eq!(out, vec![1, 2, 3]);
    }
}
