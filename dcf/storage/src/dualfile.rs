//! A small record stored crash-safely in two alternating files
//! (`<name>.0`, `<name>.1`), the way DCF keeps its control file.
//!
//! Each copy is:
//!
//! ```text
//! offset size  field
//!      0    4  magic (identifies what the record is)
//!      4    2  format version of this envelope (1)
//!      6    2  reserved, 0
//!      8    8  sequence number (grows by 1 with every write)
//!     16    4  payload length N
//!     20    N  payload
//!   20+N    4  CRC32C of bytes [0, 20+N)
//! ```
//!
//! Why this is crash-safe: a write always goes to the copy that is *not*
//! the newest valid one, and returns only after fsync. A crash during the
//! write can tear only that copy; on load its CRC fails and the other copy,
//! which holds the previously saved record, wins. When both copies are
//! valid, the higher sequence number wins. A brand-new record is created by
//! writing both copies, so from then on both files exist; "one file exists
//! and is invalid, the other is missing" therefore means the very first
//! save was interrupted and nothing was ever durable.

use crate::error::{Result, StorageError};
use crate::fsutil::{read_file_opt, write_file_synced, Reader};
use std::path::{Path, PathBuf};

const ENVELOPE_VERSION: u16 = 1;
const HEADER_LEN: usize = 20;
/// Records are small; anything claiming more is garbage.
const MAX_PAYLOAD: usize = 1 << 20;

enum Copy {
    Missing,
    Bad(String),
    Good { seq: u64, payload: Vec<u8> },
}

/// Two alternating copies of one record.
#[derive(Debug)]
pub(crate) struct DualFile {
    paths: [PathBuf; 2],
    magic: [u8; 4],
    /// The slot holding the newest valid copy, if any.
    current: Option<usize>,
    seq: u64,
}

impl DualFile {
    /// Opens the pair `<dir>/<name>.0|1` and returns the newest valid
    /// payload, or `None` if nothing was ever saved (the caller then calls
    /// [`DualFile::init`]).
    pub(crate) fn open(
        dir: &Path,
        name: &str,
        magic: [u8; 4],
    ) -> Result<(DualFile, Option<Vec<u8>>)> {
        let paths = [dir.join(format!("{name}.0")), dir.join(format!("{name}.1"))];
        let copies = [read_copy(&paths[0], magic)?, read_copy(&paths[1], magic)?];
        let mut best: Option<(usize, u64)> = None;
        for (slot, c) in copies.iter().enumerate() {
            if let Copy::Good { seq, .. } = c {
                if !matches!(best, Some((_, s)) if s >= *seq) {
                    best = Some((slot, *seq));
                }
            }
        }
        let mut df = DualFile {
            paths,
            magic,
            current: None,
            seq: 0,
        };
        if let Some((slot, seq)) = best {
            for (other, c) in copies.iter().enumerate() {
                if let Copy::Bad(reason) = c {
                    tracing::warn!(
                        file = %df.paths[other].display(),
                        "ignoring invalid older copy ({reason}); using {}",
                        df.paths[slot].display()
                    );
                }
            }
            df.current = Some(slot);
            df.seq = seq;
            let [a, b] = copies;
            let payload = match if slot == 0 { a } else { b } {
                Copy::Good { payload, .. } => payload,
                _ => unreachable!("best slot holds a good copy"),
            };
            return Ok((df, Some(payload)));
        }
        match copies {
            [Copy::Bad(r0), Copy::Bad(r1)] => Err(StorageError::BothCopiesLost {
                path: df.paths[0].clone(),
                first: r0,
                other_path: df.paths[1].clone(),
                second: r1,
            }),
            [Copy::Bad(r), Copy::Missing] | [Copy::Missing, Copy::Bad(r)] => {
                tracing::warn!(
                    dir = %dir.display(),
                    "{name}: the first save was interrupted ({r}); starting from the initial state"
                );
                Ok((df, None))
            }
            _ => Ok((df, None)),
        }
    }

    /// Writes `payload` into both copies (first-time creation).
    pub(crate) fn init(&mut self, payload: &[u8]) -> Result<()> {
        self.current = Some(1);
        self.write(payload)?; // goes to slot 0
        self.write(payload) // goes to slot 1
    }

