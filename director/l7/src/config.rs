//! The content-switching part of the director's TOML file:
//!
//! ```toml
//! [[content_service]]
//! address = "192.0.2.10"
//! port = 80
//! mode = "http"                 # or "tls-sni"
//! default_pool = "static"
//! no_match = 404                # or 503: the answer when no rule matches and no default pool
//! client_address = "x-forwarded-for"  # "forwarded", "proxy-v1", "proxy-v2" or "none"
//! forwarded_for = "replace"     # or "append": what becomes of the client's own X-Forwarded-For
//! upgrades = ["websocket"]      # protocols a client may switch to (never "h2c")
//! max_connections = 0           # client connections at once; beyond: 503 (0: no cap)
//!
//! [[content_service.rule]]
//! name = "api"
//! host = "api.example.com"      # exact, or "*.example.com"; for tls-sni: the server name
//! path_prefix = "/v1/"
//! pool = "app"
//!
//! [[pool]]
//! name = "app"
//! scheduler = "wlc"
//! servers = [{ address = "10.0.0.11", port = 8080, weight = 2 }]
//! ```

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// What a content service reads: HTTP requests, or only the TLS ClientHello.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Http,
    TlsSni,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::TlsSni => "tls-sni",
        }
    }
}

/// How a real server learns the client's address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAddress {
    /// `X-Forwarded-For: client` appended to each request (HTTP mode).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=http` (HTTP mode).
    Forwarded,
    /// The PROXY protocol's text header at the start of each server connection. Server
    /// connections are then not shared between clients.
    ProxyV1,
    /// The PROXY protocol's binary header.
    ProxyV2,
    /// Nothing.
    None,
}

/// What happens to client-address fields a client sent itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedFor {
    /// The client's `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are dropped; the server
    /// sees only the address the director writes. The default: a director facing clients
    /// cannot tell a true chain from a forged one.
    #[default]
    Replace,
    /// The director's entry is appended to the client's chain (the director sits behind
    /// proxies of your own that write it).
    Append,
}

/// `[[content_service]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentServiceConfig {
    /// IPv4 or IPv6. `::` takes IPv6 clients only (listeners are `IPV6_V6ONLY`): IPv4 clients
    /// of the port need a `0.0.0.0` service of their own.
    pub address: IpAddr,
    pub port: u16,
    #[serde(default)]
    pub mode: Mode,
    /// Where requests no rule matches go; none: they get `no_match`.
    #[serde(default)]
    pub default_pool: Option<String>,
    /// 404 or 503.
    #[serde(default = "default_no_match")]
    pub no_match: u16,
    #[serde(default)]
    pub client_address: ClientAddress,
    /// Largest request or response head, in bytes (431 / 502 beyond).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most header lines in a request (431 beyond).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Seconds a client has to send a whole request head, or to send more of a body (408).
    #[serde(default = "default_client_timeout")]
    pub client_timeout: u32,
    /// Seconds a real server has to answer, or to send more of a response (504).
    #[serde(default = "default_server_timeout")]
    pub server_timeout: u32,
    /// Seconds to connect to a real server before trying another.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u32,
    /// Seconds an idle keep-alive client connection, or an idle tunnel, is kept.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u32,
    /// Client-supplied address fields: replaced (default) or appended to.
    #[serde(default)]
    pub forwarded_for: ForwardedFor,
    /// Protocols a client may switch to with `Upgrade` (any case; `name` allows every
    /// `name/version`). `h2c` cannot be listed: its requests would escape the rules.
    #[serde(default = "default_upgrades")]
    pub upgrades: Vec<String>,
    /// Client connections served at once by this service (all workers); beyond, a new
    /// connection is answered 503 and closed. 0: no cap.
    #[serde(default)]
    pub max_connections: u32,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// `[[content_service.rule]]`: every condition given must hold; the first rule that matches
/// wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// For counters and logs; default `rule<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Host header (port ignored) or, in tls-sni mode, the server name: exact (any case) or
    /// `*.example.com` for any subdomain.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A regular expression searched in the path (with query); anchor it with `^` as needed.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Request methods, e.g. `["GET", "HEAD"]`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers that must be present, with this value when one is given (exact match).
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    pub pool: String,
}

