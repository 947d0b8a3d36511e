//! The content switching as `lvsadm --list-rules` receives it ([`ContentStatus`]):
//! configuration from the model, counters and health from the engine.

use std::net::IpAddr;

use lvs_proto::ServiceKey;
use lvs_proto::director::{
    ContentRuleStatus, ContentServiceStatus, ContentStatus, PoolServerStatus, PoolStatus,
};

use super::model::ContentModel;

/// Where the listing gets its numbers. The director implements it over the layer-7 engine.
pub trait ContentCounters {
    /// Requests rule `rule` of `service` routed.
    fn rule_hits(&self, service: &ServiceKey, rule: &str) -> u64;
    /// Requests `service` sent to its default pool.
    fn default_hits(&self, service: &ServiceKey) -> u64;
    /// Whether a pool member is healthy, and the requests sent to it, over every service
    /// that uses the pool (healthy until the monitor says otherwise).
    fn member(&self, pool: &str, addr: IpAddr, port: u16) -> (bool, u64);
}

/// The listing of `model`, with `counters`' figures.
pub fn status(model: &ContentModel, counters: &dyn ContentCounters) -> ContentStatus {
    let services = model
        .services
        .iter()
        .map(|s| ContentServiceStatus {
            key: s.key,
            mode: s.mode.clone(),
            default_pool: s.default_pool.clone(),
            default_hits: counters.default_hits(&s.key),
            rules: s
                .rules
                .iter()
                .map(|rule| ContentRuleStatus {
                    hits: counters.rule_hits(&s.key, &rule.name),
                    rule: rule.clone(),
                })
                .collect(),
        })
        .collect();
    let pools = model
        .pools
        .iter()
        .map(|p| {
            let servers = p
                .servers
                .iter()
                .map(|&server| {
                    let (healthy, requests) = counters.member(&p.name, server.addr, server.port);
                    PoolServerStatus {
                        server,
                        healthy,
                        requests,
                    }
                })
                .collect();
            PoolStatus {
                name: p.name.clone(),
                scheduler: p.scheduler.clone(),
                options: p.options.clone(),
                servers,
            }
        })
        .collect();
    ContentStatus { services, pools }
}

#[cfg(test)]
mod tests {
    use lvs_proto::Protocol;
    use lvs_proto::director::{ContentRule, PoolServer};

    use super::*;
    use crate::content::{ContentService, Pool};

    /// Rule `rule<N>`'s hits are 10 + N (others' 100); the default pool's 7; member `10.0.0.2`
    /// is down.
    struct Counters;

    impl ContentCounters for Counters {
        fn rule_hits(&self, _service: &ServiceKey, rule: &str) -> u64 {
            10 + rule.trim_start_matches("rule").parse::<u64>().unwrap_or(90)
        }

        fn default_hits(&self, _service: &ServiceKey) -> u64 {
            7
        }

        fn member(&self, _pool: &str, addr: IpAddr, port: u16) -> (bool, u64) {
            (addr.to_string() != "10.0.0.2", u64::from(port))
        }
    }

    #[test]
    fn the_listing_is_the_model_with_the_counters_figures() {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        };
        let server = |last: u8, port: u16| PoolServer {
            addr: format!("10.0.0.{last}").parse().unwrap(),
            port,
            weight: 2,
        };
        let model = ContentModel {
            services: vec![ContentService {
                key,
                mode: "tls-sni".into(),
                default_pool: Some("app".into()),
                rules: vec![
                    ContentRule {
                        name: "api".into(),
                        host: Some("api.example".into()),
                        headers: vec![("X-A".into(), None)],
                        pool: "app".into(),
                        ..ContentRule::default()
                    },
                    ContentRule {
                        name: "rule1".into(),
                        pool: "app".into(),
                        ..ContentRule::default()
                    },
                ],
            }],
            pools: vec![Pool {
                name: "app".into(),
                scheduler: "wrr".into(),
                options: "x=1".into(),
                servers: vec![server(1, 80), server(2, 81)],
            }],
        };
        let got = status(&model, &Counters);
        let s = &got.services[0];
        assert_eq!(
            (s.key, s.mode.as_str(), s.default_hits),
            (key, "tls-sni", 7)
        );
        let rules: Vec<_> = s
            .rules
            .iter()
            .map(|r| (r.rule.name.as_str(), r.hits))
            .collect();
        assert_eq!(rules, [("api", 100), ("rule1", 11)]);
        assert_eq!(s.rules[0].rule.host.as_deref(), Some("api.example"));
        assert_eq!(s.rules[0].rule.headers, [("X-A".into(), None)]);
        let p = &got.pools[0];
        assert_eq!((p.name.as_str(), p.options.as_str()), ("app", "x=1"));
        let members: Vec<_> = p
            .servers
            .iter()
            .map(|m| (m.server, m.healthy, m.requests))
            .collect();
        assert_eq!(
            members,
            [(server(1, 80), true, 80), (server(2, 81), false, 81)]
        );
    }
}
