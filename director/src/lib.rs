//! `lvs-director`: the load balancer.
//!
//! Being assembled (issue 3) from the crates beside it: `packet` (parsing and rewriting),
//! `conntrack` (the connection table), `afpacket` (rings and fanout), `netinfo` (netlink),
//! `control` (the configuration model and control requests) and `lvsadm`. No binary is
//! produced until the daemon forwards for real.

pub mod config;
pub mod guard;
