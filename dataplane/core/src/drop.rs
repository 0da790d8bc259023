//! Why a packet was not forwarded: one counter per reason.
//!
//! Every parser and every forwarding decision that refuses a packet returns a
//! [`DropReason`]; the worker counts it in its per-core array and frees the
//! packet. Names are stable: they appear in `rvsadm`'s output, the control
//! protocol and the Prometheus metric `rvs_drops_total{reason="..."}`.
//!
//! Each reason has a [`DropClass`]. A `verdict` reason is the fate the
//! forwarder gave a received frame: every frame gets exactly one verdict
//! (forwarded, answered, consumed, passed to the kernel, handed over, held,
//! or dropped for one `verdict` reason), so those counters add up to what
//! was received. A `lost` reason counts a frame that already had its
//! verdict (say, forwarded) and was then lost on the way out: a full
//! transmit queue, a full hand-over ring, a next hop that never answered.

/// When a reason applies: as a received frame's verdict, or to a frame
/// lost after its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropClass {
    /// The verdict on a received frame.
    Verdict,
    /// A frame lost after its verdict (on the way out).
    Lost,
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $class:ident, $help:literal;)*) => {
        /// The reason a packet was dropped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $( #[doc = $help] $variant, )* }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant),*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();
            /// Stable snake_case name.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }
            /// One-line explanation for operators.
            pub fn help(self) -> &'static str {
                match self { $(DropReason::$variant => $help,)* }
            }
            /// Index into a counter array.
            pub fn index(self) -> usize {
                self as usize
            }
            /// Verdict or loss after the verdict.
            pub fn class(self) -> DropClass {
                match self { $(DropReason::$variant => DropClass::$class,)* }
            }
        }
    };
}

