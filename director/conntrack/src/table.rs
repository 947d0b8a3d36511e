//! The table: entries in a pre-sized slab, the index, the timer wheel, the
//! half-open list and the per-destination counters, kept consistent together.
//!
//! Every path that changes an entry's kind, state or existence goes through the
//! few functions here (`insert_entry`, `on_packet`, `remove_node`), and each of
//! them adjusts the destination counters, so the counters always equal a recount.

use slab::Slab;

use crate::addr::{Endpoint, Proto};
use crate::config::Config;
use crate::dest::{DestCounts, DestSlot};
use crate::entry::{Conn, Forward, flags};
use crate::error::{ConfigError, Error};
use crate::index::Index;
use crate::key::{FlowKey, hash_client};
use crate::linked_lists::{LinkedLists, NIL};
use crate::stats::Stats;
use crate::tcp_state::{Dir, State, StateTable, TcpFlags, next_state};
use crate::timeouts::Timeouts;
use crate::wheel::Wheel;

/// The half-open list is list 0 of its `LinkedLists`.
pub(crate) const HALF_OPEN: u32 = 0;

/// A connection in the table. Valid until the entry is removed (by `expire`,
/// `expire_dest`'s sweep, `remove`, or a half-open drop inside `insert`); use it
/// within the handling of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) u32);

impl ConnId {
    /// The slot number, `0..capacity`: a caller may keep per-connection side data
    /// in its own array indexed by it.
    pub fn slot(self) -> u32 {
        self.0
    }
}

/// What a new connection is: the caller fills it after scheduling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewConn {
    /// TCP or UDP.
    pub proto: Proto,
    /// The client's address and port.
    pub client: Endpoint,
    /// The virtual service's address and port.
    pub virt: Endpoint,
    /// The chosen real server's address and port.
    pub dest: Endpoint,
    /// The forwarding method of that real server.
    pub forward: Forward,
    /// The caller's id of the virtual service.
    pub service: u32,
    /// The caller's id of the real server; indexes the destination counters.
    pub dest_id: u32,
}

/// One worker's connection table. See the crate documentation for how a worker
/// drives it.
pub struct Table {
    pub(crate) cfg: Config,
    pub(crate) entries: Slab<Conn>,
    pub(crate) index: Index,
    pub(crate) wheel: Wheel,
    pub(crate) half_open: LinkedLists,
    pub(crate) dests: Vec<DestSlot>,
    pub(crate) timeouts: Timeouts,
    pub(crate) stats: Stats,
    /// Entries of deleted destinations still in the table.
    pub(crate) dead_pending: u64,
    pub(crate) sweep_cursor: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.entries.len())
            .field("capacity", &self.cfg.capacity)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The slot number of a slab key; keys stay below the capacity, which fits `u32`.
#[inline]
pub(crate) fn node_of(key: usize) -> u32 {
    u32::try_from(key).unwrap_or(NIL)
}

/// Add (`up`) or remove one entry's contribution to its destination's counters.
/// Entries of a deleted destination (older generation) count nowhere.
#[inline]
pub(crate) fn account(dests: &mut [DestSlot], c: &Conn, up: bool) {
    let slot = &mut dests[c.dest_id as usize];
    if slot.generation != c.dest_gen {
        return;
    }
    let counts = &mut slot.counts;
    let n = if c.is_template() {
        &mut counts.persistent
    } else if c.is_active() {
        &mut counts.active
    } else {
        &mut counts.inactive
    };
    if up {
        *n += 1;
    } else {
        debug_assert!(*n > 0, "counter underflow for dest {}", c.dest_id);
        *n = n.saturating_sub(1);
    }
}

