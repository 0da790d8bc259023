//! The SYN proxy (services with `synproxy = true`, NAT and full NAT): rvs
//! completes every client's handshake itself with a SYN cookie
//! ([`crate::synproxy`]) and only then opens the connection to a real
//! server, splicing the two for the rest of the connection.
//!
//! ```text
//! client                      rvs                         real server
//!   SYN  ------------------->  no state: SYN-ACK, seq = cookie, window 0
//!   <------------------- SYN-ACK
//!   ACK  ------------------->  cookie valid: session, SYN (client's ISN
//!                              and options) ------------------------->
//!                                            <----------------- SYN-ACK
//!                              delta = server ISN - cookie
//!   <---- ACK (window update)  ACK --------------------------------->
//!   data <=========================================================> data
//!          client -> server: ack, SACK blocks += delta, TSecr -= ts delta
//!          server -> client: seq -= delta, TSval += ts delta, window rescaled
//! ```
//!
//! A SYN costs a SYN-ACK and nothing else, so a spoofed SYN flood cannot
//! fill the session table; only a client that answers from its own address
//! gets a session. The SYN-ACK announces a zero window, as netfilter's
//! SYNPROXY does, so the client sends nothing until the real server has
//! answered; the window update that opens it is the one frame this stage
//! originates ([`super::state::Extra`]). A client whose ACK was lost sends
//! zero-window probes (sequence number one less); a probe with a valid
//! cookie opens the connection just as well. While the real server's handshake
//! is under way, the client's segments are dropped (`synproxy_wait`),
//! except its window probes, each of which sends the real server its SYN
//! again: a SYN rvs sent is retried by no one else (a real server whose
//! listen queue is full drops SYNs without a word). A client of a protocol
//! where the server speaks first never probes, so a timer
//! ([`super::Forwarder::resend_syns`]) also repeats the SYN once a second,
//! five times at most, while the server has not answered; an
//! ACK without a valid cookie is answered with a reset, or dropped, as the
//! service's `synproxy_invalid_ack` says (`synproxy_bad_cookie`).
//!
//! Translation is part of [`super::xmit::commit`], so the fast path and
//! the general path splice alike. Spliced sessions are not synced to a
//! backup (the sync record has no room for the deltas).
use super::reset::reset_to_sender;
use super::state::{Ctx, Pkt, St};
use super::xmit::forward;
use super::Verdict;
use crate::conn::State;
use crate::drop::DropReason;
use crate::session::{Dir, Session, SessionFlags, Splice};
use crate::synproxy::ClientOptions;
use crate::table::ServiceView;
use config::InvalidAck;
use rvs_wire::l4::{self, TcpFields};
use rvs_wire::tcp::{flags, TcpHeader};
use rvs_wire::tcpopt::{self, HandshakeOptions, Shift, TcpOptions};
use rvs_wire::{ether, Family, Ipv4, Ipv6, MacAddr, PacketBuf, VecBuf};

/// The window scale rvs announces to clients that scale (what Linux picks
/// for its default buffers); a real server's own scale is translated to it.
pub(super) const PROXY_WSCALE: u8 = 7;

/// Window scale value meaning "none" in [`Splice::ws`].
const NO_WS: u8 = 15;

