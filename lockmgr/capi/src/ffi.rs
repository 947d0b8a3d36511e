//! The exported C functions of `lvs_lock.h`: pointer checks, argument conversion and error
//! codes around [`Session`]. Every function catches panics (a bug must not unwind into C),
//! refuses NULL where a pointer is required with `LVS_LOCK_E_NULL`, and records a detailed
//! message for `lvs_lock_errmsg` on every failure.
//!
//! A session is a `Mutex<Session>` taken with `try_lock`: a second thread using the same
//! session at the same time gets `LVS_LOCK_E_BUSY` instead of undefined behaviour.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Mutex, TryLockError};

use lvs_lockclient::MAX_NAME_LEN;
use lvs_lockclient::{Granted, LVB_LEN, LockEvent, LockMode};

use crate::error::{self, E_BUSY, E_INTERNAL, E_NULL, Failure, OK};
use crate::session::{Session, flags_from, mode_from};

/// `LVS_LOCK_API_VERSION` of the header this library implements.
pub const API_VERSION: c_int = 1;

/// `lvs_lock_session`: opaque to C.
#[derive(Debug)]
pub struct LvsLockSession {
    inner: Mutex<Session>,
    fd: RawFd,
}

/// `lvs_lock_grant`: the answer to a granted lock or conversion.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LvsLockGrant {
    /// The lock's handle within its session.
    pub handle: u64,
    /// The fencing token of this grant.
    pub token: u64,
    /// The granted mode (0 = NL .. 5 = EX).
    pub mode: i32,
    /// `LVS_LOCK_LVB_NONE` (0: no VALBLK), `_VALID` (1) or `_INVALID` (2).
    pub lvb_state: i32,
    /// The value block, with VALBLK.
    pub lvb: [u8; LVB_LEN],
}

/// `LVS_LOCK_LVB_*`.
pub const LVB_NONE: i32 = 0;
/// The value block is valid.
pub const LVB_VALID: i32 = 1;
/// A PW/EX holder died without writing it: the bytes may be stale.
pub const LVB_INVALID: i32 = 2;

/// `lvs_lock_event`: something lvs-lockmgr said without being asked.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LvsLockEvent {
    /// `LVS_LOCK_EV_QUEUED` (1) or `LVS_LOCK_EV_BLOCKING` (2).
    pub kind: i32,
    /// Queued: the requested mode; blocking: the lock's granted mode.
    pub mode: i32,
    /// Blocking: the mode of the request it blocks; queued: -1.
    pub blocked_mode: i32,
    /// Zero.
    pub reserved: u32,
    /// The lock.
    pub handle: u64,
}

/// `LVS_LOCK_EV_QUEUED`.
pub const EV_QUEUED: i32 = 1;
/// `LVS_LOCK_EV_BLOCKING`.
pub const EV_BLOCKING: i32 = 2;

fn mode_code(m: LockMode) -> i32 {
    // LockMode::index is 0..=5.
    i32::try_from(m.index()).unwrap_or(-1)
}

fn grant_of(g: &Granted) -> LvsLockGrant {
    let (lvb_state, lvb) = match g.lvb {
        None => (LVB_NONE, [0; LVB_LEN]),
        Some(v) if v.valid => (LVB_VALID, v.bytes),
        Some(v) => (LVB_INVALID, v.bytes),
    };
    LvsLockGrant {
        handle: g.handle.0,
        token: g.token,
        mode: mode_code(g.mode),
        lvb_state,
        lvb,
    }
}

fn event_of(ev: &LockEvent) -> LvsLockEvent {
    match *ev {
        LockEvent::Queued { handle, mode } => LvsLockEvent {
            kind: EV_QUEUED,
            mode: mode_code(mode),
            blocked_mode: -1,
            reserved: 0,
            handle,
        },
        LockEvent::Blocking {
            handle,
            granted,
            blocked,
        } => LvsLockEvent {
            kind: EV_BLOCKING,
            mode: mode_code(granted),
            blocked_mode: mode_code(blocked),
            reserved: 0,
            handle,
        },
    }
}

