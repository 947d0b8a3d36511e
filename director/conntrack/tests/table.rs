//! The table's behaviour on a simulated clock: states, timers, keys, persistence,
//! deleted servers, limits and listings.

mod common;

use common::*;
use lvs_conntrack::*;

#[test]
fn nat_connection_lifecycle_moves_counters_and_timers() {
    let mut t = table(64);
    let c = client(7, 40_000);
    let id = t
        .insert(&new_conn(Proto::Tcp, c, 0, Forward::Nat), None, 0)
        .unwrap();
    assert_eq!(t.get(id).unwrap().state(), State::None);
    assert_eq!(
        t.dest_counts(0),
        DestCounts {
            active: 0,
            inactive: 1,
            persistent: 0
        }
    );

    let steps = [
        (Dir::In, TcpFlags::SYN, State::SynRecv, 60),
        (Dir::Out, TcpFlags::SYN_ACK, State::SynRecv, 60),
        (Dir::In, TcpFlags::ACK, State::Established, 900),
        (Dir::Out, TcpFlags::ACK, State::Established, 900),
        (Dir::In, TcpFlags::FIN_ACK, State::CloseWait, 60),
        (Dir::Out, TcpFlags::FIN_ACK, State::TimeWait, 120),
    ];
    let mut now = 0;
    for (dir, flags, want, secs) in steps {
        now += 5;
        assert_eq!(t.on_packet(id, dir, flags, now), Ok(want));
        let row = t.list(now)[0];
        assert_eq!(row.state, want);
        assert_eq!(row.expires_ms, secs * SEC, "timer after {want}");
        let active = u32::from(want == State::Established);
        assert_eq!(
            t.dest_counts(0),
            DestCounts {
                active,
                inactive: 1 - active,
                persistent: 0
            }
        );
    }
    // TIME_WAIT lasts 120 s to the millisecond.
    assert!(expire_all(&mut t, now + 120 * SEC - 1).is_empty());
    let gone = expire_all(&mut t, now + 120 * SEC);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].reason, ExpireReason::Timeout);
    assert_eq!(gone[0].conn.client, c);
    assert!(t.is_empty());
    assert_eq!(t.dest_counts(0), DestCounts::default());
    assert_eq!(t.stats().expired, 1);
}

#[test]
fn both_keys_find_a_nat_entry() {
    let mut t = table(64);
    let c = client(9, 1234);
    let id = established(&mut t, c, 2, 0);
    let dest = t.get(id).unwrap().dest();
    assert_eq!(t.lookup_in(&FlowKey::new(Proto::Tcp, c, VIP)), Some(id));
    assert_eq!(t.lookup_out(&FlowKey::new(Proto::Tcp, dest, c)), Some(id));
    // Wrong port, protocol or direction: nothing.
    assert_eq!(
        t.lookup_in(&FlowKey::new(Proto::Tcp, client(9, 1235), VIP)),
        None
    );
    assert_eq!(t.lookup_in(&FlowKey::new(Proto::Udp, c, VIP)), None);
    assert_eq!(t.lookup_in(&FlowKey::new(Proto::Tcp, dest, c)), None);
    assert_eq!(t.lookup_out(&FlowKey::new(Proto::Tcp, c, VIP)), None);
    let s = t.stats();
    assert_eq!((s.hits, s.misses), (2, 4));
    assert_eq!(
        t.insert(&new_conn(Proto::Tcp, c, 0, Forward::Nat), None, 0),
        Err(Error::Exists)
    );
}

#[test]
fn direct_routing_uses_the_input_only_table() {
    let mut t = table(64);
    let c = client(3, 5555);
    let id = t
        .insert(&new_conn(Proto::Tcp, c, 1, Forward::DirectRoute), None, 0)
        .unwrap();
    assert_eq!(
        t.on_packet(id, Dir::In, TcpFlags::SYN, 0),
        Ok(State::SynRecv)
    );
    assert_eq!(
        t.on_packet(id, Dir::In, TcpFlags::ACK, 1),
        Ok(State::Established)
    );
    assert_eq!(t.dest_counts(1).active, 1);
    // Only client packets: a client FIN goes to FIN_WAIT (INPUT would say CLOSE_WAIT).
    assert_eq!(
        t.on_packet(id, Dir::In, TcpFlags::FIN_ACK, 2),
        Ok(State::FinWait)
    );
    assert_eq!(
        t.dest_counts(1),
        DestCounts {
            active: 0,
            inactive: 1,
            persistent: 0
        }
    );
}

