//! One `lvsadm` change to the content switching ([`ContentEdit`]) applied to a copy of the
//! rules and pools. The caller hands the edited copy whole to the engine (which validates it
//! again), or keeps the old one.

use lvs_proto::director::ContentEdit;
use lvs_proto::{AddrPort, ServiceKey};

use super::model::{ContentModel, ContentService, Pool};

/// What only the director can check: the engine's regular expressions and the schedulers of
/// its plugin registry.
pub trait ContentChecks {
    /// `Ok` if a pool can use scheduler `name`; the error says why not.
    fn scheduler(&self, name: &str) -> Result<(), String>;
    /// `Ok` if a rule's `path_regex` can be `re`; the error says why not.
    fn path_regex(&self, re: &str) -> Result<(), String>;
}

/// Apply `edit` to `model`; the error is the message `lvsadm` prints. `model` may be half
/// changed when it is refused: edit a copy.
pub fn apply(
    model: &mut ContentModel,
    edit: ContentEdit,
    checks: &dyn ContentChecks,
) -> Result<(), String> {
    let ContentModel { services, pools } = model;
    match edit {
        ContentEdit::AddPool {
            name,
            scheduler,
            options,
            servers,
        } => {
            // A pool no service uses yet is not built by the engine: its scheduler is
            // checked here.
            checks
                .scheduler(&scheduler)
                .map_err(|e| format!("scheduler {scheduler:?}: {e}"))?;
            check_name("pool", &name)?;
            if pools.iter().any(|p| p.name == name) {
                return Err(format!("pool {name:?} already exists"));
            }
            if servers.is_empty() {
                return Err(format!(
                    "pool {name:?} needs at least one real server (-r server-address)"
                ));
            }
            pools.push(Pool {
                name,
                scheduler,
                options,
                servers,
            });
        }
        ContentEdit::DelPool { name } => {
            let i = pool_index(pools, &name)?;
            for s in services.iter() {
                let what = key_of(s);
                if s.default_pool.as_deref() == Some(name.as_str()) {
                    return Err(format!("pool {name:?} is still the default pool of {what}"));
                }
                if let Some(r) = s.rules.iter().find(|r| r.pool == name) {
                    return Err(format!(
                        "pool {name:?} is still used by rule {:?} of {what}; delete the rule first",
                        r.name
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
                .any(|s| s.addr == server.addr && s.port == server.port)
            {
                return Err(format!(
                    "{} is already in pool {pool:?}",
                    AddrPort(server.addr, server.port)
                ));
            }
            p.servers.push(server);
        }
        ContentEdit::DelPoolServer { pool, addr, port } => {
            let i = pool_index(pools, &pool)?;
            let p = &mut pools[i];
            let Some(j) = p
                .servers
                .iter()
                .position(|s| s.addr == addr && s.port == port)
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
            if s.rules.iter().any(|r| r.name == rule.name) {
                return Err(format!("rule {:?} already exists in {service}", rule.name));
            }
            if !pools.iter().any(|p| p.name == rule.pool) {
                return Err(format!(
                    "unknown pool {:?}: add it first with --add-pool",
                    rule.pool
                ));
            }
            if let Some(re) = &rule.path_regex {
                checks
                    .path_regex(re)
                    .map_err(|e| format!("bad --path-regex {re:?}: {e}"))?;
            }
            let at = match before {
                None => s.rules.len(),
                Some(b) => s
                    .rules
                    .iter()
                    .position(|r| r.name == b)
                    .ok_or_else(|| format!("--before {b:?}: no such rule in {service}"))?,
            };
            s.rules.insert(at, rule);
        }
        ContentEdit::DelRule { service, name } => {
            let s = service_mut(services, &service)?;
            let Some(i) = s.rules.iter().position(|r| r.name == name) else {
                return Err(format!("no rule {name:?} in {service}"));
            };
            s.rules.remove(i);
        }
    }
    Ok(())
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

fn pool_index(pools: &[Pool], name: &str) -> Result<usize, String> {
    pools
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| format!("unknown pool {name:?}"))
}

fn key_of(s: &ContentService) -> String {
    format!("content service TCP {}", AddrPort(s.key.addr, s.key.port))
}

fn service_mut<'a>(
    services: &'a mut [ContentService],
    key: &ServiceKey,
) -> Result<&'a mut ContentService, String> {
    services
        .iter_mut()
        .find(|s| s.key == *key)
        .ok_or_else(|| format!("{key} is not a content service"))
}

#[cfg(test)]
mod tests {
    use lvs_proto::Protocol;
    use lvs_proto::director::{ContentRule, PoolServer};

    use super::*;

    /// Knows the schedulers `rr` and `wrr`; refuses regular expressions with `(`.
    struct Checks;

    impl ContentChecks for Checks {
        fn scheduler(&self, name: &str) -> Result<(), String> {
            ["rr", "wrr"]
                .contains(&name)
                .then_some(())
                .ok_or_else(|| "no such plugin".into())
        }

        fn path_regex(&self, re: &str) -> Result<(), String> {
            if re.contains('(') {
                Err("unclosed group".into())
            } else {
                Ok(())
            }
        }
    }

    fn vip() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        }
    }

    fn server(last: u8) -> PoolServer {
        PoolServer {
            addr: format!("10.0.0.{last}").parse().unwrap(),
            port: 8080,
            weight: 1,
        }
    }

    /// One service with rule `rule0` (unnamed in its file) to `app` and `static` as its
    /// default pool.
    fn model() -> ContentModel {
        let pool = |name: &str| Pool {
            name: name.into(),
            scheduler: "rr".into(),
            options: String::new(),
            servers: vec![server(1)],
        };
        ContentModel {
            services: vec![ContentService {
                key: vip(),
                mode: "http".into(),
                default_pool: Some("static".into()),
                rules: vec![ContentRule {
                    name: "rule0".into(),
                    pool: "app".into(),
                    ..ContentRule::default()
                }],
            }],
            pools: vec![pool("static"), pool("app")],
        }
    }

    fn add_rule(name: &str, pool: &str, before: Option<&str>) -> ContentEdit {
        ContentEdit::AddRule {
            service: vip(),
            rule: ContentRule {
                name: name.into(),
                pool: pool.into(),
                ..ContentRule::default()
            },
            before: before.map(Into::into),
        }
    }

    fn refused(edit: ContentEdit) -> String {
        apply(&mut model(), edit, &Checks).unwrap_err()
    }

    fn rule_names(m: &ContentModel) -> Vec<&str> {
        m.services[0]
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .collect()
    }

    #[test]
    fn rules_go_last_or_before_one() {
        let mut m = model();
        apply(&mut m, add_rule("api", "app", None), &Checks).unwrap();
        apply(&mut m, add_rule("img", "static", Some("rule0")), &Checks).unwrap();
        assert_eq!(rule_names(&m), ["img", "rule0", "api"]);
        let del = ContentEdit::DelRule {
            service: vip(),
            name: "rule0".into(),
        };
        apply(&mut m, del, &Checks).unwrap();
        assert_eq!(rule_names(&m), ["img", "api"]);
    }

    #[test]
    fn rule_mistakes_are_named() {
        assert_eq!(
            refused(add_rule("rule0", "app", None)),
            "rule \"rule0\" already exists in TCP 192.0.2.1:80"
        );
        assert_eq!(
            refused(add_rule("a b", "app", None)),
            "rule name \"a b\": use 1 to 64 letters, digits, '-', '_' or '.'"
        );
        assert_eq!(
            refused(add_rule("x", "nope", None)),
            "unknown pool \"nope\": add it first with --add-pool"
        );
        assert_eq!(
            refused(add_rule("x", "app", Some("nope"))),
            "--before \"nope\": no such rule in TCP 192.0.2.1:80"
        );
        let mut edit = add_rule("x", "app", None);
        if let ContentEdit::AddRule { rule, .. } = &mut edit {
            rule.path_regex = Some("(".into());
        }
        assert_eq!(refused(edit), "bad --path-regex \"(\": unclosed group");
        let mut other = vip();
        other.port = 81;
        assert_eq!(
            refused(ContentEdit::DelRule {
                service: other,
                name: "rule0".into(),
            }),
            "TCP 192.0.2.1:81 is not a content service"
        );
        assert_eq!(
            refused(ContentEdit::DelRule {
                service: vip(),
                name: "api".into(),
            }),
            "no rule \"api\" in TCP 192.0.2.1:80"
        );
    }

    #[test]
    fn pools_are_added_and_deleted_only_when_unused() {
        let mut m = model();
        let add = |name: &str, scheduler: &str| ContentEdit::AddPool {
            name: name.into(),
            scheduler: scheduler.into(),
            options: String::new(),
            servers: vec![server(2)],
        };
        apply(&mut m, add("spare", "wrr"), &Checks).unwrap();
        assert_eq!(m.pools.len(), 3);
        assert_eq!(
            apply(&mut m, add("spare", "wrr"), &Checks).unwrap_err(),
            "pool \"spare\" already exists"
        );
        assert_eq!(
            apply(&mut m, add("other", "mh"), &Checks).unwrap_err(),
            "scheduler \"mh\": no such plugin"
        );
        apply(
            &mut m,
            ContentEdit::DelPool {
                name: "spare".into(),
            },
            &Checks,
        )
        .unwrap();
        assert_eq!(m.pools.len(), 2);
        assert_eq!(
            refused(ContentEdit::DelPool {
                name: "static".into()
            }),
            "pool \"static\" is still the default pool of content service TCP 192.0.2.1:80"
        );
        assert_eq!(
            refused(ContentEdit::DelPool { name: "app".into() }),
            "pool \"app\" is still used by rule \"rule0\" of content service TCP \
             192.0.2.1:80; delete the rule first"
        );
        let empty = ContentEdit::AddPool {
            name: "empty".into(),
            scheduler: "rr".into(),
            options: String::new(),
            servers: Vec::new(),
        };
        assert_eq!(
            refused(empty),
            "pool \"empty\" needs at least one real server (-r server-address)"
        );
    }

    #[test]
    fn pool_servers_are_added_and_removed_but_not_the_last() {
        let mut m = model();
        let add = ContentEdit::AddPoolServer {
            pool: "app".into(),
            server: server(2),
        };
        apply(&mut m, add.clone(), &Checks).unwrap();
        assert_eq!(m.pools[1].servers, [server(1), server(2)]);
        assert_eq!(
            apply(&mut m, add, &Checks).unwrap_err(),
            "10.0.0.2:8080 is already in pool \"app\""
        );
        let del = |last: u8| ContentEdit::DelPoolServer {
            pool: "app".into(),
            addr: server(last).addr,
            port: 8080,
        };
        apply(&mut m, del(1), &Checks).unwrap();
        assert_eq!(
            apply(&mut m, del(1), &Checks).unwrap_err(),
            "10.0.0.1:8080 is not in pool \"app\""
        );
        assert_eq!(
            apply(&mut m, del(2), &Checks).unwrap_err(),
            "10.0.0.2:8080 is the last real server of pool \"app\"; delete the pool instead"
        );
        assert_eq!(
            refused(ContentEdit::AddPoolServer {
                pool: "nope".into(),
                server: server(3),
            }),
            "unknown pool \"nope\""
        );
    }
}