    /// Durably replaces the record: writes the copy that is not the newest
    /// valid one, fsyncs it (and the directory if the file is new).
    pub(crate) fn write(&mut self, payload: &[u8]) -> Result<()> {
        let target = match self.current {
            Some(c) => 1 - c,
            None => 0,
        };
        let seq = self.seq + 1;
        let bytes = encode(self.magic, seq, payload);
        write_file_synced(&self.paths[target], &bytes)?;
        self.current = Some(target);
        self.seq = seq;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn paths(&self) -> &[PathBuf; 2] {
        &self.paths
    }

    #[cfg(test)]
    pub(crate) fn current_path(&self) -> Option<&Path> {
        self.current.map(|c| self.paths[c].as_path())
    }
}

fn encode(magic: [u8; 4], seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + payload.len() + 4);
    b.extend_from_slice(&magic);
    b.extend_from_slice(&ENVELOPE_VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn read_copy(path: &Path, magic: [u8; 4]) -> Result<Copy> {
    let Some(bytes) = read_file_opt(path)? else {
        return Ok(Copy::Missing);
    };
    Ok(match decode(&bytes, magic) {
        Ok((seq, payload)) => Copy::Good { seq, payload },
        Err(reason) => Copy::Bad(reason),
    })
}

fn decode(bytes: &[u8], magic: [u8; 4]) -> std::result::Result<(u64, Vec<u8>), String> {
    let mut r = Reader::new(bytes);
    let too_short = || format!("too short ({} bytes)", bytes.len());
    if r.bytes(4).ok_or_else(too_short)? != magic {
        return Err("bad magic".into());
    }
    let version = r.u16().ok_or_else(too_short)?;
    let _reserved = r.u16().ok_or_else(too_short)?;
    let seq = r.u64().ok_or_else(too_short)?;
    let len = r.u32().ok_or_else(too_short)? as usize;
    if len > MAX_PAYLOAD || HEADER_LEN + len + 4 != bytes.len() {
        return Err(format!(
            "length field {len} does not match file size {}",
            bytes.len()
        ));
    }
    let payload = r.bytes(len).ok_or_else(too_short)?;
    let crc = r.u32().ok_or_else(too_short)?;
    if crc32c::crc32c(&bytes[..HEADER_LEN + len]) != crc {
        return Err("CRC32C mismatch".into());
    }
    if version != ENVELOPE_VERSION {
        return Err(format!("unknown envelope version {version}"));
    }
    Ok((seq, payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = *b"TEST";

    #[test]
    fn fresh_then_alternating_writes() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, p) = DualFile::open(d.path(), "rec", M).unwrap();
        assert!(p.is_none());
        f.init(b"zero").unwrap();
        assert!(f.paths()[0].exists() && f.paths()[1].exists());
        f.write(b"one").unwrap();
        let first = f.current_path().unwrap().to_path_buf();
        f.write(b"two").unwrap();
        assert_ne!(first, f.current_path().unwrap());
        let (_, p) = DualFile::open(d.path(), "rec", M).unwrap();
        assert_eq!(p.unwrap(), b"two");
    }

    #[test]
    fn torn_newer_copy_falls_back_to_older() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = DualFile::open(d.path(), "rec", M).unwrap();
        f.init(b"a").unwrap();
        f.write(b"older").unwrap();
        f.write(b"newer").unwrap();
        let newer = f.current_path().unwrap().to_path_buf();
        let full = std::fs::read(&newer).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&newer, &full[..cut]).unwrap();
            let (mut g, p) = DualFile::open(d.path(), "rec", M).unwrap();
            assert_eq!(p.unwrap(), b"older", "cut at {cut}");
            // The next write must go to the torn slot, never the good one.
            assert_ne!(g.current_path().unwrap(), newer);
            g.write(b"again").unwrap();
            assert_eq!(g.current_path().unwrap(), newer);
            let (_, p) = DualFile::open(d.path(), "rec", M).unwrap();
            assert_eq!(p.unwrap(), b"again");
            std::fs::write(&newer, &full).unwrap();
            // restore the older copy too: it was not touched.
        }
    }

    #[test]
    fn both_corrupt_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, _) = DualFile::open(d.path(), "rec", M).unwrap();
        f.init(b"x").unwrap();
        for p in f.paths() {
            let mut b = std::fs::read(p).unwrap();
            b[9] ^= 0x10;
            std::fs::write(p, b).unwrap();
        }
        let e = DualFile::open(d.path(), "rec", M).unwrap_err();
        assert!(matches!(e, StorageError::BothCopiesLost { .. }), "{e}");
        assert!(e.to_string().contains("rec.0") && e.to_string().contains("rec.1"));
    }

    #[test]
    fn interrupted_first_save_is_fresh() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("rec.0"), b"TES").unwrap();
        let (_, p) = DualFile::open(d.path(), "rec", M).unwrap();
        assert!(p.is_none());
    }
}