/// Runs `f`, turning a failure or a panic into a negative code (and the message of
/// `lvs_lock_errmsg`).
fn guard(f: impl FnOnce() -> Result<c_int, Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => code,
        Ok(Err(fail)) => error::record(&fail),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            error::record(&Failure::new(
                E_INTERNAL,
                format!("internal error in liblvslock (please report it): {why}"),
            ))
        }
    }
}

fn null(what: &str) -> Failure {
    Failure::new(E_NULL, format!("{what} is NULL"))
}

/// The session behind `s`, for one call.
///
/// # Safety
/// `s` is NULL or a pointer returned by `lvs_lock_open*` and not yet closed.
unsafe fn with<T>(
    s: *const LvsLockSession,
    f: impl FnOnce(&mut Session) -> Result<T, Failure>,
) -> Result<T, Failure> {
    // SAFETY: by the caller's contract `s` is NULL (refused by as_ref) or a live session
    // created by Box::into_raw in lvs_lock_open*, shared only through `&`.
    let s = unsafe { s.as_ref() }.ok_or_else(|| null("session"))?;
    let mut guard = match s.inner.try_lock() {
        Ok(g) => g,
        Err(TryLockError::WouldBlock) => {
            return Err(Failure::new(
                E_BUSY,
                "the session is in use by another thread: a session serves one thread at a time",
            ));
        }
        Err(TryLockError::Poisoned(_)) => {
            return Err(Failure::new(
                E_INTERNAL,
                "the session is unusable after an internal error: close it and open a new one",
            ));
        }
    };
    f(&mut guard)
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract; only read during the call.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Failure::inval(format!("{what} is not valid UTF-8")))
}

/// The lockspace argument: NULL means "default".
///
/// # Safety
/// As [`text`].
unsafe fn lockspace_name<'a>(p: *const c_char) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Ok("default");
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { text(p, "lockspace") }
}

/// The resource name argument: `len` bytes at `p`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
unsafe fn resource<'a>(p: *const c_void, len: usize) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return Err(null("name"));
    }
    // Checked before the slice is made, so a wild length is refused, never read.
    if len == 0 || len > MAX_NAME_LEN {
        return Err(Failure::inval(format!(
            "resource name of {len} bytes: it must have 1 to {MAX_NAME_LEN}"
        )));
    }
    // SAFETY: `p` is non-NULL and, by the caller's contract, `len` (<= 64) bytes are readable.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// An optional value block argument.
///
/// # Safety
/// `p` is NULL or points to `LVB_LEN` readable bytes.
unsafe fn lvb_in(p: *const u8) -> Option<[u8; LVB_LEN]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and LVB_LEN readable bytes by the caller's contract; [u8; N] has
    // alignment 1, so any address will do.
    Some(unsafe { p.cast::<[u8; LVB_LEN]>().read() })
}

/// Stores `v` at `out`.
///
/// # Safety
/// `out` is non-NULL, aligned and writable.
unsafe fn put<T>(out: *mut T, v: T) {
    // SAFETY: the caller's contract, passed on.
    unsafe { out.write(v) }
}

/// The version of the API this library implements (`LVS_LOCK_API_VERSION`).
#[unsafe(no_mangle)]
pub extern "C" fn lvs_lock_api_version() -> c_int {
    API_VERSION
}

/// Opens a session with the lvs-lockmgr of `<rundir>/lockmgr.sock`.
///
/// # Safety
/// `rundir` is NULL or a NUL-terminated string; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_open(
    rundir: *const c_char,
    out: *mut *mut LvsLockSession,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let dir = if rundir.is_null() {
            None
        } else {
            // SAFETY: non-NULL, NUL-terminated by the caller's contract.
            Some(unsafe { text(rundir, "rundir") }?)
        };
        let s = Session::open(dir.map(Path::new))?;
        // SAFETY: `out` is non-NULL and writable by the caller's contract.
        unsafe { put(out, boxed(s)) };
        Ok(OK)
    })
}

