//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz): the head parsers and the chunked
//! scanner, which are private to the crate. Not an API: nothing else may call these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::buf::Buf;
use crate::chunked::ChunkedRecoder;
use crate::config::{ClientAddress, ForwardedFor, Mode};
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
            forwarded_for: ForwardedFor::Replace,
            upgrades: vec!["websocket".into()],
            max_connections: 0,
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

/// Reads `bufs` one after the other as a chunked body, re-encoding it (into a buffer with room
/// for all of it): the body bytes each one held, whether the body ended, and the re-encoded
/// body; `Err` on bad framing.
#[allow(clippy::result_unit_err)] // the targets only tell Ok from Err
#[allow(clippy::type_complexity)]
pub fn scan_chunked(bufs: &[&[u8]]) -> Result<(Vec<usize>, bool, Vec<u8>), ()> {
    let mut s = ChunkedRecoder::default();
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let mut out = Buf::new(total * 2 + 1024);
    let mut used = Vec::with_capacity(bufs.len());
    for b in bufs {
        if s.is_done() {
            break;
        }
        used.push(s.recode(b, &mut out).map_err(|_| ())?);
    }
    Ok((used, s.is_done(), out.bytes().to_vec()))
}

/// The data of a chunked body that [`scan_chunked`] re-encoded (panics if its framing is not
/// ours: the re-encoder must write only its own).
pub fn chunked_data(encoded: &[u8]) -> Vec<u8> {
    crate::chunked::data_of(encoded)
}
