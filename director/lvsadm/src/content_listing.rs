//! `--list-rules` output: lvsadm's own (ipvsadm has no layer 7), in its option style, so a
//! rule reads as the command line that adds it.

use std::fmt::Write as _;

use lvs_proto::director::ContentStatus;
use lvs_proto::{AddrPort, ServiceKey};

/// `--list-rules`: each content service with its rules, then every pool with its servers.
pub fn rules(status: &ContentStatus, only: Option<&ServiceKey>) -> String {
    let mut out = String::from("Content services (layer 7)\n");
    for s in &status.services {
        if only.is_some_and(|k| *k != s.key) {
            continue;
        }
        let _ = writeln!(out, "{} {}", s.key, s.mode);
        for r in &s.rules {
            let rule = &r.rule;
            let mut cond = String::new();
            if let Some(h) = &rule.host {
                let _ = write!(cond, " --host {h}");
            }
            if let Some(p) = &rule.path_prefix {
                let _ = write!(cond, " --path-prefix {p}");
            }
            if let Some(p) = &rule.path_regex {
                let _ = write!(cond, " --path-regex {p}");
            }
            for m in &rule.methods {
                let _ = write!(cond, " --method {m}");
            }
            for (n, v) in &rule.headers {
                match v {
                    Some(v) => {
                        let _ = write!(cond, " --header {n}:{v}");
                    }
                    None => {
                        let _ = write!(cond, " --header {n}");
                    }
                }
            }
            let _ = writeln!(
                out,
                "  rule {}{cond} -> pool {}  hits {}",
                rule.name, rule.pool, r.hits
            );
        }
        match &s.default_pool {
            Some(d) => {
                let _ = writeln!(out, "  default -> pool {d}  hits {}", s.default_hits);
            }
            None => out.push_str("  default -> none (answered 404 or 503)\n"),
        }
    }
    if only.is_none() {
        out.push_str("Pools\n");
        for p in &status.pools {
            let opts = if p.options.is_empty() {
                String::new()
            } else {
                format!(" -b {}", p.options)
            };
            let _ = writeln!(out, "{} {}{opts}", p.name, p.scheduler);
            for m in &p.servers {
                let _ = writeln!(
                    out,
                    "  -> {}  weight {}  {}  requests {}",
                    AddrPort(m.server.addr, m.server.port),
                    m.server.weight,
                    if m.healthy { "up" } else { "down" },
                    m.requests
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use lvs_proto::Protocol;
    use lvs_proto::director::{
        ContentRule, ContentRuleStatus, ContentServiceStatus, PoolServer, PoolServerStatus,
        PoolStatus,
    };

    use super::*;

    #[test]
    fn rules_read_as_the_options_that_add_them() {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        };
        let status = ContentStatus {
            services: vec![ContentServiceStatus {
                key,
                mode: "http".into(),
                default_pool: None,
                default_hits: 0,
                rules: vec![ContentRuleStatus {
                    rule: ContentRule {
                        name: "api".into(),
                        host: Some("api.example".into()),
                        path_prefix: Some("/v1/".into()),
                        path_regex: Some("^/v1/[a-z]+$".into()),
                        methods: vec!["GET".into()],
                        headers: vec![("X-A".into(), Some("1".into())), ("X-B".into(), None)],
                        pool: "app".into(),
                    },
                    hits: 3,
                }],
            }],
            pools: vec![PoolStatus {
                name: "app".into(),
                scheduler: "wrr".into(),
                options: "x=1".into(),
                servers: vec![PoolServerStatus {
                    server: PoolServer {
                        addr: "10.0.0.1".parse().unwrap(),
                        port: 8080,
                        weight: 2,
                    },
                    healthy: false,
                    requests: 5,
                }],
            }],
        };
        assert_eq!(
            rules(&status, None),
            "Content services (layer 7)\n\
             TCP 192.0.2.1:80 http\n  \
             rule api --host api.example --path-prefix /v1/ --path-regex ^/v1/[a-z]+$ \
             --method GET --header X-A:1 --header X-B -> pool app  hits 3\n  \
             default -> none (answered 404 or 503)\n\
             Pools\n\
             app wrr -b x=1\n  \
             -> 10.0.0.1:8080  weight 2  down  requests 5\n"
        );
        // One service: its rules only, no pools.
        assert_eq!(
            rules(&status, Some(&key)).lines().count(),
            4,
            "{}",
            rules(&status, Some(&key))
        );
    }
}
