//! The reconnecting director link against a real server: back-off while the socket is
//! missing, a fresh connection when it appears, refusals that keep the connection, a lost
//! connection when the server goes, and a fresh one when it comes back; every change reported.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{TempRunDir, config, start, wait_until};
use lvs_proto::message::{Event, HaRole, Request, Response, Role, Topic};
use lvs_proto::{Connect, DirectorLink, LinkError, LinkOptions, LinkReport};

/// Every report, with its socket (tests in this binary run in parallel: each has its own).
static REPORTS: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());

fn record(report: &LinkReport<'_>) {
    let (socket, what) = match report {
        LinkReport::Connected { socket } => (socket, "connected".to_owned()),
        LinkReport::Unreachable { socket, retry, .. } => (
            socket,
            format!("unreachable retry_ms={}", retry.as_millis()),
        ),
        LinkReport::Lost { socket, .. } => (socket, "lost".to_owned()),
    };
    REPORTS.lock().unwrap().push((socket.to_path_buf(), what));
}

fn reports(socket: &Path) -> Vec<String> {
    REPORTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s == socket)
        .map(|(_, what)| what.clone())
        .collect()
}

fn options(backoff_min: Duration) -> LinkOptions {
    LinkOptions {
        role: Role::Monitord,
        timeout: Duration::from_secs(1),
        backoff_min,
        backoff_max: backoff_min * 4,
        report: record,
    }
}

/// Calls `connect_if_due` until it connects (every attempt is due within the back-off).
fn connect(link: &mut DirectorLink) -> Connect {
    let mut got = Connect::No;
    wait_until("the link to connect", || {
        got = link.connect_if_due(Instant::now());
        got != Connect::No
    });
    got
}

#[test]
fn backs_off_while_away_and_reconnects_fresh_after_a_restart() {
    let dir = TempRunDir::new("link");
    let path = config(&dir).socket_path;
    let min = Duration::from_millis(100);
    let mut link = DirectorLink::new(&path, options(min));

    // No director: the attempt fails at once, is reported once, and the waits double.
    let t0 = Instant::now();
    assert_eq!(link.connect_if_due(t0), Connect::No);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "a missing socket fails at once"
    );
    assert!(link.unreachable_reason().is_some());
    assert_eq!(link.next_attempt(), Some(t0 + min));
    assert_eq!(
        link.connect_if_due(t0 + min / 2),
        Connect::No,
        "not due yet"
    );
    assert_eq!(link.next_attempt(), Some(t0 + min));
    assert_eq!(link.connect_if_due(t0 + min), Connect::No);
    assert_eq!(link.next_attempt(), Some(t0 + min + min * 2));
    assert_eq!(link.connect_if_due(t0 + min * 3), Connect::No);
    assert_eq!(link.connect_if_due(t0 + min * 7), Connect::No);
    assert_eq!(
        link.next_attempt(),
        Some(t0 + min * 7 + min * 4),
        "capped at backoff_max"
    );
    assert_eq!(reports(&path), ["unreachable retry_ms=100"]);
    assert!(matches!(link.request(Request::Ping), Err(LinkError::Down)));

    // The director appears: a fresh connection, reported.
    let server = start(config(&dir));
    assert_eq!(connect(&mut link), Connect::Fresh);
    assert!(link.is_up());
    assert_eq!(link.next_attempt(), None);
    assert!(link.unreachable_reason().is_none());
    assert_eq!(link.connect_if_due(Instant::now()), Connect::Already);
    assert_eq!(link.request(Request::Ping).unwrap(), Response::Pong);

    // A refusal keeps the connection.
    match link.request(Request::GetRole) {
        Err(LinkError::Refused { message, .. }) => {
            assert!(message.contains("does not handle GetRole"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(link.is_up());

    // The director goes: the next request loses the link, and the next attempt is due after
    // the shortest back-off again.
    server.stop();
    let lost = Instant::now();
    assert!(matches!(
        link.request(Request::Ping),
        Err(LinkError::Lost(_))
    ));
    assert!(!link.is_up());
    let next = link.next_attempt().unwrap();
    assert!(
        next >= lost + min && next <= Instant::now() + min,
        "{next:?}"
    );

    // It comes back: fresh again, so the owner restates its state.
    let _server = start(config(&dir));
    assert_eq!(connect(&mut link), Connect::Fresh);
    assert_eq!(link.request(Request::Ping).unwrap(), Response::Pong);
    assert_eq!(
        reports(&path),
        ["unreachable retry_ms=100", "connected", "lost", "connected"]
    );
}

#[test]
fn a_subscription_restated_after_a_reconnect_delivers_events() {
    let dir = TempRunDir::new("link-events");
    let server = start(config(&dir));
    let mut link = DirectorLink::new(server.socket_path(), options(Duration::ZERO));
    let subscribe = |link: &mut DirectorLink| {
        link.request(Request::Subscribe {
            topics: vec![Topic::Role],
        })
        .unwrap()
    };
    assert_eq!(connect(&mut link), Connect::Fresh);
    assert_eq!(subscribe(&mut link), Response::Ok);
    let event = Event::RoleChanged {
        role: HaRole::Active,
    };
    server.broadcast(event.clone());
    assert_eq!(
        link.next_event(common::TIMEOUT).unwrap(),
        Some(event.clone())
    );
    assert_eq!(link.next_event(Duration::from_millis(1)).unwrap(), None);

    // The server restarts: reading events notices, and a zero back-off reconnects at once.
    server.stop();
    assert!(matches!(
        link.next_event(common::TIMEOUT),
        Err(LinkError::Lost(_))
    ));
    let server = start(config(&dir));
    assert_eq!(link.connect_if_due(Instant::now()), Connect::Fresh);
    assert_eq!(subscribe(&mut link), Response::Ok);
    // The server answered the Subscribe before it takes the broadcast command.
    server.broadcast(event.clone());
    assert_eq!(link.next_event(common::TIMEOUT).unwrap(), Some(event));
}