/// Opens a session on the socket at `path`, naming the client `name` (NULL: the program).
///
/// # Safety
/// `path` and `name` are NULL or NUL-terminated strings; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_open_socket(
    path: *const c_char,
    name: *const c_char,
    out: *mut *mut LvsLockSession,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: NULL or NUL-terminated by the caller's contract.
        let path = unsafe { text(path, "path") }?;
        let name = if name.is_null() {
            program_name()
        } else {
            // SAFETY: non-NULL, NUL-terminated by the caller's contract.
            unsafe { text(name, "name") }?.to_owned()
        };
        let s = Session::open_socket(Path::new(path), &name)?;
        // SAFETY: `out` is non-NULL and writable by the caller's contract.
        unsafe { put(out, boxed(s)) };
        Ok(OK)
    })
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default()
}

fn boxed(s: Session) -> *mut LvsLockSession {
    let fd = s.fd();
    Box::into_raw(Box::new(LvsLockSession {
        inner: Mutex::new(s),
        fd,
    }))
}

/// Ends the session: the daemon releases every lock and request of it. NULL is ignored.
///
/// # Safety
/// `s` is NULL or an open session not used by any other thread now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_close(s: *mut LvsLockSession) {
    if s.is_null() {
        return;
    }
    // SAFETY: `s` came from Box::into_raw in lvs_lock_open* and is closed once (the caller's
    // contract), so the Box is reclaimed exactly once.
    let b = unsafe { Box::from_raw(s) };
    // Dropping closes the socket; nothing in it should panic, but it must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
}

/// The session's socket, to wait for events with poll/select/epoll.
///
/// # Safety
/// `s` is NULL or an open session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_fd(s: *const LvsLockSession) -> c_int {
    guard(|| {
        // SAFETY: NULL (refused) or an open session, by the caller's contract; the fd is
        // read without taking the session, so this works while another call blocks.
        let s = unsafe { s.as_ref() }.ok_or_else(|| null("session"))?;
        Ok(s.fd)
    })
}

/// Takes a lock (or with LVS_LOCK_CONVERT converts `grant->handle`), blocking until granted.
///
/// # Safety
/// `s` is NULL or an open session; `lockspace` NULL or NUL-terminated; `name` NULL or
/// `name_len` readable bytes; `grant` NULL or a writable `lvs_lock_grant` (read first with
/// CONVERT).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_lock(
    s: *const LvsLockSession,
    lockspace: *const c_char,
    name: *const c_void,
    name_len: usize,
    mode: c_int,
    flags: u32,
    timeout_ms: i64,
    grant: *mut LvsLockGrant,
) -> c_int {
    guard(|| {
        if grant.is_null() {
            return Err(null("grant"));
        }
        let mode = mode_from(mode)?;
        let flags = flags_from(flags)?;
        let g = if flags.contains(lvs_lockclient::LockFlags::CONVERT) {
            // SAFETY: non-NULL and, by the caller's contract, an initialised lvs_lock_grant
            // when CONVERT is set.
            let prev = unsafe { grant.read() };
            // SAFETY: the caller's contract for `s`.
            unsafe {
                with(s, |sess| {
                    sess.convert_dlm(prev.handle, mode, flags, &prev.lvb, timeout_ms)
                })
            }?
        } else {
            // SAFETY: the caller's contract for the string.
            let ls = unsafe { lockspace_name(lockspace) }?;
            // SAFETY: the caller's contract for the name.
            let res = unsafe { resource(name, name_len) }?;
            // SAFETY: the caller's contract for `s`.
            unsafe { with(s, |sess| sess.lock(ls, res, mode, flags, timeout_ms)) }?
        };
        // SAFETY: non-NULL, writable by the caller's contract.
        unsafe { put(grant, grant_of(&g)) };
        Ok(OK)
    })
}

