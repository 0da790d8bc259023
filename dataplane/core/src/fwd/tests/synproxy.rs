//! Golden packets of the SYN proxy: the cookie handshake, the real
//! server's handshake, and the translation of every field afterwards, in
//! NAT and full NAT, on the fast path and the general path alike.
use super::*;
use rvs_wire::l4::{self, TcpFields};
use rvs_wire::tcpopt::{self, HandshakeOptions, TcpOptions};

const VIP: &str = "198.18.0.100";
const CLIENT: &str = "198.18.0.2";

fn spx_forwarder(fwd: &str, extra: &str) -> Clocked {
    spx_forwarder_of(fwd, extra, 4096)
}

/// The same with room for `sessions` sessions.
fn spx_forwarder_of(fwd: &str, extra: &str, sessions: u32) -> Clocked {
    let text =
        cfg_text(fwd, "rr").replacen(&format!("forwarding = \"{fwd}\"\n"), &format!("forwarding = \"{fwd}\"\nsynproxy = true\n{extra}"), 1);
    forwarder_from(&text, sessions).0
}

/// A TCP/IPv4 frame with options and payload, checksums right.
fn seg(from: MacAddr, to: MacAddr, src: Ipv4, dst: Ipv4, sport: u16, dport: u16, f: TcpFields, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let n = l4::tcp_frame_len::<Ipv4>(opts.len());
    let mut v = vec![0u8; n + payload.len()];
    l4::write_tcp(&mut v, to, from, (src, sport), (dst, dport), f, opts);
    if !payload.is_empty() {
        v[n..].copy_from_slice(payload);
        let total = u16::try_from(v.len() - 14).unwrap();
        v[16..18].copy_from_slice(&total.to_be_bytes());
        v[24..26].fill(0);
        let c = checksum::checksum(&v[14..34]);
        v[24..26].copy_from_slice(&c.to_be_bytes());
        v[50..52].fill(0);
        let c = checksum::l4_checksum(Ipv4::pseudo_header(src, dst, 6, v.len() - 34), &v[34..]);
        v[50..52].copy_from_slice(&c.to_be_bytes());
    }
    v
}

fn ts(v: u32, e: u32) -> Vec<u8> {
    let mut b = [0u8; 12];
    tcpopt::write_timestamps(&mut b, v, e);
    b.to_vec()
}

fn ts_sack(v: u32, e: u32, l: u32, r: u32) -> Vec<u8> {
    let mut o = ts(v, e);
    o.extend([1, 1, 5, 10]);
    o.extend(l.to_be_bytes());
    o.extend(r.to_be_bytes());
    o
}

/// What a frame rvs sent says.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    src: (Ipv4, u16),
    dst: (Ipv4, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    opts: TcpOptions,
    payload: Vec<u8>,
}

fn seen(frame: &[u8]) -> Seen {
    assert!(rvs_testpkt::checksums_ok(frame), "checksums of {frame:02x?}");
    let h = ipv4::Ipv4Header::parse(&frame[14..], true).unwrap();
    let end = 14 + h.total_len;
    let t = tcp::TcpHeader::parse(&frame[34..end]).unwrap();
    Seen {
        src: (h.src, t.sport),
        dst: (h.dst, t.dport),
        seq: t.seq,
        ack: t.ack,
        flags: t.flags,
        window: u16::from_be_bytes([frame[48], frame[49]]),
        opts: TcpOptions::parse(&frame[34..end], t.header_len),
        payload: frame[34 + t.header_len..end].to_vec(),
    }
}

/// Processes one frame the way the worker does (look-ahead, then the fast
/// path where it applies, unless `fast` is off).
fn run(f: &mut Clocked, fast: bool, frame: &[u8], port: u8) -> (Verdict, VecBuf) {
    f.set_fast_path(fast);
    let mut b = VecBuf::with_room(frame, 128, 256);
    f.prepare(std::slice::from_ref(&b));
    let v = f.process_at(&mut b, port, 0);
    (v, b)
}

