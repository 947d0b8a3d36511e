//! Connection states and IPVS's TCP state machine.
//!
//! The director sees at most half of what the endpoints see, so the states are
//! IPVS's approximation of TCP, driven only by the SYN, FIN, ACK and RST flags
//! and by the packet's direction. The three transition tables are those of Linux
//! `ip_vs_proto_tcp.c` (`tcp_states`, the default set; the `secure_tcp` variant is
//! not provided): INPUT for client → server packets, OUTPUT for replies (VS/NAT),
//! and INPUT-ONLY for VS/DR and VS/TUN, whose replies bypass the director.

/// A connection's state, with the names `ipvsadm -L -c` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Fresh TCP entry before its first packet; also every persistence template.
    None = 0,
    /// Handshake done, data flowing.
    Established,
    /// The real server sent a SYN (seen on output).
    SynSent,
    /// The client sent a SYN.
    SynRecv,
    /// One side sent a FIN.
    FinWait,
    /// Both sides finished.
    TimeWait,
    /// Reset or finished.
    Close,
    /// The client closed first and the server has not.
    CloseWait,
    /// Waiting for the last ACK.
    LastAck,
    /// Listening (IPVS uses it for FTP data connections).
    Listen,
    /// The server answered a SYN.
    SynAck,
    /// Any UDP entry (IPVS has a single UDP state).
    Udp,
}

impl State {
    /// Every TCP state, in IPVS's numbering.
    pub const TCP: [State; 11] = [
        State::None,
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::SynAck,
    ];

