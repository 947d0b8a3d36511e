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
//! content service. These commands are not rules-file lines: content services live in the
//! director's TOML file, so `lvsadm -R` and the rules file read ipvsadm's commands only.

use std::net::IpAddr;

use lvs_proto::director::{ContentEdit, ContentRule, PoolServer};
use lvs_proto::{Protocol, ServiceKey};

use crate::address::parse_addr_port;
use crate::grammar::{Command, ParseError};
use crate::state::MAX_WEIGHT;

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

/// Whether `args` is a content command (it names one of [`COMMANDS`]).
pub fn is_content<S: AsRef<str>>(args: &[S]) -> bool {
    args.iter()
        .map(AsRef::as_ref)
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
    server: Option<(IpAddr, u16)>,
    weight: Option<u32>,
    host: Option<String>,
    path_prefix: Option<String>,
    path_regex: Option<String>,
    methods: Vec<String>,
    headers: Vec<(String, Option<String>)>,
    before: Option<String>,
}

/// Parses a content command line (argv without the program name) into
/// [`Command::EditContent`] or [`Command::ListRules`].
pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Command, ParseError> {
    let mut o = Opts::default();
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg, None),
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
                .or_else(|| it.next().map(str::to_owned))
                .ok_or_else(|| ParseError::MissingArgument(name.into()))
        };
        match name {
            "-t" | "--tcp-service" => {
                let (addr, port) = with_port(&value()?, "service", "a content service")?;
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
                let server = with_port(&value()?, "server", "a pool server")?;
                once(&mut o.server, "-r", server)?;
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

/// `v` as `address:port`; the errors name `what` it is and whom the port is for.
fn with_port(v: &str, what: &str, whose: &str) -> Result<(IpAddr, u16), ParseError> {
    let (addr, port) = parse_addr_port(v, Protocol::Tcp)
        .ok_or_else(|| ParseError::Invalid(format!("bad {what} address {v:?}")))?;
    let port = port.ok_or_else(|| ParseError::Invalid(format!("{v:?}: {whose} needs its port")))?;
    Ok((addr, port))
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

fn build(o: Opts) -> Result<Command, ParseError> {
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
    let edit = match command {
        "--add-pool" => ContentEdit::AddPool {
            servers: vec![server(&o)?],
            name: need(o.pool, "--pool", command)?,
            scheduler: o.scheduler.unwrap_or_else(|| "wrr".into()),
            options: o.options.unwrap_or_default(),
        },
        "--del-pool" => ContentEdit::DelPool {
            name: need(o.pool, "--pool", command)?,
        },
        "--add-pool-server" => ContentEdit::AddPoolServer {
            server: server(&o)?,
            pool: need(o.pool, "--pool", command)?,
        },
        "--del-pool-server" => {
            let (addr, port) = need(o.server, "-r", command)?;
            ContentEdit::DelPoolServer {
                pool: need(o.pool, "--pool", command)?,
                addr,
                port,
            }
        }
        "--add-rule" => ContentEdit::AddRule {
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
        },
        "--del-rule" => ContentEdit::DelRule {
            service: need(o.service, "-t", command)?,
            name: need(o.rule, "--rule", command)?,
        },
        _ => return Ok(Command::ListRules(o.service)),
    };
    Ok(Command::EditContent(edit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn edit(s: &str) -> ContentEdit {
        match parse(&args(s)) {
            Ok(Command::EditContent(e)) => e,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn error(s: &str) -> String {
        parse(&args(s)).unwrap_err().to_string()
    }

    fn server(addr: &str, port: u16, weight: u32) -> PoolServer {
        PoolServer {
            addr: addr.parse().unwrap(),
            port,
            weight,
        }
    }

    fn vip() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.0.2.1".parse().unwrap(),
            port: 80,
        }
    }

    #[test]
    fn rules_and_pools_parse() {
        let ContentEdit::AddRule {
            service,
            rule,
            before,
        } = edit(
            "--add-rule -t 192.0.2.1:80 --rule img --host img.example --path-prefix /img \
             --pool images --before api --method get --header X-A:1",
        )
        else {
            panic!("not an --add-rule")
        };
        assert_eq!(service.port, 80);
        assert_eq!(rule.methods, ["GET"]);
        assert_eq!(rule.headers, [("X-A".into(), Some("1".into()))]);
        assert_eq!(before.as_deref(), Some("api"));
        assert_eq!(
            edit("--add-pool --pool=p -s rr -r 10.0.0.1:8080 -w 3"),
            ContentEdit::AddPool {
                name: "p".into(),
                scheduler: "rr".into(),
                options: String::new(),
                servers: vec![server("10.0.0.1", 8080, 3)],
            }
        );
        assert_eq!(
            parse(&args("--list-rules")).unwrap(),
            Command::ListRules(None)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = error("--add-rule -t 192.0.2.1:80 --pool p");
        assert!(e.contains("--rule"), "{e}");
        let e = error("--del-pool --pool p -w 2");
        assert!(e.contains("Illegal '-w'"), "{e}");
        let e = error("--add-pool --pool p -r 10.0.0.1");
        assert!(e.contains("needs its port"), "{e}");
        assert!(parse(&args("--add-pool --del-pool")).is_err());
        assert!(is_content(&args("-n --list-rules")));
        assert!(!is_content(&args("-L -n")));
    }

    #[test]
    fn add_pool_defaults_and_refusals() {
        assert_eq!(
            edit("--add-pool --pool p -r 10.0.0.1:80 -b mh-port"),
            ContentEdit::AddPool {
                name: "p".into(),
                scheduler: "wrr".into(),
                options: "mh-port".into(),
                servers: vec![server("10.0.0.1", 80, 1)],
            }
        );
        assert_eq!(
            error("--add-pool -r 10.0.0.1:80"),
            "You need to supply the '--pool' option for the '--add-pool' command"
        );
        assert_eq!(
            error("--add-pool --pool p"),
            "You need to supply the '-r' option for the '--add-pool' command"
        );
        assert_eq!(
            error("--add-pool --pool p -r 10.0.0.1:80 -w 65536"),
            format!("bad weight \"65536\": a number from 0 to {MAX_WEIGHT}")
        );
        assert_eq!(
            error("--add-pool --pool p -r nowhere:80"),
            "bad server address \"nowhere:80\""
        );
        assert_eq!(
            error("--add-pool --pool p --pool q -r 10.0.0.1:80"),
            "multiple '--pool' options specified"
        );
    }

    #[test]
    fn del_pool_parses_and_refuses() {
        assert_eq!(
            edit("--del-pool --pool p"),
            ContentEdit::DelPool { name: "p".into() }
        );
        assert_eq!(
            error("--del-pool"),
            "You need to supply the '--pool' option for the '--del-pool' command"
        );
        assert_eq!(
            error("--del-pool --pool p -t 192.0.2.1:80"),
            "Illegal '-t' option with the '--del-pool' command"
        );
    }

    #[test]
    fn pool_servers_parse_and_refuse() {
        assert_eq!(
            edit("--add-pool-server --pool p -r 10.0.0.2:81 -w 0"),
            ContentEdit::AddPoolServer {
                pool: "p".into(),
                server: server("10.0.0.2", 81, 0),
            }
        );
        assert_eq!(
            edit("--del-pool-server --pool p --real-server=10.0.0.2:81"),
            ContentEdit::DelPoolServer {
                pool: "p".into(),
                addr: "10.0.0.2".parse().unwrap(),
                port: 81,
            }
        );
        assert_eq!(
            error("--add-pool-server --pool p -r 10.0.0.2:81 -s rr"),
            "Illegal '-s' option with the '--add-pool-server' command"
        );
        assert_eq!(
            error("--del-pool-server --pool p -r 10.0.0.2:81 -w 1"),
            "Illegal '-w' option with the '--del-pool-server' command"
        );
        assert_eq!(
            error("--del-pool-server -r 10.0.0.2:81"),
            "You need to supply the '--pool' option for the '--del-pool-server' command"
        );
    }

    #[test]
    fn rules_parse_and_refuse() {
        assert_eq!(
            edit("--add-rule -t 192.0.2.1:80 --rule a --pool p --header X-Only"),
            ContentEdit::AddRule {
                service: vip(),
                rule: ContentRule {
                    name: "a".into(),
                    headers: vec![("X-Only".into(), None)],
                    pool: "p".into(),
                    ..ContentRule::default()
                },
                before: None,
            }
        );
        assert_eq!(
            edit("--del-rule --tcp-service=192.0.2.1:80 --rule a"),
            ContentEdit::DelRule {
                service: vip(),
                name: "a".into(),
            }
        );
        assert_eq!(
            error("--add-rule -t 192.0.2.1:80 --rule a --pool p --path-prefix img"),
            "--path-prefix \"img\" must start with '/'"
        );
        assert_eq!(
            error("--add-rule -t 192.0.2.1:80 --rule a --pool p --header :v"),
            "--header \":v\": give NAME or NAME:VALUE"
        );
        assert_eq!(
            error("--add-rule -t 192.0.2.1 --rule a --pool p"),
            "\"192.0.2.1\": a content service needs its port"
        );
        assert_eq!(
            error("--add-rule -u 192.0.2.1:53 --rule a --pool p"),
            "content services are TCP: use -t"
        );
        assert_eq!(
            error("--del-rule -t 192.0.2.1:80 --rule a --pool p"),
            "Illegal '--pool' option with the '--del-rule' command"
        );
        assert_eq!(
            error("--del-rule --rule a"),
            "You need to supply the '-t' option for the '--del-rule' command"
        );
    }

    #[test]
    fn list_rules_parses_and_refuses() {
        assert_eq!(
            parse(&args("--list-rules -t 192.0.2.1:80")).unwrap(),
            Command::ListRules(Some(vip()))
        );
        assert_eq!(
            error("--list-rules --rule a"),
            "Illegal '--rule' option with the '--list-rules' command"
        );
    }

    #[test]
    fn usage_errors_are_usage_errors() {
        for (line, message) in [
            ("--list-rules -L", "-L: unknown option"),
            ("--del-pool --pool", "--pool: missing argument"),
            (
                "--list-rules=x",
                "--list-rules: option does not take an argument",
            ),
            ("--pool p", "no command given"),
        ] {
            let e = parse(&args(line)).unwrap_err();
            assert!(e.is_usage(), "{line}: {e}");
            assert!(e.to_string().starts_with(message), "{line}: {e}");
        }
        assert_eq!(
            parse(&args("--add-pool --del-pool")).unwrap_err(),
            ParseError::MultipleCommands
        );
    }

    #[test]
    fn lvsadm_parses_both_grammars_but_rules_only_ipvsadm_s() {
        let line = "--del-pool --pool p";
        assert_eq!(
            crate::parse_args(&args(line)).unwrap(),
            Command::EditContent(ContentEdit::DelPool { name: "p".into() })
        );
        assert_eq!(
            crate::parse_args(&args(line)).unwrap().to_request(),
            Some(lvs_proto::Request::EditContent(Box::new(
                ContentEdit::DelPool { name: "p".into() }
            )))
        );
        assert_eq!(
            crate::parse_args(&args("--list-rules"))
                .unwrap()
                .to_request(),
            None
        );
        // Content services are the configuration file's: not a rules line, as before.
        let e = crate::parse_rules(&format!("-C\n{line}\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: no command given: the first option must be one of -A -E -D -C -a -e -d -L -Z -S -R --set -h -v"
        );
    }
}
