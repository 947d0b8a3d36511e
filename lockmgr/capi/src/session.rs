//! One C session in safe Rust: the blocking [`LockClient`] plus what the C API promises on top
//! of it (the granted mode and fencing token of each lock, DLM-style conversions that write the
//! value block on the way down, reading and writing the value block of a held lock, checked
//! arguments). `ffi` only translates pointers and codes.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use lvs_lockclient::{
    Granted, LVB_LEN, LockClient, LockEvent, LockFlags, LockHandle, LockMode, ValueBlock,
};

use lvs_lockclient::MAX_NAME_LEN;

use crate::error::Failure;
use crate::sys;

/// What a session knows about one of its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Requested with [`Session::request`], not answered yet.
    Pending,
    /// Granted in this mode, with this token.
    Granted { mode: LockMode, token: u64 },
}

/// A session with the local lvs-lockmgr, as a C caller holds it.
#[derive(Debug)]
pub struct Session {
    client: LockClient,
    locks: HashMap<u64, State>,
}

/// How long a request may wait, from the C `timeout_ms` argument.
fn wait_spec(timeout_ms: i64, flags: LockFlags) -> Result<(LockFlags, Option<Duration>), Failure> {
    match timeout_ms {
        -1 => Ok((flags, None)),
        // Not waiting at all is a try-lock.
        0 => Ok((flags | LockFlags::NOQUEUE, None)),
        t if t > 0 => Ok((flags, Some(Duration::from_millis(t.unsigned_abs())))),
        t => Err(Failure::inval(format!(
            "timeout_ms {t}: use -1 (wait without limit), 0 (do not wait) or a positive number"
        ))),
    }
}

/// The flags of a C call, refusing undefined bits.
pub fn flags_from(bits: u32) -> Result<LockFlags, Failure> {
    let f = LockFlags(bits);
    if f.unknown_bits() != 0 {
        return Err(Failure::inval(format!(
            "unknown flags {:#x}: only LVS_LOCK_NOQUEUE, LVS_LOCK_CONVERT and LVS_LOCK_VALBLK exist",
            f.unknown_bits()
        )));
    }
    Ok(f)
}

/// The mode of a C call (0 = NL .. 5 = EX).
pub fn mode_from(m: i32) -> Result<LockMode, Failure> {
    usize::try_from(m)
        .ok()
        .and_then(|i| LockMode::ALL.get(i).copied())
        .ok_or_else(|| {
            Failure::inval(format!(
                "unknown lock mode {m}: expected LVS_LOCK_NL (0) .. LVS_LOCK_EX (5)"
            ))
        })
}

impl Session {
    /// Opens a session on `<rundir>/lockmgr.sock` (`None`: `$LVS_RUNDIR`, else `/run/lvs`).
    pub fn open(rundir: Option<&Path>) -> Result<Session, Failure> {
        let dir = lvs_proto::rundir::resolve(rundir);
        let client = LockClient::connect(&dir).map_err(|e| Failure::from_connect(&e))?;
        Ok(Session::with(client))
    }

    /// Opens a session on the socket at `path`, naming the client `name`.
    pub fn open_socket(path: &Path, name: &str) -> Result<Session, Failure> {
        let client =
            LockClient::connect_socket(path, name).map_err(|e| Failure::from_connect(&e))?;
        Ok(Session::with(client))
    }

    fn with(client: LockClient) -> Session {
        Session {
            client,
            locks: HashMap::new(),
        }
    }

    /// The socket: readable when lvs-lockmgr sent something (an event or an answer).
    pub fn fd(&self) -> RawFd {
        self.client.as_raw_fd()
    }

    fn granted(&mut self, g: &Granted) {
        self.locks.insert(
            g.handle.0,
            State::Granted {
                mode: g.mode,
                token: g.token,
            },
        );
    }

    fn held(&self, handle: u64) -> Result<(LockMode, u64), Failure> {
        match self.locks.get(&handle) {
            Some(State::Granted { mode, token }) => Ok((*mode, *token)),
            Some(State::Pending) => Err(Failure::inval(format!(
                "lock {handle} is not granted yet: wait for it (lvs_lock_wait) or cancel it"
            ))),
            None => Err(unknown(handle)),
        }
    }

    /// Takes a new lock, blocking until it is granted (or denied).
    pub fn lock(
        &mut self,
        lockspace: &str,
        name: &[u8],
        mode: LockMode,
        flags: LockFlags,
        timeout_ms: i64,
    ) -> Result<Granted, Failure> {
        let handle = self.request(lockspace, name, mode, flags, timeout_ms)?;
        self.wait(handle)
    }

