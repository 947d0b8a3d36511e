//! HTTP/1.1 heads: parse a request or response head (httparse), decide its body framing and
//! connection handling, and write the head the other side gets. Bodies never pass through
//! here.

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use httparse::{Header, Status};

use crate::buf::Buf;
use crate::config::{ClientAddress, MAX_HEADERS_LIMIT};
use crate::framing::{self, Framing};
use crate::route::{RequestView, Route, RouteTable};

/// How a body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// A response without length: it ends when the server closes.
    UntilClose,
}

/// A request head, parsed, routed and rewritten for the real server.
#[derive(Debug)]
pub(crate) struct Request {
    pub head_len: usize,
    pub body: BodyKind,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub is_head: bool,
    pub http10: bool,
    pub route: Option<Route>,
    /// The head to send upstream.
    pub upstream_head: Vec<u8>,
    /// The head sent upstream carries NTLM or Negotiate credentials (see
    /// [`crate::forward::credentials_bind`]).
    pub binds: bool,
}

/// Room for as many fields as a head may have, left uninitialised: httparse writes the ones it
/// parses. (Zeroing 256 fields, 8 KiB, for every head parsed showed in profiles.)
fn header_room<'b>() -> [MaybeUninit<Header<'b>>; MAX_HEADERS_LIMIT] {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_LIMIT]
}

/// Parse a response head into `room` (httparse's default configuration, as `parse`).
fn parse_response_head<'h, 'b>(
    resp: &mut httparse::Response<'h, 'b>,
    buf: &'b [u8],
    room: &'h mut [MaybeUninit<Header<'b>>],
) -> httparse::Result<usize> {
    httparse::ParserConfig::default().parse_response_with_uninit_headers(resp, buf, room)
}

/// Why a request head is refused: the status to answer with.
pub(crate) type Refusal = u16;

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether a `Connection` field among `headers` names `name` (allocation-free).
fn named_in_connection(headers: &[Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("connection") && has_token(h.value, name))
}

/// The values of a head's `Connection` fields, found once rather than for every field asked
/// about (without allocating: past a few such fields, the head is searched each time).
struct ConnectionNames<'a, 'h> {
    values: [&'h [u8]; 4],
    n: usize,
    /// More `Connection` fields than `values` holds.
    all: Option<&'a [Header<'h>]>,
}

impl<'a, 'h> ConnectionNames<'a, 'h> {
    fn of(headers: &'a [Header<'h>]) -> Self {
        let mut c = Self {
            values: [b""; 4],
            n: 0,
            all: None,
        };
        for h in headers {
            if h.name.eq_ignore_ascii_case("connection") {
                if c.n == c.values.len() {
                    c.all = Some(headers);
                    break;
                }
                c.values[c.n] = h.value;
                c.n += 1;
            }
        }
        c
    }

    /// Whether a `Connection` field names `name`.
    fn names(&self, name: &str) -> bool {
        match self.all {
            Some(headers) => named_in_connection(headers, name),
            None => self.values[..self.n].iter().any(|v| has_token(v, name)),
        }
    }
}

