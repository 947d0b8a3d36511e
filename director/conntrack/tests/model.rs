//! Random sequences of inserts, packets, clock advances, removals, template use
//! and server deletions, checked after every step against a plain `HashMap` model:
//! the same entries with the same states and deadlines, lookups agree, and every
//! destination's active/inactive/persistent counts equal a recount.

mod common;

use std::collections::HashMap;

use common::*;
use lvs_conntrack::*;
use proptest::prelude::*;

const DESTS: u32 = 4;
const TPL_SECS: u32 = 30;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        udp: bool,
        host: u8,
        port: u16,
        dest: u32,
        dr: bool,
        persist: bool,
    },
    Packet {
        pick: usize,
        out: bool,
        flags: u8,
    },
    Advance(u64),
    Remove(usize),
    ExpireDest(u32),
    SetTimeouts(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0..6u8, 0..6u16, 0..DESTS, any::<bool>(), any::<bool>()).prop_map(
            |(udp, host, port, dest, dr, persist)| Op::Insert { udp, host, port, dest, dr, persist }
        ),
        6 => (any::<usize>(), any::<bool>(), prop::sample::select(vec![0x02u8, 0x12, 0x10, 0x11, 0x01, 0x04, 0x14, 0x00]))
            .prop_map(|(pick, out, flags)| Op::Packet { pick, out, flags }),
        3 => prop_oneof![0..3_000u64, 0..200_000u64, 0..1_000_000u64].prop_map(Op::Advance),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (0..DESTS).prop_map(Op::ExpireDest),
        1 => prop_oneof![Just(0u32), 1..2000u32].prop_map(Op::SetTimeouts),
    ]
}

type CKey = (Proto, Endpoint);
type TKey = (Proto, Addr);

#[derive(Clone, Debug)]
struct MConn {
    dest: u32,
    forward: Forward,
    state: State,
    no_output: bool,
    deadline: u64,
    template: Option<TKey>,
}

#[derive(Clone, Debug)]
struct MTpl {
    dest: u32,
    deadline: u64,
    n_control: u32,
}

#[derive(Default)]
struct Model {
    conns: HashMap<CKey, MConn>,
    tpls: HashMap<TKey, MTpl>,
}

impl Model {
    fn release(&mut self, key: Option<TKey>, now: u64) {
        if let Some(tk) = key {
            let t = self
                .tpls
                .get_mut(&tk)
                .expect("template of a live connection");
            t.n_control -= 1;
            if t.n_control == 0 {
                t.deadline = t.deadline.max(now + u64::from(TPL_SECS) * SEC);
            }
        }
    }

    fn expire(&mut self, now: u64) {
        let due: Vec<CKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            let c = self.conns.remove(&k).unwrap();
            self.release(c.template, now);
        }
        self.tpls.retain(|_, t| {
            if t.deadline > now {
                true
            } else if t.n_control > 0 {
                t.deadline = now + u64::from(TPL_SECS) * SEC;
                true
            } else {
                false
            }
        });
    }

    fn counts(&self, dest: u32) -> DestCounts {
        let mut n = DestCounts::default();
        for c in self.conns.values().filter(|c| c.dest == dest) {
            if c.state.is_active() {
                n.active += 1;
            } else {
                n.inactive += 1;
            }
        }
        n.persistent =
            u32::try_from(self.tpls.values().filter(|t| t.dest == dest).count()).unwrap();
        n
    }
}

fn mask() -> Addr {
    // /31: hosts pair up under one template.
    Addr::prefix_mask(true, 31)
}

