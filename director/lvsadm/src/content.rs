//! lvsadm's content-switching (layer 7) commands: pools and rules of content services at run
//! time. They are lvsadm's own (ipvsadm has none), with ipvsadm's option style:
//!
//! ```text
//! lvsadm --add-pool --pool NAME [-s scheduler] [-b options] -r server:port [-w weight]
//! lvsadm --del-pool --pool NAME
//! lvsadm --add-pool-server --pool NAME -r server:port [-w weight]
//! lvsadm --del-pool-server --pool NAME -r server:port
//! lvsadm --add-rule -t vip:port --rule NAME --pool POOL [--host H] [--path-prefix P]
//!        [--path-regex RE] [--method M]... [--header NAME[:VALUE]]... [--before RULE]
//! lvsadm --del-rule -t vip:port --rule NAME
//! lvsadm --list-rules [-t vip:port]
//! ```
//!
//! Pools are director-wide, as `[[pool]]` in the configuration file; rules belong to one
//! content service.

use std::fmt::Write as _;

use lvs_control::ParseError;
use lvs_control::address::parse_addr_port;
use lvs_proto::director::{ContentEdit, ContentRule, ContentStatus, PoolServer};
use lvs_proto::{AddrPort, Protocol, ServiceKey};

/// The commands this module owns: a command line with one of them is parsed here.
const COMMANDS: [&str; 7] = [
    "--add-pool",
    "--del-pool",
    "--add-pool-server",
    "--del-pool-server",
    "--add-rule",
    "--del-rule",
    "--list-rules",
];

/// Largest pool member weight (as `-w` for real servers).
const MAX_WEIGHT: u32 = lvs_control::MAX_WEIGHT;

/// A parsed content command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCommand {
    Edit(ContentEdit),
    List(Option<ServiceKey>),
}

/// Whether `args` is a content command (it names one of [`COMMANDS`]).
pub fn is_content(args: &[String]) -> bool {
    args.iter()
        .any(|a| COMMANDS.contains(&a.split('=').next().unwrap_or(a)))
}

#[derive(Default)]
struct Opts {
    command: Option<&'static str>,
    service: Option<ServiceKey>,
    pool: Option<String>,
    rule: Option<String>,
    scheduler: Option<String>,
    options: Option<String>,
    server: Option<(std::net::IpAddr, u16)>,
    weight: Option<u32>,
    host: Option<String>,
    path_prefix: Option<String>,
    path_regex: Option<String>,
    methods: Vec<String>,
    headers: Vec<(String, Option<String>)>,
    before: Option<String>,
}