/// The first real server's SYN-ACK (ISN 77, no options) to the client
/// (NAT) of a connection whose ISN was 1000.
fn plain_synack(client: Ipv4) -> Vec<u8> {
    let f = TcpFields { seq: 77, ack: 1001, flags: SYN | ACK, window: 65160 };
    seg(rs_mac(1), P1_MAC, ip("198.18.1.11"), client, 8080, 40000, f, &[], &[])
}

fn extra(f: &mut Clocked) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    f.drain_extra(|_, port, bytes| out.push((port, bytes.to_vec())));
    out
}

const ACK: u8 = tcp::flags::ACK;
const SYN: u8 = tcp::flags::SYN;

/// The whole life of a spliced connection; returns every frame rvs sent,
/// for comparing the two paths.
fn splice_story(fwd: &str, fast: bool) -> Vec<Vec<u8>> {
    let mut f = spx_forwarder(fwd, "");
    let mut sent = Vec::new();
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let now0 = f.now;

    // 1. The client's SYN (MSS 1460, SACK, timestamps, scale 6): a SYN-ACK
    // from the VIP with a cookie, window 0, no session.
    let mut o = [0u8; tcpopt::HANDSHAKE_MAX];
    let n = tcpopt::write_handshake(&mut o, &HandshakeOptions { mss: 1460, wscale: Some(6), sack_perm: true, ts: Some((100, 0)) });
    let syn = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &o[..n], &[]);
    let (v, b) = run(&mut f, fast, &syn, 0);
    assert_eq!(v, Verdict::Answer(0));
    assert_eq!((ether::dst(b.data()), ether::src(b.data())), (CLIENT_MAC, P0_MAC));
    let sa = seen(b.data());
    assert_eq!((sa.src, sa.dst, sa.ack, sa.flags, sa.window), ((vip, 80), (client, 40000), 1001, SYN | ACK, 0));
    assert_eq!((sa.opts.mss, sa.opts.wscale, sa.opts.sack_perm, sa.opts.ts), (Some(1460), Some(7), true, Some((now0, 100))));
    assert_eq!(f.sessions_v4(), 0, "a SYN costs no state");
    let cookie = sa.seq;
    sent.push(b.to_vec());

    // 2. A client whose ACK carries no valid cookie is reset.
    let bad =
        seg(CLIENT_MAC, P0_MAC, client, vip, 40001, 80, TcpFields { seq: 1001, ack: cookie ^ 0x100, flags: ACK, window: 502 }, &[], &[]);
    let (v, b) = run(&mut f, fast, &bad, 0);
    assert_eq!(v, Verdict::Reply { port: 0, reason: DropReason::SynproxyBadCookie });
    let r = seen(b.data());
    assert_eq!((r.src, r.dst, r.seq, r.flags), ((vip, 80), (client, 40001), cookie ^ 0x100, tcp::flags::RST));
    assert_eq!(f.sessions_v4(), 0);

    // 3. The right ACK: the session, and the SYN the client would have sent
    // the real server, with its ISN and options.
    let ack = seg(
        CLIENT_MAC,
        P0_MAC,
        client,
        vip,
        40000,
        80,
        TcpFields { seq: 1001, ack: cookie + 1, flags: ACK, window: 502 },
        &ts(101, now0),
        &[],
    );
    let (v, b) = run(&mut f, fast, &ack, 0);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(ether::dst(b.data()), rs_mac(1));
    let s = seen(b.data());
    let rs = (ip("198.18.1.11"), 8080);
    assert_eq!(s.dst, rs);
    if fwd == "nat" {
        assert_eq!(s.src, (client, 40000));
    } else {
        assert_ne!(s.src.0, client, "full NAT: from a local address");
    }
    let lsrc = s.src;
    assert_eq!((s.seq, s.flags, s.window), (1000, SYN, 502 << 6));
    assert_eq!((s.opts.mss, s.opts.wscale, s.opts.sack_perm, s.opts.ts), (Some(1460), Some(6), true, Some((101, 0))));
    assert_eq!(f.sessions_v4(), 1);
    sent.push(b.to_vec());

    // 4. The client waits (window 0); anything it sends now is dropped.
    let early = seg(
        CLIENT_MAC,
        P0_MAC,
        client,
        vip,
        40000,
        80,
        TcpFields { seq: 1001, ack: cookie + 1, flags: ACK, window: 502 },
        &ts(102, now0),
        b"x",
    );
    assert_eq!(run(&mut f, fast, &early, 0).0, Verdict::Drop(DropReason::SynproxyWait));

    // 5. The real server's SYN-ACK (ISN 5,000,000, scale 9, TSval 7777):
    // rvs ACKs it, and opens the client's window.
    let server_isn = 5_000_000u32;
    let mut o = [0u8; tcpopt::HANDSHAKE_MAX];
    let n = tcpopt::write_handshake(&mut o, &HandshakeOptions { mss: 1460, wscale: Some(9), sack_perm: true, ts: Some((7777, 101)) });
    let rs_mac1 = rs_mac(1);
    let synack = seg(
        rs_mac1,
        P1_MAC,
        rs.0,
        lsrc.0,
        rs.1,
        lsrc.1,
        TcpFields { seq: server_isn, ack: 1001, flags: SYN | ACK, window: 65160 },
        &o[..n],
        &[],
    );
    f.set_now(now0 + 3);
    let (v, b) = run(&mut f, fast, &synack, 1);
    assert_eq!(v, Verdict::Tx(1));
    let a = seen(b.data());
    assert_eq!((a.src, a.dst, a.seq, a.ack, a.flags, a.window), (lsrc, rs, 1001, server_isn + 1, ACK, 502));
    assert_eq!(a.opts.ts, Some((101, 7777)));
    sent.push(b.to_vec());
    let x = extra(&mut f);
    assert_eq!(x.len(), 1, "one window update");
    let (port, upd) = &x[0];
    assert_eq!(*port, 0);
    assert_eq!((ether::dst(upd), ether::src(upd)), (CLIENT_MAC, P0_MAC));
    let u = seen(upd);
    assert_eq!((u.src, u.dst, u.seq, u.ack, u.flags, u.window), ((vip, 80), (client, 40000), cookie + 1, 1001, ACK, 65160 >> 7));
    assert_eq!(u.opts.ts, Some((now0, 101)), "the client keeps seeing rvs's clock");
    sent.push(upd.clone());

    // 6. Server data: sequence, timestamps and window in the client's terms.
    let data = seg(
        rs_mac1,
        P1_MAC,
        rs.0,
        lsrc.0,
        rs.1,
        lsrc.1,
        TcpFields { seq: server_isn + 1, ack: 1001, flags: ACK | tcp::flags::PSH, window: 100 },
        &ts(7800, 101),
        b"hello",
    );
    let (v, b) = run(&mut f, fast, &data, 1);
    assert_eq!(v, Verdict::Tx(0));
    let d = seen(b.data());
    assert_eq!((d.src, d.dst, d.seq, d.ack, d.window), ((vip, 80), (client, 40000), cookie + 1, 1001, (100 << 9) >> 7));
    assert_eq!(d.opts.ts, Some((now0 + 23, 101)));
    assert_eq!(d.payload, b"hello");
    sent.push(b.to_vec());

    // 7. The client acknowledges with a SACK block: ack, SACK edges and
    // TSecr in the real server's terms.
    let sack = seg(
        CLIENT_MAC,
        P0_MAC,
        client,
        vip,
        40000,
        80,
        TcpFields { seq: 1001, ack: cookie + 6, flags: ACK, window: 700 },
        &ts_sack(103, now0 + 23, cookie + 100, cookie + 200),
        b"GET",
    );
    let before = f.stats().synproxy.sack_translated.get();
    let (v, b) = run(&mut f, fast, &sack, 0);
    assert_eq!(v, Verdict::Tx(1));
    let c = seen(b.data());
    assert_eq!((c.src, c.dst, c.seq, c.ack, c.window), (lsrc, rs, 1001, server_isn + 6, 700));
    assert_eq!(c.opts.ts, Some((103, 7800)));
    let sb = &b.data()[34 + c.opts.sack_at..];
    let edge = |i: usize| u32::from_be_bytes([sb[i], sb[i + 1], sb[i + 2], sb[i + 3]]);
    assert_eq!((edge(0), edge(4)), (server_isn + 100, server_isn + 200));
    assert_eq!(f.stats().synproxy.sack_translated.get(), before + 1);
    sent.push(b.to_vec());

    // 8. The server repeats its SYN-ACK (as if rvs's ACK were lost): ACKed
    // again, no second window update.
    let (v, b) = run(&mut f, fast, &synack, 1);
    assert_eq!(v, Verdict::Tx(1));
    let a2 = seen(b.data());
    assert_eq!((a2.seq, a2.ack, a2.flags), (1001, server_isn + 1, ACK));
    assert!(extra(&mut f).is_empty());
    sent.push(b.to_vec());

    let st = &f.stats().synproxy;
    assert_eq!((st.syns.get(), st.cookies_valid.get(), st.cookies_invalid.get(), st.window_updates.get()), (1, 1, 1, 1));
    if fast {
        assert_eq!(f.stats().fast_path.get(), 2, "steps 6 and 7 took the fast path");
    }
    sent
}

