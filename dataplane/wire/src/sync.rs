//! The session sync protocol between the balancers of a pair.
//!
//! Modelled on IPVS's sync protocol version 1: one UDP datagram holds a
//! header and a batch of records, one per session change. rvs's records
//! carry what a backup needs to forward a flow's next packet exactly as
//! the master would: the client's and the virtual address and port, the
//! real server (by address and port: slots differ between balancers), the
//! full-NAT local address and port, the connection state, the remaining
//! timeout, and the MAC the client's packets came from. A backup rebuilds
//! a persistent service's template from the sessions it receives.
//!
//! ```text
//! header (16 bytes): version=1 | kind | sync id | flags | count:u16 | size:u16 | sequence:u64
//! record:            op | family (4|6) | proto | state | mode | flags | client port index | 0
//!                    cport:u16 | vport:u16 | rport:u16 | lport:u16 | timeout ms:u32 | client MAC (6) | 0 0
//!                    client | vip | real server | local   (4 or 16 bytes each)
//! trailer:           HMAC-SHA256 (32 bytes) over header and records, when flags has AUTH
//! ```
//!
//! Kinds: records, a bulk request (a joining node asks for the whole
//! table), and the end of a bulk transfer. The sequence number only grows
//! (nanoseconds at the sender), so a receiver with the key refuses
//! replays. Integers are big-endian.
use crate::addr::{Family, Ipv4, Ipv6};
use crate::{be16, put16};

/// Protocol version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Fixed part of a record, before the addresses.
pub const RECORD_FIXED: usize = 28;
/// An IPv4 record.
pub const RECORD_V4: usize = RECORD_FIXED + 4 * 4;
/// An IPv6 record.
pub const RECORD_V6: usize = RECORD_FIXED + 4 * 16;
/// The authentication tag.
pub const TAG_LEN: usize = 32;
/// Flag: the message ends with a tag.
pub const FLAG_AUTH: u8 = 0x01;
/// The most a datagram carries (fits a 1500-byte MTU with IPv6 and UDP
/// headers).
pub const MAX_MESSAGE: usize = 1400;
/// IPVS's sync port, used by default.
pub const DEFAULT_PORT: u16 = 8848;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Session records.
    Records = 1,
    /// A node that joins asks the master for its whole table.
    BulkRequest = 2,
    /// The master has sent its whole table.
    BulkEnd = 3,
}

/// What a record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A session is new or changed state: install or update it.
    Upsert = 1,
    /// A session ended.
    Delete = 2,
}

/// One session change, as it travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Record<A: Family> {
    /// What to do.
    pub op: u8,
    /// IP protocol.
    pub proto: u8,
    /// Connection state (the core's numbering).
    pub state: u8,
    /// Forwarding mode (the core's numbering).
    pub mode: u8,
    /// Session flags (the core's bits).
    pub flags: u8,
    /// Index of the port the client's packets arrive on.
    pub client_port: u8,
    /// Client address.
    pub client: A,
    /// Virtual address.
    pub vip: A,
    /// Real server.
    pub rs: A,
    /// Full-NAT local address.
    pub local: A,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub rport: u16,
    /// Full-NAT local port.
    pub lport: u16,
    /// Milliseconds the session has left.
    pub timeout_ms: u32,
    /// MAC the client's packets came from.
    pub client_mac: [u8; 6],
}

impl<A: Family> Record<A> {
    /// The same record with its addresses converted by `f` (None if one
    /// does not convert).
    pub fn map<B: Family>(self, f: impl Fn(A) -> Option<B>) -> Option<Record<B>> {
        Some(Record {
            op: self.op,
            proto: self.proto,
            state: self.state,
            mode: self.mode,
            flags: self.flags,
            client_port: self.client_port,
            client: f(self.client)?,
            vip: f(self.vip)?,
            rs: f(self.rs)?,
            local: f(self.local)?,
            cport: self.cport,
            vport: self.vport,
            rport: self.rport,
            lport: self.lport,
            timeout_ms: self.timeout_ms,
            client_mac: self.client_mac,
        })
    }
}

