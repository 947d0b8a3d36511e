//! Connection-state sync: an entry as the active director exports it, and the standby's
//! import of it into its own table.
//!
//! The exported form names everything by address (service and real-server ids are each
//! director's own); the importer supplies its ids. Importing is an upsert: a connection or
//! template already there takes the new state, real server and deadline, so a refresh or a
//! bulk resync can be applied any number of times.

use crate::addr::{Endpoint, Proto};
use crate::entry::{Conn, Forward, flags};
use crate::error::Error;
use crate::key::{FlowKey, TemplateKey, hash_client};
use crate::linked_lists::NIL;
use crate::table::{ConnId, Table};
use crate::tcp_state::State;

/// The flags that travel with an entry (the rest are local bookkeeping).
const SYNCED_FLAGS: u8 =
    flags::TEMPLATE | flags::NO_OUTPUT | flags::UDP_SEEN | flags::UDP_CONFIRMED;

/// One entry, connection or persistence template, as sync carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncEntry {
    /// TCP or UDP.
    pub proto: Proto,
    /// The client (templates: the masked client, port 0).
    pub client: Endpoint,
    /// The virtual service address and port (templates: port 0 for an all-ports service).
    pub virt: Endpoint,
    /// The real server.
    pub dest: Endpoint,
    /// The forwarding method.
    pub forward: Forward,
    /// The state.
    pub state: State,
    /// The entry's flags that travel (template, no reply seen yet, UDP progress).
    pub flags: u8,
    /// Milliseconds left before the entry expires at the sender.
    pub timeout_ms: u32,
    /// Templates: the persistence timeout in seconds. Connections: 0.
    pub persist_secs: u32,
}

impl SyncEntry {
    /// Whether this is a persistence template.
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The flag byte for a template.
    pub const TEMPLATE_FLAG: u8 = flags::TEMPLATE;

    /// The flags a receiver keeps from the wire (unknown bits are dropped).
    pub fn clean_flags(raw: u8) -> u8 {
        raw & SYNCED_FLAGS
    }
}

fn entry_of(c: &Conn, now: u64) -> SyncEntry {
    let mut left = c.deadline.saturating_sub(now);
    if c.is_template() && c.word_b > 0 {
        // It lives as long as its connections here; the standby's copy controls none, so
        // give it at least a whole period (it is sent again with its connections).
        left = left.max(c.persist_ms());
    }
    SyncEntry {
        proto: c.proto,
        client: c.client,
        virt: c.virt,
        dest: c.dest,
        forward: c.fwd,
        state: c.state,
        flags: c.flags & SYNCED_FLAGS,
        timeout_ms: u32::try_from(left).unwrap_or(u32::MAX),
        persist_secs: if c.is_template() { c.word_a } else { 0 },
    }
}

impl Table {
    /// Entry `id` (connection) as sync sends it. Allocates nothing.
    pub fn sync_export(&self, id: ConnId, now: u64) -> Option<SyncEntry> {
        self.entries.get(id.0 as usize).map(|c| entry_of(c, now))
    }

    /// Template `id` as sync sends it.
    pub fn sync_export_template(
        &self,
        id: crate::persist::TemplateId,
        now: u64,
    ) -> Option<SyncEntry> {
        self.get_template(id).map(|c| entry_of(c, now))
    }

    /// The persistence template connection `id` is bound to, if any.
    pub fn template_of(&self, id: ConnId) -> Option<crate::persist::TemplateId> {
        self.entries
            .get(id.0 as usize)
            .and_then(Conn::template_slot)
            .map(crate::persist::TemplateId)
    }

    /// Every live entry as sync sends it (bulk resync; control path, allocates).
    pub fn sync_dump(&self, now: u64) -> Vec<SyncEntry> {
        self.entries
            .iter()
            .filter(|(_, c)| Table::alive(&self.dests, c))
            .map(|(_, c)| entry_of(c, now))
            .collect()
    }

