//! `lvs-director`: the load balancer.
//!
//! Assembled from the crates beside it: `packet` (parsing and rewriting), `conntrack` (the
//! connection table), `afpacket` (rings and fanout), `control` (the configuration model and
//! control requests) and `lvsadm`, and from the top-level library `netinfo` (netlink), which
//! heartbeatd uses too. This crate holds the worker threads (`dataplane`), the kernel guard
//! (`nftables`), the configuration, and the daemon's event loop.

pub mod cluster;
pub mod config;
pub mod content;
pub mod content_edit;
pub mod daemon;
pub mod dataplane;
pub mod fwmark;
pub mod handover;
pub mod nftables;
pub mod sync;
mod sys;