/// A TCP segment of no session to a SYN-proxied service: a SYN is answered
/// with a cookie, an ACK with a valid cookie opens the session.
pub(super) fn no_session<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    p: &Pkt<A>,
    svc: &ServiceView,
    hf: u64,
    invalid: InvalidAck,
) -> Result<Verdict, DropReason> {
    let t = TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    if t.flags_invalid() {
        return Err(DropReason::TcpBadFlags);
    }
    super::admit::check_new(buf, p, svc)?;
    if t.is_syn() {
        return answer_syn(cx, buf, in_port, p, &t);
    }
    if t.flags & (flags::SYN | flags::ACK | flags::RST) != flags::ACK {
        return Err(DropReason::TcpNoSession);
    }
    let cookie = t.ack.wrapping_sub(1);
    let tuple = p.tuple();
    // The client's ACK carries ISN + 1. If that ACK was lost, the client,
    // facing the zero window, sends window probes instead, whose sequence
    // number is one less (the ISN itself, as Linux's persist timer does):
    // a probe opens the connection as the lost ACK would have.
    let probe = p.end == p.l4 + t.header_len;
    let found = [t.seq.wrapping_sub(1), t.seq]
        .into_iter()
        .take(if probe { 2 } else { 1 })
        .find_map(|isn| cx.cookie.check(&tuple, isn, cookie, cx.now).map(|co| (isn, co)));
    let Some((isn, co)) = found else {
        cx.stats.synproxy.cookies_invalid.inc();
        return match invalid {
            InvalidAck::Reset => reset_to_sender::<A, B>(cx, buf, in_port, p, DropReason::SynproxyBadCookie),
            InvalidAck::Drop => Err(DropReason::SynproxyBadCookie),
        };
    };
    cx.stats.synproxy.cookies_valid.inc();
    let seg = &buf.data()[p.l4..p.end];
    let o = TcpOptions::parse(seg, t.header_len);
    let win = u16::from_be_bytes([seg[14], seg[15]]);
    let ts = o.ts;
    let splice = Splice {
        seq: cookie,
        ts: ts.map_or(0, |(_, ecr)| ecr),
        isn1: isn.wrapping_add(1),
        win,
        ws: (co.wscale.unwrap_or(NO_WS) << 4) | NO_WS,
    };
    let mut fl = SessionFlags::SYNPROXY | SessionFlags::SPLICE_WAIT;
    if ts.is_some() {
        fl |= SessionFlags::SPLICE_TS;
    }
    let idx = super::admit::open(cx, st, buf, in_port, p, svc, hf, State::SynRecv, fl, splice)?;
    let v = syn_to_server(cx, st, buf, in_port, idx, p, isn, co, ts, win)?;
    let timed = st.resends.push(Pending {
        idx,
        cookie,
        tsval: ts.map_or(0, |(v, _)| v),
        due: cx.now.wrapping_add(RESEND_AFTER_MS),
        tries: 0,
        v6: A::V6,
    });
    if !timed {
        cx.stats.synproxy.resend_ring_full.inc();
    }
    Ok(v)
}

/// Rewrites the client's segment into the SYN it would have sent the real
/// server (its ISN, the options its cookie carries, its timestamp and
/// window), and forwards it.
#[expect(clippy::too_many_arguments, reason = "the SYN's fields, as both callers have them")]
fn syn_to_server<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    p: &Pkt<A>,
    isn: u32,
    co: ClientOptions,
    ts: Option<(u32, u32)>,
    win: u16,
) -> Result<Verdict, DropReason> {
    let syn = HandshakeOptions { mss: co.mss, wscale: co.wscale, sack_perm: co.sack_perm, ts: ts.map(|(v, _)| (v, 0)) };
    let mut opts = [0u8; tcpopt::HANDSHAKE_MAX];
    let n = tcpopt::write_handshake(&mut opts, &syn);
    let window = u16::try_from(u32::from(win) << co.wscale.unwrap_or(0)).unwrap_or(u16::MAX);
    let f = TcpFields { seq: isn, ack: 0, flags: flags::SYN, window };
    let p2 = write_client_segment(buf, p.src, p.dst, p.sport, p.dport, f, &opts[..n])?;
    forward(cx, st, buf, in_port, idx, Dir::Forward, &p2)
}