#[test]
fn nat_splices_a_connection_field_by_field() {
    splice_story("nat", true);
}

#[test]
fn full_nat_splices_a_connection_field_by_field() {
    splice_story("fullnat", true);
}

#[test]
fn the_fast_path_splices_as_the_general_path_does() {
    for fwd in ["nat", "fullnat"] {
        assert_eq!(splice_story(fwd, true), splice_story(fwd, false), "{fwd}");
    }
}

#[test]
fn cookies_expire_and_invalid_acks_may_be_dropped() {
    let mut f = spx_forwarder("nat", "synproxy_invalid_ack = \"drop\"\n");
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let syn = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &[], &[]);
    let (v, b) = run(&mut f, true, &syn, 0);
    assert_eq!(v, Verdict::Answer(0));
    let sa = seen(b.data());
    // No options from the client: MSS 536 assumed, no scaling, no SACK.
    assert_eq!((sa.opts.mss, sa.opts.wscale, sa.opts.sack_perm, sa.opts.ts), (Some(1460), None, false, None));
    let ack = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1001, ack: sa.seq + 1, flags: ACK, window: 502 }, &[], &[]);
    let later = f.now + 2 * 65_536 + 1;
    f.set_now(later);
    assert_eq!(run(&mut f, true, &ack, 0).0, Verdict::Drop(DropReason::SynproxyBadCookie), "131 s later the cookie is void");
    f.set_now(later - 65_536);
    let (v, b) = run(&mut f, true, &ack, 0);
    assert_eq!(v, Verdict::Tx(1), "65 s later it still opens the connection");
    let s = seen(b.data());
    assert_eq!((s.opts.mss, s.opts.wscale, s.opts.sack_perm, s.opts.ts), (Some(536), None, false, None));
    // The real server refuses: the client gets a reset it accepts.
    let rst = seg(
        rs_mac(1),
        P1_MAC,
        ip("198.18.1.11"),
        client,
        8080,
        40000,
        TcpFields { seq: 0, ack: 1001, flags: tcp::flags::RST | ACK, window: 0 },
        &[],
        &[],
    );
    let (v, b) = run(&mut f, true, &rst, 1);
    assert_eq!(v, Verdict::Tx(0));
    let r = seen(b.data());
    assert_eq!((r.src, r.seq, r.flags & tcp::flags::RST), ((vip, 80), sa.seq + 1, tcp::flags::RST));
    // A SYN flood costs no session, ever.
    for i in 0..1000u32 {
        let syn = seg(
            CLIENT_MAC,
            P0_MAC,
            Ipv4(0xc612_4000 + i),
            vip,
            1024 + u16::try_from(i).unwrap(),
            80,
            TcpFields { seq: i, ack: 0, flags: SYN, window: 1 },
            &[],
            &[],
        );
        assert_eq!(run(&mut f, true, &syn, 0).0, Verdict::Answer(0));
    }
    assert_eq!(f.sessions_v4(), 1);
}