/// Append `ip` as `Display` writes it; an IPv4 address without `core::fmt`, which cost more
/// than the rest of the head it goes in.
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(a) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// Parse the request head at the start of `buf`. `Ok(None)`: incomplete.
pub(crate) fn parse_request(
    buf: &[u8],
    table: &RouteTable,
    client: SocketAddr,
) -> Result<Option<Request>, Refusal> {
    let s = &table.settings;
    if buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
        // An empty line before a request (which httparse skips): after a body it means the
        // sender's idea of that body's end was not ours.
        return Err(400);
    }
    let mut room = header_room();
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut room[..s.max_headers]) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() >= s.max_header_bytes => return Err(431),
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    if head_len > s.max_header_bytes {
        return Err(431);
    }
    let method = req.method.unwrap_or("GET");
    let http10 = req.version == Some(0);
    let kept = framing::drop_underscore_fields(req.headers);
    let headers = &req.headers[..kept];
    let target = framing::target(method, req.path.unwrap_or("/"), headers, http10)?;
    // Rules match, and the server gets, the normalised origin-form path (see `path`).
    let path = crate::path::normalise(target.path).map_err(|_| 400u16)?;
    let path = path.as_ref();
    let framed = framing::request(headers, http10)?;
    let body = framed.body;
    let host = target.host;
    let mut close = false;
    let mut keep = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep |= has_token(h.value, "keep-alive");
        }
    }
    // Which fields stay behind (hop-by-hop, upgrades, client address fields): `forward`.
    let fields = crate::forward::Forwarding::new(headers, s)?;
    let upgrade = fields.upgrade();
    let view = RequestView {
        host,
        path,
        method,
        headers,
    };
    let route = table.route(&view);

    // Pieces appended one by one: `write!` cost more than the rest of the head together.
    let mut out = String::with_capacity(head_len + 128);
    for piece in [
        method,
        " ",
        path,
        " HTTP/1.",
        if http10 { "0" } else { "1" },
        "\r\n",
    ] {
        out.push_str(piece);
    }
    if let Some(a) = target.authority {
        for piece in ["Host: ", a, "\r\n"] {
            out.push_str(piece);
        }
    }
    match (framed.body, framed.length) {
        (BodyKind::Chunked, _) => out.push_str("Transfer-Encoding: chunked\r\n"),
        (_, Some(n)) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        _ => {}
    }
    let ip = client.ip();
    let mut xff: Option<String> = None;
    let mut fwd: Option<String> = None;
    let mut binds = false;
    for h in headers {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(400);
        };
        if fields.drops(h.name) || framing::is_framing_field(h.name) {
            continue;
        }
        if s.client_address == ClientAddress::XForwardedFor
            && h.name.eq_ignore_ascii_case("x-forwarded-for")
        {
            xff = Some(value.to_owned());
            continue;
        }
        if s.client_address == ClientAddress::Forwarded && h.name.eq_ignore_ascii_case("forwarded")
        {
            fwd = Some(value.to_owned());
            continue;
        }
        binds |= crate::forward::credentials_bind(h);
        for piece in [h.name, ": ", value, "\r\n"] {
            out.push_str(piece);
        }
    }
    match s.client_address {
        ClientAddress::XForwardedFor => {
            let _ = match xff {
                Some(prev) => write!(out, "X-Forwarded-For: {prev}, "),
                None => write!(out, "X-Forwarded-For: "),
            };
            push_ip(&mut out, ip);
            out.push_str("\r\n");
        }
        ClientAddress::Forwarded => {
            let me = match ip {
                IpAddr::V4(a) => format!("for={a};proto=http"),
                IpAddr::V6(a) => format!("for=\"[{a}]\";proto=http"),
            };
            let _ = match fwd {
                Some(prev) => write!(out, "Forwarded: {prev}, {me}\r\n"),
                None => write!(out, "Forwarded: {me}\r\n"),
            };
        }
        _ => {}
    }
    out.push_str(if upgrade {
        "Connection: upgrade\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    Ok(Some(Request {
        head_len,
        body,
        keep_alive: !close && (!http10 || keep),
        upgrade,
        is_head: method == "HEAD",
        http10,
        route,
        upstream_head: out.into_bytes(),
        binds,
    }))
}

/// A response head from a real server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Response {
    pub head_len: usize,
    pub status: u16,
    pub body: BodyKind,
    /// The server keeps the connection open after this response.
    pub keep_alive: bool,
    pub framing: Framing,
    /// The head binds its server connection to the client (see
    /// [`crate::forward::response_binds_connection`]).
    pub binds: bool,
}

