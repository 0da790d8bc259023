//! Minimal classic-pcap reading and writing (what the golden tests and the
//! benchmark generator need; no dependency).
use anyhow::Result;
use std::path::Path;

/// Reads every frame of a classic pcap file (either byte order, micro- or
/// nanosecond timestamps).
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>> {
    let frames = mgmt::pcap::read_all(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(frames.into_iter().map(|f| f.data).collect())
}

/// Writes frames as a classic little-endian pcap file (Ethernet), one
/// microsecond apart.
pub fn write(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let mut w = mgmt::pcap::Writer::create(path)?;
    for (i, f) in (0u64..).zip(frames) {
        w.write(i * 1000, f)?;
    }
    w.finish()?;
    Ok(())
}

/// A hex dump of two frames with the first differing byte marked.
pub fn diff(a: &[u8], b: &[u8]) -> String {
    let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let dump = |f: &[u8]| {
        f.chunks(16)
            .enumerate()
            .map(|(i, c)| format!("  {:04x}: {}", i * 16, c.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!("lengths {} vs {}, first difference at byte {first}\nrvsd:\n{}\nexpected:\n{}", a.len(), b.len(), dump(a), dump(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip() {
        let p = std::env::temp_dir().join(format!("rvs-pcap-{}.pcap", std::process::id()));
        let frames = vec![vec![1, 2, 3], vec![], vec![9; 100]];
        super::write(&p, &frames).unwrap();
        assert_eq!(super::read(&p).unwrap(), frames);
        let _ = std::fs::remove_file(&p);
    }
}
