//! Just enough HTTP/1.1 for etcd's JSON gateway: POST with a JSON body over one keep-alive
//! connection, answers with Content-Length or chunked bodies.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::BenchError;

/// One keep-alive connection to an HTTP server.
#[derive(Debug)]
pub struct Http {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl Http {
    /// Connects to `addr` (host:port).
    pub fn connect(addr: &str) -> Result<Http, BenchError> {
        let stream =
            TcpStream::connect(addr).map_err(|e| BenchError::io(format!("connect {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::io("TCP_NODELAY", e))?;
        Ok(Http {
            stream,
            host: addr.to_owned(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// POSTs `body` (JSON) to `path`; the status and the body of the answer.
    pub fn post_json(&mut self, path: &str, body: &str) -> Result<(u16, Vec<u8>), BenchError> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| BenchError::io("send HTTP request", e))?;
        self.read_response()
    }

    fn fill(&mut self) -> Result<(), BenchError> {
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .map_err(|e| BenchError::io("read HTTP response", e))?;
        if n == 0 {
            return Err(BenchError::Protocol(
                "HTTP server closed the connection".into(),
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_response(&mut self) -> Result<(u16, Vec<u8>), BenchError> {
        let (status, head_len, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut length = Length::UntilClose;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                            length = Length::Fixed(v.parse().map_err(|_| {
                                BenchError::Protocol(format!("bad Content-Length {v:?}"))
                            })?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            length = Length::Chunked;
                        }
                    }
                    break (resp.code.unwrap_or(0), n, length);
                }
                Ok(httparse::Status::Partial) => self.fill()?,
                Err(e) => return Err(BenchError::Protocol(format!("bad HTTP response: {e}"))),
            }
        };
        self.buf.drain(..head_len);
        let body = match length {
            Length::Fixed(n) => {
                while self.buf.len() < n {
                    self.fill()?;
                }
                self.buf.drain(..n).collect()
            }
            Length::Chunked => self.read_chunked()?,
            Length::UntilClose => {
                return Err(BenchError::Protocol(
                    "HTTP response without a length: keep-alive impossible".into(),
                ));
            }
        };
        Ok((status, body))
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, BenchError> {
        let mut body = Vec::new();
        loop {
            let (skip, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((i, size))) => break (i, size),
                    Ok(httparse::Status::Partial) => self.fill()?,
                    Err(_) => return Err(BenchError::Protocol("bad chunk size".into())),
                }
            };
            let size = usize::try_from(size)
                .map_err(|_| BenchError::Protocol("chunk too large".into()))?;
            // The chunk and its CRLF.
            while self.buf.len() < skip + size + 2 {
                self.fill()?;
            }
            body.extend_from_slice(&self.buf[skip..skip + size]);
            self.buf.drain(..skip + size + 2);
            if size == 0 {
                // No trailers are expected from etcd's gateway.
                return Ok(body);
            }
        }
    }
}

enum Length {
    Fixed(usize),
    Chunked,
    UntilClose,
}
