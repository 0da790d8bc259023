//! Minimal classic-pcap reading and writing (what the golden tests and the
//! benchmark generator need; no dependency).
use anyhow::{bail, Result};
use std::path::Path;

/// Reads every frame of a classic pcap file (either byte order, micro- or
/// nanosecond timestamps).
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>> {
    let b = std::fs::read(path)?;
    if b.len() < 24 {
        bail!("{}: not a pcap file ({} bytes)", path.display(), b.len());
    }
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => bail!("{}: bad pcap magic {magic:#x}", path.display()),
    };
    let u32_at = |at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = u32_at(at + 8) as usize;
        at += 16;
        if at + incl > b.len() {
            bail!("{}: truncated record", path.display());
        }
        out.push(b[at..at + incl].to_vec());
        at += incl;
    }
    Ok(out)
}

/// Writes frames as a classic little-endian pcap file (Ethernet).
pub fn write(path: &Path, frames: &[Vec<u8>]) -> Result<()> {
    let mut b = Vec::with_capacity(24 + frames.iter().map(|f| f.len() + 16).sum::<usize>());
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in (0u32..).zip(frames) {
        let len = u32::try_from(f.len())?;
        for v in [0u32, i, len, len] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(f);
    }
    std::fs::write(path, b)?;
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
