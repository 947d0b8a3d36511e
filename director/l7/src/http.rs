//! HTTP/1.1 heads: parse a request or response head (httparse), decide its body framing and
//! connection handling, and write the head the other side gets. Bodies never pass through
//! here.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use httparse::{EMPTY_HEADER, Header, Status};

use crate::buf::Buf;
use crate::config::{ClientAddress, MAX_HEADERS_LIMIT};
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
}

/// Why a request head is refused: the status to answer with.
pub(crate) type Refusal = u16;

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn host_without_port(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
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

/// Body framing from Transfer-Encoding and Content-Length headers.
fn framing(headers: &[Header<'_>], request: bool) -> Result<BodyKind, ()> {
    let mut te: Option<bool> = None;
    let mut cl: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            te = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(())?;
            if cl.is_some_and(|c| c != v) {
                return Err(());
            }
            cl = Some(v);
        }
    }
    match (te, cl) {
        // Both: a smuggling attempt or a broken client; refused rather than guessed.
        (Some(_), Some(_)) if request => Err(()),
        (Some(true), _) => Ok(BodyKind::Chunked),
        (Some(false), _) if request => Err(()),
        (Some(false), _) => Ok(BodyKind::UntilClose),
        (None, Some(0)) => Ok(BodyKind::None),
        (None, Some(n)) => Ok(BodyKind::Length(n)),
        (None, None) if request => Ok(BodyKind::None),
        (None, None) => Ok(BodyKind::UntilClose),
    }
}

/// Parse the request head at the start of `buf`. `Ok(None)`: incomplete.
pub(crate) fn parse_request(
    buf: &[u8],
    table: &RouteTable,
    client: SocketAddr,
) -> Result<Option<Request>, Refusal> {
    let s = &table.settings;
    let mut headers = [EMPTY_HEADER; MAX_HEADERS_LIMIT];
    let mut req = httparse::Request::new(&mut headers[..s.max_headers]);
    let head_len = match req.parse(buf) {
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
    // Rules match, and the server gets, the normalised path (see `path`).
    let path = crate::path::normalise(req.path.unwrap_or("/")).map_err(|_| 400u16)?;
    let path = path.as_ref();
    let http10 = req.version == Some(0);
    let body = framing(req.headers, true).map_err(|()| 400u16)?;
    let mut host = None;
    let mut close = false;
    let mut keep = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            host = std::str::from_utf8(h.value).ok().map(host_without_port);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep |= has_token(h.value, "keep-alive");
        }
    }
    if host.is_none() && !http10 {
        // RFC 9112 3.2: an HTTP/1.1 request without Host is a 400.
        return Err(400);
    }
    // Which fields stay behind (hop-by-hop, upgrades, client address fields): `forward`.
    let fields = crate::forward::Forwarding::new(req.headers, s)?;
    let upgrade = fields.upgrade();
    let view = RequestView {
        host,
        path,
        method,
        headers: req.headers,
    };
    let route = table.route(&view);

    let mut out = String::with_capacity(head_len + 128);
    let _ = write!(out, "{method} {path} HTTP/1.{}\r\n", u8::from(!http10));
    let ip = client.ip();
    let mut xff: Option<String> = None;
    let mut fwd: Option<String> = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(400);
        };
        if fields.drops(h.name) {
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
        let _ = write!(out, "{}: {value}\r\n", h.name);
    }
    match s.client_address {
        ClientAddress::XForwardedFor => {
            let _ = match xff {
                Some(prev) => write!(out, "X-Forwarded-For: {prev}, {ip}\r\n"),
                None => write!(out, "X-Forwarded-For: {ip}\r\n"),
            };
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
}

/// Parse the response head at the start of `buf`; `Err` for garbage or a head too large.
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    max: usize,
) -> Result<Option<Response>, ()> {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS_LIMIT];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(Status::Complete(n)) => n,
        Ok(Status::Partial) if buf.len() >= max => return Err(()),
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut close = false;
    let mut keep = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep |= has_token(h.value, "keep-alive");
        }
    }
    let body = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::None
    } else {
        framing(resp.headers, false)?
    };
    Ok(Some(Response {
        head_len,
        status,
        body,
        keep_alive: !close && (!http10 || keep) && body != BodyKind::UntilClose,
    }))
}

/// Write the client's copy of a final response head: hop-by-hop headers replaced by ours.
pub(crate) fn write_response_head(head: &[u8], close: bool, http10_client: bool, out: &mut Buf) {
    let mut headers = [EMPTY_HEADER; MAX_HEADERS_LIMIT];
    let mut resp = httparse::Response::new(&mut headers);
    if !matches!(resp.parse(head), Ok(Status::Complete(_))) {
        out.push(head);
        return;
    }
    let mut s = String::with_capacity(head.len() + 32);
    let _ = write!(
        s,
        "HTTP/1.{} {} {}\r\n",
        resp.version.unwrap_or(1),
        resp.code.unwrap_or(200),
        resp.reason.unwrap_or("")
    );
    for h in resp.headers.iter() {
        if is_hop_by_hop(h.name) {
            continue;
        }
        s.push_str(h.name);
        s.push_str(": ");
        s.push_str(&String::from_utf8_lossy(h.value));
        s.push_str("\r\n");
    }
    if close {
        s.push_str("Connection: close\r\n");
    } else if http10_client {
        s.push_str("Connection: keep-alive\r\n");
    }
    s.push_str("\r\n");
    out.push(s.as_bytes());
}

/// A response of our own; always closes the connection.
pub(crate) fn local_response(status: u16) -> &'static [u8] {
    match status {
        400 => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n",
        404 => b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot Found\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n",
        502 => b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Gateway\n",
        504 => b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nGateway Timeout\n",
        _ => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_responses_have_correct_lengths() {
        for s in [400, 404, 408, 431, 502, 503, 504] {
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

    #[test]
    fn framing_rules() {
        let h = |n, v| Header { name: n, value: v };
        assert_eq!(
            framing(&[h("Content-Length", b"5")], true),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            framing(&[h("Transfer-Encoding", b"gzip, chunked")], true),
            Ok(BodyKind::Chunked)
        );
        assert!(
            framing(
                &[
                    h("Transfer-Encoding", b"chunked"),
                    h("Content-Length", b"5")
                ],
                true
            )
            .is_err()
        );
        assert!(
            framing(
                &[h("Content-Length", b"5"), h("Content-Length", b"6")],
                true
            )
            .is_err()
        );
        assert_eq!(framing(&[], false), Ok(BodyKind::UntilClose));
        assert_eq!(host_without_port("a.example:8080"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "::1");
    }
}