#[test]
fn half_open_syn_without_reply_expires_after_syn_recv_timeout() {
    let mut t = table(64);
    let id = t
        .insert(
            &new_conn(Proto::Tcp, client(1, 1), 0, Forward::Nat),
            None,
            1_000,
        )
        .unwrap();
    t.on_packet(id, Dir::In, TcpFlags::SYN, 1_000).unwrap();
    // Retransmitted SYNs refresh it.
    t.on_packet(id, Dir::In, TcpFlags::SYN, 4_000).unwrap();
    assert!(expire_all(&mut t, 63_999).is_empty());
    assert_eq!(expire_all(&mut t, 64_000).len(), 1);
}

#[test]
fn traffic_refreshes_and_shorter_states_rearm_earlier() {
    let mut t = table(64);
    let id = established(&mut t, client(1, 2), 0, 0);
    // Data at 500 s pushes expiry to 1400 s.
    t.on_packet(id, Dir::In, TcpFlags::ACK, 500 * SEC).unwrap();
    assert!(expire_all(&mut t, 999 * SEC).is_empty());
    // A RST at 1000 s: CLOSE, 10 s, earlier than the armed 1400 s.
    assert_eq!(
        t.on_packet(id, Dir::In, TcpFlags::RST, 1_000 * SEC),
        Ok(State::Close)
    );
    assert!(expire_all(&mut t, 1_010 * SEC - 1).is_empty());
    assert_eq!(expire_all(&mut t, 1_010 * SEC).len(), 1);
}

/// Every TCP state a connection can reach, armed with its own timeout by the packet that
/// moved it there, expires exactly then: not a millisecond early or late. The packets that
/// lead to each state are found on the table itself (every direction and flag, breadth
/// first; NAT sees both directions, DR the client's only). LAST_ACK, LISTEN and SYNACK are
/// in IPVS's numbering but, as in Linux's default tables, no packet leads to them from a
/// new entry: asserted, so that a change of the tables shows up here.
#[test]
fn timers_expire_exactly_for_every_state() {
    type Path = Vec<(Dir, TcpFlags)>;
    let flags = [TcpFlags::SYN, TcpFlags::FIN, TcpFlags::ACK, TcpFlags::RST];
    // A fresh entry in a fresh table, inserted at 0, then `path` at 1 ms intervals.
    let replay = |fwd: Forward, path: &Path| -> (Table, State, u64) {
        let mut t = table(4);
        let id = t
            .insert(&new_conn(Proto::Tcp, client(2, 1), 0, fwd), None, 0)
            .unwrap();
        let mut state = State::None;
        let mut now = 0;
        for &(dir, f) in path {
            now += 1;
            state = t.on_packet(id, dir, f, now).unwrap();
        }
        (t, state, now)
    };
    let mut paths: std::collections::BTreeMap<State, (Forward, Path)> = Default::default();
    for (fwd, dirs) in [
        (Forward::Nat, &[Dir::In, Dir::Out][..]),
        (Forward::DirectRoute, &[Dir::In][..]),
    ] {
        let mut queue = std::collections::VecDeque::from([Path::new()]);
        let mut seen = std::collections::BTreeSet::from([State::None]);
        paths.entry(State::None).or_insert((fwd, Path::new()));
        while let Some(path) = queue.pop_front() {
            for &dir in dirs {
                for f in flags {
                    let mut next = path.clone();
                    next.push((dir, f));
                    let (_, state, _) = replay(fwd, &next);
                    if seen.insert(state) {
                        paths.entry(state).or_insert((fwd, next.clone()));
                        queue.push_back(next);
                    }
                }
            }
        }
    }
    let unreachable: Vec<State> = State::TCP
        .iter()
        .copied()
        .filter(|s| !paths.contains_key(s))
        .collect();
    assert_eq!(
        unreachable,
        [State::LastAck, State::Listen, State::SynAck],
        "{paths:?}"
    );

    for (state, (fwd, path)) in &paths {
        let (mut t, got, last) = replay(*fwd, path);
        assert_eq!(got, *state);
        let timeout = t.timeouts().get(*state);
        assert_eq!(t.list(last)[0].expires_ms, timeout, "{state} via {path:?}");
        assert!(
            expire_all(&mut t, last + timeout - 1).is_empty(),
            "{state} via {path:?} expired early"
        );
        let gone = expire_all(&mut t, last + timeout);
        assert_eq!(gone.len(), 1, "{state} via {path:?} did not expire on time");
        assert_eq!(gone[0].conn.state, *state);
    }
}

