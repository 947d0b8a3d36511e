//! `lvsadm`'s run-time changes to content switching ([`ContentEdit`]) applied to a copy of the
//! rules and pools, and the listing of them ([`ContentStatus`]). The caller applies the edited
//! copy whole through the engine (which validates it again), or keeps the old one.

use std::net::SocketAddr;

use lvs_l7::config::{HeaderMatch, ServerConfig};
use lvs_l7::{ContentServiceConfig, PoolConfig, RuleConfig, ServiceView};
use lvs_proto::director::{
    ContentEdit, ContentRule, ContentRuleStatus, ContentServiceStatus, ContentStatus, PoolServer,
    PoolServerStatus, PoolStatus,
};
use lvs_proto::{AddrPort, Protocol, ServiceKey};

/// Apply `edit` to `services` and `pools`; the error is the message `lvsadm` prints.
pub fn apply(
    services: &mut [ContentServiceConfig],
    pools: &mut Vec<PoolConfig>,
    edit: ContentEdit,
) -> Result<(), String> {
    match edit {
        ContentEdit::AddPool {
            name,
            scheduler,
            options,
            servers,
        } => {
            check_name("pool", &name)?;
            if pools.iter().any(|p| p.name == name) {
                return Err(format!("pool {name:?} already exists"));
            }
            if servers.is_empty() {
                return Err(format!(
                    "pool {name:?} needs at least one real server (-r server-address)"
                ));
            }
            pools.push(PoolConfig {
                name,
                scheduler,
                options,
                servers: servers.iter().map(server_config).collect(),
            });
        }
        ContentEdit::DelPool { name } => {
            let i = pool_index(pools, &name)?;
            for s in services.iter() {
                let what = key_of(s);
                if s.default_pool.as_deref() == Some(name.as_str()) {
                    return Err(format!("pool {name:?} is still the default pool of {what}"));
                }
                if let Some((i, r)) = s.rules.iter().enumerate().find(|(_, r)| r.pool == name) {
                    return Err(format!(
                        "pool {name:?} is still used by rule {:?} of {what}; delete the rule first",
                        r.display_name(i)
                    ));
                }
            }
            pools.remove(i);
        }
        ContentEdit::AddPoolServer { pool, server } => {
            let i = pool_index(pools, &pool)?;
            let p = &mut pools[i];
            if p.servers
                .iter()
                .any(|s| s.address == server.addr && s.port == server.port)
            {
                return Err(format!(
                    "{} is already in pool {pool:?}",
                    AddrPort(server.addr, server.port)
                ));
            }
            p.servers.push(server_config(&server));
        }
        ContentEdit::DelPoolServer { pool, addr, port } => {
            let i = pool_index(pools, &pool)?;
            let p = &mut pools[i];
            let Some(j) = p
                .servers
                .iter()
                .position(|s| s.address == addr && s.port == port)
            else {
                return Err(format!("{} is not in pool {pool:?}", AddrPort(addr, port)));
            };
            if p.servers.len() == 1 {
                return Err(format!(
                    "{} is the last real server of pool {pool:?}; delete the pool instead",
                    AddrPort(addr, port)
                ));
            }
            p.servers.remove(j);
        }
        ContentEdit::AddRule {
            service,
            rule,
            before,
        } => {
            let s = service_mut(services, &service)?;
            check_name("rule", &rule.name)?;
            if names(s).any(|n| n == rule.name) {
                return Err(format!("rule {:?} already exists in {service}", rule.name));
            }
            if !pools.iter().any(|p| p.name == rule.pool) {
                return Err(format!(
                    "unknown pool {:?}: add it first with --add-pool",
                    rule.pool
                ));
            }
            if let Some(re) = &rule.path_regex {
                lvs_l7::config::check_regex(re)
                    .map_err(|e| format!("bad --path-regex {re:?}: {e}"))?;
            }
            // Unnamed rules of the file are called rule<N> by position: name them now, so
            // that inserting before them does not rename them.
            for (i, r) in s.rules.iter_mut().enumerate() {
                if r.name.is_none() {
                    r.name = Some(format!("rule{i}"));
                }
            }
            let at = match before {
                None => s.rules.len(),
                Some(b) => s
                    .rules
                    .iter()
                    .position(|r| r.name.as_deref() == Some(b.as_str()))
                    .ok_or_else(|| format!("--before {b:?}: no such rule in {service}"))?,
            };
            s.rules.insert(at, rule_config(rule));
        }
        ContentEdit::DelRule { service, name } => {
            let s = service_mut(services, &service)?;
            let Some(i) = names(s).position(|n| n == name) else {
                return Err(format!("no rule {name:?} in {service}"));
            };
            for (i, r) in s.rules.iter_mut().enumerate() {
                if r.name.is_none() {
                    r.name = Some(format!("rule{i}"));
                }
            }
            s.rules.remove(i);
        }
    }
    Ok(())
}

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

