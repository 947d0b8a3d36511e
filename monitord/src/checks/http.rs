//! HTTP and HTTPS GET over a non-blocking socket: connect, (TLS handshake,) one request with
//! `Connection: close`, and an incremental response parser (httparse for the head; Content-Length,
//! chunked or read-to-close bodies), bounded in size.
//!
//! The status decides as soon as the head is in; the body is read only when a `body` or
//! `body_sha256` condition needs it.
//!
//! Without a `host`, the Host header is the server's address as RFC 3986 writes it in a URI:
//! `192.0.2.11`, `[2001:db8::11]`, with `:PORT` unless the port is 80 or 443
//! (`[2001:db8::11]:8080`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::ClientConnection;
use sha2::{Digest, Sha256};

use crate::config::HttpCheck;

/// The largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest body read for a body condition.
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// What a check in flight is doing (for timeout messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Handshake,
    Waiting,
    Body,
}

/// One HTTP(S) GET in flight.
#[derive(Debug)]
pub(crate) struct HttpProbe {
    pub(crate) stream: TcpStream,
    tls: Option<Box<ClientConnection>>,
    connected: bool,
    request: Vec<u8>,
    written: usize,
    buf: Vec<u8>,
    eof: bool,
    stage: Stage,
}

/// The request line and headers.
pub fn request(check: &HttpCheck, addr: IpAddr) -> Vec<u8> {
    let default_port = matches!(check.port, 80 | 443);
    let host = match &check.host {
        Some(h) => h.clone(),
        None => {
            let a = match addr {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            if default_port {
                a
            } else {
                format!("{a}:{}", check.port)
            }
        }
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lvs-monitord/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.path,
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl HttpProbe {
    /// Starts the connection; `tls` for HTTPS.
    pub(crate) fn start(
        check: &HttpCheck,
        addr: IpAddr,
        tls: Option<(
            Arc<rustls::ClientConfig>,
            rustls::pki_types::ServerName<'static>,
        )>,
    ) -> io::Result<HttpProbe> {
        let stream = TcpStream::connect(SocketAddr::new(addr, check.port))?;
        let tls = match tls {
            None => None,
            Some((config, name)) => Some(Box::new(
                ClientConnection::new(config, name).map_err(io::Error::other)?,
            )),
        };
        Ok(HttpProbe {
            stream,
            tls,
            connected: false,
            request: request(check, addr),
            written: 0,
            buf: Vec::new(),
            eof: false,
            stage: Stage::Connecting,
        })
    }

    /// What it was doing, for a timeout's detail.
    pub(crate) fn stage(&self) -> &'static str {
        match self.stage {
            Stage::Connecting => "while connecting",
            Stage::Handshake => "during the TLS handshake",
            Stage::Waiting => "waiting for the response",
            Stage::Body => "reading the body",
        }
    }

    /// Makes progress on a readiness event; `Some` once decided.
    pub(crate) fn ready(&mut self, check: &HttpCheck) -> Option<(bool, String)> {
        if !self.connected {
            match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => return Some((false, format!("connect: {e}"))),
                Ok(None) => {}
            }
            match self.stream.peer_addr() {
                Ok(_) => {
                    self.connected = true;
                    self.stage = if self.tls.is_some() {
                        Stage::Handshake
                    } else {
                        Stage::Waiting
                    };
                    if let Some(tls) = &mut self.tls
                        && let Err(e) = tls.writer().write_all(&self.request)
                    {
                        return Some((false, format!("TLS: {e}")));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected || would_block(&e) => {
                    return None;
                }
                Err(e) => return Some((false, format!("connect: {e}"))),
            }
        }
        let io = match &mut self.tls {
            None => self.plain_io(),
            Some(_) => self.tls_io(),
        };
        if let Err(detail) = io {
            return Some((false, detail));
        }
        if self.stage == Stage::Waiting && self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            self.stage = Stage::Body;
        }
        evaluate(check, &self.buf, self.eof)
    }

    fn plain_io(&mut self) -> Result<(), String> {
        while self.written < self.request.len() {
            match self.stream.write(&self.request[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(format!("sending the request: {e}")),
            }
        }
        self.read_into(|s, buf| s.stream.read(buf))
    }

    fn read_into(
        &mut self,
        mut read: impl FnMut(&mut Self, &mut [u8]) -> io::Result<usize>,
    ) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        while !self.eof {
            match read(self, &mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    if self.buf.len() + n > MAX_HEAD + MAX_BODY {
                        return Err(format!(
                            "response larger than {} bytes",
                            MAX_HEAD + MAX_BODY
                        ));
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(format!("reading the response: {e}")),
            }
        }
        Ok(())
    }

    fn tls_io(&mut self) -> Result<(), String> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        loop {
            let mut progress = false;
            while tls.wants_write() {
                match tls.write_tls(&mut self.stream) {
                    Ok(_) => progress = true,
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(format!("TLS send: {e}")),
                }
            }
            if tls.wants_read() && !self.eof {
                match tls.read_tls(&mut self.stream) {
                    Ok(0) => {
                        self.eof = true;
                        progress = true;
                    }
                    Ok(_) => {
                        progress = true;
                        if let Err(e) = tls.process_new_packets() {
                            // Send the alert, if any, then give up.
                            let _ = tls.write_tls(&mut self.stream);
                            return Err(format!("TLS: {e}"));
                        }
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(format!("TLS receive: {e}")),
                }
            }
            if !tls.is_handshaking() && self.stage == Stage::Handshake {
                self.stage = Stage::Waiting;
            }
            let mut chunk = [0u8; 8192];
            loop {
                match tls.reader().read(&mut chunk) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        if self.buf.len() + n > MAX_HEAD + MAX_BODY {
                            return Err(format!(
                                "response larger than {} bytes",
                                MAX_HEAD + MAX_BODY
                            ));
                        }
                        self.buf.extend_from_slice(&chunk[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Closed without close_notify: take what we have, as browsers do.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.eof = true;
                        break;
                    }
                    Err(e) => return Err(format!("TLS: {e}")),
                }
            }
            if self.eof && tls.is_handshaking() {
                return Err("TLS: connection closed during the handshake".into());
            }
            if !progress || self.eof {
                return Ok(());
            }
        }
    }
}

/// How the body ends.
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// Judges the bytes received so far (`eof`: the peer closed). `None`: not decided yet.
pub fn evaluate(check: &HttpCheck, buf: &[u8], eof: bool) -> Option<(bool, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Err(e) => return Some((false, format!("bad HTTP response: {e}"))),
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Some((false, format!("response head over {MAX_HEAD} bytes")));
            }
            if eof {
                let why = if buf.is_empty() {
                    "connection closed without a response".to_owned()
                } else {
                    "connection closed in the middle of the response head".to_owned()
                };
                return Some((false, why));
            }
            return None;
        }
        Ok(httparse::Status::Complete(n)) => n,
    };
    let code = resp.code.unwrap_or(0);
    let reason = resp.reason.unwrap_or("");
    if !check.status.contains(&code) {
        let expected: Vec<String> = check.status.iter().map(u16::to_string).collect();
        return Some((
            false,
            format!(
                "wrong status: {code} {reason}, expected {}",
                expected.join(" or ")
            ),
        ));
    }
    if check.body.is_none() && check.body_sha256.is_none() {
        return Some((
            true,
            format!("status {code} {reason}").trim_end().to_owned(),
        ));
    }
    let mut framing = Framing::Close;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
        {
            framing = Framing::Chunked;
            break;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(n) if n <= MAX_BODY => framing = Framing::Length(n),
                Some(n) => return Some((false, format!("body of {n} bytes is over {MAX_BODY}"))),
                None => return Some((false, "bad Content-Length".into())),
            }
        }
    }
    let rest = &buf[head_len..];
    let decoded;
    let body: &[u8] = match framing {
        Framing::Length(n) if rest.len() >= n => &rest[..n],
        Framing::Length(n) => {
            if eof {
                return Some((
                    false,
                    format!("connection closed after {} of {n} body bytes", rest.len()),
                ));
            }
            return None;
        }
        Framing::Chunked => match dechunk(rest) {
            Ok(Some(b)) => {
                decoded = b;
                &decoded
            }
            Ok(None) if eof => {
                return Some((false, "connection closed inside a chunked body".into()));
            }
            Ok(None) => return None,
            Err(e) => return Some((false, format!("bad chunked body: {e}"))),
        },
        Framing::Close if eof => rest,
        Framing::Close => return None,
    };
    if let Some(want) = &check.body
        && !contains(body, want.as_bytes())
    {
        return Some((
            false,
            format!("wrong body: status {code} but the body does not contain {want:?}"),
        ));
    }
    if let Some(want) = &check.body_sha256 {
        let got: [u8; 32] = Sha256::digest(body).into();
        if &got != want {
            return Some((
                false,
                format!("wrong body: sha256 {} expected {}", hex(&got), hex(want)),
            ));
        }
    }
    Some((
        true,
        format!("status {code}, body ok ({} bytes)", body.len()),
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a complete chunked body (`Ok(None)`: incomplete so far).
pub fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return if b.len() > 1024 {
                Err("chunk size line too long")
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "chunk size not ASCII")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err("body too large");
        }
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers are not needed: the body is complete.
            return Ok(Some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        if &b[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF");
        }
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> HttpCheck {
        HttpCheck {
            port: 80,
            path: "/health".into(),
            host: None,
            status: vec![200],
            body: None,
            body_sha256: None,
            verify: true,
            ca_file: None,
        }
    }

    #[test]
    fn request_has_host_and_close() {
        let r = String::from_utf8(request(&check(), "192.0.2.1".parse().unwrap())).unwrap();
        assert!(
            r.starts_with("GET /health HTTP/1.1\r\nHost: 192.0.2.1\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Connection: close\r\n\r\n"));
        let mut c = check();
        c.port = 8080;
        let r = String::from_utf8(request(&c, "2001:db8::1".parse().unwrap())).unwrap();
        assert!(r.contains("Host: [2001:db8::1]:8080\r\n"), "{r}");
    }

    #[test]
    fn status_decides_without_body() {
        let c = check();
        assert_eq!(evaluate(&c, b"HTTP/1.1 200 OK\r\n", false), None);
        assert_eq!(
            evaluate(&c, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            Some((true, "status 200 OK".into()))
        );
        let (ok, d) = evaluate(&c, b"HTTP/1.0 503 Service Unavailable\r\n\r\n", false).unwrap();
        assert!(!ok);
        assert_eq!(d, "wrong status: 503 Service Unavailable, expected 200");
        assert_eq!(
            evaluate(&c, b"", true).unwrap().1,
            "connection closed without a response"
        );
        assert!(
            evaluate(&c, b"SSH-2.0-OpenSSH\r\n", false)
                .unwrap()
                .1
                .starts_with("bad HTTP")
        );
    }

    #[test]
    fn body_conditions() {
        let mut c = check();
        c.body = Some("healthy".into());
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(evaluate(&c, head, false), None);
        let mut full = head.to_vec();
        full.extend_from_slice(b"i'm health");
        let (ok, d) = evaluate(&c, &full, false).unwrap();
        assert!(!ok && d.starts_with("wrong body"), "{d}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n3;x=y\r\nthy\r\n0\r\n\r\n";
        assert!(evaluate(&c, chunked, false).unwrap().0);
        assert_eq!(evaluate(&c, &chunked[..60], false), None);
        let close = b"HTTP/1.0 200 OK\r\n\r\nall healthy here";
        assert_eq!(evaluate(&c, close, false), None);
        assert!(evaluate(&c, close, true).unwrap().0);
        c.body = None;
        c.body_sha256 = Some(Sha256::digest(b"all healthy here").into());
        assert!(evaluate(&c, close, true).unwrap().0);
        assert!(
            !evaluate(&c, b"HTTP/1.0 200 OK\r\n\r\nother", true)
                .unwrap()
                .0
        );
    }

    #[test]
    fn dechunk_is_bounded() {
        assert_eq!(dechunk(b"zz\r\n"), Err("bad chunk size"));
        assert_eq!(dechunk(b"ffffffffff\r\n"), Err("body too large"));
        assert_eq!(dechunk(b"3\r\nabcX"), Ok(None));
        assert_eq!(dechunk(b"3\r\nabcXY"), Err("chunk not followed by CRLF"));
        assert_eq!(dechunk(b"0\r\n"), Ok(Some(Vec::new())));
    }
}