    /// Insert or update an entry received from the active director, with this table's
    /// `service` and `dest_id` for it. The deadline becomes `now` plus the time the sender
    /// had left. Allocates nothing.
    pub fn sync_import(
        &mut self,
        e: &SyncEntry,
        service: u32,
        dest_id: u32,
        now: u64,
    ) -> Result<(), Error> {
        let generation = self.dest_generation(dest_id)?;
        let template = e.is_template();
        let existing = if template {
            let key = TemplateKey {
                proto: e.proto,
                client: e.client.addr,
                virt: e.virt,
            };
            self.find_template(&key)
        } else {
            let hash = hash_client(self.cfg.hash_seed, e.proto, &e.client.addr, e.client.port);
            self.find_in(hash, &FlowKey::new(e.proto, e.client, e.virt))
        };
        let mut controls = 0;
        let mut bound = NIL;
        if let Some(node) = existing {
            let old = &self.entries[node as usize];
            if template {
                controls = old.word_b;
            } else {
                bound = old.word_a;
            }
            // Connections bound to a local template keep it; a synced template keeps its
            // count of local connections. Replace the rest by removing and re-inserting,
            // so counters, lists and timers stay consistent through the usual paths.
            let gone = self.entries.remove(node as usize);
            let hash = hash_client(
                self.cfg.hash_seed,
                gone.proto,
                &gone.client.addr,
                gone.client.port,
            );
            self.index.remove(node, hash);
            self.wheel.cancel(node);
            self.half_open.unlink(node);
            if Table::alive(&self.dests, &gone) {
                crate::table::account(&mut self.dests, &gone, false);
            } else {
                self.dead_pending -= 1;
            }
        } else {
            self.make_room(now)?;
        }
        let state = if e.proto == Proto::Udp && !template {
            State::Udp
        } else if template {
            State::None
        } else {
            e.state
        };
        let conn = Conn {
            client: e.client,
            virt: e.virt,
            dest: e.dest,
            proto: e.proto,
            fwd: e.forward,
            state,
            flags: e.flags & SYNCED_FLAGS,
            dest_gen: generation,
            service,
            dest_id,
            deadline: 0,
            word_a: if template {
                e.persist_secs.max(1)
            } else {
                bound
            },
            word_b: controls,
        };
        let hash = hash_client(self.cfg.hash_seed, e.proto, &e.client.addr, e.client.port);
        let deadline = now + u64::from(e.timeout_ms.max(1));
        self.insert_entry(conn, hash, deadline);
        self.stats.synced += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Dir, NewConn, NewTemplate, TcpFlags};

    fn conn() -> NewConn {
        NewConn {
            proto: Proto::Tcp,
            client: Endpoint::v4([192, 0, 2, 7], 40_000),
            virt: Endpoint::v4([198, 51, 100, 1], 80),
            dest: Endpoint::v4([10, 0, 0, 2], 8080),
            forward: Forward::Nat,
            service: 1,
            dest_id: 0,
        }
    }

    #[test]
    fn an_exported_connection_imports_with_its_state_and_time_left() {
        let mut a = Table::new(Config::with_capacity(1024), 0).unwrap();
        let id = a.insert(&conn(), None, 1000).unwrap();
        a.on_packet(id, Dir::In, TcpFlags::SYN, 1000).unwrap();
        a.on_packet(id, Dir::Out, TcpFlags::SYN_ACK, 1001).unwrap();
        a.on_packet(id, Dir::In, TcpFlags::ACK, 1002).unwrap();
        let e = a.sync_export(id, 2002).unwrap();
        assert_eq!(e.state, State::Established);
        assert_eq!(e.timeout_ms, 899_000);

        let mut b = Table::new(Config::with_capacity(1024), 0).unwrap();
        b.reserve_dests(4);
        b.sync_import(&e, 5, 3, 50).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.dest_counts(3).active, 1);
        let key = FlowKey::new(Proto::Tcp, e.client, e.virt);
        let got = b.lookup_in(&key).unwrap();
        let c = b.get(got).unwrap();
        assert_eq!((c.service(), c.dest_id(), c.dest()), (5, 3, e.dest));
        // The NAT reply finds it too.
        assert!(
            b.lookup_out(&FlowKey::new(Proto::Tcp, e.dest, e.client))
                .is_some()
        );
        assert_eq!(b.list(50)[0].expires_ms, 899_000);

