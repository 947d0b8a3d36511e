//! One entry of the table: a connection or a persistence template.

use crate::addr::{Endpoint, Proto};
use crate::linked_lists::NIL;
use crate::tcp_state::State;

/// How packets of a connection reach its real server (`ipvsadm -m/-g/-i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Forward {
    /// VS/NAT (`-m`): replies come back through the director.
    Nat = 0,
    /// VS/DR (`-g`): replies go straight from the real server to the client.
    DirectRoute = 1,
    /// VS/TUN (`-i`): replies go straight from the real server to the client.
    Tunnel = 2,
}

impl Forward {
    /// Whether the director sees the server's replies (only NAT does).
    pub const fn sees_replies(self) -> bool {
        matches!(self, Forward::Nat)
    }

    /// The word `ipvsadm -L` prints in its Forward column.
    pub const fn name(self) -> &'static str {
        match self {
            Forward::Nat => "Masq",
            Forward::DirectRoute => "Route",
            Forward::Tunnel => "Tunnel",
        }
    }
}

pub(crate) mod flags {
    /// A persistence template, not a connection.
    pub(crate) const TEMPLATE: u8 = 1 << 0;
    /// No reply seen yet on a DR/TUN connection: use the INPUT-ONLY table
    /// (IPVS `IP_VS_CONN_F_NOOUTPUT`). Cleared by the first reply.
    pub(crate) const NO_OUTPUT: u8 = 1 << 1;
    /// A UDP connection has seen its first packet.
    pub(crate) const UDP_SEEN: u8 = 1 << 2;
    /// A UDP connection has seen a second packet: no longer half-open.
    pub(crate) const UDP_CONFIRMED: u8 = 1 << 3;
    /// A template that no longer matches lookups (see `Table::retire_template`).
    pub(crate) const RETIRED: u8 = 1 << 4;
}

/// A connection or template as stored. Read it through [`crate::Table::get`].
///
/// 88 bytes: three endpoints, one byte each of protocol, method, state and
/// flags, two ids, the deadline, and two words whose meaning depends on the kind
/// (see the accessors). The deadline sits here, beside the state, because every
/// packet writes both; the timer, index and half-open links live in parallel
/// arrays that a plain packet does not touch.
#[derive(Clone, Debug)]
pub struct Conn {
    pub(crate) client: Endpoint,
    pub(crate) virt: Endpoint,
    pub(crate) dest: Endpoint,
    pub(crate) proto: Proto,
    pub(crate) fwd: Forward,
    pub(crate) state: State,
    pub(crate) flags: u8,
    pub(crate) dest_gen: u16,
    pub(crate) service: u32,
    pub(crate) dest_id: u32,
    /// When the entry expires (the caller's clock, ms). The wheel may hold it
    /// at an earlier slot; see `wheel`.
    pub(crate) deadline: u64,
    /// Connection: the controlling template's slot or NIL.
    /// Template: the persistence timeout in seconds.
    pub(crate) word_a: u32,
    /// Template: how many connections it controls. Connection: unused.
    pub(crate) word_b: u32,
}

impl Conn {
    /// The client (for a template: the masked client address, port 0).
    pub fn client(&self) -> Endpoint {
        self.client
    }
    /// The virtual service address and port.
    pub fn virt(&self) -> Endpoint {
        self.virt
    }
    /// The real server address and port.
    pub fn dest(&self) -> Endpoint {
        self.dest
    }
    /// TCP or UDP.
    pub fn proto(&self) -> Proto {
        self.proto
    }
    /// The forwarding method.
    pub fn forward(&self) -> Forward {
        self.fwd
    }
    /// The state (templates: NONE; UDP: `State::Udp`).
    pub fn state(&self) -> State {
        self.state
    }
    /// The caller's virtual service id.
    pub fn service(&self) -> u32 {
        self.service
    }
    /// The caller's destination id.
    pub fn dest_id(&self) -> u32 {
        self.dest_id
    }
    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The controlling template's slot (connections only).
    pub(crate) fn template_slot(&self) -> Option<u32> {
        (!self.is_template() && self.word_a != NIL).then_some(self.word_a)
    }
    /// The persistence timeout in milliseconds (templates only).
    pub(crate) fn persist_ms(&self) -> u64 {
        u64::from(self.word_a) * 1000
    }

    /// Whether this entry counts as active for its destination.
    pub(crate) fn is_active(&self) -> bool {
        !self.is_template() && self.state.is_active()
    }

    /// Whether this entry may be dropped to make room (IPVS `drop_entry`).
    pub(crate) fn is_half_open(&self) -> bool {
        if self.is_template() {
            return false;
        }
        match self.proto {
            Proto::Tcp => self.state.is_half_open_tcp(),
            Proto::Udp => self.flags & flags::UDP_CONFIRMED == 0,
        }
    }
}
