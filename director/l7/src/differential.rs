//! Differential test: the director's reading of a request stream (request heads by
//! `http::parse_request`, bodies by `Content-Length` or `chunked::ChunkedRecoder`, as a session
//! moves them), and of a response stream (`http::parse_response`, `write_response_head`),
//! against a strict reference, h11 (Python; Debian package python3-h11), on the same random,
//! often malformed, input.
//!
//! Every message the director accepts must end at the same byte, with the same body, where h11
//! ends it; where they differ the director must have refused. And what the director forwards
//! must read, by h11 again, as the same messages: no boundary read leniently is passed on.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use proptest::prelude::*;

use crate::buf::Buf;
use crate::chunked::{ChunkedRecoder, data_of};
use crate::http::{BodyKind, HeadWrite, parse_request, parse_response, write_response_head};
use crate::route::{RouteTable, Settings};

const REFERENCE: &str = include_str!("../testdata/h11_reference.py");
/// Debian's interpreter, the one python3-h11 installs for.
const PYTHON: &str = "/usr/bin/python3";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    method: String,
    body: Vec<u8>,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// More bytes are needed.
    Incomplete,
    Refused,
    /// The connection ends after the last message.
    Closed,
    /// A protocol switch (Upgrade) stops the reading.
    Paused,
}

