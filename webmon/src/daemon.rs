//! The daemon's body: TLS setup (a self-signed pair on first start), the listeners, the
//! collector thread, and the event loop with its signals.
//!
//! - **SIGHUP**: the configuration, the users file and the certificate are read again; a bad
//!   file is refused and the old settings keep running. The listen addresses need a restart.
//! - **SIGTERM**: stops at once (nothing on the system to undo; sessions are in memory).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::{BoxError, Signal, Signals, Startup, event, signals};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use crate::app::App;
use crate::collector::{CollectorThread, Shared, Targets};
use crate::config::Config;
use crate::server::{self, Connections};
use crate::tls::{self, Tls};

const SIGNALS: Token = Token(0);
const HTTPS: Token = Token(1);
const PLAIN: Token = Token(2);
const ACTIONS: Token = Token(3);

/// The collector's targets for a configuration.
pub fn targets(cfg: &Config, rundir: &std::path::Path) -> Targets {
    Targets {
        director: cfg.sockets.path("director", rundir),
        monitord: cfg.sockets.path("monitord", rundir),
        heartbeatd: cfg.sockets.path("heartbeatd", rundir),
        lockmgr: cfg.sockets.path("lockmgr", rundir),
    }
}

/// Loads the certificate, making a self-signed one first if allowed and there is none.
pub fn prepare_tls(cfg: &Config) -> Result<Tls, BoxError> {
    if cfg.self_signed && !cfg.cert.exists() && !cfg.key.exists() {
        tls::generate(&cfg.cert, &cfg.key)?;
        let t = tls::load(&cfg.cert, &cfg.key)?;
        event!(
            Level::Warn,
            "cert_generated",
            cert = cfg.cert.display(),
            key = cfg.key.display(),
            sha256 = t.fingerprint,
            hint = "self-signed: compare this fingerprint with the browser's before trusting it, or configure cert and key"
        );
        return Ok(t);
    }
    Ok(tls::load(&cfg.cert, &cfg.key)?)
}

/// The daemon's body, for [`lvs_common::run()`].
pub fn run(cfg: Config, startup: Startup<Config>) -> Result<(), BoxError> {
    let mut tls = prepare_tls(&cfg)?;
    let mut poll = Poll::new()?;
    let mut signals = Signals::new(poll.registry(), SIGNALS)?;
    let mut https = TcpListener::bind(cfg.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    poll.registry()
        .register(&mut https, HTTPS, Interest::READABLE)?;
    let plain = match cfg.redirect_listen {
        Some(a) => {
            let mut l = TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?;
            poll.registry()
                .register(&mut l, PLAIN, Interest::READABLE)?;
            Some(l)
        }
        None => None,
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let rundir = startup.rundir().to_path_buf();
    let mut app = App::new(cfg.clone(), rundir.clone(), Arc::clone(&shared))?;
    // The listeners are bound, the certificate and the users read: nothing more needs root.
    // (A reload reads them again as this user: they must be readable by it.)
    if let Some(run_as) = &cfg.run_as {
        run_as.become_user()?;
    }
    let collector = CollectorThread::start(
        targets(&cfg, &rundir),
        cfg.poll_interval,
        Arc::clone(&shared),
    )?;

    let ctx = startup.ready();
    event!(
        Level::Info,
        "listening",
        url = format!("https://{}/", https.local_addr()?),
        redirect = plain
            .as_ref()
            .and_then(|p| p.local_addr().ok())
            .map_or_else(|| "off".to_owned(), |a| format!("http://{a}/")),
        sha256 = tls.fingerprint,
        users = app.user_count(),
    );
    if app.user_count() == 0 {
        event!(
            Level::Warn,
            "no_users",
            file = cfg.users_file.display(),
            hint = "nobody can log in: add one with lvs-webmon --add-user NAME --role admin"
        );
    }

    let waker = Arc::new(mio::Waker::new(poll.registry(), ACTIONS)?);
    let mut conns = Connections::new(waker)?;
    let mut events = Events::with_capacity(256);
    let mut next_tick = Instant::now();
    loop {
        let wait = server::timeout(&conns, Instant::now(), Duration::from_secs(1));
        signals::poll(&mut poll, &mut events, Some(wait))?;
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for s in signals.pending() {
                        match s {
                            Signal::Stop => {
                                drop(collector);
                                return Ok(());
                            }
                            Signal::Reload => {
                                if let Some(new) = ctx.reload() {
                                    reload(&mut app, &mut tls, &collector, &rundir, new);
                                }
                            }
                            Signal::Dump => event!(
                                Level::Info,
                                "dump",
                                connections = conns.len(),
                                refused = conns.refused,
                                users = app.user_count(),
                            ),
                        }
                    }
                }
                ACTIONS => conns.complete(poll.registry(), &mut app),
                HTTPS => conns.accept(&https, poll.registry(), Some(&tls.config), &app),
                PLAIN => {
                    if let Some(p) = &plain {
                        conns.accept(p, poll.registry(), None, &app);
                    }
                }
                t => conns.ready(t, poll.registry(), &mut app),
            }
        }
        let now = Instant::now();
        conns.sweep(now, poll.registry());
        if now >= next_tick {
            app.tick(now);
            next_tick = now + Duration::from_secs(5);
        }
    }
}

fn reload(
    app: &mut App,
    tls: &mut Tls,
    collector: &CollectorThread,
    rundir: &std::path::Path,
    new: Config,
) {
    if new.listen != app.cfg.listen || new.redirect_listen != app.cfg.redirect_listen {
        event!(
            Level::Warn,
            "reload_partial",
            reason = "listen addresses change only at a restart"
        );
    }
    match tls::load(&new.cert, &new.key) {
        Ok(t) => {
            if t.fingerprint != tls.fingerprint {
                event!(Level::Info, "cert_reload", sha256 = t.fingerprint);
            }
            *tls = t;
        }
        Err(e) => {
            event!(Level::Error, "config_rejected", reason = e);
            return;
        }
    }
    if let Ok(mut s) = collector.settings.lock() {
        *s = (targets(&new, rundir), new.poll_interval);
    }
    if let Err(e) = app.reconfigure(new) {
        event!(Level::Error, "users_rejected", error = e);
    }
}
