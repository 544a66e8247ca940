//! Configuration of a [`crate::Transport`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use dcf_core::NodeId;

use crate::error::TransportError;
use crate::header::{Compression, DEFAULT_MAX_FRAME, HEADER_LEN};
use crate::tls::TlsConfig;

/// Everything a transport needs to know; build it with
/// [`TransportConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id; sent in every hello and required as `from` of every
    /// envelope sent.
    pub node_id: NodeId,
    /// Where to accept connections from peers (port 0 picks a free port,
    /// see [`crate::Transport::local_addr`]).
    pub listen: SocketAddr,
    /// The other nodes and where they listen. Connections from node ids not
    /// in this map are refused, so it doubles as the membership filter.
    pub peers: HashMap<NodeId, SocketAddr>,
    /// Envelopes queued per peer before new ones are dropped. Bounded so a
    /// dead or slow peer costs bounded memory; consensus retries anyway.
    pub max_queue: usize,
    /// Largest frame payload sent or accepted, in bytes.
    pub max_frame: usize,
    /// First delay before reconnecting after a failure.
    pub backoff_min: Duration,
    /// Largest delay between reconnect attempts (the delay doubles per
    /// consecutive failure up to this, with jitter).
    pub backoff_max: Duration,
    /// How long a TCP connect may take before it counts as failed; also how
    /// long an accepted connection may take to send its hello.
    pub connect_timeout: Duration,
    /// How long writing one batch may take before the connection is
    /// considered dead (a paused or wedged peer) and re-established; DCF's
    /// SOCKET_TIMEOUT.
    pub write_timeout: Duration,
    /// How this node compresses the batches it sends (DCF's
    /// COMPRESS_ALGORITHM). Receiving always accepts every algorithm, so
    /// nodes with different settings interoperate.
    pub compression: Compression,
    /// The compression level (DCF's COMPRESS_LEVEL): 1..=22 for ZSTD,
    /// 1..=9 for LZ4 (accepted for DCF compatibility; `lz4_flex` has one
    /// speed). Ignored without compression.
    pub compress_level: i32,
    /// TLS for every connection, both directions, when `Some` (see
    /// [`crate::tls`]); plain TCP when `None`. A TLS node and a plain node
    /// cannot talk to each other.
    pub tls: Option<TlsConfig>,
}

impl TransportConfig {
    /// A configuration with the defaults: queue 4096 envelopes, frames up
    /// to 64 MiB, back-off 50 ms .. 2 s, connect timeout 3 s, write timeout 5 s.
    pub fn new(node_id: NodeId, listen: SocketAddr) -> TransportConfig {
        TransportConfig {
            node_id,
            listen,
            peers: HashMap::new(),
            max_queue: 4096,
            max_frame: DEFAULT_MAX_FRAME,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            compression: Compression::None,
            compress_level: 1,
            tls: None,
        }
    }

    /// Sets the compression from DCF's COMPRESS_ALGORITHM (0 none, 1 ZSTD,
    /// 2 LZ4) and COMPRESS_LEVEL values, rejecting values out of range.
    pub fn set_dcf_compression(
        &mut self,
        algorithm: u64,
        level: u64,
    ) -> Result<(), TransportError> {
        let c = Compression::from_dcf_algorithm(algorithm).ok_or_else(|| {
            TransportError::InvalidConfig(format!(
                "COMPRESS_ALGORITHM {algorithm} is not 0 (none), 1 (ZSTD) or 2 (LZ4)"
            ))
        })?;
        self.compression = c;
        self.compress_level = i32::try_from(level).unwrap_or(i32::MAX);
        self.validate_compression()
    }

    fn validate_compression(&self) -> Result<(), TransportError> {
        let range = self.compression.level_range();
        if !range.contains(&self.compress_level) {
            return Err(TransportError::InvalidConfig(format!(
                "compression level {} out of range {}..={} for {}",
                self.compress_level,
                range.start(),
                range.end(),
                self.compression
            )));
        }
        Ok(())
    }

    /// Adds (or replaces) a peer; for builder-style construction.
    pub fn with_peer(mut self, node_id: NodeId, addr: SocketAddr) -> TransportConfig {
        self.peers.insert(node_id, addr);
        self
    }

    /// Rejects values that cannot work, so a typo fails at start instead of
    /// as a silent black hole later.
    pub fn validate(&self) -> Result<(), TransportError> {
        let bad = |m: String| Err(TransportError::InvalidConfig(m));
        if self.node_id == 0 {
            return bad("node_id must not be 0".into());
        }
        if self.max_queue == 0 {
            return bad("max_queue must be at least 1".into());
        }
        if self.max_frame < 64 || self.max_frame > u32::MAX as usize - HEADER_LEN {
            return bad(format!(
                "max_frame {} out of range 64..{}",
                self.max_frame,
                u32::MAX as usize - HEADER_LEN
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return bad(format!(
                "backoff_min {:?} must be > 0 and <= backoff_max {:?}",
                self.backoff_min, self.backoff_max
            ));
        }
        if self.connect_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("connect_timeout and write_timeout must be > 0".into());
        }
        self.validate_compression()?;
        Ok(())
    }
}