    /// Sends a new lock request without waiting for the answer; returns its handle.
    pub fn request(
        &mut self,
        lockspace: &str,
        name: &[u8],
        mode: LockMode,
        flags: LockFlags,
        timeout_ms: i64,
    ) -> Result<u64, Failure> {
        if flags.contains(LockFlags::CONVERT) {
            return Err(Failure::inval(
                "LVS_LOCK_CONVERT converts an existing lock: use lvs_lock_convert, or \
                 lvs_lock_lock with the lock's handle in the grant",
            ));
        }
        check_names(lockspace, name)?;
        let (flags, timeout) = wait_spec(timeout_ms, flags)?;
        let h = self
            .client
            .request(lockspace, name, mode, flags, timeout)
            .map_err(|e| Failure::from_lock(&e))?;
        self.locks.insert(h.0, State::Pending);
        Ok(h.0)
    }

    /// Waits for the answer to request `handle`. A denied request's handle is gone.
    pub fn wait(&mut self, handle: u64) -> Result<Granted, Failure> {
        if self.locks.get(&handle) != Some(&State::Pending) {
            return Err(match self.locks.get(&handle) {
                Some(_) => Failure::inval(format!("lock {handle} has no request to wait for")),
                None => unknown(handle),
            });
        }
        match self.client.wait(LockHandle(handle)) {
            Ok(g) => {
                self.granted(&g);
                Ok(g)
            }
            Err(e) => {
                self.locks.remove(&handle);
                Err(Failure::from_lock(&e))
            }
        }
    }

    /// Cancels the pending request of `handle`; its `wait` then fails with "cancelled".
    pub fn cancel(&mut self, handle: u64) -> Result<(), Failure> {
        if !self.locks.contains_key(&handle) {
            return Err(unknown(handle));
        }
        self.client
            .cancel(LockHandle(handle))
            .map_err(|e| Failure::from_lock(&e))
    }

    /// Converts a granted lock; `lvb`: the value block to write (down from PW/EX only).
    pub fn convert(
        &mut self,
        handle: u64,
        mode: LockMode,
        flags: LockFlags,
        lvb: Option<[u8; LVB_LEN]>,
        timeout_ms: i64,
    ) -> Result<Granted, Failure> {
        self.held(handle)?;
        let (flags, timeout) = wait_spec(timeout_ms, flags)?;
        // A value block to write needs VALBLK on the wire; asking for it is implied.
        let flags = if lvb.is_some() {
            flags | LockFlags::VALBLK
        } else {
            flags
        };
        let g = self
            .client
            .convert(LockHandle(handle), mode, flags, lvb, timeout)
            .map_err(|e| Failure::from_lock(&e))?;
        self.granted(&g);
        Ok(g)
    }

    /// A conversion as the DLM does it: with VALBLK, a conversion from PW or EX to a mode that
    /// is not stronger writes `lvb` first; any other VALBLK conversion reads the value block.
    pub fn convert_dlm(
        &mut self,
        handle: u64,
        mode: LockMode,
        flags: LockFlags,
        lvb: &[u8; LVB_LEN],
        timeout_ms: i64,
    ) -> Result<Granted, Failure> {
        let (held, _) = self.held(handle)?;
        let write = flags.contains(LockFlags::VALBLK)
            && held.writes_value_block()
            && held.is_down_conversion(mode);
        self.convert(handle, mode, flags, write.then_some(*lvb), timeout_ms)
    }

    /// Releases a lock or abandons its request; `lvb`: written if held in PW or EX.
    pub fn unlock(&mut self, handle: u64, lvb: Option<[u8; LVB_LEN]>) -> Result<(), Failure> {
        match self.locks.get(&handle) {
            None => return Err(unknown(handle)),
            Some(State::Granted { mode, .. }) if lvb.is_some() && !mode.writes_value_block() => {
                return Err(Failure::inval(format!(
                    "lock {handle} is held in {mode}: only PW and EX holders write the value block"
                )));
            }
            Some(State::Pending) if lvb.is_some() => {
                return Err(Failure::inval(format!(
                    "lock {handle} is not granted: it cannot write the value block"
                )));
            }
            Some(_) => {}
        }
        self.client
            .unlock(LockHandle(handle), lvb)
            .map_err(|e| Failure::from_lock(&e))?;
        self.locks.remove(&handle);
        Ok(())
    }

