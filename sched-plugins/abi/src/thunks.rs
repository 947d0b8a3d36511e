//! The `extern "C"` side of a Rust plugin: generic over the [`Scheduler`], monomorphised in each
//! plugin by [`crate::export_scheduler!`]. Every thunk catches panics, since unwinding out of an
//! `extern "C"` function aborts the director.

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::{Dest, Flow, Options, Scheduler, Service, status};

/// The director's list, as a slice. `n == 0` may come with a null pointer.
///
/// # Safety
/// `dests` points to `n` valid, initialised `Dest`s that outlive `'a`, or `n == 0`.
unsafe fn dest_slice<'a>(dests: *const Dest, n: usize) -> &'a [Dest] {
    if n == 0 || dests.is_null() {
        &[]
    } else {
        // SAFETY: the caller promises `n` valid destinations at `dests` for the call.
        unsafe { std::slice::from_raw_parts(dests, n) }
    }
}

/// Copy `msg` into the C buffer, truncated and NUL-terminated.
///
/// # Safety
/// `errbuf` is null or points to `errlen` writable bytes.
unsafe fn write_error(errbuf: *mut c_char, errlen: usize, msg: &str) {
    if errbuf.is_null() || errlen == 0 {
        return;
    }
    let len = msg.len().min(errlen - 1);
    // SAFETY: `len + 1 <= errlen` bytes are writable at `errbuf`; the source is a live `&str`
    // that cannot overlap a buffer the director owns.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), errbuf.cast::<u8>(), len) };
    // SAFETY: `len < errlen`, so this byte is inside the writable buffer.
    let end = unsafe { errbuf.add(len) };
    // SAFETY: `end` is inside the buffer (above).
    unsafe { end.write(0) };
}

pub(crate) unsafe extern "C" fn create<T: Scheduler>(
    svc: *const Service,
    state: *mut *mut c_void,
    errbuf: *mut c_char,
    errlen: usize,
) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if svc.is_null() || state.is_null() {
            return Err((status::EINVAL, "null service or state pointer".to_string()));
        }
        // SAFETY: checked non-null; the director passes a valid service for the call.
        let svc = unsafe { &*svc };
        let text = if svc.options.is_null() {
            ""
        } else {
            // SAFETY: the ABI says `options` is a NUL-terminated string valid for the call.
            let raw = unsafe { CStr::from_ptr(svc.options) };
            raw.to_str()
                .map_err(|_| (status::EINVAL, "options are not UTF-8".to_string()))?
        };
        let options = Options::parse(text).map_err(|e| (status::EINVAL, e.to_string()))?;
        let sched = T::create(svc, &options).map_err(|e| (status::EINVAL, e))?;
        let boxed = Box::into_raw(Box::new(sched)).cast::<c_void>();
        // SAFETY: `state` was checked non-null and points to the director's out-parameter.
        unsafe { *state = boxed };
        Ok(())
    }));
    match result {
        Ok(Ok(())) => status::OK,
        Ok(Err((code, msg))) => {
            // SAFETY: the ABI makes errbuf null or `errlen` writable bytes.
            unsafe { write_error(errbuf, errlen, &msg) };
            code
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { write_error(errbuf, errlen, "the scheduler panicked in create") };
            status::EPANIC
        }
    }
}

pub(crate) unsafe extern "C" fn destroy<T: Scheduler>(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // A panic in a destructor is swallowed: there is nothing left to fall back from.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` came from `Box::into_raw` in `create::<T>` and the director destroys
        // it exactly once.
        drop(unsafe { Box::from_raw(state.cast::<T>()) });
    }));
}

/// Shared body of the three destination callbacks.
///
/// # Safety
/// `state` came from `create::<T>`; `dests`/`n` are valid for the call.
unsafe fn on_dest<T: Scheduler>(
    state: *mut c_void,
    dests: *const Dest,
    n: usize,
    index: usize,
    f: fn(&mut T, &[Dest], usize),
) -> i32 {
    if state.is_null() || index >= n {
        return status::EINVAL;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` is a live `T` from `create::<T>`, not used by another thread now.
        let sched = unsafe { &mut *state.cast::<T>() };
        // SAFETY: the director passes `n` valid destinations.
        let list = unsafe { dest_slice(dests, n) };
        f(sched, list, index);
    }));
    match result {
        Ok(()) => status::OK,
        Err(_) => status::EPANIC,
    }
}

pub(crate) unsafe extern "C" fn add_dest<T: Scheduler>(
    state: *mut c_void,
    dests: *const Dest,
    n: usize,
    index: usize,
) -> i32 {
    // SAFETY: forwarded from the director under the same contract.
    unsafe { on_dest::<T>(state, dests, n, index, T::add_dest) }
}

pub(crate) unsafe extern "C" fn del_dest<T: Scheduler>(
    state: *mut c_void,
    dests: *const Dest,
    n: usize,
    index: usize,
) -> i32 {
    // SAFETY: forwarded from the director under the same contract.
    unsafe { on_dest::<T>(state, dests, n, index, T::del_dest) }
}

pub(crate) unsafe extern "C" fn upd_dest<T: Scheduler>(
    state: *mut c_void,
    dests: *const Dest,
    n: usize,
    index: usize,
) -> i32 {
    // SAFETY: forwarded from the director under the same contract.
    unsafe { on_dest::<T>(state, dests, n, index, T::upd_dest) }
}

pub(crate) unsafe extern "C" fn schedule<T: Scheduler>(
    state: *mut c_void,
    flow: *const Flow,
    dests: *const Dest,
    n: usize,
    chosen: *mut usize,
) -> i32 {
    if state.is_null() || flow.is_null() || chosen.is_null() {
        return status::EINVAL;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` is a live `T` from `create::<T>`, not used by another thread now.
        let sched = unsafe { &mut *state.cast::<T>() };
        // SAFETY: checked non-null; valid for the call.
        let flow = unsafe { &*flow };
        // SAFETY: the director passes `n` valid destinations.
        let list = unsafe { dest_slice(dests, n) };
        sched.schedule(flow, list)
    }));
    match result {
        Ok(Some(i)) if i < n => {
            // SAFETY: checked non-null; the director's out-parameter.
            unsafe { *chosen = i };
            status::OK
        }
        Ok(Some(_)) => status::EINTERNAL,
        Ok(None) => status::NONE,
        Err(_) => status::EPANIC,
    }
}