struct Reference {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

static REF: Mutex<Option<Reference>> = Mutex::new(None);

/// h11's reading of `input`: as a server reads requests, or (`responses`) as a client reads
/// the responses to GET requests.
fn h11(input: &[u8], responses: bool) -> (Vec<Msg>, End) {
    let mut guard = REF.lock().unwrap_or_else(|e| e.into_inner());
    let r = guard.get_or_insert_with(|| {
        let mut child = Command::new(PYTHON)
            .args(["-c", REFERENCE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Reference {
            _child: child,
            stdin,
            stdout,
        }
    });
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    let prefix = if responses { "R " } else { "" };
    writeln!(r.stdin, "{prefix}{hex}").expect("write to h11");
    let mut line = String::new();
    r.stdout.read_line(&mut line).expect("read from h11");
    assert!(
        !line.is_empty(),
        "the h11 reference died: is the Debian package python3-h11 installed?"
    );
    let mut words = line.split_whitespace();
    let end = match words.next() {
        Some("incomplete") => End::Incomplete,
        Some("error") => End::Refused,
        Some("closed") => End::Closed,
        Some("paused") => End::Paused,
        other => panic!("h11 said {other:?}"),
    };
    let msgs = words
        .map(|w| {
            let mut f = w.split(':');
            let method = f.next().expect("method").to_owned();
            let hex = f.next().expect("body");
            let body = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            let end = f.next().expect("end").parse().expect("end");
            Msg { method, body, end }
        })
        .collect();
    (msgs, end)
}

fn table() -> RouteTable {
    let cfg: crate::config::ContentServiceConfig =
        toml::from_str("address = \"192.0.2.1\"\nport = 80\nclient_address = \"none\"\n")
            .expect("config");
    RouteTable {
        settings: Settings::from_config(&cfg),
        rules: Vec::new(),
        pools: Vec::new(),
        default_pool: None,
        default_hits: Default::default(),
    }
}

/// A body as a session moves it: `Ok(None)` while incomplete, `Err` when refused; else the
/// body, where it ends, and its forwarded bytes appended to `fwd`. Chunked bodies go in
/// pieces of `step` bytes through a small buffer.
fn body_of(
    kind: BodyKind,
    input: &[u8],
    start: usize,
    step: usize,
    fwd: &mut Vec<u8>,
) -> Result<Option<(Vec<u8>, usize)>, ()> {
    match kind {
        BodyKind::None => Ok(Some((Vec::new(), start))),
        BodyKind::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if input.len() - start < n {
                return Ok(None);
            }
            fwd.extend_from_slice(&input[start..start + n]);
            Ok(Some((input[start..start + n].to_vec(), start + n)))
        }
        BodyKind::Chunked => {
            let mut rc = ChunkedRecoder::default();
            let mut out = Buf::new(40);
            let mut coded = Vec::new();
            let mut p = start;
            while !rc.is_done() {
                if p == input.len() {
                    return Ok(None);
                }
                let piece = &input[p..(p + step).min(input.len())];
                p += rc.recode(piece, &mut out).map_err(|_| ())?;
                coded.extend_from_slice(out.bytes());
                out.clear();
            }
            fwd.extend_from_slice(&coded);
            Ok(Some((data_of(&coded), p)))
        }
        // The end is the close, which never comes here.
        BodyKind::UntilClose => Ok(None),
    }
}

/// The director's reading of a request stream, as a session reads it, and the bytes it would
/// forward.
fn director(input: &[u8], step: usize) -> (Vec<Msg>, End, Vec<u8>) {
    let table = table();
    let client = "198.51.100.7:4000".parse().expect("address");
    let mut msgs = Vec::new();
    let mut fwd = Vec::new();
    let mut pos = 0;
    loop {
        let r = match parse_request(&input[pos..], &table, client) {
            Ok(None) => return (msgs, End::Incomplete, fwd),
            Err(_) => return (msgs, End::Refused, fwd),
            Ok(Some(r)) => r,
        };
        fwd.extend_from_slice(&r.upstream_head);
        let (body, end) = match body_of(r.body, input, pos + r.head_len, step, &mut fwd) {
            Ok(Some(b)) => b,
            Ok(None) => return (msgs, End::Incomplete, fwd),
            Err(()) => return (msgs, End::Refused, fwd),
        };
        let method = r.upstream_head.split(|&b| b == b' ').next().unwrap_or(b"");
        let method = String::from_utf8_lossy(method).into_owned();
        msgs.push(Msg { method, body, end });
        pos = end;
        if r.upgrade {
            return (msgs, End::Paused, fwd);
        }
        if !r.keep_alive {
            return (msgs, End::Closed, fwd);
        }
    }
}

/// The director's reading of a response stream (answers to GET requests), and the bytes the
/// client would get.
fn director_responses(input: &[u8], step: usize) -> (Vec<Msg>, End, Vec<u8>) {
    let mut msgs = Vec::new();
    let mut fwd = Vec::new();
    let mut pos = 0;
    loop {
        let r = match parse_response(&input[pos..], false, 1 << 16) {
            Ok(None) => return (msgs, End::Incomplete, fwd),
            Err(()) => return (msgs, End::Refused, fwd),
            Ok(Some(r)) => r,
        };
        let mut head = Buf::new(1 << 17);
        if write_response_head(&input[pos..pos + r.head_len], &r, b"", &mut head)
            != HeadWrite::Written
        {
            return (msgs, End::Refused, fwd);
        }
        fwd.extend_from_slice(head.bytes());
        let start = pos + r.head_len;
        if (100..200).contains(&r.status) {
            // An interim answer: the final one follows.
            pos = start;
            continue;
        }
        let (body, end) = match body_of(r.body, input, start, step, &mut fwd) {
            Ok(Some(b)) => b,
            Ok(None) => return (msgs, End::Incomplete, fwd),
            Err(()) => return (msgs, End::Refused, fwd),
        };
        msgs.push(Msg {
            method: r.status.to_string(),
            body,
            end,
        });
        pos = end;
        if !r.keep_alive {
            return (msgs, End::Closed, fwd);
        }
    }
}

/// The director and h11 agree on `input`, or the director refused where they part.
fn check(input: &[u8], step: usize) -> Result<(), TestCaseError> {
    check_both(input, step, false)
}

fn check_both(input: &[u8], step: usize, responses: bool) -> Result<(), TestCaseError> {
    let (ours, our_end, fwd) = if responses {
        director_responses(input, step)
    } else {
        director(input, step)
    };
    let (theirs, their_end) = h11(input, responses);
    let shown = String::from_utf8_lossy(input);
    for (i, m) in ours.iter().enumerate() {
        match theirs.get(i) {
            Some(t) => prop_assert_eq!(m, t, "message {} of {:?}", i, shown),
            // h11 closes HTTP/1.0 connections even with keep-alive; past that it says nothing.
            None => prop_assert!(
                matches!(their_end, End::Closed | End::Paused) && i >= theirs.len(),
                "the director read message {} of {:?} as {:?}; h11 did not ({:?})",
                i,
                shown,
                m,
                their_end
            ),
        }
    }
    if our_end == End::Incomplete {
        // Still reading where h11 saw a whole message: the director would take the next
        // message's bytes as this one's.
        prop_assert!(
            theirs.len() <= ours.len(),
            "the director waits for more where h11 read {:?} in {:?}",
            theirs.get(ours.len()),
            shown
        );
    }
    // What goes to the server reads, strictly, as the same messages.
    let (again, again_end) = h11(&fwd, responses);
    prop_assert!(
        again_end != End::Refused,
        "h11 refuses what the director forwards for {:?}: {:?}",
        shown,
        String::from_utf8_lossy(&fwd)
    );
    for (i, t) in again.iter().enumerate() {
        prop_assert_eq!(
            &ours[i].body,
            &t.body,
            "forwarded body {} of {:?}",
            i,
            shown
        );
    }
    if !matches!(again_end, End::Closed | End::Paused) {
        prop_assert_eq!(again.len(), ours.len(), "forwarded messages of {:?}", shown);
    }
    Ok(())
}

fn head_line() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![
        &b"Host: a.example"[..],
        b"Host: b:8080",
        b"Host: a b",
        b"Host:",
        b"Content-Length: 5",
        b"Content-Length: 0",
        b"Content-Length: 12",
        b"Content-Length: +5",
        b"Content-Length: 05",
        b"Content-Length:  5 ",
        b"Content-Length: 5, 5",
        b"Content-Length: 5\xc2\xa0",
        b"Content-Length: -1",
        b"Content-Length: 18446744073709551616",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: Chunked ",
        b"Transfer-Encoding: identity, chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: ,chunked",
        b"Transfer-Encoding: chunked, chunked",
        b"Transfer-Encoding: chunked;a=b",
        b"Transfer-Encoding:\tchunked",
        b"Transfer_Encoding: chunked",
        b"Content_Length: 5",
        b"Connection: close",
        b"Connection: keep-alive",
        b"X-A: b",
        b"X-B: caf\xc3\xa9",
        b" X-Folded: c",
        b"Expect: 100-continue",
    ])
}