/// Sends a lock request without waiting; `*handle` names it for wait and cancel.
///
/// # Safety
/// As [`lvs_lock_lock`]; `handle` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_request(
    s: *const LvsLockSession,
    lockspace: *const c_char,
    name: *const c_void,
    name_len: usize,
    mode: c_int,
    flags: u32,
    timeout_ms: i64,
    handle: *mut u64,
) -> c_int {
    guard(|| {
        if handle.is_null() {
            return Err(null("handle"));
        }
        let mode = mode_from(mode)?;
        let flags = flags_from(flags)?;
        // SAFETY: the caller's contract for the string.
        let ls = unsafe { lockspace_name(lockspace) }?;
        // SAFETY: the caller's contract for the name.
        let res = unsafe { resource(name, name_len) }?;
        // SAFETY: the caller's contract for `s`.
        let h = unsafe { with(s, |sess| sess.request(ls, res, mode, flags, timeout_ms)) }?;
        // SAFETY: non-NULL, writable by the caller's contract.
        unsafe { put(handle, h) };
        Ok(OK)
    })
}

/// Waits for the answer to a request of `lvs_lock_request`.
///
/// # Safety
/// `s` NULL or an open session; `grant` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_wait(
    s: *const LvsLockSession,
    handle: u64,
    grant: *mut LvsLockGrant,
) -> c_int {
    guard(|| {
        if grant.is_null() {
            return Err(null("grant"));
        }
        // SAFETY: the caller's contract for `s`.
        let g = unsafe { with(s, |sess| sess.wait(handle)) }?;
        // SAFETY: non-NULL, writable by the caller's contract.
        unsafe { put(grant, grant_of(&g)) };
        Ok(OK)
    })
}

/// Cancels the pending request of `handle`.
///
/// # Safety
/// `s` NULL or an open session.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_cancel(s: *const LvsLockSession, handle: u64) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract for `s`.
        unsafe { with(s, |sess| sess.cancel(handle)) }?;
        Ok(OK)
    })
}

/// Converts a granted lock to `mode`; `lvb` (NULL: none) is written on the way down from PW/EX.
///
/// # Safety
/// `s` NULL or an open session; `lvb` NULL or `LVS_LOCK_LVB_LEN` readable bytes; `grant` NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_convert(
    s: *const LvsLockSession,
    handle: u64,
    mode: c_int,
    flags: u32,
    lvb: *const u8,
    timeout_ms: i64,
    grant: *mut LvsLockGrant,
) -> c_int {
    guard(|| {
        let mode = mode_from(mode)?;
        let flags = flags_from(flags)?;
        // SAFETY: the caller's contract for `lvb`.
        let lvb = unsafe { lvb_in(lvb) };
        // SAFETY: the caller's contract for `s`.
        let g = unsafe { with(s, |sess| sess.convert(handle, mode, flags, lvb, timeout_ms)) }?;
        if !grant.is_null() {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { put(grant, grant_of(&g)) };
        }
        Ok(OK)
    })
}

/// Releases a lock (or abandons its request); `lvb` (NULL: none) is written if held in PW/EX.
///
/// # Safety
/// `s` NULL or an open session; `lvb` NULL or `LVS_LOCK_LVB_LEN` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_unlock(
    s: *const LvsLockSession,
    handle: u64,
    lvb: *const u8,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract for `lvb`.
        let lvb = unsafe { lvb_in(lvb) };
        // SAFETY: the caller's contract for `s`.
        unsafe { with(s, |sess| sess.unlock(handle, lvb)) }?;
        Ok(OK)
    })
}

/// Reads the resource's value block through a granted lock.
///
/// # Safety
/// `s` NULL or an open session; `lvb` NULL or `LVS_LOCK_LVB_LEN` writable bytes; `valid`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_read_value(
    s: *const LvsLockSession,
    handle: u64,
    lvb: *mut u8,
    valid: *mut c_int,
) -> c_int {
    guard(|| {
        if lvb.is_null() {
            return Err(null("lvb"));
        }
        // SAFETY: the caller's contract for `s`.
        let v = unsafe { with(s, |sess| sess.read_value(handle)) }?;
        // SAFETY: non-NULL with LVB_LEN writable bytes by the caller's contract; alignment 1.
        unsafe { put(lvb.cast::<[u8; LVB_LEN]>(), v.bytes) };
        if !valid.is_null() {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { put(valid, c_int::from(v.valid)) };
        }
        Ok(OK)
    })
}

