//! The director's side of `lvsadm`'s run-time changes to content switching: the engine's
//! configuration as control's [`ContentModel`] (which [`lvs_control::content::apply`] edits
//! and [`lvs_control::content::status`] lists) and back, the checks and counters the model
//! asks the engine for, and the log line of a change.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

use lvs_control::content::{ContentChecks, ContentCounters, ContentModel, ContentService, Pool};
use lvs_l7::config::{HeaderMatch, ServerConfig};
use lvs_l7::{ContentServiceConfig, PoolConfig, RuleConfig, ServiceView};
use lvs_proto::director::{ContentEdit, ContentRule, PoolServer};
use lvs_proto::{AddrPort, Protocol, ServiceKey};
use lvs_sched_host::Registry;

/// The `content_edited` event line of an edit.
pub fn describe(edit: &ContentEdit) -> lvs_common::event::Event {
    match edit {
        ContentEdit::AddPool {
            name, scheduler, ..
        } => lvs_common::event_line!(
            "content_edited",
            change = "add_pool",
            pool = name,
            scheduler = scheduler,
        ),
        ContentEdit::DelPool { name } => {
            lvs_common::event_line!("content_edited", change = "del_pool", pool = name)
        }
        ContentEdit::AddPoolServer { pool, server } => lvs_common::event_line!(
            "content_edited",
            change = "add_pool_server",
            pool = pool,
            server = AddrPort(server.addr, server.port),
            weight = server.weight,
        ),
        ContentEdit::DelPoolServer { pool, addr, port } => lvs_common::event_line!(
            "content_edited",
            change = "del_pool_server",
            pool = pool,
            server = AddrPort(*addr, *port),
        ),
        ContentEdit::AddRule { service, rule, .. } => lvs_common::event_line!(
            "content_edited",
            change = "add_rule",
            service = AddrPort(service.addr, service.port),
            rule = rule.name,
            pool = rule.pool,
        ),
        ContentEdit::DelRule { service, name } => lvs_common::event_line!(
            "content_edited",
            change = "del_rule",
            service = AddrPort(service.addr, service.port),
            rule = name,
        ),
    }
}