#[test]
fn udp_entries_are_inactive_and_half_open_until_a_second_packet() {
    let mut t = table(64);
    let c = client(4, 53);
    let id = t
        .insert(&new_conn(Proto::Udp, c, 0, Forward::Nat), None, 0)
        .unwrap();
    assert_eq!(t.on_packet(id, Dir::In, TcpFlags::NONE, 0), Ok(State::Udp));
    assert_eq!(t.half_open_len(), 1);
    t.on_packet(id, Dir::Out, TcpFlags::NONE, 10).unwrap();
    assert_eq!(t.half_open_len(), 0);
    assert_eq!(
        t.dest_counts(0),
        DestCounts {
            active: 0,
            inactive: 1,
            persistent: 0
        }
    );
    assert_eq!(t.list(10)[0].state.name(), "UDP");
    assert!(expire_all(&mut t, 300 * SEC + 9).is_empty());
    assert_eq!(expire_all(&mut t, 300 * SEC + 10).len(), 1);
}

#[test]
fn set_timeouts_applies_from_the_next_packet() {
    let mut t = table(64);
    let id = established(&mut t, client(5, 5), 0, 0);
    t.set_timeouts(100, 0, 30);
    assert_eq!(t.timeouts().ipvsadm(), (100, 120, 30));
    // Armed before the change: still 900 s.
    assert_eq!(t.list(0)[0].expires_ms, 900 * SEC);
    t.on_packet(id, Dir::In, TcpFlags::ACK, 10 * SEC).unwrap();
    assert!(expire_all(&mut t, 110 * SEC - 1).is_empty());
    assert_eq!(expire_all(&mut t, 110 * SEC).len(), 1);
}

fn persistent_conn(t: &mut Table, c: Endpoint, mask: &Addr, now: u64, pick: u32) -> (ConnId, u32) {
    persistent_conn_to(
        t,
        c,
        mask,
        VIP,
        now,
        (pick, rs(u8::try_from(pick).unwrap() + 1)),
    )
}

/// A connection of client `c` to persistent service `virt`: its template's server, or
/// `pick` (the scheduler's choice: an id and the server) when it has none.
fn persistent_conn_to(
    t: &mut Table,
    c: Endpoint,
    mask: &Addr,
    virt: Endpoint,
    now: u64,
    pick: (u32, Endpoint),
) -> (ConnId, u32) {
    let tk = TemplateKey::new(Proto::Tcp, c.addr, mask, virt);
    let (dest, dest_id, tpl) = match t.lookup_template(&tk) {
        Some(hit) => (hit.dest, hit.dest_id, hit.id),
        None => {
            let new = NewTemplate {
                key: tk,
                dest: pick.1,
                forward: Forward::Nat,
                service: 7,
                dest_id: pick.0,
                timeout_secs: 300,
            };
            (new.dest, pick.0, t.insert_template(&new, now).unwrap())
        }
    };
    let conn = NewConn {
        proto: Proto::Tcp,
        client: c,
        virt,
        dest,
        forward: Forward::Nat,
        service: 7,
        dest_id,
    };
    (t.insert(&conn, Some(tpl), now).unwrap(), dest_id)
}

