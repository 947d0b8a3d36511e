//! Starts a real `lvs-webmon` on free loopback ports with its own directory, and talks to it
//! over real TLS (rustls, trusting the self-signed certificate the daemon made).
#![allow(dead_code)] // each test file uses its own part

pub mod openmetrics;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

pub use lvs_testsupport::wait_for;

pub const SOON: Duration = Duration::from_secs(20);
pub const TOKEN: &str = "test-metrics-token-0123456789";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lvs-webmon"))
}

pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST.into())
}

pub fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }
}

pub fn parse_response(raw: &[u8]) -> Option<Resp> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    Some(Resp {
        status,
        headers,
        body: body.to_owned(),
    })
}

#[derive(Debug)]
pub struct Webmon {
    pub child: Child,
    pub dir: PathBuf,
    /// The loopback address both listeners are on.
    pub ip: IpAddr,
    pub port: u16,
    pub plain_port: u16,
    tls: Arc<rustls::ClientConfig>,
    pinned: Vec<u8>,
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Webmon {
    /// The config: loopback ports, short timeouts and small limits, plus `extra`.
    pub fn start(rundir: Option<&Path>, extra: &str, users: &[(&str, &str, &str)]) -> Webmon {
        Webmon::start_on(Ipv4Addr::LOCALHOST.into(), rundir, extra, users)
    }

    /// As [`Webmon::start`], both listeners on `ip` (a loopback address of either family).
    pub fn start_on(
        ip: IpAddr,
        rundir: Option<&Path>,
        extra: &str,
        users: &[(&str, &str, &str)],
    ) -> Webmon {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("lvs-webmon-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let port = free_port_on(ip);
        let plain_port = free_port_on(ip);
        let config = format!(
            "listen = \"{listen}\"\nredirect_listen = \"{redirect}\"\n\
             cert = \"{d}/cert.pem\"\nkey = \"{d}/key.pem\"\nusers_file = \"{d}/users\"\n\
             metrics_token = \"{TOKEN}\"\n{timeout}max_header_bytes = 4096\n\
             max_body_bytes = 8192\n{extra}\n",
            timeout = if extra.contains("request_timeout") {
                ""
            } else {
                "request_timeout = 2\n"
            },
            listen = SocketAddr::new(ip, port),
            redirect = SocketAddr::new(ip, plain_port),
            d = dir.display()
        );
        std::fs::write(dir.join("webmon.toml"), config).expect("config");
        for (name, role, pw) in users {
            add_user(&dir.join("webmon.toml"), name, role, pw).expect("add user");
        }
        let rundir = rundir.map_or_else(|| dir.join("run"), Path::to_path_buf);
        let child = Command::new(bin())
            .args(["-f", "--no-syslog", "-c"])
            .arg(dir.join("webmon.toml"))
            .arg("--rundir")
            .arg(&rundir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("webmon.log")).expect("log"))
            .spawn()
            .expect("start lvs-webmon");
        let mut w = Webmon {
            child,
            dir: dir.clone(),
            ip,
            port,
            plain_port,
            pinned: Vec::new(),
            tls: Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            ),
        };
        wait_for("lvs-webmon to listen", SOON, || {
            if let Ok(Some(s)) = w.child.try_wait() {
                panic!("lvs-webmon exited ({s}):\n{}", w.log());
            }
            (dir.join("cert.pem").exists() && TcpStream::connect((ip, port)).is_ok()).then_some(())
        });
        // The self-signed certificate is pinned: exactly the one the daemon wrote is accepted
        // (webpki does not take a self-signed leaf as its own trust anchor).
        let pinned: Vec<u8> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
            .expect("cert")
            .next()
            .expect("one certificate")
            .expect("cert")
            .to_vec();
        w.pinned = pinned;
        w.tls = w.client_config(&[&rustls::version::TLS13, &rustls::version::TLS12]);
        w
    }

    /// A client configuration offering only `versions`, pinned to the daemon's certificate.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(versions)
                .expect("versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    der: self.pinned.clone(),
                    provider,
                }))
                .with_no_client_auth(),
        )
    }

    /// One `GET path` over a connection made with `config`; the status and the TLS version.
    pub fn get_with(
        &self,
        config: Arc<rustls::ClientConfig>,
        path: &str,
    ) -> (u16, Option<rustls::ProtocolVersion>) {
        let sock = TcpStream::connect((self.ip, self.port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let conn =
            rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
                .expect("client");
        let mut s = rustls::StreamOwned::new(conn, sock);
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        let _ = s.write_all(req.as_bytes());
        let raw = read_all(&mut s);
        let version = s.conn.protocol_version();
        (parse_response(&raw).map_or(0, |r| r.status), version)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("webmon.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// A TLS connection (the certificate is verified for `localhost`).
    pub fn connect(&self) -> Tls {
        let sock = TcpStream::connect((self.ip, self.port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let conn = rustls::ClientConnection::new(
            Arc::clone(&self.tls),
            ServerName::try_from("localhost").unwrap(),
        )
        .expect("client");
        rustls::StreamOwned::new(conn, sock)
    }

    /// Sends raw bytes, reads until the server closes.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        let _ = s.write_all(bytes);
        let _ = s.flush();
        read_all(&mut s)
    }

    /// One request with `Connection: close`.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n",
            self.port
        );
        for (n, v) in headers {
            r.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            r.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        r.push_str("\r\n");
        r.push_str(body);
        let raw = self.raw(r.as_bytes());
        parse_response(&raw).unwrap_or_else(|| {
            panic!(
                "no response to {method} {path}: {:?}\n{}",
                String::from_utf8_lossy(&raw),
                self.log()
            )
        })
    }

    pub fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        match cookie {
            Some(c) => self.request("GET", path, &[("Cookie", c)], ""),
            None => self.request("GET", path, &[], ""),
        }
    }

    /// GET /metrics with the bearer token [`TOKEN`]: it must answer 200 with valid
    /// OpenMetrics.
    pub fn metrics(&self) -> Resp {
        let r = self.request(
            "GET",
            "/metrics",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            "",
        );
        assert_eq!(r.status, 200);
        openmetrics::check(&r.body).unwrap_or_else(|e| panic!("{e}\n{}", r.body));
        r
    }

    /// POST /login; the response (303 with a cookie on success).
    pub fn login(&self, user: &str, password: &str) -> Resp {
        self.request(
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &format!("username={user}&password={password}"),
        )
    }

    /// Logs in; the cookie and the CSRF token.
    pub fn session(&self, user: &str, password: &str) -> (String, String) {
        let r = self.login(user, password);
        assert_eq!(r.status, 303, "login of {user}: {r:?}");
        let cookie = r.cookie().expect("a session cookie");
        let s = self.get("/api/session", Some(&cookie));
        assert_eq!(s.status, 200, "{s:?}");
        let v: serde_json::Value = serde_json::from_str(&s.body).expect("json");
        (cookie, v["csrf"].as_str().expect("csrf").to_owned())
    }
}

pub fn read_all(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return out,
        }
    }
}

/// `lvs-webmon -c CONFIG --add-user NAME --role ROLE` with the password on stdin.
pub fn add_user(config: &Path, name: &str, role: &str, password: &str) -> Result<(), String> {
    let mut c = Command::new(bin())
        .arg("-c")
        .arg(config)
        .args(["--add-user", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run --add-user");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = c.wait_with_output().expect("wait");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Accepts exactly one certificate, and checks the handshake signatures with it.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl Drop for Webmon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + SOON;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- lvs-webmon log ---\n{}", self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
