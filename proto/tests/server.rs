//! A real `Server` on a thread, real Unix sockets in a temp run directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{RawConn, TempRunDir, config, hello, logged, ping, start, wait_until};
use lvs_proto::message::{Request, Response};
use lvs_proto::{
    Client, ErrorCode, Event, HaRole, PROTOCOL_VERSION, ProtoError, Role, Server, Topic,
};
use nix::unistd::Uid;

#[test]
fn hello_and_ping() {
    let dir = TempRunDir::new("ping");
    let server = start(config(&dir));
    let mut client = Client::connect(server.socket_path(), Role::Lvsadm).unwrap();
    assert_eq!(client.server().daemon, "lvs-director");
    assert_eq!(client.server().version, PROTOCOL_VERSION);
    client.ping().unwrap();
    assert_eq!(client.request(Request::Ping).unwrap(), Response::Pong);
    // Socket file: owner and group only.
    let mode = std::fs::metadata(server.socket_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let path = server.socket_path().to_path_buf();
    server.stop();
    assert!(!path.exists(), "the socket file goes away with the server");
}

#[test]
fn wrong_version_gets_error_and_close() {
    let dir = TempRunDir::new("version");
    let server = start(config(&dir));
    let mut raw = RawConn::connect(server.socket_path());
    raw.send(&hello(2));
    let message = raw.expect_error_and_close(ErrorCode::VersionMismatch);
    assert_eq!(
        message,
        "protocol version 2 not supported; this daemon speaks 1"
    );
    wait_until("the close to be logged", || {
        logged(&[
            "event=control_client_dropped daemon=",
            "role=none",
            "protocol version 2 not supported",
        ])
    });
}

/// One kind of bad input, and what the server must answer before closing (`None`: the peer
/// cannot be told, it is gone).
struct BadInput {
    name: &'static str,
    hello_first: bool,
    bytes: Vec<u8>,
    hang_up: bool,
    answer: Option<ErrorCode>,
    logged: &'static str,
}

fn bad_inputs() -> Vec<BadInput> {
    let mut unknown_request = vec![0, 0, 0, 3];
    unknown_request.extend([1, 7, 99]); // ClientFrame::Request, id 7, Request variant 99
    vec![
        BadInput {
            name: "truncated frame",
            hello_first: true,
            bytes: {
                let mut b = vec![0, 0, 0, 100];
                b.extend([0; 10]);
                b
            },
            hang_up: true,
            answer: None,
            logged: "(14 of 104 bytes received)",
        },
        BadInput {
            name: "oversized length",
            hello_first: true,
            bytes: vec![0x7f, 0xff, 0xff, 0xff],
            hang_up: false,
            answer: Some(ErrorCode::FrameTooLarge),
            logged: "frame of 2147483647 bytes exceeds the maximum of 1048576 bytes",
        },
        BadInput {
            name: "random bytes (an HTTP request)",
            hello_first: false,
            bytes: b"GET / HTTP/1.1\r\nHost: director\r\n\r\n".to_vec(),
            hang_up: false,
            answer: Some(ErrorCode::FrameTooLarge),
            logged: "frame of 1195725856 bytes",
        },
        BadInput {
            name: "random bytes in a small frame",
            hello_first: false,
            bytes: vec![0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0x13, 0x37],
            hang_up: false,
            answer: Some(ErrorCode::BadFrame),
            logged: "malformed or unknown message",
        },
        BadInput {
            name: "unknown message",
            hello_first: true,
            bytes: unknown_request,
            hang_up: false,
            answer: Some(ErrorCode::BadFrame),
            logged: "unknown Request variant 99",
        },
        BadInput {
            name: "wrong protocol version",
            hello_first: false,
            bytes: hello(9),
            hang_up: false,
            answer: Some(ErrorCode::VersionMismatch),
            logged: "protocol version 9 not supported",
        },
        BadInput {
            name: "request before hello",
            hello_first: false,
            bytes: ping(1),
            hang_up: false,
            answer: Some(ErrorCode::HelloRequired),
            logged: "the first frame must be a Hello, got a request",
        },
        BadInput {
            name: "second hello",
            hello_first: true,
            bytes: hello(PROTOCOL_VERSION),
            hang_up: false,
            answer: Some(ErrorCode::UnexpectedFrame),
            logged: "unexpected frame: a second Hello",
        },
    ]
}

#[test]
fn each_bad_input_closes_only_that_connection() {
    let dir = TempRunDir::new("bad");
    let server = start(config(&dir));
    let path = server.socket_path().to_path_buf();
    let mut before = Client::connect(&path, Role::Other).unwrap();
    before.subscribe(&[Topic::Role]).unwrap();
    for case in bad_inputs() {
        let mut raw = RawConn::connect(&path);
        if case.hello_first {
            raw.hello();
        }
        raw.send(&case.bytes);
        if case.hang_up {
            raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        match case.answer {
            Some(code) => {
                let message = raw.expect_error_and_close(code);
                assert!(message.contains(case.logged), "{}: {message}", case.name);
            }
            None => raw.expect_closed(),
        }
        wait_until(case.name, || {
            logged(&["event=control_client_dropped daemon=", case.logged])
        });

        // The server and its other clients carry on.
        before
            .ping()
            .unwrap_or_else(|e| panic!("{}: old client: {e}", case.name));
        let mut after = Client::connect(&path, Role::Other).unwrap();
        after
            .ping()
            .unwrap_or_else(|e| panic!("{}: new client: {e}", case.name));
    }
    // Still subscribed, still served: events reach the old client.
    server.broadcast(Event::RoleChanged {
        role: HaRole::Active,
    });
    assert_eq!(
        before.next_event(common::TIMEOUT).unwrap(),
        Some(Event::RoleChanged {
            role: HaRole::Active
        })
    );
}

/// A request and the end of the client's stream in one go (a one-shot client fed by a shell
/// pipe writes its request and shuts its sending side at once): the FIN reported with the data is seen although the read that took the data was
/// short, so the request is answered and the connection closed, not left open for good.
#[test]
fn request_then_half_close_is_answered_and_closed() {
    let dir = TempRunDir::new("halfclose");
    let server = start(config(&dir));
    let mut raw = RawConn::connect(server.socket_path());
    let mut bytes = hello(lvs_proto::PROTOCOL_VERSION);
    bytes.extend(ping(41));
    raw.send(&bytes);
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(matches!(
        raw.read_frame(),
        Some(lvs_proto::ServerFrame::HelloOk(_))
    ));
    match raw.read_frame() {
        Some(lvs_proto::ServerFrame::Response { id: 41, response }) => {
            assert_eq!(response, Response::Pong)
        }
        other => panic!("expected the answer to request 41, got {other:?}"),
    }
    raw.expect_closed();
}

#[test]
fn clean_disconnect_is_logged() {
    let dir = TempRunDir::new("bye");
    let server = start(config(&dir));
    let mut raw = RawConn::connect(server.socket_path());
    raw.hello();
    drop(raw);
    wait_until("the close to be logged", || {
        logged(&["event=control_client_closed daemon=lvs-director role=Other pid="])
    });
    // Every line the server wrote (in any test so far) is an event line, by the documented
    // quoting rules.
    for line in common::LOG.lock().unwrap().iter() {
        let (_level, message) = line.split_once(' ').unwrap();
        if let Err(e) = lvs_proto::event::parse(message) {
            panic!("not an event line ({e}): {line}");
        }
    }
}

#[test]
fn subscribers_receive_their_topics_only() {
    let dir = TempRunDir::new("events");
    let server = start(config(&dir));
    let path = server.socket_path();
    let mut servers = Client::connect(path, Role::Webmon).unwrap();
    let mut roles = Client::connect(path, Role::Webmon).unwrap();
    let mut nobody = Client::connect(path, Role::Lvsadm).unwrap();
    servers.subscribe(&[Topic::Servers]).unwrap();
    roles.subscribe(&[Topic::Role, Topic::Config]).unwrap();

    let up = Event::ServerUp {
        service: "tcp 10.0.0.1:80".into(),
        server: "192.168.1.10:80".into(),
    };
    let role = Event::RoleChanged {
        role: HaRole::Standby,
    };
    server.broadcast(up.clone());
    server.broadcast(role.clone());
    assert_eq!(servers.next_event(common::TIMEOUT).unwrap(), Some(up));
    // Per-connection order is preserved, so `role` is the first thing `roles` sees.
    assert_eq!(roles.next_event(common::TIMEOUT).unwrap(), Some(role));
    // A request round trip after the broadcasts proves nothing else was queued for these.
    servers.ping().unwrap();
    assert_eq!(servers.next_event(Duration::from_millis(1)).unwrap(), None);
    nobody.ping().unwrap();
    assert_eq!(nobody.next_event(Duration::from_millis(1)).unwrap(), None);

    // Events that arrive while a request waits are kept for next_event.
    roles.unsubscribe(&[Topic::Role]).unwrap();
    let config_changed = Event::ConfigChanged {
        path: "/etc/lvs/lvs.conf".into(),
        generation: 2,
    };
    server.broadcast(Event::RoleChanged {
        role: HaRole::Active,
    });
    server.broadcast(config_changed.clone());
    roles.ping().unwrap();
    assert_eq!(
        roles.next_event(Duration::from_millis(1)).unwrap(),
        Some(config_changed)
    );
    roles.unsubscribe(&[]).unwrap();
    server.broadcast(Event::ConfigChanged {
        path: "/etc/lvs/lvs.conf".into(),
        generation: 3,
    });
    roles.ping().unwrap();
    assert_eq!(roles.next_event(Duration::from_millis(1)).unwrap(), None);
}

#[test]
fn stale_socket_is_replaced() {
    let dir = TempRunDir::new("stale");
    let cfg = config(&dir);
    // A daemon that died without cleaning up: the file stays, nobody listens.
    drop(UnixListener::bind(&cfg.socket_path).unwrap());
    assert!(cfg.socket_path.exists());
    let server = start(cfg);
    Client::connect(server.socket_path(), Role::Lvsadm)
        .unwrap()
        .ping()
        .unwrap();
}

#[test]
fn live_socket_is_not_stolen() {
    let dir = TempRunDir::new("live");
    let server = start(config(&dir));
    let err = Server::bind(config(&dir)).unwrap_err();
    assert!(matches!(err, ProtoError::AlreadyRunning { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "another lvs-director is already running on {}",
            server.socket_path().display()
        )
    );
    Client::connect(server.socket_path(), Role::Lvsadm)
        .unwrap()
        .ping()
        .unwrap();
}

#[test]
fn connect_to_missing_daemon_says_what_to_check() {
    let dir = TempRunDir::new("missing");
    let err = Client::connect(&dir.path().join("monitord.sock"), Role::Lvsadm).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is lvs-monitord running"), "{text}");
}

#[test]
fn request_times_out_instead_of_hanging() {
    let dir = TempRunDir::new("timeout");
    let path = dir.path().join("silent.sock");
    // Accepts and never answers.
    let _listener = UnixListener::bind(&path).unwrap();
    let err = Client::connect_with(
        &path,
        Role::Lvsadm,
        lvs_proto::ClientOptions {
            timeout: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ProtoError::Timeout { .. }), "{err}");
}

#[test]
fn handler_sees_the_peer() {
    struct Echo;
    impl lvs_proto::Handler for Echo {
        fn handle(&mut self, peer: &lvs_proto::PeerInfo, _: Request) -> Response {
            Response::Error {
                code: ErrorCode::Unsupported,
                message: format!("{:?} uid {}", peer.role, peer.credentials.uid),
            }
        }
    }
    let dir = TempRunDir::new("peer");
    common::init_logging();
    let server = Server::bind(config(&dir)).unwrap().spawn(Echo).unwrap();
    let mut c = Client::connect(server.socket_path(), Role::Heartbeatd).unwrap();
    let want = format!("Heartbeatd uid {}", Uid::effective());
    assert_eq!(
        c.request(Request::Ping).unwrap(),
        Response::Error {
            code: ErrorCode::Unsupported,
            message: want
        }
    );
    // A Response::Error leaves the connection open.
    c.subscribe(&[Topic::Servers]).unwrap();
}
