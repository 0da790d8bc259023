//! Connection state tracking: TCP states and their timeouts.
//!
//! A simplified IPVS state table that works whether rvs sees both directions
//! (NAT, full NAT) or only the client's (DR, tunnel):
//!
//! | state | entered on | timeout |
//! |-------|------------|---------|
//! | `SynRecv`     | the client's SYN (new session) | `tcp_syn` (`tcp_syn_under_pressure` when the table is > 3/4 full) |
//! | `Established` | the client's first ACK without SYN | `tcp_established` |
//! | `FinWait`     | a FIN from one side | `tcp_fin` |
//! | `TimeWait`    | FINs from both sides | `tcp_close` |
//! | `Close`       | an RST from either side | `tcp_close` |
//! | `Udp`         | any UDP datagram | `udp` |
//!
//! A new SYN from the client on a session in `FinWait`, `TimeWait` or
//! `Close` starts a fresh session (scheduled anew) instead of being
//! forwarded into the old one: this is what stops the 1-second stall that
//! IPVS connection reuse caused (kubernetes #81775).
use crate::session::{Dir, SessionFlags};
use crate::table::TimeoutsMs;
use rvs_wire::tcp::flags;

/// Session states (stored in `Session::state`; 0 is a free entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No session: the table entry is free.
    #[default]
    Free = 0,
    /// SYN seen, handshake not finished.
    SynRecv = 1,
    /// Handshake finished.
    Established = 2,
    /// One side sent FIN.
    FinWait = 3,
    /// Both sides sent FIN.
    TimeWait = 4,
    /// Reset.
    Close = 5,
    /// UDP flow.
    Udp = 6,
    /// Tombstone of a TCP session whose real server was removed: holds no
    /// reference to it, answers the client's next segment with a reset.
    Reset = 7,
}

impl State {
    /// The state numbered `v` (as a sync record carries it), if any.
    pub fn from_u8(v: u8) -> Option<State> {
        Some(match v {
            0 => State::Free,
            1 => State::SynRecv,
            2 => State::Established,
            3 => State::FinWait,
            4 => State::TimeWait,
            5 => State::Close,
            6 => State::Udp,
            7 => State::Reset,
            _ => return None,
        })
    }

    /// ipvsadm's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            State::Free => "NONE",
            State::SynRecv => "SYN_RECV",
            State::Established => "ESTABLISHED",
            State::FinWait => "FIN_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::Udp => "UDP",
            State::Reset => "RESET",
        }
    }

    /// True when ipvsadm counts the session as active.
    pub fn is_active(self) -> bool {
        self == State::Established
    }

    /// True for a TCP session that is going away (a new SYN replaces it).
    pub fn is_closing(self) -> bool {
        matches!(self, State::FinWait | State::TimeWait | State::Close | State::Reset)
    }

    /// The idle timeout for this state.
    #[inline]
    pub fn timeout(self, t: &TimeoutsMs, pressure: bool) -> u32 {
        match self {
            State::SynRecv if pressure => t.tcp_syn_pressure,
            State::SynRecv => t.tcp_syn,
            State::Established => t.tcp_established,
            State::FinWait => t.tcp_fin,
            State::TimeWait | State::Close | State::Reset | State::Free => t.tcp_close,
            State::Udp => t.udp,
        }
    }
}

/// The next TCP state after a segment with `tcp_flags` travelling `dir`;
/// updates the FIN flags in `sflags`.
#[inline(always)]
pub fn tcp_next(state: State, tcp_flags: u8, dir: Dir, sflags: &mut SessionFlags) -> State {
    if tcp_flags & flags::RST != 0 {
        return State::Close;
    }
    if tcp_flags & flags::FIN != 0 {
        sflags.insert(match dir {
            Dir::Forward => SessionFlags::FIN_CLIENT,
            Dir::Reply => SessionFlags::FIN_SERVER,
        });
        return if sflags.contains(SessionFlags::FIN_CLIENT | SessionFlags::FIN_SERVER) { State::TimeWait } else { State::FinWait };
    }
    match (state, dir) {
        (State::SynRecv, Dir::Forward) if tcp_flags & (flags::SYN | flags::ACK) == flags::ACK => State::Established,
        (s, _) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_and_close() {
        let mut f = SessionFlags::empty();
        let s = State::SynRecv;
        let s = tcp_next(s, flags::SYN | flags::ACK, Dir::Reply, &mut f);
        assert_eq!(s, State::SynRecv);
        let s = tcp_next(s, flags::ACK, Dir::Forward, &mut f);
        assert_eq!(s, State::Established);
        assert!(s.is_active());
        let s = tcp_next(s, flags::FIN | flags::ACK, Dir::Forward, &mut f);
        assert_eq!(s, State::FinWait);
        let s = tcp_next(s, flags::ACK, Dir::Reply, &mut f);
        assert_eq!(s, State::FinWait);
        let s = tcp_next(s, flags::FIN | flags::ACK, Dir::Reply, &mut f);
        assert_eq!(s, State::TimeWait);
        assert!(s.is_closing());
    }

    #[test]
    fn dr_sees_only_the_client() {
        let mut f = SessionFlags::empty();
        let s = tcp_next(State::SynRecv, flags::ACK, Dir::Forward, &mut f);
        assert_eq!(s, State::Established);
        let s = tcp_next(s, flags::RST, Dir::Forward, &mut f);
        assert_eq!(s, State::Close);
    }

    #[test]
    fn timeouts() {
        let t = TimeoutsMs {
            tcp_established: 900_000,
            tcp_syn: 120_000,
            tcp_syn_pressure: 3_000,
            tcp_fin: 120_000,
            tcp_close: 10_000,
            udp: 300_000,
        };
        assert_eq!(State::SynRecv.timeout(&t, false), 120_000);
        assert_eq!(State::SynRecv.timeout(&t, true), 3_000);
        assert_eq!(State::TimeWait.timeout(&t, false), 10_000);
        assert_eq!(State::Udp.timeout(&t, true), 300_000);
    }
}