fn line_end() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![
        30 => Just(&b"\r\n"[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r\r\n"[..]),
    ]
}

fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let size = prop_oneof![
        12 => Just("{:x}"),
        2 => Just("{:X}"),
        2 => Just("000{:x}"),
        1 => Just("{:x} "),
        1 => Just("+{:x}"),
        1 => Just(" {:x}"),
    ];
    let ext = prop::sample::select(vec![
        &b""[..],
        b"",
        b"",
        b"",
        b"",
        b"",
        b"",
        b"",
        b";a",
        b";a=b",
        b";a=\"q s\"",
        b" ; a = b",
        b"; a",
        b";a=\"x\ny\"",
        b";a=\"\\\"\"",
        b" junk",
        b";\x01",
        b";a\rb",
        b";",
    ]);
    (
        size,
        prop_oneof![10 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
        ext,
        line_end(),
        prop::collection::vec(b'a'..=b'z', 0..12),
        line_end(),
    )
        .prop_map(|(fmt, off, ext, eol, data, data_end)| {
            let n = data.len().saturating_add_signed(isize::from(off));
            let hex = match fmt {
                "{:X}" => format!("{n:X}"),
                "000{:x}" => format!("000{n:x}"),
                "{:x} " => format!("{n:x} "),
                "+{:x}" => format!("+{n:x}"),
                " {:x}" => format!(" {n:x}"),
                _ => format!("{n:x}"),
            };
            let mut v = hex.into_bytes();
            v.extend_from_slice(ext);
            v.extend_from_slice(eol);
            v.extend_from_slice(&data);
            v.extend_from_slice(data_end);
            v
        })
}

fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(chunk(), 0..4),
        prop::sample::select(vec![&b"0"[..], b"0", b"000", b"0;x=y", b"0 "]),
        line_end(),
        prop::sample::select(vec![
            &b""[..],
            b"",
            b"X-T: 1\r\n",
            b"X-T: 1\n",
            b"bad line\r\n",
            b"X-T: a\x01b\r\n",
        ]),
        line_end(),
    )
        .prop_map(|(chunks, last, eol, trailer, end)| {
            let mut v: Vec<u8> = chunks.concat();
            v.extend_from_slice(last);
            v.extend_from_slice(eol);
            v.extend_from_slice(trailer);
            v.extend_from_slice(end);
            v
        })
}

/// A body and the framing fields that announce it: mostly right, sometimes not.
fn framed_body() -> impl Strategy<Value = (Vec<&'static [u8]>, Vec<u8>)> {
    let text = prop::collection::vec(b'a'..=b'z', 0..14);
    prop_oneof![
        3 => Just((Vec::new(), Vec::new())),
        3 => (text.clone(), prop_oneof![8 => Just(0isize), 1 => Just(-1), 1 => Just(1)]).prop_map(
            |(body, off)| {
                let n = body.len().saturating_add_signed(off);
                let line: &'static [u8] = Box::leak(format!("Content-Length: {n}").into_bytes().into_boxed_slice());
                (vec![line], body)
            }
        ),
        5 => chunked_body().prop_map(|b| (vec![&b"Transfer-Encoding: chunked"[..]], b)),
        2 => (head_line(), prop_oneof![chunked_body(), text]).prop_map(|(l, b)| (vec![l], b)),
    ]
}