#[test]
fn spliced_sessions_are_not_synced() {
    let mut f = spx_forwarder("nat", "");
    f.set_role(true, true);
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let syn = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &[], &[]);
    let (_, b) = run(&mut f, true, &syn, 0);
    let cookie = seen(b.data()).seq;
    let ack = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1001, ack: cookie + 1, flags: ACK, window: 502 }, &[], &[]);
    assert_eq!(run(&mut f, true, &ack, 0).0, Verdict::Tx(1));
    // The real server answers: the session is established (a state a
    // plain NAT session would be synced in), and still nothing is emitted.
    let synack = plain_synack(client);
    assert_eq!(run(&mut f, true, &synack, 1).0, Verdict::Tx(1));
    assert_eq!(f.sessions4().next().map(|s| s.state), Some(State::Established));
    assert_eq!(f.stats().sync.emitted.get(), 0);
}

#[test]
fn a_window_probe_opens_the_connection_when_the_clients_ack_was_lost() {
    let mut f = spx_forwarder("nat", "");
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let syn = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &[], &[]);
    let (_, b) = run(&mut f, true, &syn, 0);
    let cookie = seen(b.data()).seq;
    // The ACK (seq 1001) never arrived; the client's persist timer probes
    // the zero window with seq = ISN (1000).
    let probe =
        seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: cookie + 1, flags: ACK, window: 502 }, &[], &[]);
    let (v, b) = run(&mut f, true, &probe, 0);
    assert_eq!(v, Verdict::Tx(1));
    let s = seen(b.data());
    assert_eq!((s.seq, s.flags), (1000, SYN), "the real server gets the client's ISN");
    let synack = plain_synack(client);
    let (v, b) = run(&mut f, true, &synack, 1);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!((seen(b.data()).seq, seen(b.data()).ack), (1001, 78));
    let x = extra(&mut f);
    assert_eq!(x.len(), 1);
    let w = seen(&x[0].1);
    assert_eq!((w.seq, w.ack, w.flags), (cookie + 1, 1001, ACK), "the window update acknowledges the client's ISN + 1");
    // A segment with data one below ISN + 1 is no probe: it is reset.
    let data =
        seg(CLIENT_MAC, P0_MAC, client, vip, 40002, 80, TcpFields { seq: 1000, ack: cookie + 1, flags: ACK, window: 502 }, &[], b"x");
    assert_eq!(run(&mut f, true, &data, 0).0, Verdict::Reply { port: 0, reason: DropReason::SynproxyBadCookie });
}

