//! What each request gets: the router, login and logout, the JSON API, the admin actions,
//! `/metrics`, and the compiled-in assets. Nothing is read from disk for a URL, so there is
//! no path to traverse.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use log::Level;
use lvs_common::event;
use serde_json::json;

use crate::actions::{self, ActionBody};
use crate::auth::{self, COOKIE, Limiter, Locked, Sessions};
use crate::collector::Shared;
use crate::config::Config;
use crate::http::{self, Request, Response};
use crate::metrics;
use crate::users::{Role, Users};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const LOGIN_HTML: &str = include_str!("../assets/login.html");
const APP_JS: &str = include_str!("../assets/app.js");
const LOGIN_JS: &str = include_str!("../assets/login.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// What [`App::handle`] decided.
#[derive(Debug)]
pub enum Handled {
    /// The response.
    Now(Response),
    /// An admin action that talks to a daemon: run off the event loop, then [`App::finish`].
    Later(Box<Job>),
}

/// An admin action that passed every check, for the action worker.
#[derive(Debug)]
pub struct Job {
    /// The action (`drain`, `weight` ...).
    pub name: String,
    /// Its arguments.
    pub body: ActionBody,
    /// Who asked.
    pub user: String,
    /// From where.
    pub addr: IpAddr,
    /// lvs-director's socket.
    pub director: PathBuf,
    /// lvs-monitord's socket.
    pub monitord: PathBuf,
}

impl Job {
    /// Runs the action (blocking: on the worker thread).
    pub fn run(&self) -> Result<String, actions::Failure> {
        let sockets = actions::Sockets {
            director: &self.director,
            monitord: &self.monitord,
        };
        actions::run(sockets, &self.name, &self.body)
    }
}

/// The web side's state.
#[derive(Debug)]
pub struct App {
    /// The running configuration.
    pub cfg: Config,
    /// The daemons' run directory.
    pub rundir: PathBuf,
    users: Users,
    users_mtime: Option<SystemTime>,
    sessions: Sessions,
    limiter: Limiter,
    shared: Arc<Mutex<Shared>>,
}

fn users_mtime(cfg: &Config) -> Option<SystemTime> {
    std::fs::metadata(&cfg.users_file)
        .and_then(|m| m.modified())
        .ok()
}

/// Only characters a host name or address may hold: the redirect's Location is built from
/// the Host header and must not become anything else.
fn clean_host(h: &str) -> Option<&str> {
    (!h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')))
    .then_some(h)
}

/// The host part of a Host header (without the port).
fn host_only(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    h.rsplit_once(':').map_or(h, |(a, _)| a)
}

impl App {
    /// Reads the users file.
    pub fn new(
        cfg: Config,
        rundir: PathBuf,
        shared: Arc<Mutex<Shared>>,
    ) -> Result<App, crate::users::UsersError> {
        let users = Users::load(&cfg.users_file)?;
        Ok(App {
            users_mtime: users_mtime(&cfg),
            users,
            sessions: Sessions::new(cfg.session_ttl, cfg.session_idle),
            limiter: Limiter::new(cfg.max_failures_user, cfg.max_failures_addr, cfg.lockout),
            cfg,
            rundir,
            shared,
        })
    }

    /// How many users can log in.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Takes a new configuration (SIGHUP); the users file is read again.
    pub fn reconfigure(&mut self, cfg: Config) -> Result<(), crate::users::UsersError> {
        let users = Users::load(&cfg.users_file)?;
        self.users = users;
        self.users_mtime = users_mtime(&cfg);
        self.sessions.retain_users(&self.users);
        self.sessions.set_limits(cfg.session_ttl, cfg.session_idle);
        self.limiter.max_user = cfg.max_failures_user;
        self.limiter.max_addr = cfg.max_failures_addr;
        self.limiter.window = cfg.lockout;
        self.cfg = cfg;
        Ok(())
    }

    /// Housekeeping, from the event loop's timer.
    pub fn tick(&mut self, now: Instant) {
        self.sessions.expire(now);
        self.limiter.expire(now);
    }

    /// `lvs-webmon --add-user` writes the file while we run: pick it up at the next login.
    fn refresh_users(&mut self) {
        let m = users_mtime(&self.cfg);
        if m == self.users_mtime {
            return;
        }
        match Users::load(&self.cfg.users_file) {
            Ok(u) => {
                self.users = u;
                self.users_mtime = m;
                self.sessions.retain_users(&self.users);
                event!(
                    Level::Info,
                    "users_reload",
                    file = self.cfg.users_file.display(),
                    users = self.users.len()
                );
            }
            Err(e) => event!(Level::Error, "users_rejected", error = e),
        }
    }

    /// The answer of the plaintext listener: a redirect to HTTPS, whatever was asked.
    pub fn redirect_plain(&self, req: &Request) -> Response {
        let host = req
            .header("host")
            .and_then(clean_host)
            .map(host_only)
            .map(str::to_owned)
            .unwrap_or_else(|| self.cfg.listen.ip().to_string());
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let path = if req.path.starts_with('/') && clean_path(&req.path) {
            req.path.as_str()
        } else {
            "/"
        };
        let mut r = Response::redirect(
            301,
            &format!("https://{host}:{}{path}", self.cfg.public_port),
        );
        r.close = true;
        r
    }

    /// The answer to one HTTPS request from `peer`.
    pub fn handle(&mut self, req: &Request, peer: SocketAddr) -> Handled {
        if let Some(name) = req.path.strip_prefix("/api/action/")
            && req.method == "POST"
            && clean_path(&req.path)
        {
            return self.action(req, peer, name, Instant::now());
        }
        Handled::Now(self.respond(req, peer))
    }

    fn respond(&mut self, req: &Request, peer: SocketAddr) -> Response {
        let now = Instant::now();
        if !clean_path(&req.path) {
            return Response::text(400, "bad path");
        }
        let method = req.method.as_str();
        match (method, req.path.as_str()) {
            ("GET" | "HEAD", "/static/app.js") => asset("text/javascript; charset=utf-8", APP_JS),
            ("GET" | "HEAD", "/static/login.js") => {
                asset("text/javascript; charset=utf-8", LOGIN_JS)
            }
            ("GET" | "HEAD", "/static/app.css") => asset("text/css; charset=utf-8", APP_CSS),
            ("GET" | "HEAD", "/login") => {
                if self.session(req, now).is_some() {
                    return Response::redirect(303, "/");
                }
                login_page(200, "")
            }
            ("POST", "/login") => self.login(req, peer, now),
            ("POST", "/logout") => self.logout(req, now),
            ("GET" | "HEAD", "/") => match self.session(req, now) {
                Some(_) => Response::new(200, "text/html; charset=utf-8", INDEX_HTML),
                None => Response::redirect(303, "/login"),
            },
            ("GET" | "HEAD", "/metrics") => self.metrics(req),
            ("GET" | "HEAD", "/api/session") => match self.session(req, now) {
                Some(s) => Response::json(
                    200,
                    &json!({"user": s.user, "role": s.role, "csrf": s.csrf}),
                ),
                None => Response::json_error(401, "not logged in"),
            },
            ("GET" | "HEAD", "/api/state") => match self.session(req, now) {
                Some(_) => {
                    // The events as of now: an admin's action shows at once, not a poll later.
                    let (snap, events) = match self.shared.lock() {
                        Ok(s) => (Arc::clone(&s.snapshot), s.events.iter().cloned().collect()),
                        Err(_) => (Arc::default(), Vec::new()),
                    };
                    let mut v = serde_json::to_value(&*snap).unwrap_or_default();
                    v["events"] = serde_json::to_value(events).unwrap_or_default();
                    Response::json(200, &v)
                }
                None => Response::json_error(401, "not logged in"),
            },
            (_, "/" | "/login" | "/logout" | "/metrics" | "/api/session" | "/api/state") => {
                Response::text(405, "method not allowed")
            }
            _ => Response::text(404, "not found"),
        }
    }

    fn session(&mut self, req: &Request, now: Instant) -> Option<auth::Session> {
        let id = req.cookie(COOKIE)?;
        self.sessions.get(id, now).cloned()
    }

    /// A state-changing request must come from our own pages: the session's CSRF token in
    /// `X-CSRF-Token` or the form field `csrf`, and no foreign Origin.
    fn csrf_ok(&self, req: &Request, s: &auth::Session, form_token: Option<&str>) -> bool {
        if !same_origin(req) {
            return false;
        }
        let given = req.header("x-csrf-token").or(form_token).unwrap_or("");
        auth::ct_eq(given.as_bytes(), s.csrf.as_bytes())
    }

    fn login(&mut self, req: &Request, peer: SocketAddr, now: Instant) -> Response {
        if !same_origin(req) {
            return login_page(403, "This login came from another site and was refused.");
        }
        self.refresh_users();
        let form = http::form(&req.body);
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let (user, password) = (field("username"), field("password"));
        let addr = peer.ip();
        let user_log = if crate::users::valid_name(user) {
            user
        } else {
            "(invalid)"
        };
        if let Some(l) = self.limiter.check(user, addr, now) {
            let secs = match l {
                Locked::User(d) | Locked::Addr(d) => d.as_secs() + 1,
            };
            event!(
                Level::Warn,
                "login_refused",
                user = user_log,
                addr = addr,
                reason = "locked out",
                retry_secs = secs
            );
            return login_page(
                429,
                &format!("Too many failed logins. Try again in {secs} seconds."),
            );
        }
        match self.users.verify(user, password) {
            Some(role) => {
                self.limiter.succeed(user);
                let id = self.sessions.create(user, role, now);
                event!(Level::Info, "login", user = user, role = role, addr = addr);
                Response::redirect(303, "/").with(
                    "Set-Cookie",
                    format!(
                        "{COOKIE}={id}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
                        self.sessions.ttl().as_secs()
                    ),
                )
            }
            None => {
                let lock = self.limiter.fail(user, addr, now);
                event!(Level::Warn, "login_failed", user = user_log, addr = addr);
                if let Some(l) = lock {
                    let (what, d) = match l {
                        Locked::User(d) => ("user", d),
                        Locked::Addr(d) => ("addr", d),
                    };
                    event!(
                        Level::Warn,
                        "login_lockout",
                        user = user_log,
                        addr = addr,
                        by = what,
                        secs = d.as_secs()
                    );
                }
                login_page(401, "Wrong user name or password.")
            }
        }
    }

    fn logout(&mut self, req: &Request, now: Instant) -> Response {
        let Some(s) = self.session(req, now) else {
            return Response::redirect(303, "/login");
        };
        let form = http::form(&req.body);
        let token = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        if !self.csrf_ok(req, &s, token) {
            return Response::text(403, "missing or wrong CSRF token");
        }
        if let Some(id) = req.cookie(COOKIE) {
            self.sessions.remove(id);
        }
        event!(Level::Info, "logout", user = s.user);
        Response::redirect(303, "/login").with(
            "Set-Cookie",
            format!("{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"),
        )
    }

    fn action(&mut self, req: &Request, peer: SocketAddr, name: &str, now: Instant) -> Handled {
        let Some(s) = self.session(req, now) else {
            return Handled::Now(Response::json_error(401, "not logged in"));
        };
        if !self.csrf_ok(req, &s, None) {
            event!(
                Level::Warn,
                "action_refused",
                user = s.user,
                action = name,
                addr = peer.ip(),
                reason = "csrf"
            );
            return Handled::Now(Response::json_error(403, "missing or wrong CSRF token"));
        }
        if s.role != Role::Admin {
            event!(
                Level::Warn,
                "action_refused",
                user = s.user,
                action = name,
                addr = peer.ip(),
                reason = "viewer"
            );
            return Handled::Now(Response::json_error(
                403,
                "viewers cannot change anything: log in as an admin",
            ));
        }
        if !req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return Handled::Now(Response::json_error(
                415,
                "send the action as application/json",
            ));
        }
        let body: ActionBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return Handled::Now(Response::json_error(400, &format!("bad action body: {e}")));
            }
        };
        Handled::Later(Box::new(Job {
            name: name.to_owned(),
            body,
            user: s.user,
            addr: peer.ip(),
            director: self.cfg.sockets.path("director", &self.rundir),
            monitord: self.cfg.sockets.path("monitord", &self.rundir),
        }))
    }

    /// The answer to an action the worker has run: logged with the user's name, shown in the
    /// page's events, and sent back.
    pub fn finish(&mut self, job: &Job, result: Result<String, actions::Failure>) -> Response {
        let (s, name, body) = (&job.user, job.name.as_str(), &job.body);
        let mut shared = self.shared.lock().ok();
        match result {
            Ok(message) => {
                event!(
                    Level::Info,
                    "admin_action",
                    user = s,
                    action = name,
                    service = body.service,
                    server = body.server,
                    weight = ?body.weight,
                    on = ?body.on,
                    addr = job.addr,
                    result = "ok",
                    detail = message
                );
                if let Some(sh) = shared.as_mut() {
                    sh.push_event("admin", format!("{s}: {message}"));
                }
                Response::json(200, &json!({"ok": true, "message": message}))
            }
            Err(f) => {
                event!(
                    Level::Warn,
                    "admin_action",
                    user = s,
                    action = name,
                    service = body.service,
                    server = body.server,
                    addr = job.addr,
                    result = "failed",
                    error = f.message
                );
                if let Some(sh) = shared.as_mut() {
                    sh.push_event("admin", format!("{s}: {name} failed: {}", f.message));
                }
                Response::json_error(f.status, &f.message)
            }
        }
    }

    fn metrics(&self, req: &Request) -> Response {
        let Some(token) = &self.cfg.metrics_token else {
            return Response::text(
                404,
                "metrics are off: set metrics_token in the configuration",
            );
        };
        let given = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        if !auth::ct_eq(given.trim().as_bytes(), token.as_bytes()) {
            return Response::text(401, "a bearer token is required")
                .with("WWW-Authenticate", "Bearer realm=\"lvs-webmon\"");
        }
        let snap = self
            .shared
            .lock()
            .map(|s| Arc::clone(&s.snapshot))
            .unwrap_or_default();
        Response::new(200, metrics::CONTENT_TYPE, metrics::render(&snap))
    }
}

