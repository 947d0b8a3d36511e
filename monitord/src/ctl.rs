//! `lvs-monitord ctl`: manual control of a running lvs-monitord over its control socket
//! (`<rundir>/monitord.sock`).
//!
//! ```text
//! lvs-monitord ctl list
//! lvs-monitord ctl maintenance on  -t 203.0.113.100:80 -r 203.0.113.12:80
//! lvs-monitord ctl maintenance off -t 203.0.113.100:80 -r 203.0.113.12:80
//! ```
//!
//! `-t` names a TCP service, `-u` a UDP one (as lvsadm); `-r` the real server (its port
//! defaults to the service's). Exit codes: 0 done, 1 refused or failed, 2 no daemon to talk
//! to (or a bad command line, from clap).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use lvs_proto::{AddrPort, Client, MonitoredServer, Protocol, Request, Response, Role, ServiceKey};

/// A service or server on the command line: `ADDR:PORT`, `[IPV6]:PORT`, or an address alone
/// (`default_port` then), as [`crate::address`] reads them.
pub fn parse_addr(text: &str, default_port: u16) -> Result<(IpAddr, u16), String> {
    crate::address::parse(text)
        .map(|(ip, port)| (ip, port.unwrap_or(default_port)))
        .map_err(|e| format!("`{text}`: {e}"))
}

/// The service key of `-t`/`-u`.
pub fn service_key(protocol: Protocol, text: &str) -> Result<ServiceKey, String> {
    let (addr, port) = parse_addr(text, 0)?;
    Ok(ServiceKey {
        protocol,
        addr,
        port,
    })
}

/// An error for the terminal and its exit code.
#[derive(Debug)]
pub struct CtlError {
    /// 1 refused/failed, 2 no daemon.
    pub code: u8,
    /// The message.
    pub message: String,
}

fn connect(rundir: &Path) -> Result<Client, CtlError> {
    let path = lvs_proto::rundir::socket_path(rundir, "monitord");
    Client::connect(&path, Role::Other).map_err(|e| CtlError {
        code: 2,
        message: format!("cannot talk to lvs-monitord at {}: {e}", path.display()),
    })
}

fn request(rundir: &Path, request: Request) -> Result<Response, CtlError> {
    let mut client = connect(rundir)?;
    match client.request(request) {
        Ok(Response::Error { message, .. }) => Err(CtlError { code: 1, message }),
        Ok(r) => Ok(r),
        Err(e) => Err(CtlError {
            code: 1,
            message: e.to_string(),
        }),
    }
}

/// `ctl maintenance on|off`.
pub fn maintenance(
    rundir: &Path,
    service: ServiceKey,
    server: (IpAddr, u16),
    on: bool,
) -> Result<String, CtlError> {
    request(
        rundir,
        Request::Maintenance {
            service,
            addr: server.0,
            port: server.1,
            on,
        },
    )?;
    Ok(format!(
        "{} in {}: maintenance {}",
        AddrPort(server.0, server.1),
        service,
        if on { "on" } else { "off" }
    ))
}

/// `ctl list`: one line per server.
pub fn list(rundir: &Path) -> Result<String, CtlError> {
    match request(rundir, Request::ListMonitored)? {
        Response::Monitored(servers) => Ok(format_list(&servers)),
        other => Err(CtlError {
            code: 1,
            message: format!("unexpected answer {other:?}"),
        }),
    }
}

/// The table `ctl list` prints.
pub fn format_list(servers: &[MonitoredServer]) -> String {
    let mut out = format!(
        "{:<5}{:<23} {:<23} {:>7}  {:<8}{:<6}{:<10}{:<11}{}\n",
        "Prot",
        "LocalAddress:Port",
        "RemoteAddress:Port",
        "Weight",
        "State",
        "Maint",
        "InService",
        "Origin",
        "LastCheck"
    );
    for s in servers {
        let last = match (s.last_ok, s.last_age_ms) {
            (Some(ok), Some(age)) => format!(
                "{} {} ({} ms ago)",
                if ok { "ok" } else { "FAIL" },
                s.last_detail,
                age
            ),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            // A space after each address even when it fills its column (a long IPv6
            // address does): the columns stay apart for awk and split_whitespace.
            "{:<5}{:<23} {:<23} {:>7}  {:<8}{:<6}{:<10}{:<11}{}",
            s.service.protocol.name(),
            AddrPort(s.service.addr, s.service.port).to_string(),
            AddrPort(s.addr, s.port).to_string(),
            s.weight,
            s.state,
            if s.maintenance { "yes" } else { "no" },
            if s.in_service { "yes" } else { "no" },
            if s.discovered { "director" } else { "config" },
            last
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addr("10.0.0.1:80", 0).unwrap(),
            ("10.0.0.1".parse().unwrap(), 80)
        );
        assert_eq!(
            parse_addr("10.0.0.1", 8080).unwrap(),
            ("10.0.0.1".parse().unwrap(), 8080)
        );
        assert_eq!(
            parse_addr("[2001:db8::1]:53", 0).unwrap(),
            ("2001:db8::1".parse().unwrap(), 53)
        );
        assert!(parse_addr("nonsense:80", 0).is_err());
        let e = parse_addr("[2001:db8::1:53", 0).unwrap_err();
        assert_eq!(
            e,
            "`[2001:db8::1:53`: `[` without its `]`: write `[IPV6]` or `[IPV6]:PORT`"
        );
    }

    #[test]
    fn the_list_keeps_its_columns_apart_for_long_ipv6_addresses() {
        let server = |service: &str, addr: &str| MonitoredServer {
            service: ServiceKey {
                protocol: Protocol::Tcp,
                addr: service.parse().unwrap(),
                port: 443,
            },
            addr: addr.parse().unwrap(),
            port: 8443,
            weight: 2,
            state: "up".into(),
            maintenance: false,
            in_service: true,
            discovered: false,
            last_ok: Some(true),
            last_detail: "connected".into(),
            last_age_ms: Some(5),
        };
        let list = format_list(&[
            server("192.0.2.1", "192.0.2.11"),
            server(
                "2001:db8:1234:5678:9abc:def0:1234:5678",
                "2001:db8:1234:5678:9abc:def0:1234:5679",
            ),
        ]);
        let rows: Vec<Vec<&str>> = list
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            &rows[1][..5],
            &["TCP", "192.0.2.1:443", "192.0.2.11:8443", "2", "up"]
        );
        assert_eq!(
            &rows[2][..5],
            &[
                "TCP",
                "[2001:db8:1234:5678:9abc:def0:1234:5678]:443",
                "[2001:db8:1234:5678:9abc:def0:1234:5679]:8443",
                "2",
                "up"
            ]
        );
        // Short addresses line up exactly as before.
        assert!(
            list.lines().nth(1).unwrap().starts_with(
                "TCP  192.0.2.1:443           192.0.2.11:8443               2  up      "
            )
        );
    }
}