#[test]
fn persistence_keeps_a_client_network_on_one_server_until_timeout_after_last_use() {
    let mut t = table(64);
    let m24 = Addr::prefix_mask(true, 24);
    // First client of 192.0.2.0/24 is scheduled to dest 3.
    let (a, d) = persistent_conn(&mut t, client(10, 1000), &m24, 0, 3);
    assert_eq!(d, 3);
    for (flags, dir) in [
        (TcpFlags::SYN, Dir::In),
        (TcpFlags::SYN_ACK, Dir::Out),
        (TcpFlags::ACK, Dir::In),
    ] {
        t.on_packet(a, dir, flags, 0).unwrap();
    }
    // Another client of the same /24 gets dest 3 whatever the scheduler would say.
    let (b, d) = persistent_conn(&mut t, client(200, 2000), &m24, SEC, 5);
    assert_eq!(d, 3);
    // A client of another /24 is scheduled afresh.
    let other = Endpoint::v4([192, 0, 3, 10], 3000);
    let (_, d) = persistent_conn(&mut t, other, &m24, SEC, 5);
    assert_eq!(d, 5);
    assert_eq!(
        t.dest_counts(3),
        DestCounts {
            active: 1,
            inactive: 1,
            persistent: 1
        }
    );
    assert_eq!(t.dest_counts(3), recount(&t, 3));

    // The template shows in the listing: state NONE, masked client, port 0.
    let rows = t.list(SEC);
    let tpl = rows
        .iter()
        .find(|r| r.template && r.dest_id == 3)
        .expect("template listed");
    assert_eq!(tpl.state.name(), "NONE");
    assert_eq!(tpl.client, Endpoint::v4([192, 0, 2, 0], 0));
    assert_eq!(
        tpl.expires_ms,
        300 * SEC,
        "refreshed by the second connection"
    );

    // b and the other client's connection (never answered) die at 1 s + 2 s
    // (NONE). The template outlives its 300 s while a is established (900 s).
    assert_eq!(expire_all(&mut t, 3 * SEC).len(), 2);
    let _ = b;
    let gone = expire_all(&mut t, 400 * SEC);
    assert!(
        gone.iter()
            .all(|e| !(e.conn.template && e.conn.dest_id == 3))
    );
    let tk = TemplateKey::new(Proto::Tcp, client(10, 1).addr, &m24, VIP);
    assert!(t.lookup_template(&tk).is_some());

    // a closes at 500 s (RST: CLOSE, 10 s) and expires at 510 s; the template
    // then lasts 300 s more, to 810 s exactly.
    t.on_packet(a, Dir::In, TcpFlags::RST, 500 * SEC).unwrap();
    assert_eq!(expire_all(&mut t, 510 * SEC).len(), 1);
    assert!(expire_all(&mut t, 810 * SEC - 1).is_empty());
    assert!(t.lookup_template(&tk).is_some());
    let gone = expire_all(&mut t, 810 * SEC);
    assert_eq!(gone.len(), 1);
    assert!(gone[0].conn.template);
    assert!(t.lookup_template(&tk).is_none());
    assert_eq!(t.dest_counts(3), DestCounts::default());
}

#[test]
fn unused_template_expires_timeout_after_creation() {
    let mut t = table(64);
    let tk = TemplateKey::new(
        Proto::Udp,
        client(1, 1).addr,
        &Addr::prefix_mask(true, 32),
        VIP,
    );
    let new = NewTemplate {
        key: tk,
        dest: rs(1),
        forward: Forward::DirectRoute,
        service: 1,
        dest_id: 0,
        timeout_secs: 60,
    };
    let id = t.insert_template(&new, 0).unwrap();
    assert_eq!(t.insert_template(&new, 0), Err(Error::Exists));
    assert_eq!(t.template_controls(id), Some(0));
    assert_eq!(t.dest_counts(0).persistent, 1);
    assert!(expire_all(&mut t, 60 * SEC - 1).is_empty());
    assert_eq!(expire_all(&mut t, 60 * SEC).len(), 1);
    assert_eq!(t.dest_counts(0).persistent, 0);
}

#[test]
fn retired_and_removed_templates() {
    let mut t = table(64);
    let m = Addr::prefix_mask(true, 32);
    let (a, _) = persistent_conn(&mut t, client(1, 1), &m, 0, 0);
    let tk = TemplateKey::new(Proto::Tcp, client(1, 1).addr, &m, VIP);
    let hit = t.lookup_template(&tk).unwrap();
    assert_eq!(t.remove_template(hit.id, 0), Err(Error::TemplateInUse(1)));
    t.retire_template(hit.id).unwrap();
    assert!(t.lookup_template(&tk).is_none());
    t.remove(a, 0).unwrap();
    t.remove_template(hit.id, 0).unwrap();
    assert!(t.is_empty());
    assert_eq!(t.dest_counts(0), DestCounts::default());
}