/// A client's segment while the real server's handshake is under way. A
/// bare ACK of the cookie (the client's window probe, or its ACK again)
/// says the client still waits, so the real server has not answered yet:
/// its SYN may have been lost (a real server whose listen queue is full
/// drops SYNs without a word, counting on the sender to try again), so it
/// is sent again, rebuilt from the session and the cookie. The client's
/// probes back off (0.2 s, 0.4 s, ...), and so do the repeats; each costs
/// a probe from a client that proved its address, as a new connection
/// does. Anything else is dropped (`synproxy_wait`).
fn resend_syn<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    p: &Pkt<A>,
    s: &Session<A>,
) -> Result<Verdict, DropReason> {
    let t = TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    let cookie = s.splice.seq;
    let bare = p.end == p.l4 + t.header_len;
    if !bare || t.flags & (flags::SYN | flags::ACK | flags::RST | flags::FIN) != flags::ACK || t.ack != cookie.wrapping_add(1) {
        return Err(DropReason::SynproxyWait);
    }
    if super::admit::l4_checksum_bad(buf, p) {
        return Err(DropReason::TcpBadChecksum);
    }
    let isn = s.splice.isn1.wrapping_sub(1);
    // The cookie is good for 65 to 131 s, the half-open session for
    // `tcp_syn` (120 s by default): past the cookie, the client waits on.
    let Some(co) = cx.cookie.check(&p.tuple(), isn, cookie, cx.now) else { return Err(DropReason::SynproxyWait) };
    let seg = &buf.data()[p.l4..p.end];
    let (ts, win) = (TcpOptions::parse(seg, t.header_len).ts, u16::from_be_bytes([seg[14], seg[15]]));
    cx.stats.synproxy.syns_resent.inc();
    syn_to_server(cx, st, buf, in_port, idx, p, isn, co, ts, win)
}

/// How long the SYN proxy waits for a real server's SYN-ACK before it
/// sends the SYN again by itself.
pub(super) const RESEND_AFTER_MS: u32 = 1_000;

/// How many times at most the timer sends a real server's SYN again (once
/// a second: the client's own SYN retries give up no sooner).
pub(super) const RESEND_TRIES: u8 = 5;

/// Handshakes with real servers the timer follows at once, per core (one
/// second's worth of new proxied connections at 8,192 a second; beyond,
/// only the client's probes repeat a lost SYN).
pub(super) const RESEND_RING: usize = 8_192;

/// A real server's handshake the SYN proxy started: the session, its
/// cookie (so a slot reused since is not taken for it), the client's
/// timestamp for the SYN, and when to look again.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Pending {
    idx: u32,
    cookie: u32,
    tsval: u32,
    due: u32,
    tries: u8,
    v6: bool,
}

/// The handshakes in flight, oldest first (every entry waits the same
/// time, so the first due is at the head), in a ring allocated once.
#[derive(Debug)]
pub(super) struct Resends {
    ring: Box<[Pending]>,
    head: usize,
    len: usize,
}

impl Resends {
    pub(super) fn new() -> Resends {
        Resends { ring: vec![Pending::default(); RESEND_RING].into_boxed_slice(), head: 0, len: 0 }
    }

    /// Follows `p`; false when the ring is full.
    fn push(&mut self, p: Pending) -> bool {
        if self.len == self.ring.len() {
            return false;
        }
        let at = (self.head + self.len) % self.ring.len();
        self.ring[at] = p;
        self.len += 1;
        true
    }

    /// The oldest entry, when it is due at `now`.
    fn pop_due(&mut self, now: u32) -> Option<Pending> {
        let p = *self.ring.get(self.head).filter(|_| self.len > 0)?;
        #[expect(clippy::cast_possible_wrap, reason = "a wrapping comparison of ticks")]
        let due = now.wrapping_sub(p.due) as i32 >= 0;
        if !due {
            return None;
        }
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        Some(p)
    }
}

impl super::Forwarder {
    /// The SYN proxy's timer (call about every millisecond, then
    /// [`super::Forwarder::drain_extra`]): every real server that has not
    /// answered the SYN the proxy sent a second ago gets it again, five
    /// times at most. The client's probes repeat it as well, but a client
    /// of a protocol where the server speaks first (SMTP, FTP, MySQL) has
    /// nothing to send and never probes. Returns how many SYNs it sent
    /// (at most one burst's worth of extra frames per call).
    pub fn resend_syns(&mut self, now: u32) -> usize {
        let cx = ctx!(self, now, None);
        let (st, scratch) = (&mut self.st, &mut self.scratch);
        let mut sent = 0;
        while st.extra.slot().is_some() {
            let Some(e) = st.resends.pop_due(now) else { break };
            let again = if e.v6 { resend_due::<Ipv6>(&cx, st, scratch, e) } else { resend_due::<Ipv4>(&cx, st, scratch, e) };
            let Some(ok) = again else { continue };
            sent += usize::from(ok);
            if e.tries + 1 < RESEND_TRIES {
                st.resends.push(Pending { due: now.wrapping_add(RESEND_AFTER_MS), tries: e.tries + 1, ..e });
            }
        }
        sent
    }
}