/// The real server's SYN-ACK (ISN 77, TSval 9) to the SYN `to` it got.
fn server_synack(to: &Seen, tsecr: u32) -> Vec<u8> {
    let f = TcpFields { seq: 77, ack: to.seq + 1, flags: SYN | ACK, window: 65160 };
    seg(rs_mac(1), P1_MAC, to.dst.0, to.src.0, to.dst.1, to.src.1, f, &ts(9, tsecr), &[])
}

/// The SYN rvs sent a real server is lost (its listen queue was full): the
/// client's window probe sends it again, the same SYN from the same
/// address and port, until the server answers; other segments stay
/// dropped, and once the server answered a probe is forwarded as ever.
fn a_lost_syn_to_the_real_server_is_sent_again(fwd: &str, fast: bool) {
    let mut f = spx_forwarder(fwd, "");
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let now0 = f.now;
    let mut o = [0u8; tcpopt::HANDSHAKE_MAX];
    let n = tcpopt::write_handshake(&mut o, &HandshakeOptions { mss: 1460, wscale: Some(6), sack_perm: true, ts: Some((100, 0)) });
    let syn = seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &o[..n], &[]);
    let (_, b) = run(&mut f, fast, &syn, 0);
    let cookie = seen(b.data()).seq;
    let c = |seq: u32, ack: u32, flags: u8, tsv: u32, payload: &[u8]| {
        seg(CLIENT_MAC, P0_MAC, client, vip, 40000, 80, TcpFields { seq, ack, flags, window: 502 }, &ts(tsv, now0), payload)
    };
    let (v, b) = run(&mut f, fast, &c(1001, cookie + 1, ACK, 101, &[]), 0);
    assert_eq!(v, Verdict::Tx(1));
    let first = seen(b.data());
    assert_eq!((first.seq, first.flags), (1000, SYN));
    // The first SYN is lost. The client's probes (seq = ISN), 0.2 s and
    // 0.6 s later, each send it again: same ISN, options and source.
    for (i, (dt, tsv)) in [(200, 300), (600, 700)].into_iter().enumerate() {
        f.set_now(now0 + dt);
        let (v, b) = run(&mut f, fast, &c(1000, cookie + 1, ACK, tsv, &[]), 0);
        assert_eq!(v, Verdict::Tx(1), "probe {i}");
        assert_eq!(ether::dst(b.data()), rs_mac(1));
        let again = seen(b.data());
        assert_eq!((again.src, again.dst, again.seq, again.ack, again.flags, again.window), (first.src, first.dst, 1000, 0, SYN, 502 << 6));
        assert_eq!((again.opts.mss, again.opts.wscale, again.opts.sack_perm), (first.opts.mss, first.opts.wscale, first.opts.sack_perm));
        assert_eq!(again.opts.ts, Some((tsv, 0)), "the client's latest timestamp");
        assert_eq!(f.stats().synproxy.syns_resent.get(), i as u64 + 1);
    }
    // Data in the zero window, a segment acknowledging something else, a
    // bad checksum: dropped, nothing sent.
    assert_eq!(run(&mut f, fast, &c(1001, cookie + 1, ACK, 800, b"x"), 0).0, Verdict::Drop(DropReason::SynproxyWait));
    assert_eq!(run(&mut f, fast, &c(1000, cookie + 2, ACK, 800, &[]), 0).0, Verdict::Drop(DropReason::SynproxyWait));
    let mut bad = c(1000, cookie + 1, ACK, 800, &[]);
    bad[50] ^= 0x55;
    assert_eq!(run(&mut f, fast, &bad, 0).0, Verdict::Drop(DropReason::TcpBadChecksum));
    assert_eq!(f.stats().synproxy.syns_resent.get(), 2);
    assert_eq!(f.sessions_v4(), 1, "one session all along");
    // The server answers the repeat: the client's window opens.
    let synack = server_synack(&first, 700);
    let (v, _) = run(&mut f, fast, &synack, 1);
    assert_eq!(v, Verdict::Tx(1));
    let x = extra(&mut f);
    assert_eq!(x.len(), 1, "one window update");
    assert_eq!(seen(&x[0].1).ack, 1001);
    // From now on a probe is the client's, forwarded (no SYN).
    let (v, b) = run(&mut f, fast, &c(1000, cookie + 1, ACK, 900, &[]), 0);
    assert_eq!(v, Verdict::Tx(1));
    let fwd_probe = seen(b.data());
    assert_eq!((fwd_probe.seq, fwd_probe.ack, fwd_probe.flags), (1000, 78, ACK));
    assert_eq!(f.stats().synproxy.syns_resent.get(), 2);
}

