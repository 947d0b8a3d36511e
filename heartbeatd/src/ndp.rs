//! Neighbour discovery for the IPv6 virtual addresses: one [`NdpSocket`] per physical
//! interface that an IPv6 `[[vip]]` is served on, registered with the daemon's poll.
//!
//! Why the daemon answers neighbour solicitations itself: the kernel answers one only for an
//! address of the interface it arrived on, and the virtual addresses live on the VIP device
//! ([`crate::vipdev`]), not on the physical interface (for IPv4 the kernel's ARP answers for
//! any local address, so nothing like this is needed there). While master, each socket is
//! joined to the solicited-node groups of its addresses and answers for them; otherwise it
//! answers nothing. Like the addresses, the answering dies with the process: a SIGKILLed
//! primary stops claiming the VIP at once.
//!
//! The unsolicited advertisements of a takeover (and of each refresh) leave by the same
//! sockets ([`Responders::announce`]), one per address per round of the `[garp]` burst.

use std::net::{IpAddr, Ipv6Addr};

use lvs_netinfo::{NdpSocket, NdpStats, Netlink};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::config::Vip;

/// Solicitations read per socket per turn of the loop (see [`NdpSocket::serve`]).
pub const NDP_BURST: usize = 64;

/// The sockets, each with the interface it is bound to and whether solicitations may be
/// waiting on it; socket `i` polls as `base + i`.
#[derive(Debug)]
pub struct Responders {
    base: usize,
    sockets: Vec<(String, NdpSocket, bool)>,
}

/// Whether IPv6 forwarding is on on `interface`: our advertisements then carry the Router
/// flag, as the kernel's own would. Read at each takeover (it is a sysctl; unreadable: off).
fn forwarding(interface: &str) -> bool {
    crate::vipdev::valid_name(interface)
        && std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{interface}/forwarding"))
            .is_ok_and(|v| v.trim() == "1")
}

/// The IPv6 virtual addresses of `vips` served on `interface`.
fn targets(vips: &[Vip], interface: &str) -> Vec<Ipv6Addr> {
    vips.iter()
        .filter(|v| v.interface == interface)
        .filter_map(|v| match v.addr {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        })
        .collect()
}

impl Responders {
    /// No socket open (none was ever needed).
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// None yet: sockets open as the addresses need them; tokens from `base` on.
    pub fn new(base: usize) -> Responders {
        Responders {
            base,
            sockets: Vec::new(),
        }
    }

    /// Whether `token` is one of ours.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + self.sockets.len()
    }

    /// The socket for `interface`, opened and registered if it is not yet.
    fn socket(
        &mut self,
        nl: &mut Netlink,
        registry: &Registry,
        interface: &str,
    ) -> Result<&mut NdpSocket, String> {
        let i = match self.sockets.iter().position(|(n, _, _)| n == interface) {
            Some(i) => i,
            None => {
                let link = nl.link_by_name(interface).map_err(|e| e.to_string())?;
                let mac = link
                    .mac
                    .ok_or_else(|| format!("{interface} has no MAC address"))?;
                let s = NdpSocket::open(link.ifindex, mac).map_err(|e| e.to_string())?;
                let token = Token(self.base + self.sockets.len());
                registry
                    .register(&mut SourceFd(&s.raw_fd()), token, Interest::READABLE)
                    .map_err(|e| format!("register the neighbour discovery socket: {e}"))?;
                self.sockets.push((interface.to_owned(), s, false));
                self.sockets.len() - 1
            }
        };
        Ok(&mut self.sockets[i].1)
    }

    /// Answers for every IPv6 address of `vips` from now on (held: true), or for none.
    /// Returns the interfaces that failed, with why.
    pub fn hold(
        &mut self,
        nl: &mut Netlink,
        registry: &Registry,
        vips: &[Vip],
        held: bool,
    ) -> Vec<(String, String)> {
        let mut interfaces: Vec<&str> = vips
            .iter()
            .filter(|v| v.addr.is_ipv6())
            .map(|v| v.interface.as_str())
            .collect();
        interfaces.sort_unstable();
        interfaces.dedup();
        let mut failed = Vec::new();
        if held {
            for interface in interfaces {
                let t = targets(vips, interface);
                let r = self.socket(nl, registry, interface).and_then(|s| {
                    s.set_router(forwarding(interface));
                    s.set_targets(&t).map_err(|e| e.to_string())
                });
                if let Err(e) = r {
                    failed.push((interface.to_owned(), e));
                }
            }
        }
        // Interfaces no longer (or not now) served answer nothing.
        for (name, s, _) in &mut self.sockets {
            if (!held
                || !vips
                    .iter()
                    .any(|v| v.addr.is_ipv6() && &v.interface == name))
                && let Err(e) = s.set_targets(&[])
            {
                failed.push((name.clone(), e.to_string()));
            }
        }
        failed
    }

    /// One unsolicited neighbour advertisement for `vip` (IPv6) on its interface.
    pub fn announce(
        &mut self,
        nl: &mut Netlink,
        registry: &Registry,
        vip: &Vip,
        addr: Ipv6Addr,
    ) -> Result<(), String> {
        self.socket(nl, registry, &vip.interface)?
            .announce(addr)
            .map_err(|e| e.to_string())
    }

    /// `token` is readable (edge-triggered): solicitations wait on it until
    /// [`Responders::serve`] finds it empty.
    pub fn readable(&mut self, token: Token) {
        if let Some((_, _, pending)) = self.sockets.get_mut(token.0 - self.base) {
            *pending = true;
        }
    }

    /// Answers at most [`NDP_BURST`] solicitations on each socket where some wait; true
    /// when some may still wait (the loop comes back without sleeping). Errors name the
    /// interface.
    pub fn serve(&mut self) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        let mut more = false;
        for (name, s, pending) in &mut self.sockets {
            if !*pending {
                continue;
            }
            *pending = match s.serve(NDP_BURST) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(format!("{name}: {e}"));
                    false
                }
            };
            more |= *pending;
        }
        (more, errors)
    }

    /// The counters of every socket, added up.
    pub fn stats(&self) -> NdpStats {
        let mut t = NdpStats::default();
        for (_, s, _) in &self.sockets {
            let x = s.stats();
            t.answered += x.answered;
            t.not_ours += x.not_ours;
            t.send_errors += x.send_errors;
            t.announced += x.announced;
            for (a, b) in t.malformed.iter_mut().zip(x.malformed) {
                *a += b;
            }
        }
        t
    }
}