drop_reasons! {
    EthTruncated => "eth_truncated", Verdict, "frame shorter than an Ethernet header";
    EthNotForUs => "eth_not_for_us", Verdict, "destination MAC is neither ours, broadcast nor multicast";
    EthUnsupported => "eth_unsupported", Verdict, "EtherType rvs does not handle (VLAN tags, LLDP, ...)";
    MultiSegment => "multi_segment", Verdict, "chained mbuf (jumbo frame larger than one buffer)";
    ArpMalformed => "arp_malformed", Verdict, "ARP packet truncated or not Ethernet/IPv4";
    ArpNotForUs => "arp_not_for_us", Verdict, "ARP request for an address that is neither a VIP nor ours";
    AddrConflict => "addr_conflict", Verdict, "ARP or ND from another host claiming a VIP or one of rvs's own addresses (logged: a second master, or an attack)";
    NeighWrongPort => "neigh_wrong_port", Verdict, "ARP or ND claiming a known neighbour's address on a port that is not that neighbour's (poisoning attempt)";
    Ipv4Truncated => "ipv4_truncated", Verdict, "shorter than an IPv4 header";
    Ipv4BadVersion => "ipv4_bad_version", Verdict, "IP version field is not 4";
    Ipv4BadHeaderLen => "ipv4_bad_header_len", Verdict, "IHL below 5 or past the end of the packet";
    Ipv4BadTotalLen => "ipv4_bad_total_len", Verdict, "total length below the header length or past the end of the frame";
    Ipv4BadChecksum => "ipv4_bad_checksum", Verdict, "IPv4 header checksum does not verify";
    Ipv4BadSource => "ipv4_bad_source", Verdict, "source is multicast, broadcast, loopback or unspecified";
    OwnSource => "own_source", Verdict, "source is one of the balancer's own addresses (a VIP, a port or local address): spoofed (land attack) or looped";
    Ipv6Truncated => "ipv6_truncated", Verdict, "shorter than an IPv6 header or its payload length";
    Ipv6BadVersion => "ipv6_bad_version", Verdict, "IP version field is not 6";
    Ipv6BadSource => "ipv6_bad_source", Verdict, "source is multicast, loopback or unspecified";
    Ipv6ExtHeader => "ipv6_ext_header", Verdict, "extension header chain rvs does not forward (routing, hop-by-hop, unknown)";
    Fragment => "fragment", Verdict, "IP fragment (policy: fragments are dropped, see README)";
    IpOptions => "ip_options", Verdict, "IPv4 header with options (policy: dropped, see README)";
    TtlExceeded => "ttl_exceeded", Verdict, "TTL or hop limit would reach zero (ICMP time exceeded sent)";
    TcpTruncated => "tcp_truncated", Verdict, "segment shorter than a TCP header";
    TcpBadHeaderLen => "tcp_bad_header_len", Verdict, "TCP data offset below 5 or past the segment";
    TcpBadChecksum => "tcp_bad_checksum", Verdict, "TCP checksum does not verify";
    TcpNoSession => "tcp_no_session", Verdict, "TCP segment other than SYN with no session (stray or after expiry)";
    TcpBadFlags => "tcp_bad_flags", Verdict, "impossible TCP flag combination (SYN+FIN, SYN+RST, none)";
    UdpTruncated => "udp_truncated", Verdict, "datagram shorter than a UDP header";
    UdpBadLen => "udp_bad_len", Verdict, "UDP length field below 8 or past the datagram";
    UdpBadChecksum => "udp_bad_checksum", Verdict, "UDP checksum does not verify";
    IcmpTruncated => "icmp_truncated", Verdict, "ICMP message shorter than its header";
    IcmpBadChecksum => "icmp_bad_checksum", Verdict, "ICMP checksum does not verify";
    IcmpUnhandled => "icmp_unhandled", Verdict, "ICMP type rvs neither answers nor forwards";
    IcmpErrorNoSession => "icmp_error_no_session", Verdict, "ICMP error about a flow with no session";
    IcmpErrorBadInner => "icmp_error_bad_inner", Verdict, "ICMP error whose quoted packet does not parse";
    IpipUnexpected => "ipip_unexpected", Verdict, "IP-in-IP packet addressed to the balancer (it encapsulates, it does not decapsulate)";
    NdMalformed => "nd_malformed", Verdict, "neighbour discovery message malformed (hop limit != 255, bad option)";
    NdNotForUs => "nd_not_for_us", Verdict, "neighbour solicitation for an address that is neither a VIP nor ours";
    Multicast => "multicast", Verdict, "multicast or broadcast IP packet rvs has no use for (IGMP, MLD, router solicitations...)";
    UnknownProtocol => "unknown_protocol", Verdict, "L4 protocol with no virtual service (not TCP, UDP or ICMP)";
    SourceDenied => "source_denied", Verdict, "new flow from a source the service's deny_sources lists (most specific prefix)";
    SourceNotAllowed => "source_not_allowed", Verdict, "new flow from a source none of the service's allow_sources covers";
    SynproxyBadCookie => "synproxy_bad_cookie", Verdict, "ACK to a SYN-proxied service that opens no session: no valid cookie (answered with a reset or dropped, as synproxy_invalid_ack says)";
    SynproxyWait => "synproxy_wait", Verdict, "segment of a SYN-proxied connection while the real server's handshake is under way (the client's window is still zero; it sends again)";
    NoService => "no_service", Verdict, "destination is a VIP but no service matches the port and protocol";
    NotForUs => "not_for_us", Verdict, "destination is not a VIP, a local address nor a known session";
    NoBackend => "no_backend", Verdict, "service has no available real server";
    SessionTableFull => "session_table_full", Verdict, "session table full and the service refuses new flows";
    NeighUnresolved => "neigh_unresolved", Lost, "held for its next hop, whose MAC did not resolve in time (or the hold queue was full)";
    NoRoute => "no_route", Verdict, "no port reaches the destination";
    MtuExceeded => "mtu_exceeded", Verdict, "packet larger than the egress MTU (ICMP too-big sent when allowed)";
    NoHeadroom => "no_headroom", Verdict, "no buffer headroom to encapsulate";
    LocalUnhandled => "local_unhandled", Verdict, "packet for the balancer's own address with no kernel path";
    LocalPortsExhausted => "local_ports_exhausted", Verdict, "full-NAT local address/port pool exhausted";
    HaStandby => "ha_standby", Verdict, "for a virtual address while this balancer is the backup of a pair (the master forwards and answers it)";
    HandoverFull => "handover_full", Lost, "ring to the owning core full";
    TxFull => "tx_full", Lost, "transmit queue full";
    KernelPathFull => "kernel_path_full", Lost, "kernel exception path queue full";
}

impl From<rvs_wire::WireError> for DropReason {
    /// Each malformation the parsers find is counted under the reason of
    /// the same name.
    fn from(e: rvs_wire::WireError) -> DropReason {
        use rvs_wire::WireError as W;
        match e {
            W::EthTruncated => DropReason::EthTruncated,
            W::ArpMalformed => DropReason::ArpMalformed,
            W::Ipv4Truncated => DropReason::Ipv4Truncated,
            W::Ipv4BadVersion => DropReason::Ipv4BadVersion,
            W::Ipv4BadHeaderLen => DropReason::Ipv4BadHeaderLen,
            W::Ipv4BadTotalLen => DropReason::Ipv4BadTotalLen,
            W::Ipv4BadChecksum => DropReason::Ipv4BadChecksum,
            W::Ipv6Truncated => DropReason::Ipv6Truncated,
            W::Ipv6BadVersion => DropReason::Ipv6BadVersion,
            W::Ipv6ExtHeader => DropReason::Ipv6ExtHeader,
            W::Fragment => DropReason::Fragment,
            W::TcpTruncated => DropReason::TcpTruncated,
            W::TcpBadHeaderLen => DropReason::TcpBadHeaderLen,
            W::UdpTruncated => DropReason::UdpTruncated,
            W::UdpBadLen => DropReason::UdpBadLen,
            W::IcmpTruncated => DropReason::IcmpTruncated,
            W::IcmpBadChecksum => DropReason::IcmpBadChecksum,
            W::IcmpQuoteMalformed => DropReason::IcmpErrorBadInner,
            W::NdMalformed => DropReason::NdMalformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_indices_dense() {
        let names: HashSet<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.help().is_empty());
        }
    }
}