    /// The resource's value block now, read by a conversion of the lock to its own mode (which
    /// never waits, and gives the lock a new fencing token).
    pub fn read_value(&mut self, handle: u64) -> Result<ValueBlock, Failure> {
        let (mode, _) = self.held(handle)?;
        let g = self.convert(
            handle,
            mode,
            LockFlags::VALBLK | LockFlags::NOQUEUE,
            None,
            -1,
        )?;
        g.lvb.ok_or_else(|| {
            Failure::new(
                crate::error::E_PROTOCOL,
                "lvs-lockmgr granted a VALBLK conversion without the value block",
            )
        })
    }

    /// Writes the resource's value block; the lock must be held in PW or EX and stays so.
    pub fn write_value(&mut self, handle: u64, lvb: &[u8; LVB_LEN]) -> Result<(), Failure> {
        let (mode, _) = self.held(handle)?;
        if !mode.writes_value_block() {
            return Err(Failure::inval(format!(
                "lock {handle} is held in {mode}: only PW and EX holders write the value block"
            )));
        }
        self.convert(handle, mode, LockFlags::NOQUEUE, Some(*lvb), -1)?;
        Ok(())
    }

    /// The fencing token of the lock's latest grant.
    pub fn token(&self, handle: u64) -> Result<u64, Failure> {
        self.held(handle).map(|(_, t)| t)
    }

    /// The next event: `timeout_ms` -1 waits without limit, 0 does not wait, else that long.
    pub fn next_event(&mut self, timeout_ms: i32) -> Result<Option<LockEvent>, Failure> {
        let wait = match timeout_ms {
            -1 => None,
            0 => {
                // Events read during earlier calls first (they do not make the fd readable),
                // then whatever sits in the socket, without blocking.
                if let Some(ev) = self.poll(Some(Duration::ZERO))? {
                    return Ok(Some(ev));
                }
                if !sys::readable(self.fd()) {
                    return Ok(None);
                }
                // Readable: the read returns at once; the deadline only bounds a partial frame.
                Some(Duration::from_millis(1))
            }
            t if t > 0 => Some(Duration::from_millis(t.unsigned_abs().into())),
            t => {
                return Err(Failure::inval(format!(
                    "timeout_ms {t}: use -1 (wait without limit), 0 (do not wait) or a positive number"
                )));
            }
        };
        self.poll(wait)
    }

    fn poll(&mut self, wait: Option<Duration>) -> Result<Option<LockEvent>, Failure> {
        self.client
            .poll_event(wait)
            .map_err(|e| Failure::from_lock(&e))
    }
}

fn unknown(handle: u64) -> Failure {
    Failure::new(
        crate::error::E_HANDLE,
        format!("this session has no lock with handle {handle}"),
    )
}

/// Refuses names the daemon would refuse, before anything is sent.
fn check_names(lockspace: &str, name: &[u8]) -> Result<(), Failure> {
    const MAX: usize = MAX_NAME_LEN;
    if lockspace.is_empty() || lockspace.len() > MAX {
        return Err(Failure::inval(format!(
            "lockspace name of {} bytes: it must have 1 to {MAX}",
            lockspace.len()
        )));
    }
    if name.is_empty() || name.len() > MAX {
        return Err(Failure::inval(format!(
            "resource name of {} bytes: it must have 1 to {MAX}",
            name.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_flags_and_modes_are_checked() {
        assert_eq!(
            wait_spec(-1, LockFlags::NONE).unwrap(),
            (LockFlags::NONE, None)
        );
        assert_eq!(
            wait_spec(0, LockFlags::VALBLK).unwrap(),
            (LockFlags::VALBLK | LockFlags::NOQUEUE, None)
        );
        assert_eq!(
            wait_spec(1500, LockFlags::NONE).unwrap().1,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            wait_spec(-2, LockFlags::NONE).unwrap_err().code,
            crate::error::E_INVAL
        );
        assert_eq!(flags_from(8).unwrap_err().code, crate::error::E_INVAL);
        assert_eq!(flags_from(7).unwrap(), LockFlags::ALL);
        assert_eq!(mode_from(5).unwrap(), LockMode::EX);
        assert_eq!(mode_from(0).unwrap(), LockMode::NL);
        assert!(mode_from(6).is_err() && mode_from(-1).is_err());
        assert!(check_names("default", &[0; 64]).is_ok());
        assert!(check_names("default", &[0; 65]).is_err());
        assert!(check_names("", b"x").is_err());
        assert!(check_names("default", b"").is_err());
    }
}