/// A record of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyRecord {
    /// IPv4.
    V4(Record<Ipv4>),
    /// IPv6.
    V6(Record<Ipv6>),
}

impl AnyRecord {
    /// Its encoded length.
    pub fn len(&self) -> usize {
        match self {
            AnyRecord::V4(_) => RECORD_V4,
            AnyRecord::V6(_) => RECORD_V6,
        }
    }

    /// Never empty (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Why bytes are not a sync message rvs accepts (each counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SyncError {
    /// Shorter than its header, its size field or its records.
    #[error("truncated")]
    Truncated,
    /// Not version 1.
    #[error("unknown version")]
    Version,
    /// An unknown message kind or record op or family.
    #[error("unknown kind, op or family")]
    Unknown,
    /// The size field disagrees with the datagram.
    #[error("size field disagrees with the datagram")]
    Size,
    /// Another sync id.
    #[error("another sync id")]
    SyncId,
    /// Authentication required and missing, or a tag that does not verify.
    #[error("authentication missing or wrong")]
    Auth,
    /// A sequence number not above the last one accepted (a replay).
    #[error("replayed")]
    Replay,
}

impl SyncError {
    /// Every reason, in counter order.
    pub const ALL: [SyncError; 7] = [
        SyncError::Truncated,
        SyncError::Version,
        SyncError::Unknown,
        SyncError::Size,
        SyncError::SyncId,
        SyncError::Auth,
        SyncError::Replay,
    ];

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            SyncError::Truncated => "truncated",
            SyncError::Version => "bad_version",
            SyncError::Unknown => "unknown_kind",
            SyncError::Size => "bad_size",
            SyncError::SyncId => "other_sync_id",
            SyncError::Auth => "bad_auth",
            SyncError::Replay => "replay",
        }
    }
}

/// A parsed message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What it is.
    pub kind: Kind,
    /// The sender's sync id.
    pub sync_id: u8,
    /// Flags ([`FLAG_AUTH`]).
    pub flags: u8,
    /// Records that follow.
    pub count: u16,
    /// Sequence number.
    pub seq: u64,
}

/// A parsed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// Its records.
    pub records: Vec<AnyRecord>,
    /// The tag, when the message has one, and the length it covers.
    pub tag: Option<([u8; TAG_LEN], usize)>,
}

fn put_record<A: Family>(out: &mut Vec<u8>, family: u8, r: &Record<A>) {
    let at = out.len();
    out.resize(at + RECORD_FIXED + 4 * A::LEN, 0);
    let b = &mut out[at..];
    b[..8].copy_from_slice(&[r.op, family, r.proto, r.state, r.mode, r.flags, r.client_port, 0]);
    put16(b, 8, r.cport);
    put16(b, 10, r.vport);
    put16(b, 12, r.rport);
    put16(b, 14, r.lport);
    b[16..20].copy_from_slice(&r.timeout_ms.to_be_bytes());
    b[20..26].copy_from_slice(&r.client_mac);
    for (i, a) in [r.client, r.vip, r.rs, r.local].into_iter().enumerate() {
        a.write(&mut b[RECORD_FIXED + i * A::LEN..]);
    }
}

fn get_record<A: Family>(b: &[u8]) -> Option<Record<A>> {
    let addr = |i: usize| A::read(b.get(RECORD_FIXED + i * A::LEN..)?);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(b.get(20..26)?);
    let t: &[u8; 4] = b.get(16..20)?.try_into().ok()?;
    Some(Record {
        op: b[0],
        proto: b[2],
        state: b[3],
        mode: b[4],
        flags: b[5],
        client_port: b[6],
        cport: be16(b, 8),
        vport: be16(b, 10),
        rport: be16(b, 12),
        lport: be16(b, 14),
        timeout_ms: u32::from_be_bytes(*t),
        client_mac: mac,
        client: addr(0)?,
        vip: addr(1)?,
        rs: addr(2)?,
        local: addr(3)?,
    })
}