        // An update (the connection closes): same entry, new state, counters moved.
        let closing = SyncEntry {
            state: State::Close,
            timeout_ms: 10_000,
            ..e
        };
        b.sync_import(&closing, 5, 3, 60).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.dest_counts(3).active, 0);
        assert_eq!(b.dest_counts(3).inactive, 1);
        // It expires on the standby as on the active.
        b.expire(60 + 10_001, |_| {});
        assert!(b.is_empty());
    }

    #[test]
    fn templates_import_and_update_in_place() {
        let mut a = Table::new(Config::with_capacity(1024), 0).unwrap();
        let t = a
            .insert_template(
                &NewTemplate {
                    key: TemplateKey {
                        proto: Proto::Tcp,
                        client: crate::Addr::v4([192, 0, 2, 0]),
                        virt: Endpoint::v4([198, 51, 100, 1], 80),
                    },
                    dest: Endpoint::v4([10, 0, 0, 2], 80),
                    forward: Forward::DirectRoute,
                    service: 1,
                    dest_id: 0,
                    timeout_secs: 300,
                },
                0,
            )
            .unwrap();
        let e = a.sync_export_template(t, 0).unwrap();
        assert!(e.is_template());
        assert_eq!(e.persist_secs, 300);
        let mut b = Table::new(Config::with_capacity(1024), 0).unwrap();
        b.sync_import(&e, 1, 0, 0).unwrap();
        b.sync_import(&e, 1, 0, 10).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.dest_counts(0).persistent, 1);
        let hit = b
            .lookup_template(&TemplateKey {
                proto: Proto::Tcp,
                client: crate::Addr::v4([192, 0, 2, 0]),
                virt: Endpoint::v4([198, 51, 100, 1], 80),
            })
            .unwrap();
        assert_eq!(hit.dest, Endpoint::v4([10, 0, 0, 2], 80));
    }

    /// The active director reschedules a SYN that reused a closed connection's port
    /// (`expire_reused`, then a new entry to another server): the standby's upsert of the new
    /// entry replaces its copy of the old one, counters and all.
    #[test]
    fn a_reused_connection_replaces_the_old_entry_on_the_standby() {
        let mut a = Table::new(Config::with_capacity(1024), 0).unwrap();
        a.reserve_dests(8);
        let id = a.insert(&conn(), None, 0).unwrap();
        a.on_packet(id, Dir::In, TcpFlags::RST, 0).unwrap();
        let mut b = Table::new(Config::with_capacity(1024), 0).unwrap();
        b.reserve_dests(8);
        b.sync_import(&a.sync_export(id, 0).unwrap(), 1, 3, 0)
            .unwrap();
        assert_eq!(b.dest_counts(3).inactive, 1);

        a.expire_reused(id, 1).unwrap();
        let fresh = NewConn {
            dest: Endpoint::v4([10, 0, 0, 4], 80),
            forward: Forward::DirectRoute,
            dest_id: 4,
            ..conn()
        };
        let id = a.insert(&fresh, None, 1).unwrap();
        a.on_packet(id, Dir::In, TcpFlags::SYN, 1).unwrap();
        b.sync_import(&a.sync_export(id, 1).unwrap(), 1, 4, 1)
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b.dest_counts(3).inactive, 0);
        assert_eq!(b.dest_counts(4).inactive, 1);
        let got = b
            .lookup_in(&FlowKey::new(Proto::Tcp, fresh.client, fresh.virt))
            .unwrap();
        let c = b.get(got).unwrap();
        assert_eq!((c.dest(), c.forward()), (fresh.dest, Forward::DirectRoute));
    }

    #[test]
    fn an_unknown_destination_is_refused() {
        let mut a = Table::new(Config::with_capacity(1024), 0).unwrap();
        let id = a.insert(&conn(), None, 0).unwrap();
        let e = a.sync_export(id, 0).unwrap();
        let mut b = Table::new(Config::with_capacity(1024), 0).unwrap();
        assert_eq!(b.sync_import(&e, 1, 999, 0), Err(Error::UnknownDest(999)));
        assert!(b.is_empty());
    }
}
