//! What NAT and full NAT change in a packet, and the one rewriter that
//! changes it - in the packets of a session and in the packets quoted in
//! ICMP errors about it ([`rvs_wire::l4::rewrite`] does the bytes).
use super::state::Pkt;
use crate::session::{Dir, Session};
use crate::table::Mode;
use rvs_wire::icmp::Quoted;
use rvs_wire::{ether, l4, Family, PacketBuf};

/// A translation: the new source and/or destination (address, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NatRewrite<A: Family> {
    /// New source.
    pub(super) src: Option<(A, u16)>,
    /// New destination.
    pub(super) dst: Option<(A, u16)>,
}

impl<A: Family> Default for NatRewrite<A> {
    fn default() -> Self {
        NatRewrite { src: None, dst: None }
    }
}

impl<A: Family> NatRewrite<A> {
    /// What a NAT or full-NAT session changes in its packets travelling
    /// `dir` (nothing for other modes).
    #[inline(always)]
    pub(super) fn of_session(mode: Mode, dir: Dir, s: &Session<A>) -> NatRewrite<A> {
        match (mode, dir) {
            (Mode::Nat, Dir::Forward) => NatRewrite { src: None, dst: Some((s.rs, s.rport)) },
            (Mode::Nat, Dir::Reply) => NatRewrite { src: Some((s.vip, s.vport)), dst: None },
            (Mode::FullNat, Dir::Forward) => NatRewrite { src: Some((s.local, s.lport)), dst: Some((s.rs, s.rport)) },
            (Mode::FullNat, Dir::Reply) => NatRewrite { src: Some((s.vip, s.vport)), dst: Some((s.client, s.cport)) },
            _ => NatRewrite::default(),
        }
    }
}

/// Translates a packet of a session: TTL, addresses, ports, checksums.
#[inline(always)]
pub(super) fn rewrite<A: Family, B: PacketBuf>(buf: &mut B, p: &Pkt<A>, r: NatRewrite<A>) {
    let d = buf.data_mut();
    l4::rewrite(&mut d[ether::HEADER_LEN..], p.l4 - ether::HEADER_LEN, &p.tuple(), r.src, r.dst, true);
}

/// Translates the packet quoted in an ICMP error in `frame`.
#[inline]
pub(super) fn rewrite_quoted<A: Family>(frame: &mut [u8], q: &Quoted<A>, r: NatRewrite<A>) {
    l4::rewrite(&mut frame[q.l3..q.end], q.l4 - q.l3, &q.tuple, r.src, r.dst, false);
}
