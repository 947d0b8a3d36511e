//! Sessions, CSRF tokens and the login limiter.
//!
//! A session is a random 256-bit id in a cookie (`Secure; HttpOnly; SameSite=Strict`) that
//! maps to the user, their role, a CSRF token and two expiry times (absolute and idle). Every
//! state-changing request must carry the session's CSRF token (header `X-CSRF-Token` or form
//! field `csrf`); comparison is constant-time.
//!
//! The limiter counts failed logins per user name and per client address within a window;
//! past the limit, logins for that name (or from that address) are refused, even with the
//! right password, until the window has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};

use crate::users::Role;

/// The session cookie's name.
pub const COOKIE: &str = "lvs_session";

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal without an early exit, so timing does not reveal a prefix.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's name.
    pub user: String,
    /// Their role at login.
    pub role: Role,
    /// The token every state-changing request must echo.
    pub csrf: String,
    expires: Instant,
    idle_until: Instant,
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
    ttl: Duration,
    idle: Duration,
}

/// Sessions at most; the oldest goes when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// No sessions yet.
    pub fn new(ttl: Duration, idle: Duration) -> Sessions {
        Sessions {
            by_id: HashMap::new(),
            ttl,
            idle,
        }
    }

    /// New limits for sessions made from now on (and the idle limit for all).
    pub fn set_limits(&mut self, ttl: Duration, idle: Duration) {
        self.ttl = ttl;
        self.idle = idle;
    }

    /// How long a new session lives (the cookie's Max-Age).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns its id.
    pub fn create(&mut self, user: &str, role: Role, now: Instant) -> String {
        self.expire(now);
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            self.by_id.remove(&oldest);
        }
        let id = random_hex(32);
        self.by_id.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                role,
                csrf: random_hex(32),
                expires: now + self.ttl,
                idle_until: now + self.idle,
            },
        );
        id
    }

    /// The session of this id, if it is live; touching it extends the idle limit.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&Session> {
        let live = self
            .by_id
            .get(id)
            .is_some_and(|s| now < s.expires && now < s.idle_until);
        if !live {
            self.by_id.remove(id);
            return None;
        }
        let idle = self.idle;
        let s = self.by_id.get_mut(id)?;
        s.idle_until = now + idle;
        Some(s)
    }

    /// Ends a session.
    pub fn remove(&mut self, id: &str) -> Option<Session> {
        self.by_id.remove(id)
    }

    /// Ends every session of users no longer in the users file, or whose role changed.
    pub fn retain_users(&mut self, users: &crate::users::Users) {
        self.by_id
            .retain(|_, s| users.get(&s.user).is_some_and(|u| u.role == s.role));
    }

    /// Drops expired sessions.
    pub fn expire(&mut self, now: Instant) {
        self.by_id
            .retain(|_, s| now < s.expires && now < s.idle_until);
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

/// Why a login attempt is not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Too many failures for this user name.
    User(Duration),
    /// Too many failures from this address.
    Addr(Duration),
}

/// Counts failed logins.
#[derive(Debug)]
pub struct Limiter {
    users: HashMap<String, Failures>,
    addrs: HashMap<IpAddr, Failures>,
    /// Failures per user before the lockout.
    pub max_user: u32,
    /// Failures per address before the lockout.
    pub max_addr: u32,
    /// The window and the lockout's length.
    pub window: Duration,
}

/// Tracked names and addresses at most (a flood of made-up names must not eat memory).
const MAX_TRACKED: usize = 100_000;

impl Limiter {
    /// A limiter with these limits.
    pub fn new(max_user: u32, max_addr: u32, window: Duration) -> Limiter {
        Limiter {
            users: HashMap::new(),
            addrs: HashMap::new(),
            max_user,
            max_addr,
            window,
        }
    }

    fn left(&self, f: Option<&Failures>, max: u32, now: Instant) -> Option<Duration> {
        let f = f?;
        let end = f.first + self.window;
        (f.count >= max && now < end).then(|| end - now)
    }

    /// Whether a login for `user` from `addr` is locked out now.
    pub fn check(&self, user: &str, addr: IpAddr, now: Instant) -> Option<Locked> {
        if let Some(d) = self.left(self.addrs.get(&addr), self.max_addr, now) {
            return Some(Locked::Addr(d));
        }
        self.left(self.users.get(user), self.max_user, now)
            .map(Locked::User)
    }

    /// Records a failure; returns the lockout it starts, if this failure reached a limit.
    pub fn fail(&mut self, user: &str, addr: IpAddr, now: Instant) -> Option<Locked> {
        let window = self.window;
        let bump = |f: &mut Failures| {
            if now >= f.first + window {
                *f = Failures {
                    count: 0,
                    first: now,
                };
            }
            f.count += 1;
            f.count
        };
        if self.users.len() + self.addrs.len() >= MAX_TRACKED {
            self.expire(now);
        }
        let fresh = Failures {
            count: 0,
            first: now,
        };
        let nu = bump(self.users.entry(user.to_owned()).or_insert(fresh));
        let na = bump(self.addrs.entry(addr).or_insert(fresh));
        if na == self.max_addr {
            Some(Locked::Addr(self.window))
        } else if nu == self.max_user {
            Some(Locked::User(self.window))
        } else {
            None
        }
    }

    /// A successful login clears the user's count (not the address's: one good password
    /// must not reset a guesser's budget for other names).
    pub fn succeed(&mut self, user: &str) {
        self.users.remove(user);
    }

    /// Forgets windows that have passed.
    pub fn expire(&mut self, now: Instant) {
        let w = self.window;
        self.users.retain(|_, f| now < f.first + w);
        self.addrs.retain(|_, f| now < f.first + w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_csrf_is_random() {
        let t0 = Instant::now();
        let mut s = Sessions::new(Duration::from_secs(100), Duration::from_secs(10));
        let id = s.create("alice", Role::Admin, t0);
        let a = s
            .get(&id, t0 + Duration::from_secs(5))
            .unwrap()
            .csrf
            .clone();
        assert_eq!(a.len(), 64);
        assert!(s.get(&id, t0 + Duration::from_secs(14)).is_some());
        assert!(s.get(&id, t0 + Duration::from_secs(30)).is_none());
        let id2 = s.create("bob", Role::Viewer, t0);
        assert_ne!(id, id2);
        assert!(s.get("nope", t0).is_none());
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"a", b"ab"));
    }

    #[test]
    fn lockout_per_user_and_per_address() {
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut l = Limiter::new(3, 4, Duration::from_secs(60));
        assert_eq!(l.fail("alice", a, t0), None);
        assert_eq!(l.fail("alice", b, t0), None);
        assert!(matches!(l.fail("alice", a, t0), Some(Locked::User(_))));
        assert!(matches!(l.check("alice", b, t0), Some(Locked::User(_))));
        assert_eq!(l.check("bob", b, t0), None);
        l.fail("x1", a, t0);
        assert!(matches!(l.fail("x2", a, t0), Some(Locked::Addr(_))));
        assert!(matches!(l.check("bob", a, t0), Some(Locked::Addr(_))));
        assert_eq!(l.check("alice", a, t0 + Duration::from_secs(61)), None);
    }
}
