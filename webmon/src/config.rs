//! The lvs-webmon configuration file (`/etc/lvs/webmon.toml`, sample in `etc/lvs-webmon.toml`).
//!
//! Every key has a default, so the daemon starts without `-c`: HTTPS on port 8443 with a
//! self-signed certificate made on first start, users in `/etc/lvs/webmon.users`, the
//! daemons' sockets in the run directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvs_common::config::{ConfigError, Source};
use serde::Deserialize;
use toml::Spanned;

/// Where the certificate and key go when the config names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/lvs/webmon";
/// The users file when the config names none.
pub const DEFAULT_USERS_FILE: &str = "/etc/lvs/webmon.users";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// The optional plaintext listener: it answers every request with a redirect to HTTPS.
    pub redirect_listen: Option<SocketAddr>,
    /// The port the redirect sends browsers to (the HTTPS listener's unless set).
    pub public_port: u16,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Make a self-signed pair at `cert`/`key` when neither file exists.
    pub self_signed: bool,
    /// The users file (`name role argon2id-hash` per line).
    pub users_file: PathBuf,
    /// The bearer token `/metrics` wants; `None` disables `/metrics`.
    pub metrics_token: Option<String>,
    /// Sessions end this long after login.
    pub session_ttl: Duration,
    /// ... or after this long without a request.
    pub session_idle: Duration,
    /// Failed logins (per user name) before the lockout.
    pub max_failures_user: u32,
    /// Failed logins (per client address) before the lockout.
    pub max_failures_addr: u32,
    /// Failures are counted over this window, and a lockout lasts this long.
    pub lockout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Request line plus headers, in bytes.
    pub max_header_bytes: usize,
    /// Request body, in bytes.
    pub max_body_bytes: usize,
    /// A whole request must arrive within this (slow clients are cut off), and an idle
    /// keep-alive connection is closed after it.
    pub request_timeout: Duration,
    /// How often the daemons are asked for their state.
    pub poll_interval: Duration,
    /// The daemons' control sockets.
    pub sockets: Sockets,
    /// Who the daemon becomes once its listeners are bound and its certificate and users are
    /// read (`user`, and `group` or the user's own); `None`: it stays root.
    pub run_as: Option<lvs_common::privdrop::RunAs>,
}

/// Which sockets to read; `None` means `<rundir>/<daemon>.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sockets {
    /// lvs-director.
    pub director: Option<PathBuf>,
    /// lvs-monitord.
    pub monitord: Option<PathBuf>,
    /// lvs-heartbeatd.
    pub heartbeatd: Option<PathBuf>,
    /// lvs-lockmgr.
    pub lockmgr: Option<PathBuf>,
}

impl Sockets {
    /// The socket of `daemon` (`director`, `monitord` ...), configured or in `rundir`.
    pub fn path(&self, daemon: &str, rundir: &Path) -> PathBuf {
        let configured = match daemon {
            "director" => &self.director,
            "monitord" => &self.monitord,
            "heartbeatd" => &self.heartbeatd,
            "lockmgr" => &self.lockmgr,
            _ => &None,
        };
        configured
            .clone()
            .unwrap_or_else(|| lvs_proto::rundir::socket_path(rundir, daemon))
    }
}

impl Default for Config {
    fn default() -> Self {
        let state = Path::new(DEFAULT_STATE_DIR);
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            redirect_listen: None,
            public_port: 8443,
            cert: state.join("cert.pem"),
            key: state.join("key.pem"),
            self_signed: true,
            users_file: PathBuf::from(DEFAULT_USERS_FILE),
            metrics_token: None,
            session_ttl: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            max_failures_user: 5,
            max_failures_addr: 20,
            lockout: Duration::from_secs(300),
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            sockets: Sockets::default(),
            run_as: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<String>>,
    redirect_listen: Option<Spanned<String>>,
    public_port: Option<u16>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_signed: Option<bool>,
    users_file: Option<PathBuf>,
    metrics_token: Option<Spanned<String>>,
    metrics_token_file: Option<Spanned<PathBuf>>,
    session_ttl: Option<Spanned<f64>>,
    session_idle: Option<Spanned<f64>>,
    max_failures_user: Option<Spanned<u32>>,
    max_failures_addr: Option<Spanned<u32>>,
    lockout: Option<Spanned<f64>>,
    max_connections: Option<Spanned<usize>>,
    max_header_bytes: Option<Spanned<usize>>,
    max_body_bytes: Option<Spanned<usize>>,
    request_timeout: Option<Spanned<f64>>,
    poll_interval: Option<Spanned<f64>>,
    #[serde(default)]
    sockets: FileSockets,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSockets {
    director: Option<PathBuf>,
    monitord: Option<PathBuf>,
    heartbeatd: Option<PathBuf>,
    lockmgr: Option<PathBuf>,
}

/// The loader for [`lvs_common::run()`]: defaults without a file.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => parse(&Source::read(path)?),
        None => Ok(Config::default()),
    }
}

/// Validates text already read (`path` only names it in messages).
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse(&Source::new(path, text))
}

fn secs(
    src: &Source,
    v: Option<Spanned<f64>>,
    default: Duration,
    min: f64,
    max: f64,
) -> Result<Duration, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let n = *v.get_ref();
    if !(min..=max).contains(&n) {
        return Err(src.error_at(
            v.span(),
            format!("must be between {min} and {max} seconds, not {n}"),
        ));
    }
    Ok(Duration::from_secs_f64(n))
}