#[test]
fn a_lost_syn_to_the_real_server_is_sent_again_nat_and_full_nat() {
    for fwd in ["nat", "fullnat"] {
        for fast in [true, false] {
            a_lost_syn_to_the_real_server_is_sent_again(fwd, fast);
        }
    }
}

/// A client of a protocol where the server speaks first sends nothing
/// after its ACK, so no probe: the SYN proxy's timer sends the real
/// server's SYN again a second later, then every second, five times at
/// most, and stops once the server answered.
fn the_timer_sends_a_lost_syn_again(fwd: &str) {
    let mut f = spx_forwarder(fwd, "");
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let now0 = f.now;
    let open = |f: &mut Clocked, cport: u16| {
        let mut o = [0u8; tcpopt::HANDSHAKE_MAX];
        let n = tcpopt::write_handshake(&mut o, &HandshakeOptions { mss: 1460, wscale: Some(6), sack_perm: true, ts: Some((100, 0)) });
        let syn = seg(CLIENT_MAC, P0_MAC, client, vip, cport, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &o[..n], &[]);
        let (_, b) = run(f, true, &syn, 0);
        let cookie = seen(b.data()).seq;
        let ack = seg(
            CLIENT_MAC,
            P0_MAC,
            client,
            vip,
            cport,
            80,
            TcpFields { seq: 1001, ack: cookie + 1, flags: ACK, window: 502 },
            &ts(101, now0),
            &[],
        );
        let (v, b) = run(f, true, &ack, 0);
        assert_eq!(v, Verdict::Tx(1));
        seen(b.data())
    };
    let resend = |f: &mut Clocked, at: u32| {
        f.set_now(now0 + at);
        let n = f.f.resend_syns(f.now);
        let x = extra(f);
        assert_eq!(n, x.len());
        x
    };
    let first = open(&mut f, 40000);
    assert!(resend(&mut f, 999).is_empty(), "not before a second");
    for at in [1000, 2000] {
        let x = resend(&mut f, at);
        assert_eq!(x.len(), 1, "{fwd} at {at} ms");
        assert_eq!(x[0].0, 1, "to the real server's port");
        assert_eq!((ether::dst(&x[0].1), ether::src(&x[0].1)), (rs_mac(1), P1_MAC));
        let again = seen(&x[0].1);
        assert_eq!(
            (again.src, again.dst, again.seq, again.ack, again.flags, again.window, again.opts),
            (first.src, first.dst, first.seq, 0, SYN, first.window, first.opts),
            "{fwd}: the same SYN"
        );
    }
    // The server answers: no more SYNs for this one.
    let synack = server_synack(&first, 101);
    assert_eq!(run(&mut f, true, &synack, 1).0, Verdict::Tx(1));
    assert_eq!(extra(&mut f).len(), 1, "the window update");
    assert!(resend(&mut f, 3000).is_empty(), "{fwd}: answered, nothing more");
    // A server that never answers gets five repeats, no more.
    f.set_now(now0 + 10_000);
    open(&mut f, 40001);
    let sent: usize = (1..=8).map(|s| resend(&mut f, 10_000 + s * 1000).len()).sum();
    assert_eq!(sent, 5, "{fwd}");
    assert_eq!(f.stats().synproxy.syns_resent.get(), 7);
}