/// Parse the response head at the start of `buf`; `Err` for garbage, a head too large, or
/// framing that must not be forwarded (RFC 9112 §6; see [`framing::response`]).
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    max: usize,
) -> Result<Option<Response>, ()> {
    if buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
        // As for requests: an empty line before the status line says the server's idea of
        // the body before was not ours.
        return Err(());
    }
    let mut room = header_room();
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match parse_response_head(&mut resp, buf, &mut room) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() >= max => return Err(()),
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = resp.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        // RFC 9110 §15: the first digit is the class, 1 to 5.
        return Err(());
    }
    let http10 = resp.version == Some(0);
    let mut close = false;
    let mut keep = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep |= has_token(h.value, "keep-alive");
        }
    }
    let bodiless = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = framing::response(resp.headers, http10, bodiless)?;
    let body = framing.body;
    Ok(Some(Response {
        head_len,
        status,
        body,
        keep_alive: !close
            && (!http10 || keep)
            && body != BodyKind::UntilClose
            && !framing.conflict,
        framing,
        binds: crate::forward::response_binds_connection(resp.headers),
    }))
}

/// How writing a re-created response head went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadWrite {
    Written,
    /// Not now: the output buffer must drain first.
    NoRoom,
    /// It can never fit the output buffer (or the head no longer parses): a 502.
    Refused,
}

/// Write the client's copy of a response head: its bytes as they came (never re-coded as
/// text), hop-by-hop fields replaced by `conn` (a whole `Connection` line, or nothing), and
/// `Content-Length` or `Transfer-Encoding: chunked` in their canonical form from `r.framing`.
/// The head goes in whole or not at all; nothing is allocated.
pub(crate) fn write_response_head(
    head: &[u8],
    r: &Response,
    conn: &[u8],
    out: &mut Buf,
) -> HeadWrite {
    let mut room = header_room();
    let mut resp = httparse::Response::new(&mut []);
    if !matches!(
        parse_response_head(&mut resp, head, &mut room),
        Ok(Status::Complete(_))
    ) {
        return HeadWrite::Refused;
    }
    let mut need = 0;
    emit_response_head(head, &resp, r, conn, &mut |b| need += b.len());
    if need > out.capacity() {
        return HeadWrite::Refused;
    }
    if need > out.space() {
        return HeadWrite::NoRoom;
    }
    emit_response_head(head, &resp, r, conn, &mut |b| {
        out.push(b);
    });
    HeadWrite::Written
}