#[test]
fn deleted_server_entries_stop_matching_at_once_and_are_swept() {
    let mut t = table(256);
    let m = Addr::prefix_mask(true, 24);
    let mut on_1 = Vec::new();
    for port in 1..=20 {
        let (id, d) = persistent_conn(&mut t, client(1, port), &m, 0, 1);
        assert_eq!(d, 1);
        t.on_packet(id, Dir::In, TcpFlags::SYN, 0).unwrap();
        on_1.push(id);
    }
    let keep = established(&mut t, client(50, 1), 2, 0);
    assert_eq!(
        t.dest_counts(1),
        DestCounts {
            active: 0,
            inactive: 20,
            persistent: 1
        }
    );

    let had = t.expire_dest(1).unwrap();
    assert_eq!(
        had,
        DestCounts {
            active: 0,
            inactive: 20,
            persistent: 1
        }
    );
    assert_eq!(t.dest_counts(1), DestCounts::default());
    // The next packet finds nothing; the template no longer steers.
    assert_eq!(
        t.lookup_in(&FlowKey::new(Proto::Tcp, client(1, 1), VIP)),
        None
    );
    let tk = TemplateKey::new(Proto::Tcp, client(1, 1).addr, &m, VIP);
    assert!(t.lookup_template(&tk).is_none());
    // A new connection with the same key goes to another server at once.
    let (again, d) = persistent_conn(&mut t, client(1, 1), &m, 1, 2);
    assert_eq!(d, 2);
    assert_eq!(
        t.lookup_in(&FlowKey::new(Proto::Tcp, client(1, 1), VIP)),
        Some(again)
    );
    assert!(t.list(1).iter().all(|r| r.dest_id != 1));

    // The next expire call sweeps them all (20 connections, then the template).
    let gone = expire_all(&mut t, 2);
    assert_eq!(gone.len(), 21);
    assert!(
        gone.iter()
            .all(|e| e.reason == ExpireReason::DestRemoved && e.conn.dest_id == 1)
    );
    assert_eq!(t.stats().dest_expired, 21);
    assert_eq!(
        t.len(),
        3,
        "the kept connection, the new one and its template"
    );
    assert!(t.get(keep).is_some());
    for d in 0..4 {
        assert_eq!(t.dest_counts(d), recount(&t, d));
    }
    // The id can be reused by a new server: counts start from zero.
    let fresh = established(&mut t, client(60, 1), 1, 3);
    assert_eq!(
        t.dest_counts(1),
        DestCounts {
            active: 1,
            inactive: 0,
            persistent: 0
        }
    );
    let _ = (fresh, on_1);
}

#[test]
fn full_table_refuses_and_never_evicts_established() {
    let mut cfg = Config::with_capacity(100);
    cfg.drop_threshold = 90;
    let mut t = Table::new(cfg, 0).unwrap();
    let ids: Vec<ConnId> = (0..100)
        .map(|p| established(&mut t, client(1, p), 0, 0))
        .collect();
    assert_eq!(
        t.insert(
            &new_conn(Proto::Tcp, client(2, 1), 0, Forward::Nat),
            None,
            0
        ),
        Err(Error::TableFull)
    );
    assert_eq!(t.stats().table_full, 1);
    assert_eq!(t.stats().half_open_dropped, 0);
    for id in ids {
        assert_eq!(t.get(id).unwrap().state(), State::Established);
    }
    assert_eq!(t.dest_counts(0).active, 100);
}

