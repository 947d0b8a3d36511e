//! Properties of the framing and the codec: random input never panics, and every message
//! survives a round trip.

use lvs_proto::ProtoError;
use lvs_proto::codec;
use lvs_proto::frame::{FrameDecoder, FrameLimit, HEADER_LEN};
use lvs_proto::message::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Lvsadm),
        Just(Role::Director),
        Just(Role::Monitord),
        Just(Role::Heartbeatd),
        Just(Role::Webmon),
        Just(Role::Lockmgr),
        Just(Role::Lockctl),
        Just(Role::Other),
    ]
}

fn topic() -> impl Strategy<Value = Topic> {
    prop_oneof![Just(Topic::Servers), Just(Topic::Role), Just(Topic::Config)]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::VersionMismatch),
        Just(ErrorCode::PermissionDenied),
        Just(ErrorCode::BadFrame),
        Just(ErrorCode::FrameTooLarge),
        Just(ErrorCode::HelloRequired),
        Just(ErrorCode::UnexpectedFrame),
        Just(ErrorCode::Unsupported),
        Just(ErrorCode::InvalidRequest),
        Just(ErrorCode::SlowConsumer),
        Just(ErrorCode::Internal),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::Ping),
        prop::collection::vec(topic(), 0..4).prop_map(|topics| Request::Subscribe { topics }),
        prop::collection::vec(topic(), 0..4).prop_map(|topics| Request::Unsubscribe { topics }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(Response::Pong),
        Just(Response::Ok),
        (error_code(), text()).prop_map(|(code, message)| Response::Error { code, message }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (text(), text()).prop_map(|(service, server)| Event::ServerUp { service, server }),
        (text(), text(), text()).prop_map(|(service, server, reason)| Event::ServerDown {
            service,
            server,
            reason
        }),
        prop_oneof![Just(HaRole::Active), Just(HaRole::Standby)]
            .prop_map(|role| Event::RoleChanged { role }),
        (text(), any::<u64>())
            .prop_map(|(path, generation)| Event::ConfigChanged { path, generation }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), role())
            .prop_map(|(version, role)| ClientFrame::Hello(Hello { version, role })),
        (any::<u64>(), request()).prop_map(|(id, request)| ClientFrame::Request { id, request }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u32>(), text())
            .prop_map(|(version, daemon)| ServerFrame::HelloOk(HelloOk { version, daemon })),
        (error_code(), text()).prop_map(|(code, message)| ServerFrame::Error { code, message }),
        (any::<u64>(), response())
            .prop_map(|(id, response)| ServerFrame::Response { id, response }),
        event().prop_map(ServerFrame::Event),
    ]
}

/// Splits `bytes` at the given cut points (taken modulo the length) into chunks, as reads would.
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn frame_decoder_survives_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let limit = FrameLimit::MIN;
        let mut dec = FrameDecoder::new(limit);
        let mut consumed = 0;
        'outer: for chunk in chunks(&bytes, &cuts) {
            for body in dec.feed(&chunk) {
                match body {
                    Ok(body) => {
                        prop_assert!(body.len() <= limit.bytes());
                        // The body's capacity was the announced length: never over the limit.
                        prop_assert!(body.capacity() <= limit.bytes());
                        consumed += HEADER_LEN + body.len();
                    }
                    Err(ProtoError::FrameTooLarge { len, max }) => {
                        prop_assert!(len > max as u64);
                        break 'outer;
                    }
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
            }
        }
        prop_assert!(consumed <= bytes.len());
    }

    #[test]
    fn message_decoders_survive_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let limit = FrameLimit::MIN;
        let _ = codec::decode_body::<ClientFrame>(&bytes, limit);
        let _ = codec::decode_body::<ServerFrame>(&bytes, limit);
        let _ = codec::decode_body::<Request>(&bytes, limit);
        let _ = codec::peek_hello_version(&bytes);
    }

    #[test]
    fn client_frames_round_trip(msg in client_frame()) {
        let frame = codec::to_frame(&msg, FrameLimit::DEFAULT).unwrap();
        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        let bodies: Vec<_> = dec.feed(&frame).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(bodies.len(), 1);
        let back: ClientFrame = codec::decode_body(&bodies[0], FrameLimit::DEFAULT).unwrap();
        prop_assert_eq!(&back, &msg);
        if let ClientFrame::Hello(h) = &msg {
            prop_assert_eq!(codec::peek_hello_version(&bodies[0]), Some(h.version));
        }
    }

    #[test]
    fn server_frames_round_trip_through_any_chunking(
        msgs in prop::collection::vec(server_frame(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            codec::encode_frame(m, FrameLimit::DEFAULT, &mut stream).unwrap();
        }
        let mut dec = FrameDecoder::new(FrameLimit::DEFAULT);
        let mut back = Vec::new();
        for chunk in chunks(&stream, &cuts) {
            for body in dec.feed(&chunk) {
                back.push(codec::decode_body::<ServerFrame>(&body.unwrap(), FrameLimit::DEFAULT).unwrap());
            }
        }
        prop_assert!(dec.finish().is_ok());
        prop_assert_eq!(back, msgs);
    }

    /// Valid messages with bytes flipped: decoding fails or yields something, never panics.
    #[test]
    fn mutated_messages_never_panic(
        msg in server_frame(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let frame = codec::to_frame(&msg, FrameLimit::DEFAULT).unwrap();
        let mut body = frame[HEADER_LEN..].to_vec();
        for (at, byte) in flips {
            let i = at % body.len();
            body[i] = byte;
        }
        let _ = codec::decode_body::<ServerFrame>(&body, FrameLimit::MIN);
    }
}
