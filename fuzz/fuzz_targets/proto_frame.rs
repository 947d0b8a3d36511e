//! The control protocol's frame decoder and message codec (proto/). The first byte says where
//! to cut the stream in two (a read boundary); every frame decoded is then decoded as a client
//! and as a server frame. Invariants: no panic; the same frames come out however the stream is
//! cut; a frame body that decodes encodes back to the same bytes (a body is exactly one
//! message, so the encoding is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_proto::codec;
use lvs_proto::frame::{FrameDecoder, FrameLimit};
use lvs_proto::message::{ClientFrame, ServerFrame};

const LIMIT: FrameLimit = FrameLimit::MIN;

fn frames(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, bool, bool) {
    let mut dec = FrameDecoder::new(LIMIT);
    let mut out = Vec::new();
    let mut failed = false;
    for piece in pieces {
        for f in dec.feed(piece) {
            match f {
                Ok(body) => out.push(body),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    (out, failed, dec.finish().is_err())
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = frames(&[stream]);
    let (a, b) = stream.split_at(usize::from(cut).min(stream.len()));
    assert_eq!(whole, frames(&[a, b]), "frames depend on read boundaries");
    for body in &whole.0 {
        assert!(body.len() <= LIMIT.bytes());
        if let Ok(m) = codec::decode_body::<ClientFrame>(body, LIMIT) {
            let again = codec::to_frame(&m, LIMIT).expect("a decoded message encodes");
            assert_eq!(&again[4..], &body[..], "client frame not canonical: {m:?}");
        }
        if let Ok(m) = codec::decode_body::<ServerFrame>(body, LIMIT) {
            let again = codec::to_frame(&m, LIMIT).expect("a decoded message encodes");
            assert_eq!(&again[4..], &body[..], "server frame not canonical: {m:?}");
        }
        let _ = codec::peek_hello_version(body);
    }
});