fn emit_response_head(
    head: &[u8],
    resp: &httparse::Response<'_, '_>,
    r: &Response,
    conn: &[u8],
    emit: &mut impl FnMut(&[u8]),
) {
    // The reason phrase as raw bytes (httparse gives it only when it is UTF-8): what follows
    // "HTTP/1.x NNN " on the status line.
    let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let reason = line.get(13..).unwrap_or(b"");
    let code = r.status;
    emit(if resp.version == Some(0) {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    emit(&[
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    emit(reason);
    emit(b"\r\n");
    let named = ConnectionNames::of(resp.headers);
    for h in resp.headers.iter() {
        // Hop-by-hop: the standard ones, `Upgrade` (a 101 is relayed raw, not here) and
        // every field the server named in its `Connection` (RFC 9110 §7.6.1).
        if is_hop_by_hop(h.name)
            || framing::is_length_field(h.name)
            || h.name.eq_ignore_ascii_case("upgrade")
            || named.names(h.name)
        {
            continue;
        }
        emit(h.name.as_bytes());
        emit(b": ");
        emit(h.value);
        emit(b"\r\n");
    }
    // 1xx and 204 responses carry no framing fields (RFC 9110 §8.6, RFC 9112 §6.1).
    let framed = !(100..200).contains(&code) && code != 204;
    if framed && r.framing.coded {
        emit(b"Transfer-Encoding: chunked\r\n");
    } else if framed && let Some(n) = r.framing.length {
        emit(b"Content-Length: ");
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        emit(&digits[i..]);
        emit(b"\r\n");
    }
    emit(conn);
    emit(b"\r\n");
}

/// A response of our own; always closes the connection.
pub(crate) fn local_response(status: u16) -> &'static [u8] {
    match status {
        400 => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n",
        404 => b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot Found\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nNot Implemented\n",
        502 => b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Gateway\n",
        504 => b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nGateway Timeout\n",
        _ => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use httparse::EMPTY_HEADER;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.9.0.100",
            "255.255.255.255",
            "198.51.100.7",
            "1.20.199.3",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::from("x");
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x{ip}"));
        }
    }

    #[test]
    fn local_responses_have_correct_lengths() {
        for s in [400, 404, 408, 431, 501, 502, 503, 504] {
            let r = local_response(s);
            let mut h = [EMPTY_HEADER; 8];
            let mut p = httparse::Response::new(&mut h);
            let n = match p.parse(r).unwrap() {
                Status::Complete(n) => n,
                Status::Partial => panic!(),
            };
            assert_eq!(p.code, Some(s));
            let cl: usize = std::str::from_utf8(p.headers[1].value)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.len() - n, cl, "{s}");
        }
    }

    fn table() -> RouteTable {
        let cfg: crate::config::ContentServiceConfig =
            toml::from_str("address = \"192.0.2.1\"\nport = 80\nclient_address = \"none\"\n")
                .expect("config");
        RouteTable {
            settings: crate::route::Settings::from_config(&cfg),
            rules: Vec::new(),
            pools: Vec::new(),
            default_pool: None,
            default_hits: Default::default(),
        }
    }

    /// The head the server gets from `client`, for a service with `extra` settings.
    fn head_from(extra: &str, client: &str, raw: &[u8]) -> String {
        let cfg: crate::config::ContentServiceConfig = toml::from_str(&format!(
            "address = \"2001:db8::100\"\nport = 80\n{extra}\n"
        ))
        .expect("config");
        let table = RouteTable {
            settings: crate::route::Settings::from_config(&cfg),
            rules: Vec::new(),
            pools: Vec::new(),
            default_pool: None,
            default_hits: Default::default(),
        };
        let r = parse_request(raw, &table, client.parse().expect("address"))
            .expect("accepted")
            .expect("a complete head");
        String::from_utf8(r.upstream_head).expect("utf-8")
    }

    /// IPv6 clients: `X-Forwarded-For` carries the bare address (the de-facto form), and
    /// `Forwarded` the quoted, bracketed one RFC 7239 §6 requires; IPv4 clients as before.
    #[test]
    fn client_address_fields_of_ipv6_clients() {
        let get = b"GET /who HTTP/1.1\r\nHost: [2001:db8::100]\r\nX-Forwarded-For: 192.0.2.9\r\nForwarded: for=\"[2001:db8:9::9]\"\r\n\r\n";
        let v6 = "[2001:db8:c::2]:40001";
        let v4 = "198.51.100.2:40001";
        let xff = "client_address = \"x-forwarded-for\"";
        let fwd = "client_address = \"forwarded\"";
        let append = "\nforwarded_for = \"append\"";
        // (settings, client, the client address fields the server gets)
        let cases: [(String, &str, &[&str]); 6] = [
            (xff.into(), v6, &["X-Forwarded-For: 2001:db8:c::2"]),
            (
                format!("{xff}{append}"),
                v6,
                // `append` keeps the client's other address field too.
                &[
                    "Forwarded: for=\"[2001:db8:9::9]\"",
                    "X-Forwarded-For: 192.0.2.9, 2001:db8:c::2",
                ],
            ),
            (
                fwd.into(),
                v6,
                &["Forwarded: for=\"[2001:db8:c::2]\";proto=http"],
            ),
            (
                format!("{fwd}{append}"),
                v6,
                &[
                    "X-Forwarded-For: 192.0.2.9",
                    "Forwarded: for=\"[2001:db8:9::9]\", for=\"[2001:db8:c::2]\";proto=http",
                ],
            ),
            (xff.into(), v4, &["X-Forwarded-For: 198.51.100.2"]),
            (fwd.into(), v4, &["Forwarded: for=198.51.100.2;proto=http"]),
        ];
        for (settings, client, want) in cases {
            let h = head_from(&settings, client, get);
            let got: Vec<&str> = h
                .lines()
                .filter(|l| l.starts_with("X-Forwarded-For:") || l.starts_with("Forwarded:"))
                .collect();
            assert_eq!(got, want, "{settings} {client}: {h}");
            // The IPv6 literal Host goes on as the client sent it.
            assert!(h.contains("\r\nHost: [2001:db8::100]\r\n"), "{h}");
        }
    }

    fn req(raw: &[u8]) -> Result<Request, u16> {
        let client = "198.51.100.7:4000".parse().expect("address");
        parse_request(raw, &table(), client).map(|r| r.expect("a complete head"))
    }

    fn head_of(raw: &[u8]) -> String {
        String::from_utf8(req(raw).expect("accepted").upstream_head).expect("utf-8")
    }

    #[test]
    fn request_heads_are_forwarded_canonical() {
        assert_eq!(
            head_of(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length:  3 \r\nX-A: 1\r\n\r\n"),
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-A: 1\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head_of(b"POST /x HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\nhost: a\r\nTransfer_Encoding: gzip\r\n\r\n"),
            "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head_of(b"GET http://b.example:8080/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n"),
            "GET /p?q HTTP/1.1\r\nHost: b.example:8080\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            head_of(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn request_heads_are_refused() {
        for (raw, status) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..], 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ] {
            assert_eq!(req(raw).map(|_| ()), Err(status), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    fn response_head(raw: &[u8], head_request: bool, cap: usize) -> (HeadWrite, Vec<u8>, Response) {
        let r = parse_response(raw, head_request, 1 << 16)
            .expect("accepted")
            .expect("complete");
        let mut out = Buf::new(cap);
        let w = write_response_head(&raw[..r.head_len], &r, b"", &mut out);
        (w, out.bytes().to_vec(), r)
    }

    #[test]
    fn response_heads_keep_their_bytes_and_lose_conflicting_lengths() {
        let raw = b"HTTP/1.1 200 \xe9t\xe9\r\nX-Name: caf\xe9\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n";
        let (w, out, r) = response_head(raw, false, 4096);
        assert_eq!(w, HeadWrite::Written);
        assert_eq!(
            out,
            b"HTTP/1.1 200 \xe9t\xe9\r\nX-Name: caf\xe9\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(r.body, BodyKind::Chunked);
        assert!(
            !r.keep_alive,
            "a server that sent both fields is not reused"
        );
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 005\r\nContent-Length:005 \r\n\r\n";
        let (_, out, r) = response_head(raw, false, 4096);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert!(r.keep_alive);
        // A HEAD response keeps its length; a 204 loses framing fields.
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
        let (_, out, r) = response_head(raw, true, 4096);
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
        assert_eq!(r.body, BodyKind::None);
        let raw = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            response_head(raw, false, 4096).1,
            b"HTTP/1.1 204 No Content\r\n\r\n"
        );
        // Never cut: a head that cannot fit is refused, one that does not fit yet waits.
        let raw = b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(response_head(raw, false, 32).0, HeadWrite::Refused);
        let r = parse_response(raw, false, 4096).unwrap().unwrap();
        let mut out = Buf::new(4096);
        out.push(&[b'x'; 4090]);
        assert_eq!(
            write_response_head(raw, &r, b"", &mut out),
            HeadWrite::NoRoom
        );
    }

    #[test]
    fn response_fields_named_in_connection_are_not_forwarded() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n";
        let (w, out, _) = response_head(raw, false, 4096);
        assert_eq!(w, HeadWrite::Written);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n",
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn malformed_response_framing_is_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(
                parse_response(raw, false, 4096).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
