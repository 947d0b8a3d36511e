//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz): the head parsers and the chunked
//! scanner, which are private to the crate. Not an API: nothing else may call these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::chunked::ChunkScanner;
use crate::config::{ClientAddress, Mode};
use crate::route::{HostMatch, RouteTable, Rule, Settings};

/// A table with one rule of every kind of condition, so routing runs on every request.
fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| RouteTable {
        settings: Settings {
            vip: SocketAddr::from(([192, 0, 2, 10], 80)),
            mode: Mode::Http,
            no_match: 404,
            client_address: ClientAddress::XForwardedFor,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            client_timeout: Duration::from_secs(30),
            server_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
        },
        rules: vec![Rule {
            name: "fuzz".into(),
            host: Some(HostMatch::parse("*.example")),
            path_prefix: Some("/a".into()),
            path_regex: Some(regex::Regex::new("^/a/[0-9]+$").expect("a valid regex")),
            methods: vec!["GET".into()],
            headers: vec![("x-pool".into(), None)],
            pool: 0,
            hits: Arc::new(AtomicU64::new(0)),
        }],
        pools: Vec::new(),
        default_pool: Some(0),
        default_hits: Arc::new(AtomicU64::new(0)),
    })
}

/// [`crate::http::parse_request`] from a fixed client: `Ok(Some((head length, the head sent
/// upstream)))`, `Ok(None)` while incomplete, `Err(status)` when refused.
pub fn parse_request(buf: &[u8]) -> Result<Option<(usize, Vec<u8>)>, u16> {
    let client = SocketAddr::from(([198, 51, 100, 7], 40000));
    crate::http::parse_request(buf, table(), client)
        .map(|r| r.map(|r| (r.head_len, r.upstream_head)))
}

/// [`crate::http::parse_response`]: `Ok(Some(head length))`, `Ok(None)` while incomplete.
#[allow(clippy::result_unit_err)] // as the parser's own
pub fn parse_response(buf: &[u8], head_request: bool, max: usize) -> Result<Option<usize>, ()> {
    crate::http::parse_response(buf, head_request, max).map(|r| r.map(|r| r.head_len))
}

/// Scans `bufs` one after the other as a chunked body: the body bytes each one held, and
/// whether the body ended; `Err` on bad framing.
#[allow(clippy::result_unit_err)] // the targets only tell Ok from Err
pub fn scan_chunked(bufs: &[&[u8]]) -> Result<(Vec<usize>, bool), ()> {
    let mut s = ChunkScanner::default();
    let mut used = Vec::with_capacity(bufs.len());
    for b in bufs {
        if s.is_done() {
            break;
        }
        used.push(s.scan(b).map_err(|_| ())?);
    }
    Ok((used, s.is_done()))
}