/// Writes the resource's value block through a lock held in PW or EX.
///
/// # Safety
/// `s` NULL or an open session; `lvb` NULL or `LVS_LOCK_LVB_LEN` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_write_value(
    s: *const LvsLockSession,
    handle: u64,
    lvb: *const u8,
) -> c_int {
    guard(|| {
        // SAFETY: the caller's contract for `lvb`.
        let lvb = unsafe { lvb_in(lvb) }.ok_or_else(|| null("lvb"))?;
        // SAFETY: the caller's contract for `s`.
        unsafe { with(s, |sess| sess.write_value(handle, &lvb)) }?;
        Ok(OK)
    })
}

/// The fencing token of the lock's latest grant.
///
/// # Safety
/// `s` NULL or an open session; `token` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_token(
    s: *const LvsLockSession,
    handle: u64,
    token: *mut u64,
) -> c_int {
    guard(|| {
        if token.is_null() {
            return Err(null("token"));
        }
        // SAFETY: the caller's contract for `s`.
        let t = unsafe { with(s, |sess| sess.token(handle)) }?;
        // SAFETY: non-NULL, writable by the caller's contract.
        unsafe { put(token, t) };
        Ok(OK)
    })
}

/// The next event: 1 and `*ev` filled, 0 if none came within `timeout_ms`, or an error.
///
/// # Safety
/// `s` NULL or an open session; `ev` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lvs_lock_next_event(
    s: *const LvsLockSession,
    timeout_ms: c_int,
    ev: *mut LvsLockEvent,
) -> c_int {
    guard(|| {
        if ev.is_null() {
            return Err(null("ev"));
        }
        // SAFETY: the caller's contract for `s`.
        match unsafe { with(s, |sess| sess.next_event(timeout_ms)) }? {
            None => Ok(0),
            Some(e) => {
                // SAFETY: non-NULL, writable by the caller's contract.
                unsafe { put(ev, event_of(&e)) };
                Ok(1)
            }
        }
    })
}

/// The fixed message of an error code (static, never NULL).
#[unsafe(no_mangle)]
pub extern "C" fn lvs_lock_strerror(code: c_int) -> *const c_char {
    error::describe(code).as_ptr()
}

/// The detailed message of the calling thread's last failure ("" if none yet).
#[unsafe(no_mangle)]
pub extern "C" fn lvs_lock_errmsg() -> *const c_char {
    catch_unwind(error::last_message).unwrap_or(c"".as_ptr())
}

/// The name of a mode ("NL" .. "EX"), or "?" for a number that is none.
#[unsafe(no_mangle)]
pub extern "C" fn lvs_lock_mode_name(mode: c_int) -> *const c_char {
    const NAMES: [&CStr; 6] = [c"NL", c"CR", c"CW", c"PR", c"PW", c"EX"];
    usize::try_from(mode)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or(c"?".as_ptr(), |n| n.as_ptr())
}

#[cfg(test)]
mod tests {
    use std::ptr::{null, null_mut};

    use super::*;
    use crate::error::E_INVAL;

    fn errmsg() -> String {
        // SAFETY: lvs_lock_errmsg returns this thread's live NUL-terminated message.
        unsafe { CStr::from_ptr(lvs_lock_errmsg()) }
            .to_string_lossy()
            .into_owned()
    }

    fn grant() -> LvsLockGrant {
        LvsLockGrant {
            handle: 0,
            token: 0,
            mode: 0,
            lvb_state: 0,
            lvb: [0; LVB_LEN],
        }
    }

