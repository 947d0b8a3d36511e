//! Persistence templates (`ipvsadm -p timeout -M netmask`).
//!
//! A template is an entry keyed by (protocol, masked client, port 0, VIP, vport or
//! 0) that remembers which real server a client network was sent to. Connections
//! scheduled through it hold a count on it, as IPVS's `n_control` does:
//!
//! - each connection bound to it restarts its timer (`timeout` from that use);
//! - when its timer fires while it still controls connections it is kept for
//!   another `timeout` (IPVS re-arms for 60 s; we use the service's timeout);
//! - when its last connection goes, its timer restarts, so the client keeps its
//!   server for `timeout` after its last connection ends.
//!
//! Templates show in listings in state NONE and count toward the destination's
//! persistent connections.

use crate::addr::Endpoint;
use crate::entry::{Conn, Forward, flags};
use crate::error::Error;
use crate::key::{TemplateKey, hash_client};
use crate::linked_lists::NIL;
use crate::table::Table;
use crate::tcp_state::State;

/// A persistence template in the table; valid as long as a [`crate::ConnId`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateId(pub(crate) u32);

/// What a template lookup found: where the client network goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateHit {
    /// The template, to pass to [`Table::insert`].
    pub id: TemplateId,
    /// The real server's address and port.
    pub dest: Endpoint,
    /// The real server's id.
    pub dest_id: u32,
}

/// A template to create after the scheduler picked a server for a new client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewTemplate {
    /// The template key (client already masked).
    pub key: TemplateKey,
    /// The real server chosen.
    pub dest: Endpoint,
    /// Its forwarding method.
    pub forward: Forward,
    /// The caller's id of the virtual service.
    pub service: u32,
    /// The caller's id of the real server.
    pub dest_id: u32,
    /// The persistence timeout in seconds (`-p`), at least 1.
    pub timeout_secs: u32,
}

impl Table {
    /// The live template for `key`, if the client network has one.
    pub fn lookup_template(&mut self, key: &TemplateKey) -> Option<TemplateHit> {
        let found = self.find_template(key);
        match found {
            Some(n) => {
                self.stats.hits += 1;
                let c = &self.entries[n as usize];
                Some(TemplateHit {
                    id: TemplateId(n),
                    dest: c.dest,
                    dest_id: c.dest_id,
                })
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    pub(crate) fn find_template(&self, key: &TemplateKey) -> Option<u32> {
        let hash = hash_client(self.cfg.hash_seed, key.proto, &key.client, 0);
        let (entries, dests) = (&self.entries, &self.dests);
        self.index.find(hash, |n| {
            entries.get(n as usize).is_some_and(|c| {
                c.flags & (flags::TEMPLATE | flags::RETIRED) == flags::TEMPLATE
                    && c.proto == key.proto
                    && c.client.addr == key.client
                    && c.client.port == 0
                    && c.virt == key.virt
                    && Table::alive(dests, c)
            })
        })
    }

    /// Create a template (after a template miss and a scheduling decision).
    /// Bind connections to it by passing its id to [`Table::insert`].
    pub fn insert_template(&mut self, new: &NewTemplate, now: u64) -> Result<TemplateId, Error> {
        let generation = self.dest_generation(new.dest_id)?;
        if self.find_template(&new.key).is_some() {
            return Err(Error::Exists);
        }
        self.make_room(now)?;
        let timeout = new.timeout_secs.max(1);
        let conn = Conn {
            client: Endpoint::new(new.key.client, 0),
            virt: new.key.virt,
            dest: new.dest,
            proto: new.key.proto,
            fwd: new.forward,
            state: State::None,
            flags: flags::TEMPLATE,
            dest_gen: generation,
            service: new.service,
            dest_id: new.dest_id,
            deadline: 0,
            word_a: timeout,
            word_b: 0,
        };
        let hash = hash_client(self.cfg.hash_seed, new.key.proto, &new.key.client, 0);
        let deadline = now + u64::from(timeout) * 1000;
        let node = self.insert_entry(conn, hash, deadline);
        self.stats.templates += 1;
        Ok(TemplateId(node))
    }

    /// The entry of template `id`.
    pub fn get_template(&self, id: TemplateId) -> Option<&Conn> {
        self.entries.get(id.0 as usize).filter(|c| c.is_template())
    }

    /// How many connections template `id` controls.
    pub fn template_controls(&self, id: TemplateId) -> Option<u32> {
        self.get_template(id).map(|c| c.word_b)
    }

    /// Stop template `id` from matching new lookups (for example when its server
    /// was quiesced and IPVS's `expire_quiescent_template` behaviour is wanted).
    /// It stays, unlisted for lookups, until its connections end and it times out.
    pub fn retire_template(&mut self, id: TemplateId) -> Result<(), Error> {
        let c = self
            .entries
            .get_mut(id.0 as usize)
            .filter(|c| c.is_template())
            .ok_or(Error::NoEntry)?;
        c.flags |= flags::RETIRED;
        Ok(())
    }

    /// Remove template `id` now; refused while it controls connections.
    pub fn remove_template(&mut self, id: TemplateId, now: u64) -> Result<(), Error> {
        let n = self.template_controls(id).ok_or(Error::NoEntry)?;
        if n > 0 {
            return Err(Error::TemplateInUse(n));
        }
        self.remove_node(id.0, now);
        self.stats.removed += 1;
        Ok(())
    }

    /// The template in slot `node` if it is live (its server not deleted).
    pub(crate) fn live_template(&self, node: u32) -> Option<&Conn> {
        self.entries
            .get(node as usize)
            .filter(|c| c.is_template() && Table::alive(&self.dests, c))
    }

    /// A connection was bound to template `node`: one more controlled connection,
    /// and the template's timer restarts from this use.
    pub(crate) fn bind_template(&mut self, node: u32, now: u64) {
        let t = &mut self.entries[node as usize];
        t.word_b += 1;
        let deadline = (now + t.persist_ms()).max(t.deadline);
        self.set_deadline(node, deadline);
    }

    /// A connection of template `node` went away.
    pub(crate) fn release_template(&mut self, node: u32, now: u64) {
        debug_assert_ne!(node, NIL);
        let alive = Table::alive(&self.dests, &self.entries[node as usize]);
        let t = &mut self.entries[node as usize];
        debug_assert!(t.word_b > 0);
        t.word_b = t.word_b.saturating_sub(1);
        if t.word_b > 0 {
            return;
        }
        let deadline = if alive {
            (now + t.persist_ms()).max(t.deadline)
        } else {
            // Its server is gone and nothing depends on it any more: let the
            // next `expire` call take it (and report it).
            now
        };
        self.set_deadline(node, deadline);
    }
}
