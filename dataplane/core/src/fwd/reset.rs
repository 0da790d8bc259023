use super::nat::{a_bytes16, a_bytes4};
use super::state::{Ctx, Pkt};
use super::Verdict;
use crate::drop::DropReason;
use crate::session::Session;
use rvs_wire::ip::{proto, Addr};
use rvs_wire::{checksum, ether, ipv4, ipv6, tcp, MacAddr, PacketBuf};

/// Answers a client's TCP segment with a reset from the VIP, in place
/// (RFC 9293 3.10.7.1: with the segment's ACK as sequence number, or
/// acknowledging it when it carried no ACK).
pub(super) fn reset_to_sender<A: Addr, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8, p: &Pkt<A>) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    let seg_len = u32::try_from(p.end - p.l4 - t.header_len).unwrap_or(0)
        + u32::from(t.flags & tcp::flags::SYN != 0)
        + u32::from(t.flags & tcp::flags::FIN != 0);
    let (seq, ack, flags) = if t.flags & tcp::flags::ACK != 0 {
        (t.ack, 0, tcp::flags::RST)
    } else {
        (0, t.seq.wrapping_add(seg_len), tcp::flags::RST | tcp::flags::ACK)
    };
    let peer = ether::src(buf.data());
    write_reset(buf, p.l4, (p.dst, p.dport), (p.src, p.sport), seq, ack, flags, peer, port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: in_port, reason: DropReason::NoBackend })
}

/// Turns a real server's segment for a session whose server was removed
/// into a reset to the client, from the VIP, carrying the server's sequence
/// number (what the client expects next): the client learns at once instead
/// of waiting for a reply that will not come.
pub(super) fn reset_reply_to_client<A: Addr, B: PacketBuf>(
    cx: &Ctx<'_>,
    buf: &mut B,
    s: &Session<A>,
    p: &Pkt<A>,
) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(s.client_port).ok_or(DropReason::NoBackend)?;
    let t = tcp::TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    write_reset(buf, p.l4, (s.vip, s.vport), (s.client, s.cport), t.seq, 0, tcp::flags::RST, MacAddr(s.client_mac), port.mac);
    cx.stats.resets_sent.inc();
    Ok(Verdict::Reply { port: s.client_port, reason: DropReason::NoBackend })
}

/// Rewrites the frame in place into a bare TCP segment `src -> dst` with the
/// given sequence, acknowledgement and flags (IPv4 DF, TTL 64).
#[allow(clippy::too_many_arguments)]
pub(super) fn write_reset<A: Addr, B: PacketBuf>(
    buf: &mut B,
    l4: usize,
    src: (A, u16),
    dst: (A, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    to: MacAddr,
    from: MacAddr,
) {
    buf.truncate(l4 + tcp::MIN_HEADER_LEN);
    let d = buf.data_mut();
    ether::set_macs(d, to, from);
    let ip = &mut d[ether::HEADER_LEN..];
    if A::V6 {
        ipv6::write_header(ip, 0, 0, 20, proto::TCP, 64, u128::from_be_bytes(a_bytes16(src.0)), u128::from_be_bytes(a_bytes16(dst.0)));
    } else {
        ipv4::write_header(
            ip,
            0,
            40,
            0,
            ipv4::FLAG_DF,
            64,
            proto::TCP,
            u32::from_be_bytes(a_bytes4(src.0)),
            u32::from_be_bytes(a_bytes4(dst.0)),
        );
    }
    let seg = &mut d[l4..l4 + tcp::MIN_HEADER_LEN];
    seg.fill(0);
    seg[0..2].copy_from_slice(&src.1.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    let ph = if A::V6 {
        checksum::pseudo_v6(&a_bytes16(src.0), &a_bytes16(dst.0), proto::TCP, 20)
    } else {
        checksum::pseudo_v4(a_bytes4(src.0), a_bytes4(dst.0), proto::TCP, 20)
    };
    let c = checksum::l4_checksum(ph, seg);
    seg[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
}
