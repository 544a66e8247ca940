//! What the core asks its host to do ([`Action`]) and the exceptions it
//! raises.

use super::{HardState, WorkMode};
use crate::config::{NodeId, Role};
use crate::types::{Entry, Envelope, Index, Term};
use serde::{Deserialize, Serialize};

/// DCF exception callbacks the core raises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exception {
    /// This node is behind the leader's first index: the entries it needs
    /// were truncated away (DCF's MISSING_LOG).
    MissingLog {
        leader: NodeId,
        leader_first_index: Index,
        local_last_index: Index,
    },
    /// The leader (a minority-mode leader, see `crate::minority`) sent
    /// entries that conflict with an entry this node has already
    /// committed. The node never drops a committed entry: it refuses the
    /// leader's appends and raises this every second until the host
    /// rebuilds it (wipes the stream's data and restarts it empty).
    CommittedEntryConflict {
        leader: NodeId,
        index: Index,
        local_commit: Index,
    },
}

/// What the host must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Persist term and vote durably before carrying out later actions.
    SaveHardState(HardState),
    /// Remove every log entry with index >= `from` (before later appends).
    TruncateLog { from: Index },
    /// Append entries to the log (not yet durable); report durability with
    /// [`StreamCore::on_persisted`](crate::StreamCore::on_persisted).
    AppendLog(Vec<Entry>),
    /// Send a message to another node (may be lost).
    Send(Envelope),
    /// Committed entries, in order, for the state machine; report with
    /// [`StreamCore::on_applied`](crate::StreamCore::on_applied).
    Apply(Vec<Entry>),
    /// A read registered with [`StreamCore::read_index`](crate::StreamCore::read_index) may be served once
    /// the host has applied up to `index`.
    ReadReady { ctx: u64, index: Index },
    /// A read could not be confirmed (leadership lost).
    ReadFailed { ctx: u64 },
    /// Role, term or leader changed (DCF's status / election callbacks).
    RoleChanged {
        role: Role,
        term: Term,
        leader: Option<NodeId>,
    },
    /// An exception callback.
    Exception(Exception),
    /// Persist the work mode durably (storage: `ControlFile::save_work_mode`)
    /// and pass it to [`StreamCore::restore_work_mode`](crate::StreamCore::restore_work_mode) after the next
    /// start. Like [`Action::SaveHardState`], carry it out before later
    /// actions.
    SaveWorkMode(WorkMode),
    /// Send `env` (a [`Message::Append`](crate::Message::Append) or [`Message::LogTail`](crate::Message::LogTail) without
    /// entries) with the entries `from..=to` read from storage filled in
    /// ([`Message::entries_mut`](crate::Message::entries_mut)): the core no longer holds them in memory.
    SendWithStoredEntries {
        env: Envelope,
        from: Index,
        to: Index,
    },
    /// Peer `to` needs entries below this node's first index: send it the
    /// host's newest checkpoint (see [`crate::snapshot`]). Repeated while
    /// the peer stays behind; report a transfer that failed for good with
    /// [`StreamCore::snapshot_transfer_failed`](crate::StreamCore::snapshot_transfer_failed).
    SendSnapshot { to: NodeId },
    /// Remove every log entry below `first_kept` (the entry before it is
    /// covered by a checkpoint).
    CompactLog { first_kept: Index },
    /// Replace the whole log by an empty one continuing after
    /// (`last`, `last_term`): an installed checkpoint covers everything
    /// up to `last` and the old log did not match it.
    ResetLog { last: Index, last_term: Term },
}