/// One header condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// `[[pool]]`: real servers with their own scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub name: String,
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// Scheduler options, as `lvsadm -b`.
    #[serde(default)]
    pub options: String,
    pub servers: Vec<ServerConfig>,
}

/// One real server of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// IPv4 or IPv6, whatever the family of the services using the pool: the director
    /// connects to each server in the server's own family.
    pub address: IpAddr,
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_no_match() -> u16 {
    404
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_headers() -> usize {
    100
}
fn default_client_timeout() -> u32 {
    30
}
fn default_server_timeout() -> u32 {
    60
}
fn default_connect_timeout() -> u32 {
    5
}
fn default_idle_timeout() -> u32 {
    60
}
fn default_upgrades() -> Vec<String> {
    vec!["websocket".into()]
}
fn default_scheduler() -> String {
    "wrr".into()
}
fn default_weight() -> u32 {
    1
}

/// The most header lines a request may be allowed (the parser's array is this big).
pub const MAX_HEADERS_LIMIT: usize = 256;

impl RuleConfig {
    /// The rule's name, or `rule<index>`.
    pub fn display_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("rule{index}"))
    }
}

/// Whether `re` is a regular expression a rule's `path_regex` can use; the error says why not.
pub fn check_regex(re: &str) -> Result<(), String> {
    regex::Regex::new(re).map(|_| ()).map_err(|e| e.to_string())
}