/// The rules and pools of the engine's configuration, as control's model.
pub fn model(services: &[ContentServiceConfig], pools: &[PoolConfig]) -> ContentModel {
    ContentModel {
        services: services
            .iter()
            .map(|s| ContentService {
                key: ServiceKey {
                    protocol: Protocol::Tcp,
                    addr: s.address,
                    port: s.port,
                },
                mode: s.mode.name().into(),
                default_pool: s.default_pool.clone(),
                rules: s
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| rule(r, i))
                    .collect(),
            })
            .collect(),
        pools: pools
            .iter()
            .map(|p| Pool {
                name: p.name.clone(),
                scheduler: p.scheduler.clone(),
                options: p.options.clone(),
                servers: p
                    .servers
                    .iter()
                    .map(|m| PoolServer {
                        addr: m.address,
                        port: m.port,
                        weight: m.weight,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The engine's configuration after an edit: each of `services` (the set `model` was made
/// from: an edit adds or removes no service) with its rules from `model`, and `model`'s pools.
/// The other settings of a service are only the configuration file's.
pub fn engine_config(
    services: &[ContentServiceConfig],
    model: ContentModel,
) -> (Vec<ContentServiceConfig>, Vec<PoolConfig>) {
    debug_assert_eq!(services.len(), model.services.len());
    let services = services
        .iter()
        .zip(model.services)
        .map(|(s, m)| ContentServiceConfig {
            default_pool: m.default_pool,
            rules: m.rules.into_iter().map(rule_config).collect(),
            ..s.clone()
        })
        .collect();
    let pools = model
        .pools
        .into_iter()
        .map(|p| PoolConfig {
            name: p.name,
            scheduler: p.scheduler,
            options: p.options,
            servers: p
                .servers
                .iter()
                .map(|s| ServerConfig {
                    address: s.addr,
                    port: s.port,
                    weight: s.weight,
                })
                .collect(),
        })
        .collect();
    (services, pools)
}

/// A rule of the configuration file, with its name (`rule<index>` when the file gives none).
fn rule(r: &RuleConfig, index: usize) -> ContentRule {
    ContentRule {
        name: r.display_name(index),
        host: r.host.clone(),
        path_prefix: r.path_prefix.clone(),
        path_regex: r.path_regex.clone(),
        methods: r.methods.clone(),
        headers: r
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        pool: r.pool.clone(),
    }
}

fn rule_config(r: ContentRule) -> RuleConfig {
    RuleConfig {
        name: Some(r.name),
        host: r.host,
        path_prefix: r.path_prefix,
        path_regex: r.path_regex,
        methods: r.methods,
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| HeaderMatch { name, value })
            .collect(),
        pool: r.pool,
    }
}

/// The model's checks: schedulers from the plugin registry, regular expressions as the
/// engine compiles them.
#[derive(Debug)]
pub struct EngineChecks<'a>(pub &'a RefCell<Registry>);

impl ContentChecks for EngineChecks<'_> {
    fn scheduler(&self, name: &str) -> Result<(), String> {
        self.0
            .borrow_mut()
            .get(name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn path_regex(&self, re: &str) -> Result<(), String> {
        lvs_l7::config::check_regex(re)
    }
}

/// The listing's counters and health, from the engine's views of its services.
#[derive(Debug)]
pub struct EngineCounters<'a>(pub &'a [ServiceView]);

impl EngineCounters<'_> {
    fn view(&self, key: &ServiceKey) -> Option<&ServiceView> {
        let vip = SocketAddr::new(key.addr, key.port);
        self.0.iter().find(|v| v.vip == vip)
    }
}

impl ContentCounters for EngineCounters<'_> {
    fn rule_hits(&self, service: &ServiceKey, rule: &str) -> u64 {
        self.view(service)
            .and_then(|v| v.rules.iter().find(|r| r.name == rule))
            .map_or(0, |r| r.hits)
    }

    fn default_hits(&self, service: &ServiceKey) -> u64 {
        self.view(service).map_or(0, |v| v.default_hits)
    }

    fn member(&self, pool: &str, addr: IpAddr, port: u16) -> (bool, u64) {
        let addr = SocketAddr::new(addr, port);
        // A pool used by several services has one member entry in each.
        let members = self
            .0
            .iter()
            .flat_map(|v| v.pools.iter().filter(|vp| vp.name == pool))
            .flat_map(|vp| vp.members.iter().filter(|x| x.addr == addr));
        let (mut healthy, mut requests) = (true, 0);
        for x in members {
            healthy &= x.healthy;
            requests += x.requests;
        }
        (healthy, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content-switching tables of the director's file.
    #[derive(serde::Deserialize)]
    struct File {
        content_service: Vec<ContentServiceConfig>,
        pool: Vec<PoolConfig>,
    }

    /// What the engine would be given after `edit`, from a file's content services.
    fn edited(edit: ContentEdit) -> (Vec<ContentServiceConfig>, Vec<PoolConfig>, File) {
        let text = r#"
[[content_service]]
address = "192.0.2.1"
port = 80
default_pool = "web"
client_timeout = 7
max_connections = 9

[[content_service.rule]]
path_prefix = "/img/"
headers = [{ name = "X-A" }]
pool = "web"

[[pool]]
name = "web"
scheduler = "rr"
options = "x=1"
servers = [{ address = "10.0.0.1", port = 8080, weight = 3 }]
"#;
        let cfg: File = lvs_common::parse_toml(text, std::path::Path::new("d.toml")).unwrap();
        let (services, pools) = (&cfg.content_service, &cfg.pool);
        let mut m = model(services, pools);
        struct Any;
        impl ContentChecks for Any {
            fn scheduler(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
            fn path_regex(&self, _: &str) -> Result<(), String> {
                Ok(())
            }
        }
        lvs_control::content::apply(&mut m, edit, &Any).unwrap();
        let (s, p) = engine_config(services, m);
        (s, p, cfg)
    }

    #[test]
    fn an_edit_keeps_what_the_model_does_not_carry() {
        let (services, pools, cfg) = edited(ContentEdit::AddPoolServer {
            pool: "web".into(),
            server: PoolServer {
                addr: "10.0.0.2".parse().unwrap(),
                port: 8080,
                weight: 1,
            },
        });
        // The file's rule was unnamed: the engine gets its name, which is the same.
        let mut rule = cfg.content_service[0].rules[0].clone();
        assert_eq!(rule.name, None);
        rule.name = Some("rule0".into());
        assert_eq!(
            services,
            [ContentServiceConfig {
                rules: vec![rule],
                ..cfg.content_service[0].clone()
            }]
        );
        assert_eq!(
            (services[0].client_timeout, services[0].max_connections),
            (7, 9)
        );
        let mut pool = cfg.pool[0].clone();
        pool.servers.push(ServerConfig {
            address: "10.0.0.2".parse().unwrap(),
            port: 8080,
            weight: 1,
        });
        assert_eq!(pools, [pool]);
    }

    #[test]
    fn a_new_rule_reaches_the_engine_whole() {
        let rule = ContentRule {
            name: "api".into(),
            host: Some("api.example".into()),
            path_prefix: Some("/v1/".into()),
            path_regex: Some("^/v1/".into()),
            methods: vec!["GET".into()],
            headers: vec![("X-B".into(), Some("2".into()))],
            pool: "web".into(),
        };
        let (services, _, _) = edited(ContentEdit::AddRule {
            service: ServiceKey {
                protocol: Protocol::Tcp,
                addr: "192.0.2.1".parse().unwrap(),
                port: 80,
            },
            rule: rule.clone(),
            before: Some("rule0".into()),
        });
        let names: Vec<_> = services[0].rules.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names, [Some("api".into()), Some("rule0".into())]);
        assert_eq!(model(&services, &[]).services[0].rules[0], rule);
    }
}
