//! `liblvslock.so`: the C API of lvs-lockmgr, declared in `include/lvs_lock.h` (see
//! `README.md` for the guide and an example).
//!
//! - [`session`]: one session in safe Rust (the blocking [`lvs_lockclient::LockClient`], the
//!   granted mode and fencing token of each lock, DLM-style value block handling).
//! - [`ffi`]: the exported `extern "C"` functions: pointer checks, panics caught, codes.
//! - [`error`]: the negative error codes and their messages.
//!
//! The numbers in the header (modes, flags, codes, struct layouts) are the constants of these
//! modules; the tests compile C programs against the header and check them.

pub mod error;
pub mod ffi;
pub mod session;
mod sys;