/// The listing: configuration from `services`/`pools`, counters and health from the engine.
pub fn status(
    services: &[ContentServiceConfig],
    pools: &[PoolConfig],
    views: &[ServiceView],
) -> ContentStatus {
    let out_services = services
        .iter()
        .map(|s| {
            let vip = SocketAddr::new(s.address, s.port);
            let view = views.iter().find(|v| v.vip == vip);
            let hits = |name: &str| {
                view.and_then(|v| v.rules.iter().find(|r| r.name == name))
                    .map_or(0, |r| r.hits)
            };
            ContentServiceStatus {
                key: ServiceKey {
                    protocol: Protocol::Tcp,
                    addr: s.address,
                    port: s.port,
                },
                mode: s.mode.name().into(),
                default_pool: s.default_pool.clone(),
                default_hits: view.map_or(0, |v| v.default_hits),
                rules: s
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let name = r.display_name(i);
                        ContentRuleStatus {
                            hits: hits(&name),
                            rule: ContentRule {
                                name,
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
                            },
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let out_pools = pools
        .iter()
        .map(|p| PoolStatus {
            name: p.name.clone(),
            scheduler: p.scheduler.clone(),
            options: p.options.clone(),
            servers: p
                .servers
                .iter()
                .map(|m| {
                    let addr = SocketAddr::new(m.address, m.port);
                    // A pool used by several services has one member entry in each.
                    let members = views
                        .iter()
                        .flat_map(|v| v.pools.iter().filter(|vp| vp.name == p.name))
                        .flat_map(|vp| vp.members.iter().filter(|x| x.addr == addr));
                    let (mut healthy, mut requests) = (true, 0);
                    for x in members {
                        healthy &= x.healthy;
                        requests += x.requests;
                    }
                    PoolServerStatus {
                        server: PoolServer {
                            addr: m.address,
                            port: m.port,
                            weight: m.weight,
                        },
                        healthy,
                        requests,
                    }
                })
                .collect(),
        })
        .collect();
    ContentStatus {
        services: out_services,
        pools: out_pools,
    }
}

fn server_config(s: &PoolServer) -> ServerConfig {
    ServerConfig {
        address: s.addr,
        port: s.port,
        weight: s.weight,
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

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

fn pool_index(pools: &[PoolConfig], name: &str) -> Result<usize, String> {
    pools
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| format!("unknown pool {name:?}"))
}

fn key_of(s: &ContentServiceConfig) -> String {
    format!("content service TCP {}", AddrPort(s.address, s.port))
}

fn service_mut<'a>(
    services: &'a mut [ContentServiceConfig],
    key: &ServiceKey,
) -> Result<&'a mut ContentServiceConfig, String> {
    services
        .iter_mut()
        .find(|s| key.protocol == Protocol::Tcp && s.address == key.addr && s.port == key.port)
        .ok_or_else(|| format!("{key} is not a content service"))
}

fn names(s: &ContentServiceConfig) -> impl Iterator<Item = String> + '_ {
    s.rules.iter().enumerate().map(|(i, r)| r.display_name(i))
}