#[test]
fn syn_flood_drops_half_open_entries_first() {
    let mut cfg = Config::with_capacity(1000);
    cfg.drop_threshold = 900;
    let mut t = Table::new(cfg, 0).unwrap();
    let good: Vec<ConnId> = (0..500)
        .map(|p| established(&mut t, client(1, p), 0, 0))
        .collect();
    // 10,000 spoofed SYNs.
    let mut refused = 0;
    for i in 0..10_000u32 {
        let c = Endpoint::v4(
            [203, 0, 113, u8::try_from(i % 250).unwrap()],
            u16::try_from(i / 250 + 1).unwrap(),
        );
        match t.insert(&new_conn(Proto::Tcp, c, 1, Forward::Nat), None, 1) {
            Ok(id) => {
                t.on_packet(id, Dir::In, TcpFlags::SYN, 1).unwrap();
            }
            Err(Error::TableFull) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(t.len() <= 1000);
    }
    assert_eq!(refused, 0, "flood entries make room for each other");
    assert!(t.stats().half_open_dropped > 9_000);
    assert!(t.len() <= 901);
    // Every established connection survived; a legitimate client still gets in.
    for id in &good {
        assert_eq!(t.get(*id).unwrap().state(), State::Established);
    }
    established(&mut t, client(99, 99), 0, 2);
    assert_eq!(t.dest_counts(0).active, 501);
    assert_eq!(t.dest_counts(1), recount(&t, 1));
    // With only established entries left at capacity, new ones are refused.
}

#[test]
fn listing_has_what_ipvsadm_prints() {
    let mut t = table(16);
    let c = client(8, 4321);
    established(&mut t, c, 4, 0);
    let row = t.list(100 * SEC)[0];
    assert_eq!(row.proto.name(), "TCP");
    assert_eq!(row.expires_secs(), 800);
    assert_eq!(row.state.name(), "ESTABLISHED");
    assert_eq!(row.client.to_string(), "192.0.2.8:4321");
    assert_eq!(row.virt.to_string(), "198.51.100.1:80");
    assert_eq!(row.dest.to_string(), "10.0.0.5:8080");
    assert_eq!(row.forward.name(), "Masq");
    assert!(!row.template);
}

#[test]
fn clear_and_errors() {
    let mut t = table(16);
    established(&mut t, client(1, 1), 0, 0);
    persistent_conn(&mut t, client(2, 2), &Addr::prefix_mask(true, 32), 0, 1);
    assert_eq!(t.len(), 3);
    t.clear(0);
    assert!(t.is_empty());
    assert_eq!(t.dest_counts(0), DestCounts::default());
    assert_eq!(t.dest_counts(1), DestCounts::default());
    assert_eq!(
        t.insert(
            &new_conn(Proto::Tcp, client(1, 1), 999, Forward::Nat),
            None,
            0
        ),
        Err(Error::UnknownDest(999))
    );
    t.reserve_dests(1000);
    assert!(
        t.insert(
            &new_conn(Proto::Tcp, client(1, 1), 999, Forward::Nat),
            None,
            0
        )
        .is_ok()
    );
    assert!(Table::new(Config::with_capacity(0), 0).is_err());
    let mut bad = Config::with_capacity(10);
    bad.drop_threshold = 11;
    assert!(matches!(
        Table::new(bad, 0),
        Err(ConfigError::Threshold { .. })
    ));
}

#[test]
fn expire_is_bounded_per_call() {
    let mut cfg = Config::with_capacity(10_000);
    cfg.expire_batch = 100;
    let mut t = Table::new(cfg, 0).unwrap();
    for p in 0..1000 {
        t.insert(
            &new_conn(Proto::Udp, client(1, p), 0, Forward::Nat),
            None,
            0,
        )
        .unwrap();
    }
    let run = t.expire(300 * SEC, |_| {});
    assert_eq!(run.removed, 100);
    assert!(run.more);
    assert_eq!(expire_all(&mut t, 300 * SEC).len(), 900);
}

/// A SYN reusing the address and port of a closed connection (TIME_WAIT here) gets a fresh
/// entry: the old one goes at once, its counters with it, and the new one may name another
/// real server and forwarding method. A persistence template survives its connection's
/// reuse, so the client's next connection still finds it.
#[test]
fn expire_reused_replaces_a_closed_connection_and_keeps_its_template() {
    let mut t = table(64);
    let c = client(7, 40_000);
    let tk = TemplateKey::new(Proto::Tcp, c.addr, &Addr::prefix_mask(true, 24), VIP);
    let tpl = t
        .insert_template(
            &NewTemplate {
                key: tk,
                dest: rs(1),
                forward: Forward::Nat,
                service: 7,
                dest_id: 0,
                timeout_secs: 300,
            },
            0,
        )
        .unwrap();
    let id = t
        .insert(&new_conn(Proto::Tcp, c, 0, Forward::Nat), Some(tpl), 0)
        .unwrap();
    for (dir, flags) in [
        (Dir::In, TcpFlags::SYN),
        (Dir::Out, TcpFlags::SYN_ACK),
        (Dir::In, TcpFlags::ACK),
        (Dir::Out, TcpFlags::FIN_ACK),
        (Dir::In, TcpFlags::FIN_ACK),
    ] {
        t.on_packet(id, dir, flags, 1).unwrap();
    }
    let state = t.get(id).unwrap().state();
    assert!(state.is_closing(), "{state}");
    assert_eq!(t.template_controls(tpl), Some(1));
    assert_eq!(t.dest_counts(0).inactive, 1);

    let key = FlowKey::new(Proto::Tcp, c, VIP);
    assert_eq!(t.lookup_in(&key), Some(id));
    t.expire_reused(id, 2).unwrap();
    assert_eq!(t.lookup_in(&key), None);
    assert_eq!(t.stats().reused, 1);
    assert_eq!(t.dest_counts(0), recount(&t, 0));
    assert_eq!(t.dest_counts(0).inactive, 0);
    // The template stays, controlling nothing now, and steers the next connection.
    let hit = t.lookup_template(&tk).expect("the template survives");
    assert_eq!((hit.id, hit.dest_id), (tpl, 0));
    assert_eq!(t.template_controls(tpl), Some(0));

    // The new connection: same key, now VS/DR to another server.
    let mut fresh = new_conn(Proto::Tcp, c, 1, Forward::DirectRoute);
    fresh.dest = rs(2);
    let id2 = t.insert(&fresh, None, 2).unwrap();
    assert_eq!(t.lookup_in(&key), Some(id2));
    let e = t.get(id2).unwrap();
    assert_eq!((e.dest(), e.forward()), (rs(2), Forward::DirectRoute));
    assert_eq!(
        t.on_packet(id2, Dir::In, TcpFlags::SYN, 2),
        Ok(State::SynRecv)
    );
    assert_eq!(t.dest_counts(1), recount(&t, 1));
}

#[test]
fn closing_states_are_the_ones_a_syn_may_reuse() {
    let closing: Vec<State> = State::TCP.into_iter().filter(|s| s.is_closing()).collect();
    assert_eq!(
        closing,
        [
            State::FinWait,
            State::TimeWait,
            State::Close,
            State::CloseWait,
            State::LastAck
        ]
    );
    assert!(!State::Udp.is_closing());
}

/// 2001:db8:<net>::<host>, port `port`.
fn v6(net: u16, host: u16, port: u16) -> Endpoint {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    o[4..6].copy_from_slice(&net.to_be_bytes());
    o[14..].copy_from_slice(&host.to_be_bytes());
    Endpoint::new(Addr::v6(o), port)
}

/// Timeouts and states are the family's business nowhere: an IPv6 NAT connection goes
/// through the same states with the same timers as an IPv4 one, packet by packet, and
/// expires at the same millisecond; both keys find it.
#[test]
fn an_ipv6_connection_moves_and_expires_exactly_as_an_ipv4_one() {
    let steps = [
        (Dir::In, TcpFlags::SYN),
        (Dir::Out, TcpFlags::SYN_ACK),
        (Dir::In, TcpFlags::ACK),
        (Dir::Out, TcpFlags::ACK),
        (Dir::In, TcpFlags::FIN_ACK),
        (Dir::Out, TcpFlags::FIN_ACK),
    ];
    let run = |client: Endpoint, virt: Endpoint, dest: Endpoint| {
        let mut t = table(64);
        let conn = NewConn {
            proto: Proto::Tcp,
            client,
            virt,
            dest,
            forward: Forward::Nat,
            service: 7,
            dest_id: 0,
        };
        let id = t.insert(&conn, None, 0).unwrap();
        assert_eq!(
            t.lookup_in(&FlowKey::new(Proto::Tcp, client, virt)),
            Some(id)
        );
        assert_eq!(
            t.lookup_out(&FlowKey::new(Proto::Tcp, dest, client)),
            Some(id)
        );
        let mut trace = Vec::new();
        let mut now = 0;
        for (dir, flags) in steps {
            now += 5;
            let state = t.on_packet(id, dir, flags, now).unwrap();
            let row = t.list(now)[0];
            assert_eq!((row.client, row.virt, row.dest), (client, virt, dest));
            trace.push((state, row.expires_ms, t.dest_counts(0)));
        }
        let last = trace.last().unwrap().1;
        assert!(expire_all(&mut t, now + last - 1).is_empty());
        let gone = expire_all(&mut t, now + last);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].reason, ExpireReason::Timeout);
        assert!(t.is_empty());
        trace
    };
    let ipv4 = run(client(7, 40_000), VIP, rs(1));
    let ipv6 = run(v6(0xc, 7, 40_000), v6(0xa, 1, 80), v6(0xb, 1, 8080));
    assert_eq!(ipv6, ipv4);
    assert_eq!(ipv6[2].0, State::Established);
    assert_eq!(
        ipv6[5],
        (
            State::TimeWait,
            120 * SEC,
            DestCounts {
                active: 0,
                inactive: 1,
                persistent: 0
            }
        )
    );
}