    /// The name `ipvsadm -L -c` prints.
    pub const fn name(self) -> &'static str {
        match self {
            State::None => "NONE",
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait => "FIN_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::SynAck => "SYNACK",
            State::Udp => "UDP",
        }
    }

    /// Whether a connection in this state counts in ActiveConn (else InActConn).
    ///
    /// Classic IPVS (and ipvsadm's documentation): only ESTABLISHED is active.
    /// Linux 4.7 and later also count SYN_SENT, SYN_RECV and SYNACK as active;
    /// this one function is where to change that.
    pub const fn is_active(self) -> bool {
        matches!(self, State::Established)
    }

    /// Whether a TCP connection in this state is closing or closed (FIN_WAIT, TIME_WAIT,
    /// CLOSE, CLOSE_WAIT, LAST_ACK): a new SYN from the same client address and port is a
    /// new connection, not part of this one (IPVS `conn_reuse_mode`).
    pub const fn is_closing(self) -> bool {
        matches!(
            self,
            State::FinWait | State::TimeWait | State::Close | State::CloseWait | State::LastAck
        )
    }

    /// Whether a TCP entry in this state is half-open, the first to be dropped
    /// when the table is nearly full (IPVS `drop_entry`).
    pub(crate) const fn is_half_open_tcp(self) -> bool {
        matches!(
            self,
            State::None | State::SynSent | State::SynRecv | State::SynAck
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → virtual service (found with `lookup_in`).
    In,
    /// Real server → client, a VS/NAT reply (found with `lookup_out`).
    Out,
}

/// The TCP header flags the state machine reads, in the header's own bit positions
/// so the caller can pass byte 13 of the TCP header unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// SYN and ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);
    /// FIN and ACK.
    pub const FIN_ACK: TcpFlags = TcpFlags(0x11);
    /// No flags (also what UDP packets pass).
    pub const NONE: TcpFlags = TcpFlags(0);

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// IPVS's `tcp_state_idx`: RST wins over SYN over FIN over ACK.
    const fn event(self) -> Option<usize> {
        if self.contains(TcpFlags::RST) {
            Some(3)
        } else if self.contains(TcpFlags::SYN) {
            Some(0)
        } else if self.contains(TcpFlags::FIN) {
            Some(1)
        } else if self.contains(TcpFlags::ACK) {
            Some(2)
        } else {
            None
        }
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// Which transition table applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateTable {
    /// Client → server on a connection whose replies pass the director.
    Input = 0,
    /// Server → client.
    Output = 1,
    /// Client → server on a connection whose replies bypass the director.
    InputOnly = 2,
}

use State::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `[table][event][state]`, events SYN, FIN, ACK, RST; states in IPVS order
/// (NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT,
/// LAST_ACK, LISTEN, SYNACK).
#[rustfmt::skip]
const TRANSITIONS: [[[State; 11]; 4]; 3] = [
    // INPUT
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The state after a packet with `flags` through `table` in state `from`.
///
/// As in IPVS, a packet with none of SYN, FIN, ACK, RST moves the entry to CLOSE;
/// a non-TCP state is returned unchanged.
pub fn next_state(table: StateTable, from: State, flags: TcpFlags) -> State {
    if from == State::Udp {
        return from;
    }
    match flags.event() {
        Some(ev) => TRANSITIONS[table as usize][ev][from as usize],
        None => State::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::SynAck as SA;
    use TcpFlags as F;

    fn run(table_for: impl Fn(Dir) -> StateTable, steps: &[(Dir, TcpFlags)]) -> Vec<State> {
        let mut s = State::None;
        steps
            .iter()
            .map(|&(d, f)| {
                s = next_state(table_for(d), s, f);
                s
            })
            .collect()
    }

    fn nat(d: Dir) -> StateTable {
        match d {
            Dir::In => StateTable::Input,
            Dir::Out => StateTable::Output,
        }
    }

    #[test]
    fn nat_handshake_data_and_client_close() {
        use Dir::{In, Out};
        let got = run(
            nat,
            &[
                (In, F::SYN),
                (Out, F::SYN_ACK),
                (In, F::ACK),
                (In, F::ACK),
                (Out, F::ACK),
                (In, F::FIN_ACK),
                (Out, F::ACK),
                (Out, F::FIN_ACK),
                (In, F::ACK),
            ],
        );
        assert_eq!(
            got,
            [SR, SR, ES, ES, ES, CW, CW, TW, TW],
            "client-first close as IPVS tracks it"
        );
    }

    #[test]
    fn nat_server_closes_first() {
        use Dir::{In, Out};
        let got = run(
            nat,
            &[
                (In, F::SYN),
                (Out, F::SYN_ACK),
                (In, F::ACK),
                (Out, F::FIN_ACK),
                (In, F::ACK),
                (In, F::FIN_ACK),
                (Out, F::ACK),
            ],
        );
        assert_eq!(got, [SR, SR, ES, FW, FW, TW, TW]);
    }

    #[test]
    fn resets_close_from_either_side() {
        use Dir::{In, Out};
        assert_eq!(
            run(
                nat,
                &[(In, F::SYN), (Out, F::SYN_ACK), (In, F::ACK), (In, F::RST)]
            ),
            [SR, SR, ES, CL]
        );
        assert_eq!(
            run(
                nat,
                &[(In, F::SYN), (Out, F::SYN_ACK), (In, F::ACK), (Out, F::RST)]
            ),
            [SR, SR, ES, CL]
        );
        // A server refusing the connection.
        assert_eq!(run(nat, &[(In, F::SYN), (Out, F::RST)]), [SR, CL]);
        // A client RST during the handshake leaves SYN_RECV alone (IPVS ignores it).
        assert_eq!(run(nat, &[(In, F::SYN), (In, F::RST)]), [SR, SR]);
    }

    #[test]
    fn half_open_syn_without_reply_stays_syn_recv() {
        use Dir::In;
        assert_eq!(
            run(nat, &[(In, F::SYN), (In, F::SYN), (In, F::SYN)]),
            [SR, SR, SR]
        );
    }

    #[test]
    fn input_only_tracks_dr_from_client_packets() {
        use Dir::In;
        let io = |_d: Dir| StateTable::InputOnly;
        let got = run(
            io,
            &[
                (In, F::SYN),
                (In, F::ACK),
                (In, F::ACK),
                (In, F::FIN_ACK),
                (In, F::ACK),
            ],
        );
        assert_eq!(got, [SR, ES, ES, FW, FW]);
        assert_eq!(
            run(io, &[(In, F::SYN), (In, F::ACK), (In, F::RST)]),
            [SR, ES, CL]
        );
        // Unlike INPUT, a RST in SYNACK closes (nobody else will).
        assert_eq!(next_state(StateTable::InputOnly, SA, F::RST), CL);
        assert_eq!(next_state(StateTable::Input, SA, F::RST), SR);
    }

    #[test]
    fn flagless_packets_close_and_udp_is_untouched() {
        assert_eq!(next_state(StateTable::Input, ES, F::NONE), CL);
        assert_eq!(
            next_state(StateTable::Input, State::Udp, F::RST),
            State::Udp
        );
        // RST beats SYN in one packet.
        assert_eq!(next_state(StateTable::Input, ES, F::SYN | F::RST), CL);
    }

    #[test]
    fn names_match_ipvsadm() {
        let names: Vec<&str> = State::TCP.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        assert_eq!(State::Udp.to_string(), "UDP");
        assert!(ES.is_active() && !SR.is_active() && !State::Udp.is_active());
    }
}
