//! `lvs-lockmgr`: the distributed lock manager.
//!
//! Not built yet: this crate only reserves its place in the workspace. Issue 6 builds it,
//! and until then no binary of this name is produced, so nothing can pretend to work.
