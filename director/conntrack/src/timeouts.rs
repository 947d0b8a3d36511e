//! Per-state timeouts, as `ipvsadm --set` and `--timeout` see them.

use crate::tcp_state::State;

/// How long an entry lives after its last packet, per state, in milliseconds.
///
/// Defaults are IPVS's: ESTABLISHED 900 s, SYN_SENT 120, SYN_RECV 60, FIN_WAIT 120,
/// TIME_WAIT 120, CLOSE 10, CLOSE_WAIT 60, LAST_ACK 30, LISTEN 120, SYNACK 120,
/// NONE 2, UDP 300.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    ms: [u64; 12],
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let mut t = Timeouts { ms: [0; 12] };
        for (state, secs) in [
            (State::None, 2),
            (State::Established, 900),
            (State::SynSent, 120),
            (State::SynRecv, 60),
            (State::FinWait, 120),
            (State::TimeWait, 120),
            (State::Close, 10),
            (State::CloseWait, 60),
            (State::LastAck, 30),
            (State::Listen, 120),
            (State::SynAck, 120),
            (State::Udp, 300),
        ] {
            t.ms[state as usize] = secs * 1000;
        }
        t
    }
}

impl Timeouts {
    /// The timeout of `state` in milliseconds.
    #[inline]
    pub fn get(&self, state: State) -> u64 {
        self.ms[state as usize]
    }

    /// Set the timeout of one state (milliseconds, at least 1).
    pub fn set(&mut self, state: State, ms: u64) {
        self.ms[state as usize] = ms.max(1);
    }

    /// `ipvsadm --set tcp tcpfin udp`, in seconds: `tcp` is ESTABLISHED, `tcpfin`
    /// FIN_WAIT, `udp` UDP; 0 leaves a value unchanged.
    pub fn set_ipvsadm(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        for (state, secs) in [
            (State::Established, tcp),
            (State::FinWait, tcpfin),
            (State::Udp, udp),
        ] {
            if secs != 0 {
                self.set(state, u64::from(secs) * 1000);
            }
        }
    }

    /// `ipvsadm -L --timeout`: (tcp, tcpfin, udp) in whole seconds.
    pub fn ipvsadm(&self) -> (u64, u64, u64) {
        (
            self.get(State::Established) / 1000,
            self.get(State::FinWait) / 1000,
            self.get(State::Udp) / 1000,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_set_like_ipvsadm() {
        let mut t = Timeouts::default();
        assert_eq!(t.ipvsadm(), (900, 120, 300));
        assert_eq!(t.get(State::Close), 10_000);
        assert_eq!(t.get(State::LastAck), 30_000);
        t.set_ipvsadm(3600, 0, 60);
        assert_eq!(t.ipvsadm(), (3600, 120, 60));
        assert_eq!(
            t.get(State::TimeWait),
            120_000,
            "--set leaves TIME_WAIT alone"
        );
    }
}