/// No `..`, no backslash, no percent-encoding, no NUL: our paths need none of them, and a
/// path with them is someone probing.
fn clean_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains("..")
        && !p.contains('\\')
        && !p.contains('%')
        && !p.contains('\0')
        && !p.contains("//")
}

/// The request did not come from another site. Browsers say so in `Sec-Fetch-Site`; older
/// ones in `Origin` (which is `null` under our `Referrer-Policy: no-referrer` for form posts,
/// so `null` proves nothing either way). Clients that send neither (curl, scripts) are judged
/// by the CSRF token alone.
fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (req.header("origin"), req.header("host")) {
        (None | Some("null"), _) => true,
        (Some(o), Some(h)) => o.strip_prefix("https://").is_some_and(|o| o == h),
        (Some(_), None) => false,
    }
}

fn asset(content_type: &str, body: &str) -> Response {
    Response::new(200, content_type, body).with("Cache-Control", "no-cache")
}

fn login_page(status: u16, error: &str) -> Response {
    let body = LOGIN_HTML.replace("{{error}}", &http::html_escape(error));
    Response::new(status, "text/html; charset=utf-8", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_hosts() {
        assert!(clean_path("/static/app.js"));
        for p in ["/static/../x", "/%2e%2e/etc/passwd", "/a\\b", "//etc", "x"] {
            assert!(!clean_path(p), "{p}");
        }
        assert_eq!(
            clean_host("lvs.example:8080").map(host_only),
            Some("lvs.example")
        );
        assert_eq!(clean_host("[::1]:80").map(host_only), Some("::1"));
        assert_eq!(clean_host("evil\r\nX: y"), None);
    }
}
