//! Counters of a transport, updated lock-free by its tasks and read with
//! [`crate::Transport::stats`]. They exist so operators and the harness can
//! see message loss and connection churn that consensus otherwise hides.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters (shared by all tasks of one transport).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub envelopes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub envelopes_received: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_unknown_peer: AtomicU64,
    pub dropped_oversize: AtomicU64,
    pub dropped_invalid: AtomicU64,
    pub connects: AtomicU64,
    pub reconnects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub write_failures: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub bad_frames: AtomicU64,
    pub tls_failures: AtomicU64,
    pub compressed_frames_sent: AtomicU64,
    pub compressed_frames_received: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> TransportStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            frames_sent: g(&self.frames_sent),
            bytes_sent: g(&self.bytes_sent),
            envelopes_sent: g(&self.envelopes_sent),
            frames_received: g(&self.frames_received),
            bytes_received: g(&self.bytes_received),
            envelopes_received: g(&self.envelopes_received),
            dropped_queue_full: g(&self.dropped_queue_full),
            dropped_unknown_peer: g(&self.dropped_unknown_peer),
            dropped_oversize: g(&self.dropped_oversize),
            dropped_invalid: g(&self.dropped_invalid),
            connects: g(&self.connects),
            reconnects: g(&self.reconnects),
            connect_failures: g(&self.connect_failures),
            write_failures: g(&self.write_failures),
            accepted: g(&self.accepted),
            rejected_connections: g(&self.rejected_connections),
            bad_frames: g(&self.bad_frames),
            tls_failures: g(&self.tls_failures),
            compressed_frames_sent: g(&self.compressed_frames_sent),
            compressed_frames_received: g(&self.compressed_frames_received),
        }
    }
}

/// A point-in-time copy of the counters. Frame and byte counts include
/// hello frames; byte counts include frame headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames written to peers.
    pub frames_sent: u64,
    /// Bytes written to peers.
    pub bytes_sent: u64,
    /// Envelopes written to peers (not necessarily received: a connection
    /// may die with them in flight).
    pub envelopes_sent: u64,
    /// Valid frames read from peers.
    pub frames_received: u64,
    /// Bytes of valid frames read from peers.
    pub bytes_received: u64,
    /// Envelopes handed to the inbound channel.
    pub envelopes_received: u64,
    /// Envelopes dropped because the peer's queue was full (or, for
    /// messages to self, the inbound channel was full).
    pub dropped_queue_full: u64,
    /// Envelopes addressed to a node that is not a peer.
    pub dropped_unknown_peer: u64,
    /// Envelopes too big for one frame.
    pub dropped_oversize: u64,
    /// Envelopes whose `from` is not this node (a caller bug; sending them
    /// would make the receiver drop the whole connection).
    pub dropped_invalid: u64,
    /// Outgoing connections established (hello written).
    pub connects: u64,
    /// Of those, the ones that replaced a lost or failed connection.
    pub reconnects: u64,
    /// Outgoing connection attempts that failed or timed out.
    pub connect_failures: u64,
    /// Established outgoing connections that failed while writing.
    pub write_failures: u64,
    /// Incoming connections accepted (before the hello is checked).
    pub accepted: u64,
    /// Incoming connections refused at the hello (unknown node id, not
    /// addressed to us, no hello in time).
    pub rejected_connections: u64,
    /// Incoming connections closed because of a malformed, oversize or
    /// forged frame.
    pub bad_frames: u64,
    /// TLS handshakes that failed, in either direction (untrusted or
    /// revoked certificate, a plain-TCP peer on a TLS port, a TLS peer on
    /// a plain port, handshake timeout).
    pub tls_failures: u64,
    /// Batch frames written compressed (the rest went plain: compression
    /// off, too small, or not smaller compressed).
    pub compressed_frames_sent: u64,
    /// Valid compressed frames read from peers.
    pub compressed_frames_received: u64,
}
