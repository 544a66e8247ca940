//! Log entries and the messages nodes exchange, shared by the core, the
//! storage and the transport.

use crate::config::{NodeId, StreamId};
use serde::{Deserialize, Serialize};

/// A term number; it only grows.
pub type Term = u64;
/// A log index; the first entry of a stream has index 1, 0 means "none".
pub type Index = u64;

/// What a log entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EntryKind {
    /// Host data written with `write` / `universal_write`.
    Data = 0,
    /// The whole membership of the stream as JSON ([`crate::config::StreamMembers`]).
    /// Every new leader appends one first; membership changes append one too.
    Config = 1,
}

impl EntryKind {
    pub fn from_u8(v: u8) -> Option<EntryKind> {
        match v {
            0 => Some(EntryKind::Data),
            1 => Some(EntryKind::Config),
            _ => None,
        }
    }
}

/// One log entry: DCF's entry header (term, index, key, type, size) plus data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    /// The host's key (DCF passes a u64 key with every write).
    pub key: u64,
    pub kind: EntryKind,
    pub data: Vec<u8>,
}

/// A consensus message of one stream between two nodes. (The engine's own
/// messages, such as forwarded writes and checkpoint transfer, travel
/// beside these in the transport and never reach the core.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    VoteRequest(VoteRequest),
    VoteResponse(VoteResponse),
    Append(AppendRequest),
    AppendResponse(AppendResponse),
    /// Sent by a leader handing over: the receiver campaigns at once.
    TimeoutNow {
        term: Term,
    },
    /// A follower tells its leader its work mode (DCF's status message
    /// carries it): sent when the mode changes and, while either side is
    /// in minority mode, about once per heartbeat. A minority leader counts
    /// only followers reporting minority mode toward its commits.
    WorkModeReport {
        term: Term,
        minority: bool,
    },
    LogTail(LogTail),
    LogTailResponse(LogTailResponse),
}

/// Pre-vote (`pre_vote`, asking for `term` without anyone adopting it) or vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRequest {
    pub term: Term,
    pub pre_vote: bool,
    pub last_index: Index,
    pub last_term: Term,
    /// Set when the leader handed over (promote): voters then ignore
    /// their "live leader known" refusal.
    pub transfer: bool,
}

/// The answer to a [`VoteRequest`]; a granted pre-vote carries the term
/// asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    pub term: Term,
    pub pre_vote: bool,
    pub granted: bool,
}

/// Entries after (`prev_index`, `prev_term`), or none as a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    pub term: Term,
    pub prev_index: Index,
    pub prev_term: Term,
    pub entries: Vec<Entry>,
    pub commit: Index,
    /// The leader's first log index (followers behind it miss logs).
    pub first_index: Index,
    /// The cluster-wide minimum applied index (PASSIVE nodes included).
    pub min_applied: Index,
    /// Heartbeat round of the leader, echoed back; confirms read indexes.
    pub seq: u64,
    /// The leader is in minority mode: normal-mode followers accept it
    /// even if its term is lower than theirs (see `crate::minority`).
    pub minority: bool,
}

/// The answer to an [`AppendRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    pub term: Term,
    pub success: bool,
    /// On success: the highest index known to match the leader's log
    /// and durable on this node. On rejection: where the leader should
    /// retry from (fast back-off hint).
    pub index: Index,
    /// The responder's last log index.
    pub last_index: Index,
    pub applied_index: Index,
    pub seq: u64,
}

/// A LOGGER's entries after (`prev_index`, `prev_term`), sent to a
/// candidate whose vote it refused only because the candidate's log is
/// behind: a LOGGER never campaigns, so if it held the only copy of the
/// freshest entries no voter could be elected. `last_index` and
/// `last_term` describe the LOGGER's log when it sent them; the candidate
/// takes the entries only while that log is more up to date than its own
/// (then none of the entries it replaces can be committed: a committed
/// entry is in every log that is more up to date).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTail {
    pub term: Term,
    pub prev_index: Index,
    pub prev_term: Term,
    pub entries: Vec<Entry>,
    pub last_index: Index,
    pub last_term: Term,
}

/// The candidate's answer to a [`LogTail`]: on success the index its log
/// now matches up to, otherwise where to retry from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTailResponse {
    pub term: Term,
    pub success: bool,
    pub index: Index,
}

impl Message {
    /// The sender's term carried by the message.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::Append(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::TimeoutNow { term } | Message::WorkModeReport { term, .. } => *term,
            Message::LogTail(m) => m.term,
            Message::LogTailResponse(m) => m.term,
        }
    }

    /// The entries a message carries, for a host filling in entries read
    /// from storage ([`crate::Action::SendWithStoredEntries`]).
    pub fn entries_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match self {
            Message::Append(m) => Some(&mut m.entries),
            Message::LogTail(m) => Some(&mut m.entries),
            _ => None,
        }
    }
}

/// A message with its stream and its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub stream: StreamId,
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}