impl Table {
    /// Build a table, allocating everything it will ever use. `now` is the
    /// caller's clock (milliseconds, monotonic) at construction.
    pub fn new(cfg: Config, now: u64) -> Result<Table, ConfigError> {
        cfg.validate()?;
        let nodes = node_of(cfg.capacity);
        Ok(Table {
            entries: Slab::with_capacity(cfg.capacity),
            index: Index::new(nodes),
            wheel: Wheel::new(nodes, now),
            half_open: LinkedLists::new(nodes, 1),
            dests: vec![DestSlot::default(); cfg.dest_slots],
            timeouts: Timeouts::default(),
            stats: Stats::default(),
            dead_pending: 0,
            sweep_cursor: 0,
            cfg,
        })
    }

    /// The configuration the table was built with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Entries held, connections and templates, including entries of deleted
    /// destinations that the sweep has not reached yet.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The per-state timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The per-state timeouts, to change one state's value.
    pub fn timeouts_mut(&mut self) -> &mut Timeouts {
        &mut self.timeouts
    }

    /// `ipvsadm --set tcp tcpfin udp` (seconds, 0 = unchanged). Entries pick up a
    /// new value at their next packet, as in IPVS.
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        self.timeouts.set_ipvsadm(tcp, tcpfin, udp);
    }

    /// Make room for destination ids `0..count` (control path; allocates).
    pub fn reserve_dests(&mut self, count: usize) {
        if count > self.dests.len() {
            self.dests.resize(count, DestSlot::default());
        }
    }

    /// The connection counts of destination `dest_id` in this table.
    pub fn dest_counts(&self, dest_id: u32) -> DestCounts {
        self.dests
            .get(dest_id as usize)
            .map(|s| s.counts)
            .unwrap_or_default()
    }

    /// Whether `c` belongs to a destination that still exists.
    #[inline]
    pub(crate) fn alive(dests: &[DestSlot], c: &Conn) -> bool {
        dests[c.dest_id as usize].generation == c.dest_gen
    }

    /// The entry of connection `id`.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.entries.get(id.0 as usize)
    }

    /// The connection of an inbound packet (client → virtual service).
    #[inline]
    pub fn lookup_in(&mut self, key: &FlowKey) -> Option<ConnId> {
        let hash = hash_client(self.cfg.hash_seed, key.proto, &key.src.addr, key.src.port);
        let found = self.find_in(hash, key);
        self.count_lookup(found)
    }

    /// The connection of a VS/NAT reply (real server → client).
    #[inline]
    pub fn lookup_out(&mut self, key: &FlowKey) -> Option<ConnId> {
        let hash = hash_client(self.cfg.hash_seed, key.proto, &key.dst.addr, key.dst.port);
        let (entries, dests) = (&self.entries, &self.dests);
        let found = self.index.find(hash, |n| {
            entries.get(n as usize).is_some_and(|c| {
                c.flags & flags::TEMPLATE == 0
                    && c.proto == key.proto
                    && c.dest == key.src
                    && c.client == key.dst
                    && Table::alive(dests, c)
            })
        });
        self.count_lookup(found)
    }

    #[inline]
    fn count_lookup(&mut self, found: Option<u32>) -> Option<ConnId> {
        match found {
            Some(n) => {
                self.stats.hits += 1;
                Some(ConnId(n))
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    #[inline]
    pub(crate) fn find_in(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let (entries, dests) = (&self.entries, &self.dests);
        self.index.find(hash, |n| {
            entries.get(n as usize).is_some_and(|c| {
                c.flags & flags::TEMPLATE == 0
                    && c.proto == key.proto
                    && c.client == key.src
                    && c.virt == key.dst
                    && Table::alive(dests, c)
            })
        })
    }

    /// Add a connection, bound to persistence template `template` if given.
    ///
    /// Above the drop threshold the oldest half-open entries go first; at capacity
    /// with none left to drop the connection is refused with [`Error::TableFull`].
    /// The entry starts in NONE (TCP) or UDP; pass its first packet to
    /// [`Table::on_packet`] next.
    pub fn insert(
        &mut self,
        new: &NewConn,
        template: Option<crate::persist::TemplateId>,
        now: u64,
    ) -> Result<ConnId, Error> {
        let generation = self.dest_generation(new.dest_id)?;
        if let Some(t) = template {
            self.live_template(t.0).ok_or(Error::NoEntry)?;
        }
        let hash = hash_client(
            self.cfg.hash_seed,
            new.proto,
            &new.client.addr,
            new.client.port,
        );
        let key = FlowKey::new(new.proto, new.client, new.virt);
        if self.find_in(hash, &key).is_some() {
            return Err(Error::Exists);
        }
        self.make_room(now)?;
        let state = match new.proto {
            Proto::Tcp => State::None,
            Proto::Udp => State::Udp,
        };
        let conn = Conn {
            client: new.client,
            virt: new.virt,
            dest: new.dest,
            proto: new.proto,
            fwd: new.forward,
            state,
            flags: if new.forward.sees_replies() {
                0
            } else {
                flags::NO_OUTPUT
            },
            dest_gen: generation,
            service: new.service,
            dest_id: new.dest_id,
            deadline: 0,
            word_a: template.map_or(NIL, |t| t.0),
            word_b: 0,
        };
        let node = self.insert_entry(conn, hash, now + self.timeouts.get(state));
        if let Some(t) = template {
            self.bind_template(t.0, now);
        }
        self.stats.inserts += 1;
        Ok(ConnId(node))
    }

    /// The generation a new entry for `dest_id` carries.
    pub(crate) fn dest_generation(&self, dest_id: u32) -> Result<u16, Error> {
        self.dests
            .get(dest_id as usize)
            .map(|s| s.generation)
            .ok_or(Error::UnknownDest(dest_id))
    }

    /// Store, index, arm and count a new entry. The caller has made room.
    pub(crate) fn insert_entry(&mut self, mut conn: Conn, hash: u64, deadline: u64) -> u32 {
        conn.deadline = deadline;
        let node = node_of(self.entries.insert(conn));
        self.index.insert(node, hash);
        self.wheel.arm(node, deadline);
        let c = &self.entries[node as usize];
        if c.is_half_open() {
            self.half_open.push_back(HALF_OPEN, node);
        }
        account(&mut self.dests, c, true);
        node
    }

    /// Account one packet of connection `id`: move its TCP state as IPVS does for
    /// direction `dir` and `flags` (UDP: pass `TcpFlags::NONE`), keep the
    /// destination counters right, and push its timer to `now` plus the new
    /// state's timeout. Returns the new state.
    #[inline]
    pub fn on_packet(
        &mut self,
        id: ConnId,
        dir: Dir,
        tcp_flags: TcpFlags,
        now: u64,
    ) -> Result<State, Error> {
        let node = id.0;
        let c = self
            .entries
            .get_mut(node as usize)
            .filter(|c| c.flags & flags::TEMPLATE == 0)
            .ok_or(Error::NoEntry)?;
        let was_half_open = c.is_half_open();
        let was_active = c.is_active();
        match c.proto {
            Proto::Tcp => {
                let table = if c.flags & flags::NO_OUTPUT != 0 {
                    if dir == Dir::Out {
                        // A reply reached us after all: track both directions now.
                        c.flags &= !flags::NO_OUTPUT;
                        StateTable::Output
                    } else {
                        StateTable::InputOnly
                    }
                } else {
                    match dir {
                        Dir::In => StateTable::Input,
                        Dir::Out => StateTable::Output,
                    }
                };
                c.state = next_state(table, c.state, tcp_flags);
            }
            Proto::Udp => {
                c.flags |= if c.flags & flags::UDP_SEEN != 0 {
                    flags::UDP_CONFIRMED
                } else {
                    flags::UDP_SEEN
                };
            }
        }
        let state = c.state;
        if was_active != c.is_active() {
            let slot = &mut self.dests[c.dest_id as usize];
            if slot.generation == c.dest_gen {
                let n = &mut slot.counts;
                if was_active {
                    n.active -= 1;
                    n.inactive += 1;
                } else {
                    n.inactive -= 1;
                    n.active += 1;
                }
            }
        }
        let is_half_open = c.is_half_open();
        if was_half_open != is_half_open {
            if is_half_open {
                // Back to half-open (e.g. a new SYN after FIN): youngest again.
                self.half_open.push_back(HALF_OPEN, node);
            } else {
                self.half_open.unlink(node);
            }
        }
        self.set_deadline(node, now + self.timeouts.get(state));
        Ok(state)
    }

    /// Move armed entry `node`'s deadline to `deadline`: a later one is only
    /// stored, an earlier one re-arms the wheel (see `wheel`).
    #[inline]
    pub(crate) fn set_deadline(&mut self, node: u32, deadline: u64) {
        let c = &mut self.entries[node as usize];
        let old = std::mem::replace(&mut c.deadline, deadline);
        if deadline < old {
            self.rearm(node, deadline);
        }
    }

    #[inline]
    fn rearm(&mut self, node: u32, deadline: u64) {
        self.wheel.cancel(node);
        self.wheel.arm(node, deadline);
    }

    /// Remove connection `id` now (control path, or a caller that knows better).
    pub fn remove(&mut self, id: ConnId, now: u64) -> Result<(), Error> {
        let c = self.entries.get(id.0 as usize).ok_or(Error::NoEntry)?;
        if c.is_template() {
            return Err(Error::NoEntry);
        }
        self.remove_node(id.0, now);
        self.stats.removed += 1;
        Ok(())
    }

    /// Expire connection `id` now because a new connection arrived on its key: a SYN from
    /// the same client address and port while the entry is closing, or while its real server
    /// is quiesced or gone (IPVS `conn_reuse_mode`, `expire_nodest_conn`). Its template, if
    /// any, is released and stays, so a persistent client keeps its server; the caller then
    /// schedules the packet as a new connection. Allocates nothing.
    pub fn expire_reused(&mut self, id: ConnId, now: u64) -> Result<(), Error> {
        let c = self.entries.get(id.0 as usize).ok_or(Error::NoEntry)?;
        if c.is_template() {
            return Err(Error::NoEntry);
        }
        self.remove_node(id.0, now);
        self.stats.reused += 1;
        Ok(())
    }

    /// Remove every entry (`ipvsadm -C`; control path). Counters go to zero.
    pub fn clear(&mut self, now: u64) {
        // Connections first, so that templates are free when their turn comes.
        for pass_templates in [false, true] {
            for slot in 0..self.cfg.capacity {
                let is_tpl = match self.entries.get(slot) {
                    Some(c) => c.is_template(),
                    None => continue,
                };
                if is_tpl == pass_templates {
                    self.remove_node(node_of(slot), now);
                    self.stats.removed += 1;
                }
            }
        }
    }

    /// Take entry `node` out of every structure and the counters. A connection's
    /// template is released (see `release_template`).
    pub(crate) fn remove_node(&mut self, node: u32, now: u64) -> Conn {
        let c = self.entries.remove(node as usize);
        let hash = hash_client(self.cfg.hash_seed, c.proto, &c.client.addr, c.client.port);
        self.index.remove(node, hash);
        self.wheel.cancel(node);
        self.half_open.unlink(node);
        if Table::alive(&self.dests, &c) {
            account(&mut self.dests, &c, false);
        } else {
            self.dead_pending -= 1;
        }
        if let Some(t) = c.template_slot() {
            self.release_template(t, now);
        }
        c
    }

    /// Bytes allocated for `capacity` entries, the index, the wheel and the lists.
    pub fn footprint(&self) -> crate::inspect::Footprint {
        crate::inspect::Footprint::of(self)
    }

    /// The earliest time `expire` may have work, for the event loop's poll timeout:
    /// a slot start that may precede the first real deadline, or 0 ("now") while a
    /// deleted destination's entries remain to be swept. `None`: the table is empty.
    pub fn next_wakeup(&mut self) -> Option<u64> {
        if self.dead_pending > 0 {
            return Some(0);
        }
        self.wheel.next_wakeup()
    }
}