fn check(t: &mut Table, m: &Model, now: u64) -> Result<(), TestCaseError> {
    let mut rows = t.list(now);
    let mut want = Vec::new();
    for ((proto, client), c) in &m.conns {
        want.push((false, *proto, *client, c.dest, c.state, c.deadline - now));
    }
    for ((proto, addr), tp) in &m.tpls {
        want.push((
            true,
            *proto,
            Endpoint::new(*addr, 0),
            tp.dest,
            State::None,
            tp.deadline - now,
        ));
    }
    let mut got: Vec<_> = rows
        .drain(..)
        .map(|r| {
            (
                r.template,
                r.proto,
                r.client,
                r.dest_id,
                r.state,
                r.expires_ms,
            )
        })
        .collect();
    got.sort();
    want.sort();
    prop_assert_eq!(got, want);
    for d in 0..DESTS {
        prop_assert_eq!(t.dest_counts(d), m.counts(d), "dest {}", d);
        prop_assert_eq!(t.dest_counts(d), recount(t, d), "dest {} recount", d);
    }
    for ((proto, client), c) in &m.conns {
        let id = t.lookup_in(&FlowKey::new(*proto, *client, VIP));
        prop_assert!(id.is_some());
        let dest = t.get(id.unwrap()).unwrap().dest();
        prop_assert_eq!(t.lookup_out(&FlowKey::new(*proto, dest, *client)), id);
        prop_assert_eq!(c.forward, t.get(id.unwrap()).unwrap().forward());
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut cfg = Config::with_capacity(4096);
    cfg.dest_slots = usize::try_from(DESTS).unwrap();
    cfg.sweep_batch = 7; // small, so sweeps span calls
    let mut t = Table::new(cfg, 0).unwrap();
    let mut m = Model::default();
    let mut now = 0u64;
    for op in ops {
        match op {
            Op::Insert {
                udp,
                host,
                port,
                dest,
                dr,
                persist,
            } => {
                let proto = if udp { Proto::Udp } else { Proto::Tcp };
                let c = client(host, port);
                let forward = if dr {
                    Forward::DirectRoute
                } else {
                    Forward::Nat
                };
                if m.conns.contains_key(&(proto, c)) {
                    let r = t.insert(&new_conn(proto, c, dest, forward), None, now);
                    prop_assert_eq!(r, Err(Error::Exists));
                    continue;
                }
                let mut dest = dest;
                let mut tpl = None;
                let mut tkey = None;
                if persist {
                    let key = TemplateKey::new(proto, c.addr, &mask(), VIP);
                    let mk = (proto, key.client);
                    match t.lookup_template(&key) {
                        Some(hit) => {
                            let mt = m.tpls.get_mut(&mk);
                            prop_assert!(mt.is_some(), "table has a template the model lacks");
                            prop_assert_eq!(hit.dest_id, mt.unwrap().dest);
                            dest = hit.dest_id;
                            tpl = Some(hit.id);
                        }
                        None => {
                            prop_assert!(!m.tpls.contains_key(&mk));
                            let new = NewTemplate {
                                key,
                                dest: rs(u8::try_from(dest).unwrap() + 1),
                                forward,
                                service: 7,
                                dest_id: dest,
                                timeout_secs: TPL_SECS,
                            };
                            tpl = Some(t.insert_template(&new, now).unwrap());
                            m.tpls.insert(
                                mk,
                                MTpl {
                                    dest,
                                    deadline: now,
                                    n_control: 0,
                                },
                            );
                        }
                    }
                    let mt = m.tpls.get_mut(&mk).unwrap();
                    mt.n_control += 1;
                    mt.deadline = mt.deadline.max(now + u64::from(TPL_SECS) * SEC);
                    tkey = Some(mk);
                }
                t.insert(&new_conn(proto, c, dest, forward), tpl, now)
                    .unwrap();
                let state = if udp { State::Udp } else { State::None };
                m.conns.insert(
                    (proto, c),
                    MConn {
                        dest,
                        forward,
                        state,
                        no_output: dr,
                        deadline: now + t.timeouts().get(state),
                        template: tkey,
                    },
                );
            }
            Op::Packet { pick, out, flags } => {
                if m.conns.is_empty() {
                    continue;
                }
                let mut keys: Vec<CKey> = m.conns.keys().copied().collect();
                keys.sort();
                let key = keys[pick % keys.len()];
                let id = t.lookup_in(&FlowKey::new(key.0, key.1, VIP)).unwrap();
                let dir = if out { Dir::Out } else { Dir::In };
                let got = t.on_packet(id, dir, TcpFlags(flags), now).unwrap();
                let c = m.conns.get_mut(&key).unwrap();
                if key.0 == Proto::Tcp {
                    let table = match (c.no_output, out) {
                        (true, true) => {
                            c.no_output = false;
                            StateTable::Output
                        }
                        (true, false) => StateTable::InputOnly,
                        (false, true) => StateTable::Output,
                        (false, false) => StateTable::Input,
                    };
                    c.state = next_state(table, c.state, TcpFlags(flags));
                }
                prop_assert_eq!(got, c.state);
                c.deadline = now + t.timeouts().get(c.state);
            }
            Op::Advance(ms) => {
                now += ms;
                expire_all(&mut t, now);
                m.expire(now);
            }
            Op::Remove(pick) => {
                if m.conns.is_empty() {
                    continue;
                }
                let mut keys: Vec<CKey> = m.conns.keys().copied().collect();
                keys.sort();
                let key = keys[pick % keys.len()];
                let id = t.lookup_in(&FlowKey::new(key.0, key.1, VIP)).unwrap();
                t.remove(id, now).unwrap();
                let c = m.conns.remove(&key).unwrap();
                m.release(c.template, now);
            }
            Op::ExpireDest(d) => {
                let had = t.expire_dest(d).unwrap();
                prop_assert_eq!(had, m.counts(d));
                m.conns.retain(|_, c| c.dest != d);
                m.tpls.retain(|_, tp| tp.dest != d);
            }
            Op::SetTimeouts(secs) => t.set_timeouts(secs, secs / 2, secs),
        }
        check(&mut t, &m, now)?;
    }
    // Whatever happened, everything expires eventually and the sweep finishes.
    now += 10_000 * SEC;
    expire_all(&mut t, now);
    expire_all(&mut t, now + 2_000_000 * SEC);
    prop_assert!(t.is_empty(), "left: {:?}", t.list(now));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn table_matches_model(ops in prop::collection::vec(op(), 1..150)) {
        run(ops)?;
    }
}

/// Under a tiny table with floods of inserts, the counters still equal a recount
/// and established connections are never dropped.
#[derive(Clone, Debug)]
enum FloodOp {
    Syn(u16),
    Handshake(usize),
    Udp(u16),
    Advance(u64),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn limits_keep_counts_exact(ops in prop::collection::vec(prop_oneof![
        5 => (0..400u16).prop_map(FloodOp::Syn),
        3 => any::<usize>().prop_map(FloodOp::Handshake),
        2 => (0..400u16).prop_map(FloodOp::Udp),
        1 => (0..2_000u64).prop_map(FloodOp::Advance),
    ], 1..400)) {
        let mut cfg = Config::with_capacity(32);
        cfg.drop_threshold = 24;
        cfg.dest_slots = 2;
        let mut t = Table::new(cfg, 0).unwrap();
        let mut now = 0;
        let mut est: Vec<ConnId> = Vec::new();
        let mut keys: Vec<Endpoint> = Vec::new();
        for op in ops {
            match op {
                FloodOp::Syn(p) | FloodOp::Udp(p) => {
                    let udp = matches!(op, FloodOp::Udp(_));
                    let proto = if udp { Proto::Udp } else { Proto::Tcp };
                    let c = client(1, p + 1);
                    match t.insert(&new_conn(proto, c, u32::from(p % 2), Forward::Nat), None, now) {
                        Ok(id) => {
                            t.on_packet(id, Dir::In, TcpFlags::SYN, now).unwrap();
                            if !udp { keys.push(c); }
                        }
                        Err(Error::TableFull) => prop_assert!(t.len() == 32),
                        Err(Error::Exists) => {}
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                FloodOp::Handshake(i) => {
                    if keys.is_empty() { continue; }
                    let c = keys[i % keys.len()];
                    if let Some(id) = t.lookup_in(&FlowKey::new(Proto::Tcp, c, VIP)) {
                        t.on_packet(id, Dir::Out, TcpFlags::SYN_ACK, now).unwrap();
                        if t.on_packet(id, Dir::In, TcpFlags::ACK, now).unwrap() == State::Established
                            && !est.contains(&id) {
                            est.push(id);
                        }
                    }
                }
                FloodOp::Advance(ms) => {
                    now += ms;
                    expire_all(&mut t, now);
                }
            }
            prop_assert!(t.len() <= 32);
            for d in 0..2 {
                prop_assert_eq!(t.dest_counts(d), recount(&t, d));
            }
            // No established connection has been dropped (none can time out: 400
            // steps of at most 2 s stay below 900 s).
            for id in &est {
                prop_assert_eq!(t.get(*id).map(Conn::state), Some(State::Established));
            }
        }
    }
}
