//! A compiled routing table: a content service's settings, rules and pools. Built whole on the
//! control thread and handed to the workers as an `Arc`; a session takes the newest table at
//! the start of each request, so a reload changes the routing of the next request on every
//! open connection and drops none.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use regex::Regex;

use crate::config::{ClientAddress, ContentServiceConfig, ForwardedFor, Mode};
use crate::pool::Pool;

/// Limits and timeouts of a service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub vip: SocketAddr,
    pub mode: Mode,
    pub no_match: u16,
    pub client_address: ClientAddress,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub client_timeout: Duration,
    pub server_timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub forwarded_for: ForwardedFor,
    /// Allowed `Upgrade` protocols, lowercase.
    pub upgrades: Vec<String>,
    /// 0: no cap.
    pub max_connections: u32,
}

impl Settings {
    pub fn from_config(c: &ContentServiceConfig) -> Self {
        let s = |n: u32| Duration::from_secs(u64::from(n));
        Self {
            vip: SocketAddr::new(c.address, c.port),
            mode: c.mode,
            no_match: c.no_match,
            client_address: c.client_address,
            max_header_bytes: c.max_header_bytes,
            max_headers: c.max_headers,
            client_timeout: s(c.client_timeout),
            server_timeout: s(c.server_timeout),
            connect_timeout: s(c.connect_timeout),
            idle_timeout: s(c.idle_timeout),
            forwarded_for: c.forwarded_for,
            upgrades: c.upgrades.iter().map(|u| u.to_ascii_lowercase()).collect(),
            max_connections: c.max_connections,
        }
    }
}

#[derive(Debug, Clone)]
pub enum HostMatch {
    /// Lowercase.
    Exact(String),
    /// `*.example.com`: lowercase `.example.com`.
    Suffix(String),
    /// An IPv6 address (`2001:db8::100` or `[2001:db8::100]`): matches that address in any of
    /// its text forms (`Host: [2001:DB8:0::100]:80` too).
    Ipv6(Ipv6Addr),
}

impl HostMatch {
    pub fn parse(s: &str) -> Self {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(a) = bare.parse::<Ipv6Addr>() {
            return HostMatch::Ipv6(a);
        }
        let s = s.to_ascii_lowercase();
        match s.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') => HostMatch::Suffix(rest.to_owned()),
            _ => HostMatch::Exact(s),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => h.eq_ignore_ascii_case(host),
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
            // Only an IP-literal host has a colon (a reg-name has none), so names never pay
            // for the parse.
            HostMatch::Ipv6(a) => host.contains(':') && host.parse::<Ipv6Addr>() == Ok(*a),
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub host: Option<HostMatch>,
    pub path_prefix: Option<String>,
    pub path_regex: Option<Regex>,
    pub methods: Vec<String>,
    pub headers: Vec<(String, Option<String>)>,
    pub pool: usize,
    /// Requests (connections in tls-sni mode) this rule routed; kept across reloads by name.
    pub hits: Arc<AtomicU64>,
}

/// What rules look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Host header or server name, without a port.
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub method: &'a str,
    pub headers: &'a [httparse::Header<'a>],
}

impl Rule {
    fn matches(&self, r: &RequestView<'_>) -> bool {
        if let Some(h) = &self.host
            && !r.host.is_some_and(|host| h.matches(host))
        {
            return false;
        }
        if let Some(p) = &self.path_prefix
            && !r.path.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(re) = &self.path_regex
            && !re.is_match(r.path)
        {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == r.method) {
            return false;
        }
        self.headers.iter().all(|(name, value)| {
            r.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case(name)
                    && value.as_ref().is_none_or(|v| h.value == v.as_bytes())
            })
        })
    }
}

/// The whole routing state of one content service.
#[derive(Debug)]
pub struct RouteTable {
    pub settings: Settings,
    pub rules: Vec<Rule>,
    pub pools: Vec<Arc<Pool>>,
    pub default_pool: Option<usize>,
    /// Requests that matched no rule and went to the default pool.
    pub default_hits: Arc<AtomicU64>,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The rule that matched; `None` for the default pool.
    pub rule: Option<usize>,
    pub pool: usize,
}

impl RouteTable {
    /// The first matching rule's pool, else the default pool, else `None` (answer
    /// `settings.no_match`).
    pub fn route(&self, r: &RequestView<'_>) -> Option<Route> {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(r) {
                return Some(Route {
                    rule: Some(i),
                    pool: rule.pool,
                });
            }
        }
        self.default_pool.map(|pool| Route { rule: None, pool })
    }
}

#[cfg(test)]
mod tests {
    use super::HostMatch;

    #[test]
    fn an_ipv6_host_matches_the_address_in_any_text_form() {
        for rule in ["2001:db8::100", "[2001:db8::100]", "2001:DB8:0:0::100"] {
            let m = HostMatch::parse(rule);
            for host in ["2001:db8::100", "2001:DB8::100", "2001:db8:0:0:0:0:0:100"] {
                assert!(m.matches(host), "{rule} / {host}");
            }
            for host in ["2001:db8::101", "2001:db8::100.example", "a.example", ""] {
                assert!(!m.matches(host), "{rule} / {host}");
            }
        }
        // Names are as before.
        assert!(HostMatch::parse("A.Example").matches("a.EXAMPLE"));
        assert!(HostMatch::parse("*.example").matches("x.example"));
        assert!(!HostMatch::parse("*.example").matches("example"));
    }
}