/// Sends the SYN of handshake `e` again, into an extra frame: None when
/// the handshake is over (answered, expired, or the slot reused), else
/// whether the SYN left (the real server's MAC may be unresolved).
fn resend_due<A: Family>(cx: &Ctx<'_>, st: &mut St, scratch: &mut VecBuf, e: Pending) -> Option<bool> {
    let table = st.sessions.get::<A>();
    if e.idx as usize >= table.capacity() {
        return None;
    }
    let s = *table.get(e.idx);
    let waiting = s.state == State::SynRecv && s.flags.contains(SessionFlags::SPLICE_WAIT) && s.splice.seq == e.cookie;
    if !waiting || s.expired(cx.now) {
        return None;
    }
    let isn = s.splice.isn1.wrapping_sub(1);
    let co = cx.cookie.check(&s.forward_key(), isn, e.cookie, cx.now)?;
    let port = cx.snap.port(s.client_port)?;
    let mut eth = [0u8; ether::HEADER_LEN];
    eth[..6].copy_from_slice(&port.mac.0);
    eth[6..12].copy_from_slice(&s.client_mac);
    scratch.reset(&eth);
    let p = Pkt { l4: 0, end: 0, src: s.client, dst: s.vip, proto: rvs_wire::ip::proto::TCP, sport: s.cport, dport: s.vport, tcp_flags: 0 };
    let ts = s.flags.contains(SessionFlags::SPLICE_TS).then_some((e.tsval, 0));
    let Ok(Verdict::Tx(out)) = syn_to_server(cx, st, scratch, s.client_port, e.idx, &p, isn, co, ts, s.splice.win) else {
        return Some(false);
    };
    let frame = scratch.data();
    let slot = st.extra.slot()?;
    let n = frame.len().min(slot.len());
    slot[..n].copy_from_slice(&frame[..n]);
    st.extra.commit(out, n);
    cx.stats.synproxy.syns_resent.inc();
    Some(true)
}

/// Answers a SYN with a SYN-ACK from the VIP whose sequence number is the
/// cookie, in place.
fn answer_syn<A: Family, B: PacketBuf>(cx: &Ctx<'_>, buf: &mut B, in_port: u8, p: &Pkt<A>, t: &TcpHeader) -> Result<Verdict, DropReason> {
    let port = cx.snap.port(in_port).ok_or(DropReason::NoRoute)?;
    let o = TcpOptions::parse(&buf.data()[p.l4..p.end], t.header_len);
    let co = ClientOptions::of_syn(o.mss, o.wscale, o.sack_perm);
    let cookie = cx.cookie.make(&p.tuple(), t.seq, co, cx.now);
    let hdr = if A::V6 { 60 } else { 40 };
    let mss = port.mtu.saturating_sub(hdr).max(536);
    let ours = HandshakeOptions { mss, wscale: o.wscale.map(|_| PROXY_WSCALE), sack_perm: o.sack_perm, ts: o.ts.map(|(v, _)| (cx.now, v)) };
    let mut opts = [0u8; tcpopt::HANDSHAKE_MAX];
    let n = tcpopt::write_handshake(&mut opts, &ours);
    let peer = ether::src(buf.data());
    let f = TcpFields { seq: cookie, ack: t.seq.wrapping_add(1), flags: flags::SYN | flags::ACK, window: 0 };
    fit(buf, l4::tcp_frame_len::<A>(n))?;
    let len = l4::write_tcp(buf.data_mut(), peer, port.mac, (p.dst, p.dport), (p.src, p.sport), f, &opts[..n]);
    buf.truncate(len);
    cx.stats.synproxy.syns.inc();
    Ok(Verdict::Answer(in_port))
}

