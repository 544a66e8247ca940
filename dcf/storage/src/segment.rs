//! On-disk format of log entries and segment files, and the sequential
//! scan used at start-up.
//!
//! # Entry layout
//!
//! Every entry is a 40-byte header followed by its data, all integers
//! little-endian:
//!
//! ```text
//! offset size field
//!      0    8 term
//!      8    8 index
//!     16    8 key (the host's u64 key)
//!     24    1 type (EntryKind: 0 = Data, 1 = Config)
//!     25    3 reserved, must be 0
//!     28    4 size: length of the data in bytes
//!     32    4 CRC32C of the data
//!     36    4 CRC32C of header bytes [0, 36)
//!     40 size data
//! ```
//!
//! The header CRC is checked before `size` is trusted, so a torn or random
//! header never makes us read (or allocate) a bogus length; zero-filled
//! blocks, which filesystems may leave after a crash, fail it too.
//!
//! # Segment files
//!
//! `log_<first>_<last>` is a sealed segment holding exactly the entries
//! `first..=last`; `log_inprogress_<first>` is the single open segment,
//! appended to, holding `first..` (possibly nothing). Indexes are decimal.

use dcf_core::{Entry, EntryKind};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::error::{IoContext, Result};

/// Size of an entry header.
pub const ENTRY_HEADER_LEN: usize = 40;
const HEADER_CRC_AT: usize = 36;

/// The decoded, CRC-checked header of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub term: u64,
    pub index: u64,
    pub key: u64,
    pub kind: EntryKind,
    pub size: u32,
    pub data_crc: u32,
}

/// Encoded length of an entry on disk (header + data); the unit of the
/// `max_bytes` budget of [`crate::StreamLog::entries`].
pub fn encoded_len(e: &Entry) -> usize {
    ENTRY_HEADER_LEN + e.data.len()
}

/// Appends the encoding of `e` to `out`. The caller has checked that the
/// data fits a u32 length.
pub(crate) fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&e.term.to_le_bytes());
    out.extend_from_slice(&e.index.to_le_bytes());
    out.extend_from_slice(&e.key.to_le_bytes());
    out.push(e.kind as u8);
    out.extend_from_slice(&[0u8; 3]);
    out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&e.data).to_le_bytes());
    let hcrc = crc32c::crc32c(&out[start..start + HEADER_CRC_AT]);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&e.data);
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Decodes and checks a header.
pub(crate) fn decode_header(b: &[u8; ENTRY_HEADER_LEN]) -> Result<Header, String> {
    let stored = le_u32(b, HEADER_CRC_AT);
    if crc32c::crc32c(&b[..HEADER_CRC_AT]) != stored {
        return Err("entry header CRC32C mismatch".into());
    }
    let kind = EntryKind::from_u8(b[24]).ok_or_else(|| format!("unknown entry type {}", b[24]))?;
    if b[25..28] != [0, 0, 0] {
        return Err("reserved header bytes are not zero".into());
    }
    Ok(Header {
        term: le_u64(b, 0),
        index: le_u64(b, 8),
        key: le_u64(b, 16),
        kind,
        size: le_u32(b, 28),
        data_crc: le_u32(b, 32),
    })
}

/// Decodes one entry from the start of `buf`, checking both CRCs (the
/// data's only if `verify_data`); returns it with its encoded length.
pub(crate) fn decode_entry(buf: &[u8], verify_data: bool) -> Result<(Entry, usize), String> {
    let Some(hb) = buf.get(..ENTRY_HEADER_LEN) else {
        return Err(format!("truncated header ({} bytes)", buf.len()));
    };
    let hb: &[u8; ENTRY_HEADER_LEN] = hb.try_into().expect("slice of header length");
    let h = decode_header(hb)?;
    let end = ENTRY_HEADER_LEN + h.size as usize;
    let Some(data) = buf.get(ENTRY_HEADER_LEN..end) else {
        return Err(format!(
            "truncated data: {} of {} bytes",
            buf.len() - ENTRY_HEADER_LEN,
            h.size
        ));
    };
    if verify_data && crc32c::crc32c(data) != h.data_crc {
        return Err(format!("data CRC32C mismatch for index {}", h.index));
    }
    Ok((
        Entry {
            term: h.term,
            index: h.index,
            key: h.key,
            kind: h.kind,
            data: data.to_vec(),
        },
        end,
    ))
}

/// A parsed segment file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegName {
    Sealed { first: u64, last: u64 },
    Open { first: u64 },
}

impl SegName {
    pub(crate) fn first(self) -> u64 {
        match self {
            SegName::Sealed { first, .. } | SegName::Open { first } => first,
        }
    }

    pub(crate) fn file_name(self) -> String {
        match self {
            SegName::Sealed { first, last } => format!("log_{first}_{last}"),
            SegName::Open { first } => format!("log_inprogress_{first}"),
        }
    }

    /// Parses a segment name; `None` for any other file.
    pub(crate) fn parse(name: &str) -> Option<SegName> {
        let rest = name.strip_prefix("log_")?;
        let num = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        if let Some(f) = rest.strip_prefix("inprogress_") {
            return Some(SegName::Open { first: num(f)? });
        }
        let (a, b) = rest.split_once('_')?;
        Some(SegName::Sealed {
            first: num(a)?,
            last: num(b)?,
        })
    }
}