    #[test]
    fn null_pointers_are_refused_with_a_code() {
        let mut g = grant();
        let mut h = 0u64;
        let mut out = null_mut();
        let name = b"x".as_ptr().cast::<c_void>();
        // SAFETY (all blocks below): every pointer is NULL or points to a live local.
        let codes = [
            // SAFETY: see above.
            unsafe { lvs_lock_open(null(), null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_open_socket(null(), null(), &raw mut out) },
            // SAFETY: see above.
            unsafe { lvs_lock_lock(null(), null(), name, 1, 5, 0, -1, null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_request(null(), null(), name, 1, 5, 0, -1, &raw mut h) },
            // SAFETY: see above.
            unsafe { lvs_lock_request(null(), null(), null(), 1, 5, 0, -1, &raw mut h) },
            // SAFETY: see above.
            unsafe { lvs_lock_wait(null(), 1, &raw mut g) },
            // SAFETY: see above.
            unsafe { lvs_lock_cancel(null(), 1) },
            // SAFETY: see above.
            unsafe { lvs_lock_convert(null(), 1, 3, 0, null(), -1, null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_unlock(null(), 1, null()) },
            // SAFETY: see above.
            unsafe { lvs_lock_read_value(null(), 1, null_mut(), null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_write_value(null(), 1, null()) },
            // SAFETY: see above.
            unsafe { lvs_lock_token(null(), 1, null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_next_event(null(), 0, null_mut()) },
            // SAFETY: see above.
            unsafe { lvs_lock_fd(null()) },
        ];
        assert_eq!(codes, [E_NULL; 14]);
        // SAFETY: see above.
        let rc = unsafe { lvs_lock_lock(null(), null(), name, 1, 5, 0, -1, &raw mut g) };
        assert_eq!((rc, errmsg()), (E_NULL, "session is NULL".to_owned()));
        // SAFETY: closing NULL is allowed.
        unsafe { lvs_lock_close(null_mut()) };
    }

    #[test]
    fn bad_arguments_are_refused_before_the_session_is_touched() {
        let mut g = grant();
        let x = b"x".as_ptr().cast::<c_void>();
        let long = [b'a'; 65];
        // SAFETY: pointers to live locals with the stated lengths.
        let rc = unsafe { lvs_lock_lock(null(), null(), x, 1, 9, 0, -1, &raw mut g) };
        assert_eq!(rc, E_INVAL);
        assert!(errmsg().contains("unknown lock mode 9"), "{}", errmsg());
        // SAFETY: as above.
        let rc = unsafe { lvs_lock_lock(null(), null(), x, 1, 5, 0x40, -1, &raw mut g) };
        assert_eq!(rc, E_INVAL);
        // SAFETY: as above.
        let rc = unsafe {
            lvs_lock_lock(
                null(),
                null(),
                long.as_ptr().cast(),
                65,
                5,
                0,
                -1,
                &raw mut g,
            )
        };
        assert_eq!(rc, E_INVAL);
        assert!(errmsg().contains("65 bytes"), "{}", errmsg());
    }

    #[test]
    fn no_daemon_is_a_connect_error_with_the_path() {
        let mut s = null_mut();
        // SAFETY: a valid C string and a writable out pointer.
        let rc = unsafe { lvs_lock_open(c"/nonexistent/lvs-capi".as_ptr(), &raw mut s) };
        assert_eq!(rc, crate::error::E_CONNECT);
        assert!(s.is_null());
        assert!(
            errmsg().contains("/nonexistent/lvs-capi/lockmgr.sock"),
            "{}",
            errmsg()
        );
    }

    #[test]
    fn strings_for_codes_and_modes() {
        let text = |p: *const c_char| {
            // SAFETY: both functions return static NUL-terminated strings.
            unsafe { CStr::from_ptr(p) }.to_owned()
        };
        assert_eq!(text(lvs_lock_mode_name(5)).as_c_str(), c"EX");
        assert_eq!(text(lvs_lock_mode_name(6)).as_c_str(), c"?");
        assert_eq!(
            text(lvs_lock_strerror(-1)).as_c_str(),
            c"would block: the lock is held in a conflicting mode"
        );
        assert_eq!(lvs_lock_api_version(), 1);
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let rc = guard(|| panic!("boom"));
        assert_eq!(rc, E_INTERNAL);
        assert!(errmsg().contains("boom"), "{}", errmsg());
    }
}
