//! Sessions, CSRF tokens and the login limiter.
//!
//! A session is a random 256-bit id in a cookie (`Secure; HttpOnly; SameSite=Strict`) that
//! maps to the user, their role, a CSRF token and two expiry times (absolute and idle). Every
//! state-changing request must carry the session's CSRF token (header `X-CSRF-Token` or form
//! field `csrf`); comparison is constant-time.
//!
//! The limiter counts failed logins per user name and per client address within a window;
//! past the limit, logins for that name (or from that address) are refused, even with the
//! right password, until the window has passed. It tracks at most [`MAX_TRACKED`] names and
//! as many addresses: past that, the name (or address) whose count started first is
//! forgotten to make room, whatever its window, so that a flood of made-up names or spoofed
//! addresses costs a fixed amount of memory. (The price: a guesser who can fail from
//! `MAX_TRACKED` new addresses can also flush a lockout of its own address; the per-name
//! lockout still holds as long as fewer than `MAX_TRACKED` names failed since.)

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
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

/// Failure counts for at most `cap` keys; a new key at capacity evicts the oldest one.
#[derive(Debug)]
struct Tracked<K> {
    /// The count and the stamp of its insertion.
    map: HashMap<K, (Failures, u64)>,
    /// Keys in insertion order with their stamps (an entry whose stamp no longer matches
    /// the map's was removed or inserted again since: skipped).
    order: VecDeque<(K, u64)>,
    next: u64,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Tracked<K> {
    fn new(cap: usize) -> Tracked<K> {
        Tracked {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&Failures>
    where
        K: Borrow<Q>,
    {
        self.map.get(k).map(|(f, _)| f)
    }

    /// `k`'s count, inserted as `fresh` (evicting the oldest key at capacity) if absent.
    fn entry(&mut self, k: K, fresh: Failures) -> &mut Failures {
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.cap && self.evict_oldest() {}
            self.next += 1;
            self.order.push_back((k.clone(), self.next));
            self.map.insert(k.clone(), (fresh, self.next));
            if self.order.len() > 2 * self.cap {
                let map = &self.map;
                self.order
                    .retain(|(k, s)| map.get(k).is_some_and(|(_, t)| t == s));
            }
        }
        match self.map.get_mut(&k) {
            Some((f, _)) => f,
            None => unreachable!("inserted above"),
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|(_, t)| *t == s) {
                self.map.remove(&k);
                return true;
            }
        }
        false
    }

    fn remove<Q: Hash + Eq + ?Sized>(&mut self, k: &Q)
    where
        K: Borrow<Q>,
    {
        self.map.remove(k);
    }

    fn retain(&mut self, mut keep: impl FnMut(&Failures) -> bool) {
        self.map.retain(|_, (f, _)| keep(f));
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Counts failed logins.
#[derive(Debug)]
pub struct Limiter {
    users: Tracked<String>,
    addrs: Tracked<IpAddr>,
    /// Failures per user before the lockout.
    pub max_user: u32,
    /// Failures per address before the lockout.
    pub max_addr: u32,
    /// The window and the lockout's length.
    pub window: Duration,
}

/// Names tracked at most, and addresses tracked at most (a flood of made-up names or
/// spoofed addresses must not eat memory): about 10 MB in all when both are full.
pub const MAX_TRACKED: usize = 50_000;

impl Limiter {
    /// A limiter with these limits, tracking at most [`MAX_TRACKED`] names and addresses.
    pub fn new(max_user: u32, max_addr: u32, window: Duration) -> Limiter {
        Limiter::with_capacity(max_user, max_addr, window, MAX_TRACKED)
    }

    /// A limiter tracking at most `cap` names and `cap` addresses.
    pub fn with_capacity(max_user: u32, max_addr: u32, window: Duration, cap: usize) -> Limiter {
        Limiter {
            users: Tracked::new(cap),
            addrs: Tracked::new(cap),
            max_user,
            max_addr,
            window,
        }
    }

    /// Names and addresses tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.len(), self.addrs.len())
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
        if self.users.len() >= self.users.cap || self.addrs.len() >= self.addrs.cap {
            self.expire(now);
        }
        let fresh = Failures {
            count: 0,
            first: now,
        };
        let nu = bump(self.users.entry(user.to_owned(), fresh));
        let na = bump(self.addrs.entry(addr, fresh));
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
        self.users.retain(|f| now < f.first + w);
        self.addrs.retain(|f| now < f.first + w);
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

    #[test]
    fn the_tables_are_capped_and_the_oldest_goes_first() {
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        let mut l = Limiter::with_capacity(2, 100, window, 4);
        let ip = |i: u8| IpAddr::from([192, 0, 2, i]);
        // "locked" is locked out first, then a flood of new names and addresses, all within
        // the window (nothing expires).
        l.fail("locked", ip(1), t0);
        assert!(matches!(l.fail("locked", ip(1), t0), Some(Locked::User(_))));
        for i in 0..3u8 {
            l.fail(&format!("flood{i}"), ip(10 + i), t0);
        }
        assert_eq!(l.tracked(), (4, 4));
        assert!(matches!(
            l.check("locked", ip(99), t0),
            Some(Locked::User(_))
        ));
        // One more new name: the oldest ("locked") goes, the newer ones stay.
        l.fail("flood3", ip(13), t0);
        assert_eq!(l.tracked(), (4, 4));
        assert_eq!(l.check("locked", ip(99), t0), None);
        for i in 1..4u8 {
            assert!(
                l.users.get(format!("flood{i}").as_str()).is_some(),
                "flood{i}"
            );
        }
        // A thousand more: still four of each, and a name counted again after a success
        // (removed, then inserted anew) is the newest, not evicted in its old place.
        for i in 0..1000u32 {
            l.fail(
                &format!("more{i}"),
                IpAddr::from((i + 1000).to_be_bytes()),
                t0,
            );
        }
        assert_eq!(l.tracked(), (4, 4));
        assert!(l.users.order.len() <= 8);
        l.succeed("more999");
        l.fail("again", ip(1), t0);
        l.fail("more999", ip(1), t0);
        l.fail("x", ip(1), t0);
        l.fail("y", ip(1), t0);
        l.fail("z", ip(1), t0);
        assert!(l.users.get("more999").is_some());
        assert!(l.users.get("again").is_none());
    }
}
