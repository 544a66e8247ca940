//! Configuration of a [`crate::Transport`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use dcf_core::NodeId;

use crate::error::TransportError;
use crate::header::{DEFAULT_MAX_FRAME, HEADER_LEN};

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
        }
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
        Ok(())
    }
}
