//! The control protocol's frame decoder and message codec (proto/). The first byte says where
//! to cut the stream in two (a read boundary); every frame decoded is then decoded as a client
//! and as a server frame. Invariants: no panic; the same frames come out however the stream is
//! cut; a message that decodes encodes to a frame that decodes to the same message (bytes may
//! differ: bincode's varints accept non-minimal encodings, e.g. `fc 08 00 00 00` for 8).
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
            let back = codec::decode_body::<ClientFrame>(&again[4..], LIMIT);
            assert_eq!(back.as_ref().ok(), Some(&m), "client frame round trip");
        }
        if let Ok(m) = codec::decode_body::<ServerFrame>(body, LIMIT) {
            let again = codec::to_frame(&m, LIMIT).expect("a decoded message encodes");
            let back = codec::decode_body::<ServerFrame>(&again[4..], LIMIT);
            assert_eq!(back.as_ref().ok(), Some(&m), "server frame round trip");
        }
        let _ = codec::peek_hello_version(body);
    }
});