/// Which table of the file a validation error is about, and the key in it (when one key is
/// at fault), so that the director can point at its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The `index`-th `[[pool]]`.
    Pool(usize, Option<&'static str>),
    /// The `index`-th `[[content_service]]`.
    Service(usize, Option<&'static str>),
    /// Rule `rule` of content service `service`.
    Rule(usize, usize, Option<&'static str>),
}

/// Checks serde cannot express: pool references, regexes, limits, duplicates. The reason names
/// the service and the key.
pub fn validate(services: &[ContentServiceConfig], pools: &[PoolConfig]) -> Result<(), String> {
    validate_at(services, pools).map_err(|(_, reason)| reason)
}

/// [`validate`], also saying where the fault is.
pub fn validate_at(
    services: &[ContentServiceConfig],
    pools: &[PoolConfig],
) -> Result<(), (Place, String)> {
    let mut names = HashSet::new();
    for (pi, p) in pools.iter().enumerate() {
        let at = |key| Place::Pool(pi, key);
        if !names.insert(p.name.as_str()) {
            return Err((
                at(Some("name")),
                format!("pool {:?} is defined twice", p.name),
            ));
        }
        if p.servers.is_empty() {
            return Err((
                at(Some("servers")),
                format!("pool {:?} has no servers", p.name),
            ));
        }
        let mut seen = HashSet::new();
        for s in &p.servers {
            if s.port == 0 {
                return Err((
                    at(Some("servers")),
                    format!("pool {:?}: server {} has port 0", p.name, s.address),
                ));
            }
            if !seen.insert((s.address, s.port)) {
                return Err((
                    at(Some("servers")),
                    format!(
                        "pool {:?}: server {} is listed twice",
                        p.name,
                        SocketAddr::new(s.address, s.port)
                    ),
                ));
            }
        }
    }
    let mut keys = HashSet::new();
    for (si, s) in services.iter().enumerate() {
        let at = |key| Place::Service(si, key);
        let what = format!("content_service {}", SocketAddr::new(s.address, s.port));
        if s.port == 0 {
            return Err((at(Some("port")), format!("{what}: port must not be 0")));
        }
        if !keys.insert((s.address, s.port)) {
            return Err((at(None), format!("{what} is defined twice")));
        }
        if s.no_match != 404 && s.no_match != 503 {
            return Err((
                at(Some("no_match")),
                format!("{what}: no_match = {} must be 404 or 503", s.no_match),
            ));
        }
        if !(1..=MAX_HEADERS_LIMIT).contains(&s.max_headers) {
            return Err((
                at(Some("max_headers")),
                format!(
                    "{what}: max_headers = {} must be 1 to {MAX_HEADERS_LIMIT}",
                    s.max_headers
                ),
            ));
        }
        if !(256..=1 << 20).contains(&s.max_header_bytes) {
            return Err((
                at(Some("max_header_bytes")),
                format!(
                    "{what}: max_header_bytes = {} must be 256 to 1048576",
                    s.max_header_bytes
                ),
            ));
        }
        for (k, v) in [
            ("client_timeout", s.client_timeout),
            ("server_timeout", s.server_timeout),
            ("connect_timeout", s.connect_timeout),
            ("idle_timeout", s.idle_timeout),
        ] {
            if v == 0 {
                return Err((
                    at(Some(k)),
                    format!("{what}: {k} must be at least 1 second"),
                ));
            }
        }
        for u in &s.upgrades {
            let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if u.is_empty() || !u.bytes().all(tchar) {
                return Err((
                    at(Some("upgrades")),
                    format!("{what}: upgrades: {u:?} is not a protocol name (like \"websocket\")"),
                ));
            }
            if u.eq_ignore_ascii_case("h2c") {
                return Err((
                    at(Some("upgrades")),
                    format!(
                        "{what}: upgrades: \"h2c\" cannot be allowed: after the switch the director only relays HTTP/2 frames, so those requests would escape the rules"
                    ),
                ));
            }
        }
        if let Some(d) = &s.default_pool
            && !names.contains(d.as_str())
        {
            return Err((
                at(Some("default_pool")),
                format!("{what}: default_pool {d:?} is not a [[pool]]"),
            ));
        }
        if s.mode == Mode::TlsSni
            && matches!(
                s.client_address,
                ClientAddress::XForwardedFor | ClientAddress::Forwarded
            )
            && s.client_address != ClientAddress::default()
        {
            return Err((
                at(Some("client_address")),
                format!(
                    "{what}: client_address headers need HTTP; use proxy-v1, proxy-v2 or none with tls-sni"
                ),
            ));
        }
        for (i, r) in s.rules.iter().enumerate() {
            let at = |key| Place::Rule(si, i, key);
            let rn = r.display_name(i);
            if !names.contains(r.pool.as_str()) {
                return Err((
                    at(Some("pool")),
                    format!("{what}: rule {rn}: pool {:?} is not a [[pool]]", r.pool),
                ));
            }
            if let Some(re) = &r.path_regex {
                check_regex(re).map_err(|e| {
                    (
                        at(Some("path_regex")),
                        format!("{what}: rule {rn}: path_regex: {e}"),
                    )
                })?;
            }
            if s.mode == Mode::TlsSni
                && (r.path_prefix.is_some()
                    || r.path_regex.is_some()
                    || !r.methods.is_empty()
                    || !r.headers.is_empty())
            {
                return Err((
                    at(None),
                    format!(
                        "{what}: rule {rn}: a tls-sni service can only match on host (the server name)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        content_service: Vec<ContentServiceConfig>,
        #[serde(default)]
        pool: Vec<PoolConfig>,
    }

    const GOOD: &str = r#"
[[content_service]]
address = "192.0.2.10"
port = 80
default_pool = "a"
[[content_service.rule]]
host = "img.example"
path_regex = "^/x/[0-9]+$"
pool = "b"
[[pool]]
name = "a"
servers = [{ address = "10.0.0.1", port = 80 }]
[[pool]]
name = "b"
scheduler = "rr"
servers = [{ address = "10.0.0.2", port = 80, weight = 3 }]
"#;

    #[test]
    fn a_good_file_parses_and_validates() {
        let f: File = toml::from_str(GOOD).unwrap();
        validate(&f.content_service, &f.pool).unwrap();
        assert_eq!(f.content_service[0].mode, Mode::Http);
        assert_eq!(f.pool[1].servers[0].weight, 3);
    }

    #[test]
    fn bad_references_and_regexes_are_named() {
        let f: File = toml::from_str(&GOOD.replace("pool = \"b\"", "pool = \"zz\"")).unwrap();
        let e = validate(&f.content_service, &f.pool).unwrap_err();
        assert!(e.contains("\"zz\"") && e.contains("192.0.2.10:80"), "{e}");
        let f: File = toml::from_str(&GOOD.replace("^/x/[0-9]+$", "(")).unwrap();
        let e = validate(&f.content_service, &f.pool).unwrap_err();
        assert!(e.contains("path_regex"), "{e}");
        let f: File =
            toml::from_str(&GOOD.replace("port = 80\n", "port = 80\nno_match = 500\n")).unwrap();
        assert!(
            validate(&f.content_service, &f.pool)
                .unwrap_err()
                .contains("no_match")
        );
    }

    #[test]
    fn hardening_keys_have_safe_defaults_and_clear_errors() {
        let f: File = toml::from_str(GOOD).unwrap();
        let c = &f.content_service[0];
        assert_eq!(c.forwarded_for, ForwardedFor::Replace);
        assert_eq!(c.upgrades, vec!["websocket".to_owned()]);
        assert_eq!(c.max_connections, 0);
        let with = |keys: &str| -> Result<(), String> {
            let f: File =
                toml::from_str(&GOOD.replace("port = 80\n", &format!("port = 80\n{keys}\n")))
                    .map_err(|e| e.to_string())?;
            validate(&f.content_service, &f.pool)
        };
        with("forwarded_for = \"append\"\nmax_connections = 100\nupgrades = []").unwrap();
        let e = with("upgrades = [\"websocket\", \"H2C\"]").unwrap_err();
        assert!(
            e.contains("upgrades") && e.contains("escape the rules"),
            "{e}"
        );
        let e = with("upgrades = [\"web socket\"]").unwrap_err();
        assert!(e.contains("not a protocol name"), "{e}");
        let e = with("forwarded_for = \"keep\"").unwrap_err();
        assert!(e.contains("replace") && e.contains("append"), "{e}");
    }

    /// IPv6 VIPs and IPv6 servers, and pools mixing both families (the director is a proxy:
    /// it opens its own connection to each server, in that server's family).
    #[test]
    fn ipv6_services_and_pools_validate() {
        let v6 = r#"
[[content_service]]
address = "2001:db8::100"
port = 80
default_pool = "mixed"
[[content_service]]
address = "::"
port = 80
default_pool = "six"
[[content_service]]
address = "0.0.0.0"
port = 80
default_pool = "mixed"
[[pool]]
name = "six"
servers = [{ address = "2001:db8:1::11", port = 8080 }, { address = "2001:db8:1::12", port = 8080 }]
[[pool]]
name = "mixed"
servers = [{ address = "2001:db8:1::11", port = 8080 }, { address = "10.0.0.1", port = 8080 }]
"#;
        let f: File = toml::from_str(v6).unwrap();
        validate(&f.content_service, &f.pool).unwrap();
        assert_eq!(
            f.pool[0].servers[1].address,
            "2001:db8:1::12".parse::<IpAddr>().unwrap()
        );
        // One address written two ways is one server, listed twice.
        let twice = v6.replace("2001:db8:1::12", "2001:DB8:1:0:0::11");
        let f: File = toml::from_str(&twice).unwrap();
        let e = validate(&f.content_service, &f.pool).unwrap_err();
        assert!(e.contains("[2001:db8:1::11]:8080 is listed twice"), "{e}");
        // And one VIP written two ways is one service.
        let f: File = toml::from_str(&v6.replace("\"::\"", "\"2001:db8:0::100\"")).unwrap();
        let e = validate(&f.content_service, &f.pool).unwrap_err();
        assert!(
            e.contains("content_service [2001:db8::100]:80 is defined twice"),
            "{e}"
        );
        // The address is an address: its port is the `port` key, and brackets are refused.
        let e = toml::from_str::<File>(&v6.replace("\"2001:db8::100\"", "\"[2001:db8::100]\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid IP address syntax"), "{e}");
    }

    /// The commented example in the director's sample configuration is valid as it stands.
    #[test]
    fn the_sample_example_is_valid() {
        let sample = include_str!("../../../etc/lvs-director.toml");
        let start = sample
            .find("# [[content_service]]")
            .expect("example present");
        // The example is one commented block: it ends at the first blank line.
        let text: String = sample[start..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        let f: File = toml::from_str(&text).expect("the example parses");
        validate(&f.content_service, &f.pool).expect("the example is valid");
        assert_eq!(f.pool.len(), 2);
        assert_eq!(f.content_service[0].rules.len(), 1);
    }
}
