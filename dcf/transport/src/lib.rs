//! # dcf-transport
//!
//! DCF's node-to-node transport: every node of a cluster keeps one TCP
//! connection to each peer and exchanges [`Wire`] messages (the core's
//! [`dcf_core::Envelope`]s and the engine's [`HostEnvelope`]s) over it in
//! length-prefixed, versioned, batched binary frames. All streams of a node
//! share one transport.
//!
//! Modules, one concern each:
//! - [`header`] — the fixed frame header (magic, version, flags, length) and
//!   the [`Compression`] flag (none, LZ4, ZSTD; per frame, chosen by the
//!   sender, decoded whatever the receiver's own setting).
//! - [`wire`] — [`Wire`]: what travels, consensus or host messages.
//! - [`codec`] — the payload encoding of hellos and batches of messages;
//!   decoding is bounds-checked and never panics.
//! - [`config`] — [`TransportConfig`].
//! - [`tls`] — [`TlsConfig`]: optional mutually authenticated TLS (rustls)
//!   for every connection.
//! - [`stats`] — counters ([`TransportStats`]).
//! - [`tcp`] — [`Transport`]: listener, per-peer queues and writers,
//!   reconnect with back-off, membership changes, shutdown.
//! - `conn` (private) — the protocol of one connection over any
//!   `AsyncRead + AsyncWrite` stream (TCP or TLS over TCP).
//!
//! Loss is acceptable, blocking is not: consensus retransmits, so a full
//! queue drops the message (and counts it) instead of blocking the caller,
//! and a malformed frame costs only the connection it came on.
//!
//! Differences from DCF's MEC layer: one connection per peer instead of
//! MEC_CHANNEL_NUM channels; no fragmentation (a message must fit in one
//! frame, at most 64 MiB by default); compression is per frame (a batch),
//! not per message; TLS uses rustls's cipher suites (SSL_CIPHER is not
//! applied) and accepts a peer certificate for any name the cluster CA
//! signed (see [`tls`]).

mod backoff;
pub mod codec;
pub mod config;
mod conn;
pub mod error;
pub mod header;
pub mod stats;
pub mod tcp;
pub mod tls;
pub mod wire;

pub use codec::{BatchReport, Codec, Frame, Hello};
pub use config::TransportConfig;
pub use error::{FrameError, TransportError};
pub use header::{Compression, FrameHeader, DEFAULT_MAX_FRAME, HEADER_LEN, MAGIC, VERSION};
pub use stats::TransportStats;
pub use tcp::Transport;
pub use tls::TlsConfig;
pub use wire::{HostEnvelope, HostMessage, SnapshotStatus, Wire};