/// A packet of a spliced session: `Some` when this stage handles it, None
/// when it takes the ordinary path (which translates it).
pub(super) fn on_session<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    dir: Dir,
    p: &Pkt<A>,
    s: &Session<A>,
) -> Option<Result<Verdict, DropReason>> {
    let syn_ack = p.tcp_flags & (flags::SYN | flags::ACK) == flags::SYN | flags::ACK;
    if !s.flags.contains(SessionFlags::SPLICE_WAIT) {
        // The real server repeats its SYN-ACK: our ACK was lost.
        return (dir == Dir::Reply && syn_ack).then(|| ack_server(cx, st, buf, in_port, idx, p, false));
    }
    if dir == Dir::Forward {
        return Some(resend_syn(cx, st, buf, in_port, idx, p, s));
    }
    if super::admit::l4_checksum_bad(buf, p) {
        return Some(Err(DropReason::TcpBadChecksum));
    }
    let Ok(t) = TcpHeader::parse(&buf.data()[p.l4..p.end]) else { return Some(Err(DropReason::TcpTruncated)) };
    if syn_ack && t.ack == s.splice.isn1 {
        return Some(ack_server(cx, st, buf, in_port, idx, p, true));
    }
    if t.flags & flags::RST != 0 {
        // The real server refused: the client's reset carries the sequence
        // number it expects (cookie + 1), and the session ends as any does.
        let e = st.sessions.get_mut::<A>().get_mut(idx);
        e.splice.seq = t.seq.wrapping_sub(e.splice.seq.wrapping_add(1));
        e.flags.remove(SessionFlags::SPLICE_WAIT);
        return None;
    }
    Some(Err(DropReason::SynproxyWait))
}

/// The real server's SYN-ACK: (the first time) the deltas between the two
/// connections, then the ACK that completes its handshake, in place, and
/// (the first time) the window update that lets the client send.
fn ack_server<A: Family, B: PacketBuf>(
    cx: &Ctx<'_>,
    st: &mut St,
    buf: &mut B,
    in_port: u8,
    idx: u32,
    p: &Pkt<A>,
    first: bool,
) -> Result<Verdict, DropReason> {
    let t = TcpHeader::parse(&buf.data()[p.l4..p.end])?;
    let seg = &buf.data()[p.l4..p.end];
    let o = TcpOptions::parse(seg, t.header_len);
    let server_win = u16::from_be_bytes([seg[14], seg[15]]);
    let e = st.sessions.get_mut::<A>().get_mut(idx);
    if first {
        let cookie = e.splice.seq;
        e.splice.seq = t.seq.wrapping_sub(cookie);
        match o.ts {
            Some((v, _)) => e.splice.ts = e.splice.ts.wrapping_sub(v),
            None => e.flags.remove(SessionFlags::SPLICE_TS),
        }
        let client_ws = e.splice.ws >> 4;
        // Scaling is on only when both sides announced it.
        let server_ws = if client_ws == NO_WS { NO_WS } else { o.wscale.unwrap_or(NO_WS) };
        e.splice.ws = (client_ws << 4) | server_ws;
        e.flags.remove(SessionFlags::SPLICE_WAIT);
    }
    let s = *e;
    let cookie = t.seq.wrapping_sub(s.splice.seq);
    let ts_on = s.flags.contains(SessionFlags::SPLICE_TS);
    let mut opts = [0u8; 12];
    let (client_tsval, server_tsval) = o.ts.map_or((0, 0), |(v, e)| (e, v));
    tcpopt::write_timestamps(&mut opts, client_tsval, server_tsval.wrapping_add(s.splice.ts));
    let n = if ts_on { 12 } else { 0 };
    if first {
        // The client may send now: the real server's window, as the client
        // will read it (scaled by what rvs announced).
        let shift = if s.splice.ws >> 4 == NO_WS { 0 } else { PROXY_WSCALE };
        let window = u16::try_from(u32::from(server_win) >> shift).unwrap_or(u16::MAX).max(1);
        let f = TcpFields { seq: cookie.wrapping_add(1), ack: s.splice.isn1, flags: flags::ACK, window };
        let mut to_client = [0u8; 12];
        tcpopt::write_timestamps(&mut to_client, server_tsval.wrapping_add(s.splice.ts), client_tsval);
        window_update(cx, st, &s, f, &to_client[..n]);
    }
    // The ACK, in the client's terms: forwarding translates it.
    let f = TcpFields { seq: s.splice.isn1, ack: cookie.wrapping_add(1), flags: flags::ACK, window: s.splice.win };
    let p2 = write_client_segment(buf, s.client, s.vip, s.cport, s.vport, f, &opts[..n])?;
    forward(cx, st, buf, in_port, idx, Dir::Forward, &p2)
}