/// Computes the authentication tag of the bytes it is given.
pub type Signer<'a> = dyn Fn(&[u8]) -> [u8; TAG_LEN] + 'a;

/// Encodes a message of `kind` with `records` (which must fit
/// [`MAX_MESSAGE`]; see [`Batcher`]); with `tag`, the tag it computes over
/// the header and records is appended and [`FLAG_AUTH`] set.
pub fn encode(kind: Kind, sync_id: u8, seq: u64, records: &[AnyRecord], tag: Option<&Signer<'_>>) -> Vec<u8> {
    let mut m = vec![0u8; HEADER_LEN];
    m[0] = VERSION;
    m[1] = kind as u8;
    m[2] = sync_id;
    m[3] = if tag.is_some() { FLAG_AUTH } else { 0 };
    put16(&mut m, 4, crate::num::sat_u16(records.len()));
    m[8..16].copy_from_slice(&seq.to_be_bytes());
    for r in records {
        match r {
            AnyRecord::V4(r) => put_record(&mut m, 4, r),
            AnyRecord::V6(r) => put_record(&mut m, 6, r),
        }
    }
    let size = m.len() + if tag.is_some() { TAG_LEN } else { 0 };
    put16(&mut m, 6, crate::num::sat_u16(size));
    if let Some(t) = tag {
        let tag = t(&m);
        m.extend_from_slice(&tag);
    }
    m
}

/// Parses a datagram (not yet authenticated: see [`Message::tag`]).
pub fn parse(d: &[u8]) -> Result<Message, SyncError> {
    let h: &[u8; HEADER_LEN] = d.first_chunk().ok_or(SyncError::Truncated)?;
    if h[0] != VERSION {
        return Err(SyncError::Version);
    }
    let kind = match h[1] {
        1 => Kind::Records,
        2 => Kind::BulkRequest,
        3 => Kind::BulkEnd,
        _ => return Err(SyncError::Unknown),
    };
    let size = usize::from(be16(h, 6));
    if size != d.len() {
        return Err(SyncError::Size);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&h[8..16]);
    let header = Header { kind, sync_id: h[2], flags: h[3], count: be16(h, 4), seq: u64::from_be_bytes(seq) };
    let body_end = if header.flags & FLAG_AUTH != 0 { d.len().checked_sub(TAG_LEN).ok_or(SyncError::Truncated)? } else { d.len() };
    if body_end < HEADER_LEN {
        return Err(SyncError::Truncated);
    }
    let mut records = Vec::with_capacity(usize::from(header.count).min(64));
    let mut at = HEADER_LEN;
    for _ in 0..header.count {
        let rec = d.get(at..body_end).ok_or(SyncError::Truncated)?;
        let (&op, &family) = (rec.first().ok_or(SyncError::Truncated)?, rec.get(1).ok_or(SyncError::Truncated)?);
        if !(1..=2).contains(&op) {
            return Err(SyncError::Unknown);
        }
        let (r, len) = match family {
            4 => (get_record::<Ipv4>(rec).map(AnyRecord::V4), RECORD_V4),
            6 => (get_record::<Ipv6>(rec).map(AnyRecord::V6), RECORD_V6),
            _ => return Err(SyncError::Unknown),
        };
        records.push(r.ok_or(SyncError::Truncated)?);
        at += len;
    }
    if at != body_end {
        return Err(SyncError::Size);
    }
    let tag = (header.flags & FLAG_AUTH != 0).then(|| {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&d[body_end..]);
        (t, body_end)
    });
    Ok(Message { header, records, tag })
}

/// Cuts a stream of records into messages of at most [`MAX_MESSAGE`].
#[derive(Debug, Default)]
pub struct Batcher {
    pending: Vec<AnyRecord>,
    bytes: usize,
}