/// What a sequential scan of a segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// (term, offset) of each valid entry, indexes `first, first+1, ...`.
    pub entries: Vec<(u64, u64)>,
    /// Length of the valid prefix of the file.
    pub valid_len: u64,
    pub file_len: u64,
    /// Offset and reason of the first defect, if any.
    pub failure: Option<(u64, String)>,
    /// Entries after the defect whose header was still intact (the
    /// defective entry itself included when its header was intact).
    pub dropped_entries: u64,
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Scans a segment expected to start at index `first`, whose terms must
/// not decrease, starting from `prev_term` (the term of the entry before
/// `first`, 0 if unknown). Stops at the first defect and, from there, only
/// counts the entries that can still be recognised.
pub(crate) fn scan(path: &Path, first: u64, prev_term: u64, verify_data: bool) -> Result<Scan> {
    let file = File::open(path).ctx(path)?;
    let file_len = file.metadata().ctx(path)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut s = Scan {
        file_len,
        ..Scan::default()
    };
    let mut pos = 0u64;
    let mut expect = first;
    let mut min_term = prev_term;
    let mut hb = [0u8; ENTRY_HEADER_LEN];
    let mut data = Vec::new();
    loop {
        if pos == file_len {
            break;
        }
        let remaining = file_len - pos;
        let fail = |s: &mut Scan, reason: String| {
            if s.failure.is_none() {
                s.failure = Some((pos, reason));
            }
        };
        if remaining < ENTRY_HEADER_LEN as u64 {
            fail(
                &mut s,
                format!("torn entry header ({remaining} bytes at end of file)"),
            );
            break;
        }
        if read_full(&mut r, &mut hb).ctx(path)? < ENTRY_HEADER_LEN {
            fail(&mut s, "file shrank while reading".into());
            break;
        }
        let h = match decode_header(&hb) {
            Ok(h) => h,
            Err(reason) => {
                fail(&mut s, reason);
                break;
            }
        };
        if h.index != expect {
            fail(
                &mut s,
                format!("entry index {} where {expect} was expected", h.index),
            );
            break;
        }
        let avail = remaining - ENTRY_HEADER_LEN as u64;
        if u64::from(h.size) > avail {
            fail(
                &mut s,
                format!(
                    "torn entry {}: data needs {} bytes, {avail} left",
                    h.index, h.size
                ),
            );
            s.dropped_entries += 1;
            break;
        }
        let entry_len = ENTRY_HEADER_LEN as u64 + u64::from(h.size);
        if s.failure.is_some() {
            // Counting mode: skip the data.
            r.seek_relative(i64::from(h.size)).ctx(path)?;
            s.dropped_entries += 1;
        } else {
            data.resize(h.size as usize, 0);
            if read_full(&mut r, &mut data).ctx(path)? < data.len() {
                fail(&mut s, "file shrank while reading".into());
                break;
            }
            let defect = if verify_data && crc32c::crc32c(&data) != h.data_crc {
                Some(format!("data CRC32C mismatch for index {}", h.index))
            } else if h.term < min_term {
                Some(format!(
                    "term {} of index {} is lower than the previous term {min_term}",
                    h.term, h.index
                ))
            } else {
                None
            };
            match defect {
                Some(reason) => {
                    fail(&mut s, reason);
                    s.dropped_entries += 1;
                }
                None => {
                    s.entries.push((h.term, pos));
                    min_term = h.term;
                }
            }
        }
        pos += entry_len;
        expect += 1;
    }
    s.valid_len = s.failure.as_ref().map_or(file_len, |f| f.0);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, data: &[u8]) -> Entry {
        Entry {
            term: 2,
            index,
            key: 99,
            kind: EntryKind::Config,
            data: data.to_vec(),
        }
    }

    #[test]
    fn entry_round_trip_and_layout() {
        let mut b = Vec::new();
        encode_entry(&e(5, b"hello"), &mut b);
        assert_eq!(b.len(), encoded_len(&e(5, b"hello")));
        assert_eq!(&b[8..16], &5u64.to_le_bytes());
        assert_eq!(b[24], 1);
        assert_eq!(&b[28..32], &5u32.to_le_bytes());
        let (d, n) = decode_entry(&b, true).unwrap();
        assert_eq!((d, n), (e(5, b"hello"), b.len()));
        for i in 0..b.len() * 8 {
            let mut c = b.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(decode_entry(&c, true).is_err(), "bit {i} flip undetected");
        }
        assert!(decode_entry(&[0u8; 60], true).is_err());
    }

    #[test]
    fn names() {
        for n in [
            SegName::Sealed { first: 1, last: 20 },
            SegName::Open { first: 7 },
        ] {
            assert_eq!(SegName::parse(&n.file_name()), Some(n));
        }
        for bad in [
            "log_ctrl.0",
            "log_1",
            "log__2",
            "log_1_x",
            "log_inprogress_",
            "log_+1_2",
            "xlog_1_2",
        ] {
            assert_eq!(SegName::parse(bad), None, "{bad}");
        }
    }
}