/// An IPv6 service persistent with `-M 64`: two clients of one /64 stick to the server the
/// first was given; a client of another /64 is scheduled afresh. The template shows the
/// client's /64 (port 0), and expires like an IPv4 template.
#[test]
fn persistence_with_a_64_mask_keeps_an_ipv6_network_on_one_server() {
    let mut t = table(64);
    let m64 = Addr::prefix_mask(false, 64);
    let vip = v6(0xa, 1, 80);
    let connect = |t: &mut Table, c: Endpoint, now: u64, pick: u32| {
        let server = v6(0xb, u16::try_from(pick).unwrap(), 80);
        persistent_conn_to(t, c, &m64, vip, now, (pick, server)).1
    };
    // 2001:db8:c::7 and 2001:db8:c::ffff:1 share 2001:db8:c::/64.
    assert_eq!(connect(&mut t, v6(0xc, 7, 1000), 0, 3), 3);
    let mut same_net = v6(0xc, 1, 2000);
    same_net.addr.0[8..12].copy_from_slice(&[0, 0, 0xff, 0xff]);
    assert_eq!(
        connect(&mut t, same_net, SEC, 5),
        3,
        "same /64: same server"
    );
    // 2001:db8:d::7 is in another /64.
    assert_eq!(
        connect(&mut t, v6(0xd, 7, 1000), SEC, 5),
        5,
        "another /64: scheduled"
    );
    assert_eq!(t.dest_counts(3).persistent, 1);
    let rows = t.list(SEC);
    let tpl = rows
        .iter()
        .find(|r| r.template && r.dest_id == 3)
        .expect("template listed");
    assert_eq!(tpl.client, v6(0xc, 0, 0));
    assert_eq!(tpl.state.name(), "NONE");
    // The connections (never answered) go 2 s (NONE) after their start, at 3 s the last of
    // each template; the templates last 300 s more, to 303 s exactly.
    assert_eq!(expire_all(&mut t, 3 * SEC).len(), 3);
    assert!(expire_all(&mut t, 303 * SEC - 1).is_empty());
    let gone = expire_all(&mut t, 303 * SEC);
    assert_eq!(gone.len(), 2);
    assert!(gone.iter().all(|e| e.conn.template));
    assert!(t.is_empty());
}