/// Parses a content command line (argv without the program name).
pub fn parse(args: &[String]) -> Result<ContentCommand, ParseError> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if let Some(c) = COMMANDS.iter().find(|c| **c == name) {
            if inline.is_some() {
                return Err(ParseError::NoArgumentAllowed(name.into()));
            }
            if o.command.is_some() {
                return Err(ParseError::MultipleCommands);
            }
            o.command = Some(c);
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| ParseError::MissingArgument(name.into()))
        };
        match name {
            "-t" | "--tcp-service" => {
                let v = value()?;
                let (addr, port) = parse_addr_port(&v, Protocol::Tcp)
                    .ok_or_else(|| ParseError::Invalid(format!("bad service address {v:?}")))?;
                let port = port.ok_or_else(|| {
                    ParseError::Invalid(format!("{v:?}: a content service needs its port"))
                })?;
                once(
                    &mut o.service,
                    "-t",
                    ServiceKey {
                        protocol: Protocol::Tcp,
                        addr,
                        port,
                    },
                )?;
            }
            "-u" | "--udp-service" => {
                return Err(ParseError::Invalid(
                    "content services are TCP: use -t".into(),
                ));
            }
            "--pool" => once(&mut o.pool, "--pool", value()?)?,
            "--rule" => once(&mut o.rule, "--rule", value()?)?,
            "-s" | "--scheduler" => once(&mut o.scheduler, "-s", value()?)?,
            "-b" | "--sched-flags" => once(&mut o.options, "-b", value()?)?,
            "-r" | "--real-server" => {
                let v = value()?;
                let (addr, port) = parse_addr_port(&v, Protocol::Tcp)
                    .ok_or_else(|| ParseError::Invalid(format!("bad server address {v:?}")))?;
                let port = port.ok_or_else(|| {
                    ParseError::Invalid(format!("{v:?}: a pool server needs its port"))
                })?;
                once(&mut o.server, "-r", (addr, port))?;
            }
            "-w" | "--weight" => {
                let v = value()?;
                let w = v
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w <= MAX_WEIGHT)
                    .ok_or_else(|| {
                        ParseError::Invalid(format!(
                            "bad weight {v:?}: a number from 0 to {MAX_WEIGHT}"
                        ))
                    })?;
                once(&mut o.weight, "-w", w)?;
            }
            "--host" => once(&mut o.host, "--host", value()?)?,
            "--path-prefix" => {
                let v = value()?;
                if !v.starts_with('/') {
                    return Err(ParseError::Invalid(format!(
                        "--path-prefix {v:?} must start with '/'"
                    )));
                }
                once(&mut o.path_prefix, "--path-prefix", v)?;
            }
            "--path-regex" => once(&mut o.path_regex, "--path-regex", value()?)?,
            "--method" => o.methods.push(value()?.to_ascii_uppercase()),
            "--header" => {
                let v = value()?;
                let h = match v.split_once(':') {
                    Some((n, val)) => (n.trim().to_string(), Some(val.trim().to_string())),
                    None => (v.trim().to_string(), None),
                };
                if h.0.is_empty() {
                    return Err(ParseError::Invalid(format!(
                        "--header {v:?}: give NAME or NAME:VALUE"
                    )));
                }
                o.headers.push(h);
            }
            "--before" => once(&mut o.before, "--before", value()?)?,
            other => return Err(ParseError::UnknownOption(other.into())),
        }
    }
    build(o)
}

fn once<T>(slot: &mut Option<T>, option: &'static str, v: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::MultipleOption(option));
    }
    *slot = Some(v);
    Ok(())
}

fn need<T>(v: Option<T>, option: &'static str, command: &'static str) -> Result<T, ParseError> {
    v.ok_or(ParseError::NeedOption { option, command })
}

