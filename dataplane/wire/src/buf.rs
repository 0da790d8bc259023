//! The byte-buffer contract every packet routine is written against.
//!
//! The forwarding code never sees an mbuf: it sees a [`PacketBuf`], which the
//! DPDK `Mbuf` implements and so does [`VecBuf`], a heap buffer with headroom
//! used by unit tests, golden tests and fuzzers. Encapsulation (tunnel mode,
//! ICMP errors) needs to grow the packet at the front, so the trait exposes
//! headroom the way an mbuf does.

/// A contiguous packet buffer with room to grow at the front and the back.
pub trait PacketBuf {
    /// The packet bytes, starting at the Ethernet header.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes before the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front (contents unspecified).
    /// Returns false, changing nothing, when there is not enough headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false, changing nothing, if
    /// the packet is shorter than `n`.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the back (contents unspecified).
    /// Returns false, changing nothing, when there is not enough tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// Shortens the packet to `len` bytes; a no-op if it is not longer.
    fn truncate(&mut self, len: usize);
    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True for an empty packet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The NIC checked the IPv4 header checksum and found it right: rvs
    /// does not sum the header again. (A wrong or unchecked one is summed
    /// by rvs, whose verdict is the one that counts.)
    fn ip_csum_good(&self) -> bool {
        false
    }
    /// The NIC checked the TCP/UDP checksum and found it wrong.
    fn l4_csum_bad(&self) -> bool {
        false
    }
    /// The NIC checked the TCP/UDP checksum and found it right.
    fn l4_csum_good(&self) -> bool {
        false
    }
}

/// A receive checksum verdict, as a NIC's offload reports it in an mbuf
/// (DPDK's `RTE_MBUF_F_RX_*_CKSUM_GOOD` / `_BAD`): what [`VecBuf`] carries
/// so that tests can play the NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NicCsum {
    /// Not checked (no offload, or the NIC did not know the protocol).
    #[default]
    Unknown,
    /// Checked and right.
    Good,
    /// Checked and wrong.
    Bad,
}

/// A heap packet buffer with headroom, for tests and tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VecBuf {
    mem: Vec<u8>,
    head: usize,
    tail: usize,
    ip_csum: NicCsum,
    l4_csum: NicCsum,
}

impl VecBuf {
    /// Default headroom, the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const HEADROOM: usize = 128;
    /// Default room for the packet and what may be appended.
    pub const ROOM: usize = 2048;

    /// A buffer holding `bytes` with the default headroom and room.
    pub fn new(bytes: &[u8]) -> Self {
        Self::with_room(bytes, Self::HEADROOM, Self::ROOM.max(bytes.len()))
    }

    /// A buffer holding `bytes` with `headroom` free bytes in front and a
    /// data area of `room` bytes (at least `bytes.len()`).
    pub fn with_room(bytes: &[u8], headroom: usize, room: usize) -> Self {
        let room = room.max(bytes.len());
        // 0xa5 everywhere, so a field the code forgot to write stands out.
        let mut mem = vec![0xa5; headroom + room];
        mem[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        Self { mem, head: headroom, tail: headroom + bytes.len(), ip_csum: NicCsum::Unknown, l4_csum: NicCsum::Unknown }
    }

    /// Sets what the "NIC" found checking the IPv4 header and the TCP/UDP
    /// checksums on receive (both [`NicCsum::Unknown`] until set, and
    /// again after [`VecBuf::reset`]).
    pub fn set_nic_csum(&mut self, ip: NicCsum, l4: NicCsum) {
        self.ip_csum = ip;
        self.l4_csum = l4;
    }

    /// Replaces the contents with `bytes` (at the default headroom),
    /// reusing the allocation as a receive path reuses buffers.
    pub fn reset(&mut self, bytes: &[u8]) {
        let head = Self::HEADROOM.min(self.mem.len());
        if self.mem.len() < head + bytes.len() {
            self.mem.resize(head + bytes.len(), 0xa5);
        }
        self.mem[head..head + bytes.len()].copy_from_slice(bytes);
        self.head = head;
        self.tail = head + bytes.len();
        self.ip_csum = NicCsum::Unknown;
        self.l4_csum = NicCsum::Unknown;
    }

    /// The packet bytes as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.mem[self.head..self.tail]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.head..self.tail]
    }
    fn headroom(&self) -> usize {
        self.head
    }
    fn tailroom(&self) -> usize {
        self.mem.len() - self.tail
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.head {
            return false;
        }
        self.head -= n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.tail - self.head {
            return false;
        }
        self.head += n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.tail += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        if len < self.tail - self.head {
            self.tail = self.head + len;
        }
    }
    fn ip_csum_good(&self) -> bool {
        self.ip_csum == NicCsum::Good
    }
    fn l4_csum_bad(&self) -> bool {
        self.l4_csum == NicCsum::Bad
    }
    fn l4_csum_good(&self) -> bool {
        self.l4_csum == NicCsum::Good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_at_both_ends() {
        let mut b = VecBuf::with_room(&[1, 2, 3], 4, 8);
        assert_eq!(b.headroom(), 4);
        assert!(b.prepend(2));
        assert_eq!(b.len(), 5);
        assert!(!b.prepend(3));
        assert!(b.trim_front(2));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(b.append(5));
        assert!(!b.append(1));
        b.truncate(2);
        assert_eq!(b.data(), &[1, 2]);
        assert!(!b.trim_front(3));
    }
}