/// A message: its first lines (start line and perhaps Host), its framing fields and body,
/// and up to one more field, mostly from `benign`.
fn message_after(
    first: impl Strategy<Value = String>,
    benign: Vec<&'static [u8]>,
) -> impl Strategy<Value = Vec<u8>> {
    (
        first,
        framed_body(),
        prop::collection::vec(
            (
                prop_oneof![4 => prop::sample::select(benign), 1 => head_line()],
                line_end(),
            ),
            0..2,
        ),
        line_end(),
    )
        .prop_map(|(first, (framing, body), lines, eol)| {
            let mut v = first.into_bytes();
            for l in framing {
                v.extend_from_slice(l);
                v.extend_from_slice(eol);
            }
            for (l, eol) in lines {
                v.extend_from_slice(l);
                v.extend_from_slice(eol);
            }
            v.extend_from_slice(b"\r\n");
            v.extend_from_slice(&body);
            v
        })
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    let first = (
        prop::sample::select(vec!["GET", "POST", "POST", "PUT", "HEAD", "get"]),
        prop_oneof![
            8 => Just("/"),
            2 => Just("/a?b"),
            2 => Just("http://a.example/x"),
            1 => Just("http://a.example"),
            1 => Just("*"),
            1 => Just("a.example:80"),
        ],
        prop_oneof![
            12 => Just("HTTP/1.1"),
            2 => Just("HTTP/1.0"),
            1 => Just("HTTP/2.0"),
        ],
        prop::bool::weighted(0.9),
    )
        .prop_map(|(method, target, version, host)| {
            let host = if host { "Host: a.example\r\n" } else { "" };
            format!("{method} {target} {version}\r\n{host}")
        });
    message_after(
        first,
        vec![&b"X-A: b"[..], b"Accept: */*", b"X-B: caf\xc3\xa9"],
    )
}

fn response() -> impl Strategy<Value = Vec<u8>> {
    let first = prop_oneof![
        10 => Just("HTTP/1.1 200 OK"),
        1 => Just("HTTP/1.1 204 No Content"),
        1 => Just("HTTP/1.1 304 Not Modified"),
        1 => Just("HTTP/1.1 100 Continue"),
        1 => Just("HTTP/1.0 200 OK"),
        1 => Just("HTTP/1.1 404"),
    ]
    .prop_map(|s| format!("{s}\r\n"));
    message_after(first, vec![&b"X-A: b"[..], b"Server: x", b"X-B: caf\xe9"])
}

/// One to three messages, then perhaps one byte changed, inserted or removed.
fn several(one: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(one, 1..4),
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(msgs, mutation, at, byte)| {
            let mut v = msgs.concat();
            let i = at.index(v.len());
            match mutation {
                1 => v[i] = byte,
                2 => v.insert(i, byte),
                3 => {
                    v.remove(i);
                }
                _ => {}
            }
            v
        })
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    several(message())
}

fn responses() -> impl Strategy<Value = Vec<u8>> {
    several(response())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn director_and_h11_agree_on_every_boundary(input in stream(), step in 1usize..9) {
        check(&input, step)?;
    }

    #[test]
    fn director_and_h11_agree_on_every_response_boundary(
        input in responses(),
        step in 1usize..9,
    ) {
        check_both(&input, step, true)?;
    }
}

/// The defects of issue 12, each read as h11 reads it or refused.
#[test]
fn known_vectors_agree_with_h11() {
    let vectors: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\rhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET http://a.example/x HTTP/1.1\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b c\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for v in vectors {
        for step in [1, 3, 64] {
            check(v, step).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The random streams are not all refused at once: the agreement above is tested on accepted
/// messages (chunked ones among them) as much as on refusals.
#[test]
fn the_random_streams_exercise_both_sides() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, mut chunked, mut refused) = (0, 0, 0);
    for _ in 0..1000 {
        let input = stream().new_tree(&mut runner).expect("a stream").current();
        let (msgs, end, fwd) = director(&input, 4);
        accepted += usize::from(!msgs.is_empty());
        chunked += usize::from(fwd.windows(26).any(|w| w == b"Transfer-Encoding: chunked"));
        refused += usize::from(end == End::Refused);
    }
    assert!(
        accepted > 300 && chunked > 100 && refused > 300,
        "requests: accepted {accepted}, chunked {chunked}, refused {refused} of 1000"
    );
    let (mut accepted, mut chunked, mut refused) = (0, 0, 0);
    for _ in 0..1000 {
        let input = responses()
            .new_tree(&mut runner)
            .expect("responses")
            .current();
        let (msgs, end, fwd) = director_responses(&input, 4);
        accepted += usize::from(!msgs.is_empty());
        chunked += usize::from(fwd.windows(26).any(|w| w == b"Transfer-Encoding: chunked"));
        refused += usize::from(end == End::Refused);
    }
    assert!(
        accepted > 200 && chunked > 100 && refused > 200,
        "responses: accepted {accepted}, chunked {chunked}, refused {refused} of 1000"
    );
}
