//! Why bytes are not a well-formed packet.
//!
//! One variant per way a header can be malformed, so that the forwarder can
//! count each under its own drop reason (`rvs-core` maps every variant to
//! the `DropReason` of the same name). Policy refusals that the parsers
//! make because rvs does not forward such packets (fragments, IPv6
//! extension headers it will not walk) are here too: they are decided from
//! the bytes alone.

/// A parse failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// Shorter than an Ethernet header.
    #[error("frame shorter than an Ethernet header")]
    EthTruncated,
    /// ARP packet truncated or not Ethernet/IPv4.
    #[error("ARP packet truncated or not Ethernet/IPv4")]
    ArpMalformed,
    /// Shorter than an IPv4 header.
    #[error("shorter than an IPv4 header")]
    Ipv4Truncated,
    /// The IP version field is not 4.
    #[error("IP version field is not 4")]
    Ipv4BadVersion,
    /// IHL below 5 or past the end of the packet.
    #[error("IHL below 5 or past the end of the packet")]
    Ipv4BadHeaderLen,
    /// Total length below the header length or past the end of the frame.
    #[error("total length below the header length or past the end of the frame")]
    Ipv4BadTotalLen,
    /// The IPv4 header checksum does not verify.
    #[error("IPv4 header checksum does not verify")]
    Ipv4BadChecksum,
    /// Shorter than an IPv6 header or its payload length.
    #[error("shorter than an IPv6 header or its payload length")]
    Ipv6Truncated,
    /// The IP version field is not 6.
    #[error("IP version field is not 6")]
    Ipv6BadVersion,
    /// An extension header chain rvs does not walk or forward.
    #[error("extension header chain rvs does not forward")]
    Ipv6ExtHeader,
    /// An IP fragment.
    #[error("IP fragment")]
    Fragment,
    /// Shorter than a TCP header.
    #[error("segment shorter than a TCP header")]
    TcpTruncated,
    /// TCP data offset below 5 or past the segment.
    #[error("TCP data offset below 5 or past the segment")]
    TcpBadHeaderLen,
    /// Shorter than a UDP header.
    #[error("datagram shorter than a UDP header")]
    UdpTruncated,
    /// UDP length field below 8 or past the datagram.
    #[error("UDP length field below 8 or past the datagram")]
    UdpBadLen,
    /// ICMP message shorter than its header.
    #[error("ICMP message shorter than its header")]
    IcmpTruncated,
    /// The ICMP checksum does not verify.
    #[error("ICMP checksum does not verify")]
    IcmpBadChecksum,
    /// The packet quoted in an ICMP error does not parse.
    #[error("ICMP error whose quoted packet does not parse")]
    IcmpQuoteMalformed,
    /// A neighbour discovery message is malformed.
    #[error("neighbour discovery message malformed")]
    NdMalformed,
}
