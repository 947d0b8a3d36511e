//! Helpers shared by the integration tests.
#![allow(dead_code)]

use lvs_conntrack::*;

pub const VIP: Endpoint = Endpoint::v4([198, 51, 100, 1], 80);
pub const SEC: u64 = 1000;

pub fn rs(n: u8) -> Endpoint {
    Endpoint::v4([10, 0, 0, n], 8080)
}

pub fn client(host: u8, port: u16) -> Endpoint {
    Endpoint::v4([192, 0, 2, host], port)
}

pub fn new_conn(proto: Proto, c: Endpoint, dest_id: u32, forward: Forward) -> NewConn {
    NewConn {
        proto,
        client: c,
        virt: VIP,
        dest: rs(u8::try_from(dest_id % 200).unwrap() + 1),
        forward,
        service: 7,
        dest_id,
    }
}

pub fn table(capacity: usize) -> Table {
    Table::new(Config::with_capacity(capacity), 0).unwrap()
}

/// Insert a NAT TCP connection and take it through the handshake.
pub fn established(t: &mut Table, c: Endpoint, dest_id: u32, now: u64) -> ConnId {
    let id = t
        .insert(&new_conn(Proto::Tcp, c, dest_id, Forward::Nat), None, now)
        .unwrap();
    t.on_packet(id, Dir::In, TcpFlags::SYN, now).unwrap();
    t.on_packet(id, Dir::Out, TcpFlags::SYN_ACK, now).unwrap();
    assert_eq!(
        t.on_packet(id, Dir::In, TcpFlags::ACK, now),
        Ok(State::Established)
    );
    id
}

/// Counts per destination, recounted from the listing.
pub fn recount(t: &Table, dest_id: u32) -> DestCounts {
    let mut n = DestCounts::default();
    for e in t.iter(0).filter(|e| e.dest_id == dest_id) {
        if e.template {
            n.persistent += 1;
        } else if e.state.is_active() {
            n.active += 1;
        } else {
            n.inactive += 1;
        }
    }
    n
}

/// Run `expire` at `now` until it has no more work; return what it removed.
pub fn expire_all(t: &mut Table, now: u64) -> Vec<Expired> {
    let mut out = Vec::new();
    loop {
        let run = t.expire(now, |e| out.push(*e));
        if !run.more {
            return out;
        }
    }
}
