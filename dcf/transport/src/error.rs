//! Errors of the transport: [`FrameError`] for anything wrong with bytes on
//! the wire, [`TransportError`] for what can go wrong starting a transport.
//!
//! Decoding errors are values, never panics: a frame comes from the network
//! and may be corrupt or hostile, and the only sane reaction is to drop the
//! connection it came on (see [`crate::tcp`]).

use std::net::SocketAddr;

/// Why a frame could not be decoded (or encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first two bytes are not [`crate::header::MAGIC`]: not our protocol,
    /// or the stream lost synchronisation.
    #[error("bad frame magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A version this build does not speak.
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    /// A flag bit that is reserved or not defined by this version.
    #[error("unknown frame flag bits {0:#04x}")]
    UnknownFlags(u8),
    /// A compression code that is defined by the format but not implemented
    /// by this build. Every code of version 1 is implemented now; kept so a
    /// later algorithm can be refused the same way by an older build.
    #[error("unsupported compression code {0}")]
    UnsupportedCompression(u8),
    /// A compressed payload that does not decompress: corrupt or hostile
    /// input, or a declared plain length that disagrees with the data.
    #[error("{algorithm} payload does not decompress: {reason}")]
    Decompress {
        algorithm: crate::header::Compression,
        reason: String,
    },
    /// The input ended before a field that must be there.
    #[error("truncated frame: {what} needs {needed} bytes, {remaining} remain")]
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// Bytes left over after the declared content.
    #[error("{0} trailing bytes after frame content")]
    TrailingBytes(usize),
    /// A frame (payload) or encoded batch larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    Oversize { len: usize, max: usize },
    /// A count (envelopes, entries) that cannot possibly fit in the bytes
    /// that remain; rejected before allocating anything for it.
    #[error("{what} count {count} cannot fit in {remaining} remaining bytes")]
    CountTooLarge {
        what: &'static str,
        count: u32,
        remaining: usize,
    },
    /// The payload's frame kind byte is not Hello or Batch.
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// A message tag that names no [`dcf_core::Message`] variant.
    #[error("unknown message tag {0}")]
    UnknownMessageTag(u8),
    /// An entry kind that names no [`dcf_core::EntryKind`].
    #[error("unknown entry kind {0}")]
    UnknownEntryKind(u8),
    /// A boolean encoded as something other than 0 or 1; rejected so that
    /// every message has exactly one encoding.
    #[error("invalid boolean byte {0}")]
    InvalidBool(u8),
}

/// Why a transport could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value that cannot work (e.g. a zero queue).
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// A TLS file (CA, certificate, key or CRL) is missing, unreadable or
    /// not valid PEM of the expected kind, or the files do not fit together.
    #[error("TLS {what} file {}: {reason}", path.display())]
    TlsFile {
        /// Which file: "CA", "certificate", "private key" or "CRL".
        what: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    /// The TLS configuration could not be built from valid files (e.g. the
    /// key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Tls(String),
}