/// Beyond the resend ring's room, a handshake is still made (the client's
/// probes repeat its SYN) but the timer cannot follow it, which is counted.
#[test]
fn handshakes_beyond_the_resend_ring_are_counted() {
    let mut f = spx_forwarder_of("nat", "", 16_384);
    let (vip, client) = (ip(VIP), ip(CLIENT));
    let extra_ones = 3u32;
    let total = u32::try_from(SYNPROXY_RESEND_RING).unwrap() + extra_ones;
    for i in 0..total {
        let (c, cport) = (Ipv4(client.0 + i / 4096), 40000 + u16::try_from(i % 4096).unwrap());
        let syn = seg(CLIENT_MAC, P0_MAC, c, vip, cport, 80, TcpFields { seq: 1000, ack: 0, flags: SYN, window: 64240 }, &[], &[]);
        let (_, b) = run(&mut f, true, &syn, 0);
        let cookie = seen(b.data()).seq;
        let ack = seg(CLIENT_MAC, P0_MAC, c, vip, cport, 80, TcpFields { seq: 1001, ack: cookie + 1, flags: ACK, window: 502 }, &[], &[]);
        assert_eq!(run(&mut f, true, &ack, 0).0, Verdict::Tx(1), "handshake {i}");
    }
    let s = &f.stats().synproxy;
    assert_eq!(s.cookies_valid.get(), u64::from(total));
    assert_eq!(s.resend_ring_full.get(), u64::from(extra_ones));
}

#[test]
fn the_timer_sends_a_lost_syn_again_nat_and_full_nat() {
    for fwd in ["nat", "fullnat"] {
        the_timer_sends_a_lost_syn_again(fwd);
    }
}
