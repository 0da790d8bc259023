//! Classic pcap files, read and written as streams (the replay reads
//! captures of any size; no dependency).
//!
//! Either byte order and micro- or nanosecond timestamps are read; files
//! are written little-endian with microsecond timestamps, link type
//! Ethernet, as tcpdump and DPDK's `net_pcap` do.
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// Ethernet, the only link type rvs reads.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// One frame and when it was captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Capture time, nanoseconds since the epoch.
    pub ts_ns: u64,
    /// The bytes captured.
    pub data: Vec<u8>,
}

/// Why a file is not a pcap rvs can read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a classic pcap file.
    #[error("not a pcap file (magic {0:#010x}; pcapng is not read: convert it with `editcap -F pcap`)")]
    Magic(u32),
    /// A link type other than Ethernet.
    #[error("link type {0}, not Ethernet (1)")]
    LinkType(u32),
    /// A record runs past the end of the file.
    #[error("record {0} is truncated")]
    Truncated(u64),
    /// A record claims more than the file's snap length allows.
    #[error("record {0} claims {1} bytes")]
    TooLong(u64, u32),
}

/// Reads the frames of a pcap stream one by one.
#[derive(Debug)]
pub struct Reader<R> {
    r: R,
    le: bool,
    nanos: bool,
    n: u64,
}

impl Reader<BufReader<std::fs::File>> {
    /// Opens a file.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        Reader::new(BufReader::with_capacity(1 << 16, std::fs::File::open(path)?))
    }
}

impl<R: BufRead> Reader<R> {
    /// Reads the file header.
    pub fn new(mut r: R) -> Result<Self, PcapError> {
        let mut h = [0u8; 24];
        r.read_exact(&mut h)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (le, nanos) = match magic {
            0xa1b2_c3d4 => (true, false),
            0xa1b2_3c4d => (true, true),
            0xd4c3_b2a1 => (false, false),
            0x4d3c_b2a1 => (false, true),
            m => return Err(PcapError::Magic(m)),
        };
        let me = Reader { r, le, nanos, n: 0 };
        let link = me.u32(&[h[20], h[21], h[22], h[23]]);
        if link != LINKTYPE_ETHERNET {
            return Err(PcapError::LinkType(link));
        }
        Ok(me)
    }

    fn u32(&self, b: &[u8; 4]) -> u32 {
        if self.le {
            u32::from_le_bytes(*b)
        } else {
            u32::from_be_bytes(*b)
        }
    }

    /// The next frame; None at the end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, PcapError> {
        let mut h = [0u8; 16];
        match self.r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let word = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
        let (sec, frac, incl) = (self.u32(&word(0)), self.u32(&word(4)), self.u32(&word(8)));
        self.n += 1;
        if incl > 1 << 18 {
            return Err(PcapError::TooLong(self.n, incl));
        }
        let mut data = vec![0u8; incl as usize];
        self.r.read_exact(&mut data).map_err(|_| PcapError::Truncated(self.n))?;
        let frac_ns = if self.nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
        Ok(Some(Frame { ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns, data }))
    }
}

/// Reads every frame of a file.
pub fn read_all(path: &Path) -> Result<Vec<Frame>, PcapError> {
    let mut r = Reader::open(path)?;
    let mut out = Vec::new();
    while let Some(f) = r.next_frame()? {
        out.push(f);
    }
    Ok(out)
}

/// Writes frames to a pcap stream.
#[derive(Debug)]
pub struct Writer<W: Write> {
    w: W,
}

impl Writer<BufWriter<std::fs::File>> {
    /// Creates (truncates) a file.
    pub fn create(path: &Path) -> Result<Self, PcapError> {
        Writer::new(BufWriter::with_capacity(1 << 16, std::fs::File::create(path)?))
    }
}

impl<W: Write> Writer<W> {
    /// Writes the file header.
    pub fn new(mut w: W) -> Result<Self, PcapError> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        for v in [0u32, 0, 65535, LINKTYPE_ETHERNET] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&h)?;
        Ok(Writer { w })
    }

    /// Appends a frame captured at `ts_ns`.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> Result<(), PcapError> {
        let len = u32::try_from(data.len()).map_err(|_| PcapError::TooLong(0, u32::MAX))?;
        let sec = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let usec = u32::try_from((ts_ns % 1_000_000_000) / 1000).unwrap_or(0);
        for v in [sec, usec, len, len] {
            self.w.write_all(&v.to_le_bytes())?;
        }
        self.w.write_all(data)?;
        Ok(())
    }

    /// Flushes and gives the stream back.
    pub fn finish(mut self) -> Result<W, PcapError> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Merges pcap files into one, frames in time order (each file is in time
/// order already); returns the frames written.
pub fn merge(inputs: &[&Path], out: &Path) -> Result<u64, PcapError> {
    let mut readers = inputs.iter().map(|p| Reader::open(p)).collect::<Result<Vec<_>, _>>()?;
    let mut heads = readers.iter_mut().map(Reader::next_frame).collect::<Result<Vec<_>, _>>()?;
    let mut w = Writer::create(out)?;
    let mut n = 0;
    while let Some(i) = (0..heads.len()).filter(|i| heads[*i].is_some()).min_by_key(|i| heads[*i].as_ref().map_or(u64::MAX, |f| f.ts_ns)) {
        if let Some(f) = heads[i].take() {
            w.write(f.ts_ns, &f.data)?;
            n += 1;
        }
        heads[i] = readers[i].next_frame()?;
    }
    w.finish()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_merge_in_time_order() {
        let dir = std::env::temp_dir().join(format!("rvs-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, m) = (dir.join("a.pcap"), dir.join("b.pcap"), dir.join("m.pcap"));
        let fa = [Frame { ts_ns: 1_000, data: vec![1; 60] }, Frame { ts_ns: 5_000, data: vec![3; 61] }];
        let fb = [Frame { ts_ns: 2_000, data: vec![2; 62] }];
        for (p, fs) in [(&a, &fa[..]), (&b, &fb[..])] {
            let mut w = Writer::create(p).unwrap();
            for f in fs {
                w.write(f.ts_ns, &f.data).unwrap();
            }
            w.finish().unwrap();
        }
        assert_eq!(read_all(&a).unwrap(), fa);
        assert_eq!(merge(&[&a, &b], &m).unwrap(), 3);
        let got: Vec<u8> = read_all(&m).unwrap().iter().map(|f| f.data[0]).collect();
        assert_eq!(got, [1, 2, 3]);
        // Not a pcap, a truncated one: refused, no panic.
        std::fs::write(&a, b"\x0a\x0d\x0d\x0a....................").unwrap();
        assert!(matches!(Reader::open(&a), Err(PcapError::Magic(_))));
        let full = std::fs::read(&b).unwrap();
        std::fs::write(&a, &full[..full.len() - 3]).unwrap();
        assert!(matches!(read_all(&a), Err(PcapError::Truncated(1))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