/// Bytes per entry at one million entries, for IPv4 and IPv6 entries alike (the table
/// stores every address in 16 bytes and sizes everything for its capacity up front, so
/// the family changes nothing): at most 128 B (issue 14 asks IPv6 at most 160 B, IPv4 at
/// most 128 B). Printed with `--nocapture`; the benchmark prints the same breakdown.
#[test]
fn bytes_per_entry_at_a_million_entries_for_both_families() {
    const MILLION: usize = 1_000_000;
    let footprint = |family: &str, fill: &dyn Fn(u16) -> Endpoint| {
        let mut cfg = Config::with_capacity(MILLION);
        cfg.drop_threshold = cfg.capacity;
        let mut t = Table::new(cfg, 0).unwrap();
        let before = t.footprint();
        // A few thousand entries: what they take is already allocated.
        for i in 0..5_000u16 {
            let c = fill(i);
            let conn = NewConn {
                proto: Proto::Tcp,
                client: c,
                virt: Endpoint::new(fill(u16::MAX).addr, 80),
                dest: Endpoint::new(fill(u16::MAX - 1).addr, 8080),
                forward: Forward::Nat,
                service: 1,
                dest_id: 0,
            };
            t.insert(&conn, None, 0).unwrap();
        }
        let fp = t.footprint();
        assert_eq!(fp, before, "entries allocate nothing");
        eprintln!(
            "{family} entries at {MILLION}: entry {} B, slab slot {} B, total {} B = {:.1} B/entry",
            fp.entry_bytes,
            fp.slot_bytes,
            fp.total_bytes,
            fp.bytes_per_entry()
        );
        fp
    };
    let ipv4 = footprint("IPv4", &|i| {
        let [a, b] = i.to_be_bytes();
        Endpoint::v4([100, 64, a, b], 1024 + i % 50_000)
    });
    let ipv6 = footprint("IPv6", &|i| v6(0xc, i, 1024 + i % 50_000));
    assert_eq!(ipv6, ipv4);
    assert!(ipv4.bytes_per_entry() <= 128.0, "{ipv4:?}");
    assert!(ipv6.bytes_per_entry() <= 160.0, "{ipv6:?}");
}
