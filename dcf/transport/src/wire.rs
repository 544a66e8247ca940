//! What travels between two nodes: the consensus core's messages, and the
//! engine's own (host) messages, which the core never sees.
//!
//! The core's [`Envelope`] carries only consensus traffic. Forwarded
//! writes, user messages and checkpoint transfer are the engine's business
//! and travel as a [`HostEnvelope`]; the transport carries both as a
//! [`Wire`] message and hands each back to the engine as it came.

use dcf_core::{Envelope, Index, NodeId, StreamId, Term};

/// One message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Consensus traffic, for the stream's core.
    Consensus(Envelope),
    /// The engine's own traffic.
    Host(HostEnvelope),
}

impl Wire {
    pub fn stream(&self) -> StreamId {
        match self {
            Wire::Consensus(e) => e.stream,
            Wire::Host(e) => e.stream,
        }
    }

    /// The sending node.
    pub fn from_node(&self) -> NodeId {
        match self {
            Wire::Consensus(e) => e.from,
            Wire::Host(e) => e.from,
        }
    }

    /// The receiving node.
    pub fn to_node(&self) -> NodeId {
        match self {
            Wire::Consensus(e) => e.to,
            Wire::Host(e) => e.to,
        }
    }
}

impl From<Envelope> for Wire {
    fn from(e: Envelope) -> Wire {
        Wire::Consensus(e)
    }
}

impl From<HostEnvelope> for Wire {
    fn from(e: HostEnvelope) -> Wire {
        Wire::Host(e)
    }
}

/// A host message with its stream and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEnvelope {
    pub stream: StreamId,
    pub from: NodeId,
    pub to: NodeId,
    pub msg: HostMessage,
}

/// A message the engine exchanges with its peers' engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMessage {
    /// A write accepted on a follower (`universal_write`), forwarded to the
    /// leader.
    Forward { req: u64, key: u64, data: Vec<u8> },
    /// The leader's answer to a [`HostMessage::Forward`]: the entry's term
    /// and index if it was appended, else who leads (0 = unknown).
    ForwardReply {
        req: u64,
        accepted: bool,
        term: Term,
        index: Index,
        leader: NodeId,
    },
    /// A host message (`send_msg` / `broadcast_msg`), delivered to the
    /// receiver's user-message callback.
    User { data: Vec<u8> },
    /// A piece of a checkpoint (bytes `offset..offset + data.len()` of a
    /// file of `total` bytes) for a node that needs entries the sender
    /// compacted away; `crc` is the CRC32C of `data`, `members` the JSON of
    /// the checkpoint's membership. Data-less chunks ask where to resume.
    SnapshotChunk {
        index: Index,
        term: Term,
        members: Vec<u8>,
        total: u64,
        offset: u64,
        crc: u32,
        data: Vec<u8>,
    },
    /// The receiver's answer to a [`HostMessage::SnapshotChunk`]: how many
    /// bytes of checkpoint (`index`, `term`) it holds, or that it installed
    /// or refused it.
    SnapshotAck {
        index: Index,
        term: Term,
        next_offset: u64,
        status: SnapshotStatus,
    },
}

/// Where a checkpoint transfer stands on the receiving node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SnapshotStatus {
    /// Still receiving: send from `next_offset` on.
    Receiving = 0,
    /// Installed: the node continues from the log.
    Installed = 1,
    /// Refused (not needed any more, or the host could not install it).
    Refused = 2,
}

impl SnapshotStatus {
    pub fn from_u8(v: u8) -> Option<SnapshotStatus> {
        match v {
            0 => Some(SnapshotStatus::Receiving),
            1 => Some(SnapshotStatus::Installed),
            2 => Some(SnapshotStatus::Refused),
            _ => None,
        }
    }
}
