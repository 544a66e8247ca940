//! The fixed 8-byte frame header and its flags.
//!
//! ```text
//! offset size field
//!      0    2 magic   b"DF"
//!      2    1 version 1
//!      3    1 flags   bits 0..1 compression (0 none, 1 LZ4, 2 ZSTD, 3 reserved),
//!                     bits 2..7 reserved, must be 0
//!      4    4 payload length, u32 little-endian
//!      8    n payload
//! ```
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

/// Compression of a frame's payload.
///
/// Only `None` exists today. LZ4 (code 1) and ZSTD (code 2) are reserved in
/// the flags so that adding them later (DCF's COMPRESS_ALGORITHM) needs no
/// new frame version; until then a frame carrying them is rejected with
/// [`FrameError::UnsupportedCompression`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// The payload is the plain encoding.
    #[default]
    None,
}

impl Compression {
    /// The code stored in flag bits 0..1.
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
        }
    }

    /// Reads the compression out of a flags byte, rejecting reserved bits
    /// and codes this build cannot decode.
    pub fn from_flags(flags: u8) -> Result<Compression, FrameError> {
        if flags & !COMPRESSION_MASK != 0 {
            return Err(FrameError::UnknownFlags(flags));
        }
        match flags & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            // 1 = LZ4, 2 = ZSTD: defined by the format, not implemented yet.
            code @ (1 | 2) => Err(FrameError::UnsupportedCompression(code)),
            _ => Err(FrameError::UnknownFlags(flags)),
        }
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
            (1, FrameError::UnsupportedCompression(1)),
            (2, FrameError::UnsupportedCompression(2)),
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