fn build(o: Opts) -> Result<ContentCommand, ParseError> {
    let command = o.command.ok_or(ParseError::NoCommand)?;
    // Which options each command takes; anything else given is refused by name.
    let allowed: &[&str] = match command {
        "--add-pool" => &["pool", "scheduler", "options", "server", "weight"],
        "--del-pool" => &["pool"],
        "--add-pool-server" => &["pool", "server", "weight"],
        "--del-pool-server" => &["pool", "server"],
        "--add-rule" => &[
            "service", "rule", "pool", "host", "path", "regex", "method", "header", "before",
        ],
        "--del-rule" => &["service", "rule"],
        _ => &["service"],
    };
    let given: [(&str, &'static str, bool); 13] = [
        ("service", "-t", o.service.is_some()),
        ("pool", "--pool", o.pool.is_some()),
        ("rule", "--rule", o.rule.is_some()),
        ("scheduler", "-s", o.scheduler.is_some()),
        ("options", "-b", o.options.is_some()),
        ("server", "-r", o.server.is_some()),
        ("weight", "-w", o.weight.is_some()),
        ("host", "--host", o.host.is_some()),
        ("path", "--path-prefix", o.path_prefix.is_some()),
        ("regex", "--path-regex", o.path_regex.is_some()),
        ("method", "--method", !o.methods.is_empty()),
        ("header", "--header", !o.headers.is_empty()),
        ("before", "--before", o.before.is_some()),
    ];
    for (key, option, present) in given {
        if present && !allowed.contains(&key) {
            return Err(ParseError::IllegalOption { option, command });
        }
    }
    let server = |o: &Opts| -> Result<PoolServer, ParseError> {
        let (addr, port) = need(o.server, "-r", command)?;
        Ok(PoolServer {
            addr,
            port,
            weight: o.weight.unwrap_or(1),
        })
    };
    Ok(match command {
        "--add-pool" => ContentCommand::Edit(ContentEdit::AddPool {
            servers: vec![server(&o)?],
            name: need(o.pool, "--pool", command)?,
            scheduler: o.scheduler.unwrap_or_else(|| "wrr".into()),
            options: o.options.unwrap_or_default(),
        }),
        "--del-pool" => ContentCommand::Edit(ContentEdit::DelPool {
            name: need(o.pool, "--pool", command)?,
        }),
        "--add-pool-server" => ContentCommand::Edit(ContentEdit::AddPoolServer {
            server: server(&o)?,
            pool: need(o.pool, "--pool", command)?,
        }),
        "--del-pool-server" => {
            let (addr, port) = need(o.server, "-r", command)?;
            ContentCommand::Edit(ContentEdit::DelPoolServer {
                pool: need(o.pool, "--pool", command)?,
                addr,
                port,
            })
        }
        "--add-rule" => ContentCommand::Edit(ContentEdit::AddRule {
            service: need(o.service, "-t", command)?,
            rule: ContentRule {
                name: need(o.rule, "--rule", command)?,
                host: o.host,
                path_prefix: o.path_prefix,
                path_regex: o.path_regex,
                methods: o.methods,
                headers: o.headers,
                pool: need(o.pool, "--pool", command)?,
            },
            before: o.before,
        }),
        "--del-rule" => ContentCommand::Edit(ContentEdit::DelRule {
            service: need(o.service, "-t", command)?,
            name: need(o.rule, "--rule", command)?,
        }),
        _ => ContentCommand::List(o.service),
    })
}

/// `--list-rules`: each content service with its rules, then every pool with its servers.
pub fn listing(status: &ContentStatus, only: Option<&ServiceKey>) -> String {
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
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn rules_and_pools_parse() {
        let c = parse(&args(
            "--add-rule -t 192.0.2.1:80 --rule img --host img.example --path-prefix /img \
             --pool images --before api --method get --header X-A:1",
        ))
        .unwrap();
        let ContentCommand::Edit(ContentEdit::AddRule {
            service,
            rule,
            before,
        }) = c
        else {
            panic!("{c:?}")
        };
        assert_eq!(service.port, 80);
        assert_eq!(rule.methods, ["GET"]);
        assert_eq!(rule.headers, [("X-A".into(), Some("1".into()))]);
        assert_eq!(before.as_deref(), Some("api"));
        let c = parse(&args("--add-pool --pool=p -s rr -r 10.0.0.1:8080 -w 3")).unwrap();
        assert_eq!(
            c,
            ContentCommand::Edit(ContentEdit::AddPool {
                name: "p".into(),
                scheduler: "rr".into(),
                options: String::new(),
                servers: vec![PoolServer {
                    addr: "10.0.0.1".parse().unwrap(),
                    port: 8080,
                    weight: 3
                }],
            })
        );
        assert_eq!(
            parse(&args("--list-rules")).unwrap(),
            ContentCommand::List(None)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(&args("--add-rule -t 192.0.2.1:80 --pool p")).unwrap_err();
        assert!(e.to_string().contains("--rule"), "{e}");
        let e = parse(&args("--del-pool --pool p -w 2")).unwrap_err();
        assert!(e.to_string().contains("Illegal '-w'"), "{e}");
        let e = parse(&args("--add-pool --pool p -r 10.0.0.1")).unwrap_err();
        assert!(e.to_string().contains("needs its port"), "{e}");
        assert!(parse(&args("--add-pool --del-pool")).is_err());
        assert!(is_content(&args("-n --list-rules")));
        assert!(!is_content(&args("-L -n")));
    }
}
