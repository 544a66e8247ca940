//! The fixed 8-byte frame header and its flags.
//!
//! ```text
//! offset size field
//!      0    2 magic   b"DF"
//!      2    1 version 1
//!      3    1 flags   bits 0..1 compression (0 none, 1 LZ4, 2 ZSTD, 3 reserved),
//!                     bits 2..7 reserved, must be 0
//!      4    4 payload length, u32 little-endian (the bytes on the wire,
//!                     i.e. compressed when compressed)
//!      8    n payload: plain, or raw_len:u32 + compressed bytes
//!                     (see [`Compression`])
//! ```
//!
//! Compression is per frame and chosen by the sender; a receiver decodes
//! whatever the flags say, so nodes configured with different algorithms
//! still talk to each other. Hellos and small batches are sent plain.
//!
//! The header is parsed on its own, before any payload byte is read, so a
//! reader can reject a bad magic, an unknown version or flag, or an oversize
//! length without reading (or allocating for) the rest. Unknown flag bits are
//! rejected rather than ignored: a later version that sets them changes the
//! meaning of the payload, and guessing would decode garbage.

use crate::error::FrameError;

/// Two bytes that open every frame ("DF", DCF Frame).
pub const MAGIC: [u8; 2] = *b"DF";
/// The only frame version this build speaks.
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 8;
/// Bits of `flags` that select the compression of the payload.
pub const COMPRESSION_MASK: u8 = 0b0000_0011;
/// Default largest payload a codec accepts: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// Compression of a frame's payload (the algorithm; the level is a sender
/// setting, see [`crate::TransportConfig::compress_level`]).
///
/// A compressed payload is `raw_len:u32 compressed[..]`: the length of the
/// plain payload, then the algorithm's output (an LZ4 *block*, or one or
/// more ZSTD frames). The explicit `raw_len` lets the receiver refuse a
/// frame that would decompress beyond its maximum frame size before it
/// decompresses anything, and bound the buffer it decompresses into (the
/// LZ4 block format does not carry its own decompressed size).
///
/// The codes in the header flags are the frame format's, not DCF's
/// COMPRESS_ALGORITHM values (which number ZSTD 1 and LZ4 2); use
/// [`Compression::from_dcf_algorithm`] to map a parameter value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// The payload is the plain encoding.
    #[default]
    None,
    /// LZ4 block format (flag code 1), via the pure-Rust `lz4_flex`.
    Lz4,
    /// Zstandard (flag code 2).
    Zstd,
}

impl Compression {
    /// The code stored in flag bits 0..1.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    /// Maps DCF's COMPRESS_ALGORITHM parameter (0 none, 1 ZSTD, 2 LZ4).
    pub fn from_dcf_algorithm(value: u64) -> Option<Compression> {
        match value {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }

    /// The levels a sender may configure: 1..=22 for ZSTD (its own range),
    /// 1..=9 for LZ4 (DCF's limit; `lz4_flex` has a single speed, so the
    /// level is validated but does not change the output), any for none.
    pub fn level_range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::None => i32::MIN..=i32::MAX,
            Compression::Lz4 => 1..=9,
            Compression::Zstd => 1..=22,
        }
    }

    /// Reads the compression out of a flags byte, rejecting reserved bits
    /// and the reserved code 3.
    pub fn from_flags(flags: u8) -> Result<Compression, FrameError> {
        if flags & !COMPRESSION_MASK != 0 {
            return Err(FrameError::UnknownFlags(flags));
        }
        match flags & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            2 => Ok(Compression::Zstd),
            _ => Err(FrameError::UnknownFlags(flags)),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lz4 => "LZ4",
            Compression::Zstd => "ZSTD",
        })
    }
}

/// A parsed, validated frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub version: u8,
    pub compression: Compression,
    /// Length of the payload that follows the header, already checked
    /// against the reader's maximum frame size.
    pub payload_len: usize,
}

impl FrameHeader {
    /// A version-1 header for a payload of `payload_len` bytes.
    pub fn new(compression: Compression, payload_len: usize) -> FrameHeader {
        FrameHeader {
            version: VERSION,
            compression,
            payload_len,
        }
    }

    /// Writes the header. The caller has checked `payload_len` fits in u32
    /// (the codec's maximum frame size is at most `u32::MAX`).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let len = u32::try_from(self.payload_len).unwrap_or(u32::MAX);
        let l = len.to_le_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            self.version,
            self.compression.code(),
            l[0],
            l[1],
            l[2],
            l[3],
        ]
    }

    /// Parses and validates a header; `max_payload` is the reader's maximum
    /// frame size, so an oversize frame is refused before it is read.
    pub fn parse(bytes: &[u8; HEADER_LEN], max_payload: usize) -> Result<FrameHeader, FrameError> {
        let magic = [bytes[0], bytes[1]];
        if magic != MAGIC {
            return Err(FrameError::BadMagic(magic));
        }
        let version = bytes[2];
        if version != VERSION {
            return Err(FrameError::UnknownVersion(version));
        }
        let compression = Compression::from_flags(bytes[3])?;
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        if len > max_payload {
            return Err(FrameError::Oversize {
                len,
                max: max_payload,
            });
        }
        Ok(FrameHeader {
            version,
            compression,
            payload_len: len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = FrameHeader::new(Compression::None, 12345);
        assert_eq!(FrameHeader::parse(&h.to_bytes(), 1 << 20), Ok(h));
    }

    #[test]
    fn compression_codes_round_trip() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(Compression::from_flags(c.code()), Ok(c));
            let h = FrameHeader::new(c, 77);
            assert_eq!(FrameHeader::parse(&h.to_bytes(), 100), Ok(h));
        }
        assert_eq!(Compression::from_dcf_algorithm(1), Some(Compression::Zstd));
        assert_eq!(Compression::from_dcf_algorithm(2), Some(Compression::Lz4));
        assert_eq!(Compression::from_dcf_algorithm(3), None);
    }

    #[test]
    fn rejects_bad_fields() {
        let good = FrameHeader::new(Compression::None, 10).to_bytes();
        let mut b = good;
        b[0] = b'X';
        assert_eq!(
            FrameHeader::parse(&b, 100),
            Err(FrameError::BadMagic([b'X', b'F']))
        );
        let mut b = good;
        b[2] = 2;
        assert_eq!(
            FrameHeader::parse(&b, 100),
            Err(FrameError::UnknownVersion(2))
        );
        for (flags, want) in [
            (3, FrameError::UnknownFlags(3)),
            (4, FrameError::UnknownFlags(4)),
            (0x80, FrameError::UnknownFlags(0x80)),
        ] {
            let mut b = good;
            b[3] = flags;
            assert_eq!(FrameHeader::parse(&b, 100), Err(want), "flags {flags:#x}");
        }
        assert_eq!(
            FrameHeader::parse(&good, 9),
            Err(FrameError::Oversize { len: 10, max: 9 })
        );
    }
}
