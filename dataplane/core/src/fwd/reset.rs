//! TCP resets rvs sends to clients: when a flow's real server is gone,
//! the client learns at once instead of waiting for a timeout.
use super::state::{Ctx, Pkt};
use super::Verdict;
use crate::drop::DropReason;
use crate::session::Session;
use rvs_wire::{ether, l4, tcp, Family, MacAddr, PacketBuf};

/// Answers a client's TCP segment with a reset from the VIP, in place
/// (RFC 9293 3.10.7.1: with the segment's ACK as sequence number, or
/// acknowledging it when it carried no ACK).
pub(super) fn reset_to_sender<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    buf: &mut B,
    in_port: u8,
    p: &Pkt<A>,
    reason: DropReason,
) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    let seg_len = rvs_wire::num::sat_u32(p.end - p.l4 - t.header_len)
        + u32::from(t.flags & tcp::flags::SYN != 0)
        + u32::from(t.flags & tcp::flags::FIN != 0);
    let (seq, ack, flags) = if t.flags & tcp::flags::ACK != 0 {
        (t.ack, 0, tcp::flags::RST)
    } else {
        (0, t.seq.wrapping_add(seg_len), tcp::flags::RST | tcp::flags::ACK)
    };
    let peer = ether::src(buf.data());
    write_reset(buf, (p.dst, p.dport), (p.src, p.sport), seq, ack, flags, peer, port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: in_port, reason })
}

/// Turns a real server's segment for a session whose server was removed
/// into a reset to the client, from the VIP, carrying the server's sequence
/// number (what the client expects next): the client learns at once instead
/// of waiting for a reply that will not come.
pub(super) fn reset_reply_to_client<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    buf: &mut B,
    s: &Session<A>,
    p: &Pkt<A>,
) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(s.client_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    write_reset(buf, (s.vip, s.vport), (s.client, s.cport), t.seq, 0, tcp::flags::RST, MacAddr(s.client_mac), port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: s.client_port, reason: DropReason::NoBackend })
}

/// Rewrites the frame in place into a bare TCP segment `src -> dst` with
/// the given sequence, acknowledgement and flags ([`l4::write_tcp_reset`]).
fn write_reset<A: Family, B: PacketBuf>(
    buf: &mut B,
    src: (A, u16),
    dst: (A, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    to: MacAddr,
    from: MacAddr,
) {
    let len = l4::write_tcp_reset(buf.data_mut(), to, from, src, dst, seq, ack, flags);
    buf.truncate(len);
}
