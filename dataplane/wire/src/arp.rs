//! ARP for Ethernet/IPv4 (RFC 826): parsing, answering, and requests.
use super::{be16, ether, put16, MacAddr};
use crate::WireError;
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP payload.
pub const LEN: usize = 28;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A validated Ethernet/IPv4 ARP packet (the bytes after the Ethernet header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    /// Opcode (1 request, 2 reply).
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl Arp {
    /// Parses an ARP payload; only Ethernet (1) / IPv4 (0x0800) is accepted.
    pub fn parse(p: &[u8]) -> Result<Arp, WireError> {
        let Some(p) = p.get(..LEN) else { return Err(WireError::ArpMalformed) };
        if be16(p, 0) != 1 || be16(p, 2) != ether::ethertype::IPV4 || p[4] != 6 || p[5] != 4 {
            return Err(WireError::ArpMalformed);
        }
        let op = be16(p, 6);
        if op != OP_REQUEST && op != OP_REPLY {
            return Err(WireError::ArpMalformed);
        }
        Ok(Arp {
            op,
            sha: MacAddr([p[8], p[9], p[10], p[11], p[12], p[13]]),
            spa: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            tha: MacAddr([p[18], p[19], p[20], p[21], p[22], p[23]]),
            tpa: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        })
    }

    /// Writes this ARP payload into `p` (at least [`LEN`] bytes).
    pub fn write(&self, p: &mut [u8]) {
        put16(p, 0, 1);
        put16(p, 2, ether::ethertype::IPV4);
        p[4] = 6;
        p[5] = 4;
        put16(p, 6, self.op);
        p[8..14].copy_from_slice(&self.sha.0);
        p[14..18].copy_from_slice(&self.spa.octets());
        p[18..24].copy_from_slice(&self.tha.0);
        p[24..28].copy_from_slice(&self.tpa.octets());
    }
}

/// Turns the request in `frame` (Ethernet + ARP) into the reply "`tpa` is at
/// `ours`", in place. The frame keeps its length (Ethernet padding included).
pub fn answer_in_place(frame: &mut [u8], req: &Arp, ours: MacAddr) {
    ether::write_header(frame, req.sha, ours, ether::ethertype::ARP);
    let reply = Arp { op: OP_REPLY, sha: ours, spa: req.tpa, tha: req.sha, tpa: req.spa };
    reply.write(&mut frame[ether::HEADER_LEN..]);
}

/// Writes a broadcast (or unicast, to refresh) request for `target` into
/// `frame`, which must be at least 60 bytes; returns the frame length (60,
/// the Ethernet minimum without FCS, zero-padded).
pub fn write_request(frame: &mut [u8], ours: MacAddr, our_ip: Ipv4Addr, target: Ipv4Addr, dst: MacAddr) -> usize {
    frame[..60].fill(0);
    ether::write_header(frame, dst, ours, ether::ethertype::ARP);
    let req = Arp { op: OP_REQUEST, sha: ours, spa: our_ip, tha: MacAddr::ZERO, tpa: target };
    req.write(&mut frame[ether::HEADER_LEN..]);
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    // A request from 198.18.0.2 (02:00:00:00:00:02) for 198.18.0.100.
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06, // ethernet
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0, 0, 0, 0, 0x02, 198, 18, 0, 2, // sha spa
        0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // tha tpa
    ];

    #[test]
    fn parses_and_answers_request() {
        let req = Arp::parse(&REQUEST[14..]).unwrap();
        assert_eq!(req.op, OP_REQUEST);
        assert_eq!(req.tpa, Ipv4Addr::new(198, 18, 0, 100));
        let mut f = REQUEST;
        let ours = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
        answer_in_place(&mut f, &req, ours);
        let rep = Arp::parse(&f[14..]).unwrap();
        assert_eq!(ether::dst(&f), req.sha);
        assert_eq!(ether::src(&f), ours);
        assert_eq!(rep, Arp { op: OP_REPLY, sha: ours, spa: req.tpa, tha: req.sha, tpa: req.spa });
    }

    #[test]
    fn refuses_truncated_and_foreign() {
        assert_eq!(Arp::parse(&REQUEST[14..40]), Err(WireError::ArpMalformed));
        let mut f = REQUEST;
        f[17] = 0xdd; // ptype 0x86dd
        assert_eq!(Arp::parse(&f[14..]), Err(WireError::ArpMalformed));
        let mut f = REQUEST;
        f[21] = 9; // opcode 9
        assert_eq!(Arp::parse(&f[14..]), Err(WireError::ArpMalformed));
    }

    #[test]
    fn request_roundtrip() {
        let mut f = [0xa5u8; 64];
        let n = write_request(&mut f, MacAddr([2; 6]), Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 11), MacAddr::BROADCAST);
        assert_eq!(n, 60);
        let a = Arp::parse(&f[14..n]).unwrap();
        assert_eq!(a.op, OP_REQUEST);
        assert_eq!(a.tpa, Ipv4Addr::new(198, 18, 1, 11));
        assert!(f[42..60].iter().all(|&b| b == 0));
    }
}
