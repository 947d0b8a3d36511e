//! The C API's error codes (negative `int`s, as `lvs_lock.h` defines them), their fixed
//! messages, and the detailed message of the last failure in each thread.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use lvs_lockclient::LockError;
use lvs_proto::ProtoError;

/// Success.
pub const OK: i32 = 0;
/// NOQUEUE (or a zero timeout) and the lock is held in a conflicting mode.
pub const E_WOULDBLOCK: i32 = -1;
/// The request was chosen to break a deadlock.
pub const E_DEADLOCK: i32 = -2;
/// The request's timeout ran out.
pub const E_TIMEOUT: i32 = -3;
/// The request was cancelled.
pub const E_CANCELLED: i32 = -4;
/// The daemon knows no such lock, session or lockspace.
pub const E_NOTFOUND: i32 = -5;
/// The daemon refused the request (e.g. a value block write that is not allowed).
pub const E_BADREQUEST: i32 = -6;
/// This session has no lock with that handle.
pub const E_HANDLE: i32 = -7;
/// Cannot reach lvs-lockmgr (not running, wrong run directory, no permission).
pub const E_CONNECT: i32 = -8;
/// The connection to lvs-lockmgr is gone: the session and all its locks have ended.
pub const E_CLOSED: i32 = -9;
/// lvs-lockmgr sent something this library does not understand.
pub const E_PROTOCOL: i32 = -10;
/// A required pointer argument was NULL.
pub const E_NULL: i32 = -11;
/// An argument is invalid (mode, flags, name length, timeout).
pub const E_INVAL: i32 = -12;
/// Another thread is using the session right now.
pub const E_BUSY: i32 = -13;
/// An internal error in the library (a bug); the session should be closed.
pub const E_INTERNAL: i32 = -14;
/// NOQUEUE in a lock cluster that cannot commit (no quorum: this node is cut off from the
/// majority, or its leader is unreachable); the lock is not granted.
pub const E_NOQUORUM: i32 = -15;

/// The fixed message of a code (the same text for every failure with that code), NUL-terminated.
pub fn describe(code: i32) -> &'static CStr {
    match code {
        OK => c"success",
        E_WOULDBLOCK => c"would block: the lock is held in a conflicting mode",
        E_DEADLOCK => c"deadlock: this request was chosen to break a wait-for cycle",
        E_TIMEOUT => c"timed out waiting for the lock",
        E_CANCELLED => c"the request was cancelled",
        E_NOTFOUND => c"no such lock, session or lockspace",
        E_BADREQUEST => c"lvs-lockmgr refused the request",
        E_HANDLE => c"this session has no lock with that handle",
        E_CONNECT => c"cannot connect to lvs-lockmgr",
        E_CLOSED => c"the connection to lvs-lockmgr is closed: the session and its locks ended",
        E_PROTOCOL => c"unexpected message from lvs-lockmgr",
        E_NULL => c"a required pointer argument is NULL",
        E_INVAL => c"invalid argument",
        E_BUSY => c"the session is in use by another thread",
        E_INTERNAL => c"internal error in liblvslock (a bug): close the session",
        E_NOQUORUM => c"no quorum: the lock cluster cannot commit (leader unknown or unreachable)",
        _ => c"unknown error code",
    }
}

/// A failure: its code and the detailed message for `lvs_lock_errmsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One of the `E_*` codes.
    pub code: i32,
    /// What happened, for a human.
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// An [`E_INVAL`] failure.
    pub fn inval(message: impl Into<String>) -> Failure {
        Failure::new(E_INVAL, message)
    }

    /// The failure of a call on an open session.
    pub fn from_lock(e: &LockError) -> Failure {
        let code = match e {
            LockError::WouldBlock => E_WOULDBLOCK,
            LockError::Deadlock => E_DEADLOCK,
            LockError::Timeout => E_TIMEOUT,
            LockError::Cancelled => E_CANCELLED,
            LockError::NotFound(_) => E_NOTFOUND,
            LockError::BadRequest(_) => E_BADREQUEST,
            LockError::UnknownHandle(_) => E_HANDLE,
            LockError::Refused(_) => E_CLOSED,
            LockError::NoQuorum(_) => E_NOQUORUM,
            LockError::Proto(p) => match p {
                ProtoError::Io { .. } | ProtoError::Closed | ProtoError::Truncated { .. } => {
                    E_CLOSED
                }
                _ => E_PROTOCOL,
            },
        };
        Failure::new(code, e.to_string())
    }

    /// The failure of opening a session: anything but a protocol mix-up is "cannot connect".
    pub fn from_connect(e: &LockError) -> Failure {
        let code = match e {
            LockError::Proto(ProtoError::Decode(_) | ProtoError::UnexpectedFrame(_)) => E_PROTOCOL,
            _ => E_CONNECT,
        };
        Failure::new(code, e.to_string())
    }
}

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `f` as this thread's last failure and returns its code.
pub fn record(f: &Failure) -> i32 {
    // A message never legitimately holds NUL; cut there rather than lose the whole text.
    let text = f.message.split('\0').next().unwrap_or_default();
    let c = CString::new(text).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = c);
    f.code
}

/// The detailed message of this thread's last failure. The pointer is valid until the next
/// failure in the same thread (which replaces the string) or the thread's end.
pub fn last_message() -> *const libc::c_char {
    LAST.with(|l| l.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_message() {
        let codes = (E_NOQUORUM..=OK).collect::<Vec<_>>();
        let mut msgs: Vec<_> = codes.iter().map(|&c| describe(c)).collect();
        msgs.sort_unstable();
        msgs.dedup();
        assert_eq!(msgs.len(), codes.len());
        assert_eq!(describe(-99), c"unknown error code");
    }

    #[test]
    fn lock_errors_map_to_codes() {
        assert_eq!(
            Failure::from_lock(&LockError::WouldBlock).code,
            E_WOULDBLOCK
        );
        assert_eq!(
            Failure::from_lock(&LockError::UnknownHandle(3)).code,
            E_HANDLE
        );
        let no_quorum = Failure::from_lock(&LockError::NoQuorum("leader unknown".to_owned()));
        assert_eq!(no_quorum.code, E_NOQUORUM);
        assert!(
            no_quorum.message.contains("no quorum"),
            "{}",
            no_quorum.message
        );
        assert_eq!(
            Failure::from_lock(&ProtoError::Closed.into()).code,
            E_CLOSED
        );
        let io = ProtoError::io("cannot connect", std::io::ErrorKind::NotFound.into());
        assert_eq!(Failure::from_connect(&io.into()).code, E_CONNECT);
    }

    #[test]
    fn record_keeps_text_up_to_a_nul() {
        assert_eq!(record(&Failure::inval("bad\0tail")), E_INVAL);
        assert_eq!(LAST.with(|l| l.borrow().clone()), c"bad");
    }
}