impl Batcher {
    /// Adds a record; returns a full batch to send first, if adding it
    /// would overflow the current one.
    pub fn push(&mut self, r: AnyRecord) -> Option<Vec<AnyRecord>> {
        let full = (self.bytes + r.len() + HEADER_LEN + TAG_LEN > MAX_MESSAGE).then(|| self.take());
        self.bytes += r.len();
        self.pending.push(r);
        full
    }

    /// The records gathered so far.
    pub fn take(&mut self) -> Vec<AnyRecord> {
        self.bytes = 0;
        std::mem::take(&mut self.pending)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec4(i: u32) -> AnyRecord {
        AnyRecord::V4(Record {
            op: Op::Upsert as u8,
            proto: 6,
            state: 2,
            mode: 1,
            flags: 1,
            client_port: 0,
            client: Ipv4(0xc612_0000 | i),
            vip: Ipv4(0xc612_0064),
            rs: Ipv4(0xc612_010b),
            local: Ipv4(0),
            cport: 40000,
            vport: 80,
            rport: 8080,
            lport: 0,
            timeout_ms: 900_000,
            client_mac: [2, 0, 0, 0, 0, 9],
        })
    }

    fn rec6(i: u128) -> AnyRecord {
        AnyRecord::V6(Record { client: Ipv6(0x2001_0db8 << 96 | i), vip: Ipv6(0x2001_0db8 << 96 | 0x100), op: 2, ..Default::default() })
    }

    #[test]
    fn round_trip_with_and_without_a_tag() {
        let recs = vec![rec4(1), rec6(2), rec4(3)];
        let m = encode(Kind::Records, 7, 99, &recs, None);
        assert_eq!(m.len(), HEADER_LEN + 2 * RECORD_V4 + RECORD_V6);
        let p = parse(&m).unwrap();
        assert_eq!((p.header.kind, p.header.sync_id, p.header.count, p.header.seq), (Kind::Records, 7, 3, 99));
        assert_eq!(p.records, recs);
        assert_eq!(p.tag, None);
        let tag = |b: &[u8]| [u8::try_from(b.len() % 256).unwrap(); TAG_LEN];
        let m = encode(Kind::BulkEnd, 7, 100, &[], Some(&tag));
        let p = parse(&m).unwrap();
        assert_eq!(p.tag, Some((tag(&m[..HEADER_LEN]), HEADER_LEN)));
    }

    #[test]
    fn malformations_each_have_a_reason() {
        let m = encode(Kind::Records, 1, 1, &[rec4(1)], None);
        assert_eq!(parse(&m[..10]), Err(SyncError::Truncated));
        assert_eq!(parse(&m[..m.len() - 1]), Err(SyncError::Size));
        let mut b = m.clone();
        b[0] = 2;
        assert_eq!(parse(&b), Err(SyncError::Version));
        let mut b = m.clone();
        b[1] = 9;
        assert_eq!(parse(&b), Err(SyncError::Unknown));
        let mut b = m.clone();
        b[HEADER_LEN + 1] = 5;
        assert_eq!(parse(&b), Err(SyncError::Unknown));
        let mut b = m.clone();
        b[5] = 2; // two records announced, one present
        assert_eq!(parse(&b), Err(SyncError::Truncated));
    }

    #[test]
    fn batches_fit_a_datagram() {
        let mut b = Batcher::default();
        let mut sent = Vec::new();
        for i in 0..100 {
            if let Some(full) = b.push(if i % 3 == 0 { rec6(u128::from(i)) } else { rec4(i) }) {
                sent.push(full);
            }
        }
        sent.push(b.take());
        assert_eq!(sent.iter().map(Vec::len).sum::<usize>(), 100);
        for s in &sent {
            assert!(encode(Kind::Records, 1, 1, s, Some(&|_: &[u8]| [0; TAG_LEN])).len() <= MAX_MESSAGE);
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(d in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&d);
        }
    }
}