/// Queues the window update to the client (a frame rvs originates).
fn window_update<A: Family>(cx: &Ctx<'_>, st: &mut St, s: &Session<A>, f: TcpFields, opts: &[u8]) {
    let Some(port) = cx.snap.port(s.client_port) else { return };
    let Some(frame) = st.extra.slot() else {
        cx.stats.synproxy.updates_lost.inc();
        return;
    };
    let len = l4::write_tcp(frame, MacAddr(s.client_mac), port.mac, (s.vip, s.vport), (s.client, s.cport), f, opts);
    st.extra.commit(s.client_port, len);
    cx.stats.synproxy.window_updates.inc();
}

/// Rewrites the frame into a segment `src -> dst` as the client would have
/// sent it to the VIP (forwarding then translates it like any client
/// packet), and returns its facts.
fn write_client_segment<A: Family, B: PacketBuf>(
    buf: &mut B,
    src: A,
    dst: A,
    sport: u16,
    dport: u16,
    f: TcpFields,
    opts: &[u8],
) -> Result<Pkt<A>, DropReason> {
    let len = l4::tcp_frame_len::<A>(opts.len());
    fit(buf, len)?;
    let (to, from) = (ether::dst(buf.data()), ether::src(buf.data()));
    l4::write_tcp(buf.data_mut(), to, from, (src, sport), (dst, dport), f, opts);
    buf.truncate(len);
    let l4 = l4::tcp_frame_len::<A>(0) - rvs_wire::tcp::MIN_HEADER_LEN;
    Ok(Pkt { l4, end: len, src, dst, proto: rvs_wire::ip::proto::TCP, sport, dport, tcp_flags: f.flags })
}

/// Makes the frame exactly `len` bytes long.
fn fit<B: PacketBuf>(buf: &mut B, len: usize) -> Result<(), DropReason> {
    if buf.len() < len && !buf.append(len - buf.len()) {
        return Err(DropReason::NoHeadroom);
    }
    buf.truncate(len);
    Ok(())
}

/// What translating a spliced session's packet travelling `dir` adds to
/// each field.
#[inline]
pub(super) fn shift_of<A: Family>(s: &Session<A>, dir: Dir) -> Shift {
    let sp = &s.splice;
    let ts = s.flags.contains(SessionFlags::SPLICE_TS);
    let (client_ws, server_ws) = (sp.ws >> 4, sp.ws & 0xf);
    match dir {
        Dir::Forward => Shift {
            ack: sp.seq,
            sack: sp.seq,
            tsecr: if ts { 0u32.wrapping_sub(sp.ts) } else { 0 },
            // A client that scales, a server that does not: unscale.
            window: (client_ws != NO_WS && server_ws == NO_WS).then_some((client_ws, 0)),
            ..Shift::default()
        },
        Dir::Reply => {
            let (from, to) = if client_ws == NO_WS { (0, 0) } else { (if server_ws == NO_WS { 0 } else { server_ws }, PROXY_WSCALE) };
            Shift {
                seq: 0u32.wrapping_sub(sp.seq),
                tsval: if ts { sp.ts } else { 0 },
                window: (from != to).then_some((from, to)),
                ..Shift::default()
            }
        }
    }
}
