//! HTTP/1.1 on top of a byte buffer: requests parsed with `httparse` within fixed limits, and
//! responses that always carry the security headers.

use std::fmt::Write as _;

/// Headers per request at most.
pub const MAX_HEADERS: usize = 64;

/// The Content-Security-Policy of every response: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// One parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST` ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
    /// The client wants the connection kept open.
    pub keep_alive: bool,
}

impl Request {
    /// The first header of this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// What [`parse`] found in the buffer.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole request yet.
    Incomplete,
    /// A request and the bytes it used.
    Done(Box<Request>, usize),
    /// A request that is refused with this status; the connection is closed after it.
    Refuse(u16, &'static str),
}

/// Parses one request from the start of `buf`.
pub fn parse(buf: &[u8], max_header: usize, max_body: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_header {
                return Parsed::Refuse(431, "the request headers are too large");
            }
            return Parsed::Incomplete;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refuse(431, "too many request headers");
        }
        Err(_) => return Parsed::Refuse(400, "malformed request"),
    };
    if head_len > max_header {
        return Parsed::Refuse(431, "the request headers are too large");
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Refuse(400, "malformed request");
    };
    let mut out = Request {
        method: method.to_owned(),
        ..Request::default()
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    out.path = path.to_owned();
    out.query = query.to_owned();
    let mut content_length = 0usize;
    let mut conn_close = false;
    let mut conn_keep = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Parsed::Refuse(400, "a header value is not text");
        };
        match name.as_str() {
            "content-length" => match value.trim().parse::<usize>() {
                Ok(n) => content_length = n,
                Err(_) => return Parsed::Refuse(400, "bad Content-Length"),
            },
            "transfer-encoding" => {
                return Parsed::Refuse(411, "chunked bodies are not accepted: send Content-Length");
            }
            "connection" => {
                let v = value.to_ascii_lowercase();
                conn_close |= v.contains("close");
                conn_keep |= v.contains("keep-alive");
            }
            _ => {}
        }
        out.headers.push((name, value.to_owned()));
    }
    if content_length > max_body {
        return Parsed::Refuse(413, "the request body is too large");
    }
    if buf.len() < head_len + content_length {
        return Parsed::Incomplete;
    }
    out.body = buf[head_len..head_len + content_length].to_vec();
    out.keep_alive = if version == 1 { !conn_close } else { conn_keep };
    Parsed::Done(Box::new(out), head_len + content_length)
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (Content-Type, Set-Cookie, Location ...).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

/// The reason phrase of the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl Response {
    /// A response with a body of this type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
            close: false,
        }
    }

    /// Plain text.
    pub fn text(status: u16, body: &str) -> Response {
        let mut b = body.to_owned();
        if !b.ends_with('\n') {
            b.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", b)
    }

    /// JSON.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    /// A JSON `{"ok": false, "error": ...}`.
    pub fn json_error(status: u16, error: &str) -> Response {
        Response::json(status, &serde_json::json!({ "ok": false, "error": error }))
    }

    /// A redirect (303 for after a POST, 301 for the plaintext listener).
    pub fn redirect(status: u16, location: &str) -> Response {
        let mut r = Response::text(status, &format!("see {location}"));
        r.headers.push(("Location", location.to_owned()));
        r
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; `tls` adds HSTS.
    pub fn to_bytes(&self, tls: bool, head_only: bool) -> Vec<u8> {
        let mut h = String::with_capacity(512);
        let _ = write!(h, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            // Header values are ours; a stray newline must still never split a header.
            let v = v.replace(['\r', '\n'], " ");
            let _ = write!(h, "{n}: {v}\r\n");
        }
        if !self.headers.iter().any(|(n, _)| *n == "Cache-Control") {
            h.push_str("Cache-Control: no-store\r\n");
        }
        let _ = write!(h, "Content-Length: {}\r\n", self.body.len());
        let _ = write!(h, "Content-Security-Policy: {CSP}\r\n");
        h.push_str("X-Frame-Options: DENY\r\n");
        h.push_str("X-Content-Type-Options: nosniff\r\n");
        h.push_str("Referrer-Policy: no-referrer\r\n");
        h.push_str("Cross-Origin-Opener-Policy: same-origin\r\n");
        h.push_str("Cross-Origin-Resource-Policy: same-origin\r\n");
        if tls {
            h.push_str("Strict-Transport-Security: max-age=31536000\r\n");
        }
        if self.close {
            h.push_str("Connection: close\r\n");
        }
        h.push_str("\r\n");
        let mut out = h.into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_within_limits() {
        let raw = b"POST /api/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nCookie: a=1; lvs_session=abc\r\n\r\nxyzGET";
        let Parsed::Done(r, n) = parse(raw, 1024, 10) else {
            panic!()
        };
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("POST", "/api/x", "a=1")
        );
        assert_eq!(r.body, b"xyz");
        assert_eq!(n, raw.len() - 3);
        assert_eq!(r.cookie("lvs_session"), Some("abc"));
        assert!(r.keep_alive);
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost:", 1024, 10),
            Parsed::Incomplete
        ));
        assert!(matches!(
            parse(&[b'a'; 2000], 1024, 10),
            Parsed::Refuse(400 | 431, _)
        ));
        let big = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert!(matches!(parse(big, 1024, 10), Parsed::Refuse(413, _)));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 2000));
        assert!(matches!(parse(&long, 1024, 10), Parsed::Refuse(431, _)));
    }

    #[test]
    fn form_and_escape() {
        assert_eq!(
            form(b"username=al+ice&password=p%26w%3D&x"),
            vec![
                ("username".into(), "al ice".into()),
                ("password".into(), "p&w=".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(
            html_escape("<a href=\"x\">"),
            "&lt;a href=&quot;x&quot;&gt;"
        );
    }
}