fn count<T: Copy + PartialOrd + std::fmt::Display>(
    src: &Source,
    v: Option<Spanned<T>>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(src.error_at(
            v.span(),
            format!("must be between {min} and {max}, not {n}"),
        ));
    }
    Ok(n)
}

fn addr(src: &Source, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
    v.get_ref().parse().map_err(|_| {
        src.error_at(
            v.span(),
            format!(
                "{:?} is not an address and port (e.g. \"0.0.0.0:8443\" or \"[::]:8443\")",
                v.get_ref()
            ),
        )
    })
}

/// Parses and validates a [`Source`].
pub fn parse(src: &Source) -> Result<Config, ConfigError> {
    let f: FileConfig = src.parse()?;
    let d = Config::default();
    let listen = match &f.listen {
        Some(v) => addr(src, v)?,
        None => d.listen,
    };
    let redirect_listen = f
        .redirect_listen
        .as_ref()
        .map(|v| addr(src, v))
        .transpose()?;
    let metrics_token = match (f.metrics_token, f.metrics_token_file) {
        (Some(_), Some(file)) => {
            return Err(src.error_at(
                file.span(),
                "give metrics_token or metrics_token_file, not both",
            ));
        }
        (Some(t), None) => Some(token(src, t.get_ref(), t.span())?),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file.get_ref()).map_err(|e| {
                src.error_at(
                    file.span(),
                    format!("cannot read {}: {e}", file.get_ref().display()),
                )
            })?;
            Some(token(src, text.trim(), file.span())?)
        }
        (None, None) => None,
    };
    let (cert, key) = match (f.cert, f.key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => (d.cert, d.key),
        _ => return Err(src.error("give both cert and key, or neither")),
    };
    let run_as = lvs_common::privdrop::from_config(src, f.user.as_ref(), f.group.as_ref())?;
    Ok(Config {
        run_as,
        listen,
        redirect_listen,
        public_port: f.public_port.unwrap_or(listen.port()),
        cert,
        key,
        self_signed: f.self_signed.unwrap_or(true),
        users_file: f.users_file.unwrap_or(d.users_file),
        metrics_token,
        session_ttl: secs(src, f.session_ttl, d.session_ttl, 60.0, 7.0 * 86400.0)?,
        session_idle: secs(src, f.session_idle, d.session_idle, 60.0, 7.0 * 86400.0)?,
        max_failures_user: count(src, f.max_failures_user, d.max_failures_user, 1, 1000)?,
        max_failures_addr: count(src, f.max_failures_addr, d.max_failures_addr, 1, 100_000)?,
        lockout: secs(src, f.lockout, d.lockout, 1.0, 86400.0)?,
        max_connections: count(src, f.max_connections, d.max_connections, 1, 100_000)?,
        max_header_bytes: count(
            src,
            f.max_header_bytes,
            d.max_header_bytes,
            1024,
            1024 * 1024,
        )?,
        max_body_bytes: count(src, f.max_body_bytes, d.max_body_bytes, 0, 16 * 1024 * 1024)?,
        request_timeout: secs(src, f.request_timeout, d.request_timeout, 0.5, 3600.0)?,
        poll_interval: secs(src, f.poll_interval, d.poll_interval, 0.1, 2.0)?,
        sockets: Sockets {
            director: f.sockets.director,
            monitord: f.sockets.monitord,
            heartbeatd: f.sockets.heartbeatd,
            lockmgr: f.sockets.lockmgr,
        },
    })
}

fn token(src: &Source, t: &str, span: std::ops::Range<usize>) -> Result<String, ConfigError> {
    if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(src.error_at(
            span,
            "the metrics token must be at least 16 printable characters without spaces",
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("webmon.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(p("").unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_line() {
        let e = p("listen = \"127.0.0.1:8443\"\nrequest_timeout = 0\n").unwrap_err();
        assert!(e.to_string().starts_with("webmon.toml:2:"), "{e}");
        let e = p("\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(e.to_string().contains(":2:"), "{e}");
        let e = p("metrics_token = \"short\"\n").unwrap_err();
        assert!(e.to_string().contains("16 printable"), "{e}");
        let e = p("colour = 1\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        assert!(p("cert = \"/a\"\n").is_err());
    }

    #[test]
    fn the_sample_config_is_valid_and_says_the_defaults() {
        let c = p(include_str!("../../etc/lvs-webmon.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    /// IPv6 listen addresses are written bracketed; the redirect port follows the listener's.
    #[test]
    fn ipv6_listen_addresses() {
        let c = p("listen = \"[::]:8443\"\nredirect_listen = \"[::1]:8080\"\n").unwrap();
        assert_eq!(c.listen, "[::]:8443".parse().unwrap());
        assert_eq!(c.redirect_listen, Some("[::1]:8080".parse().unwrap()));
        assert_eq!(c.public_port, 8443);
        let e = p("listen = \"::1:8443\"\n").unwrap_err();
        assert!(e.to_string().starts_with("webmon.toml:1:"), "{e}");
    }

    #[test]
    fn sockets_default_to_the_rundir() {
        let c = p("[sockets]\nmonitord = \"/x/m.sock\"\n").unwrap();
        assert_eq!(
            c.sockets.path("monitord", Path::new("/run/lvs")),
            PathBuf::from("/x/m.sock")
        );
        assert_eq!(
            c.sockets.path("director", Path::new("/run/lvs")),
            PathBuf::from("/run/lvs/director.sock")
        );
    }
}
