//! Carrying out the actions the cores emit, in order: storage, the
//! transport, the host's callbacks, and the engine's own metadata.

use super::lock;
use super::runner::Engine;
use super::writer::WriterCmd;
use super::DcfError;
use crate::core::{
    Action, ClusterConfig, Entry, EntryKind, Exception, Index, Message, Role, StreamId,
    StreamMembers, VoteResponse, WorkMode,
};
use crate::storage::{ControlFile, DataDir, HardState, Metadata, StoredWorkMode};
use tracing::{error, info, warn};

/// Persists a committed configuration of `stream` (at log `index`) in the
/// metadata, then its index in the control file, unless a newer one is
/// there already. Metadata first: a crash in between leaves the newer
/// membership labelled with an older index, which only means older
/// configuration entries of the log may still override it (as before).
pub(super) fn persist_config(
    data: &DataDir,
    config: &mut ClusterConfig,
    ctrl: &mut ControlFile,
    stream: StreamId,
    index: Index,
    members: &StreamMembers,
) -> Result<bool, crate::storage::StorageError> {
    if index <= ctrl.state().config_index {
        return Ok(false);
    }
    if config.streams.get(&stream) != Some(members) {
        config.streams.insert(stream, members.clone());
        Metadata::store(data.metadata_dir(), &config.to_json())?;
    }
    ctrl.save_config_index(index)?;
    Ok(true)
}

/// DCF's name of an exception, for logs and tools grepping them.
fn exception_name(e: &crate::core::Exception) -> &'static str {
    match e {
        crate::core::Exception::MissingLog { .. } => "MISSING_LOG",
        crate::core::Exception::CommittedEntryConflict { .. } => "COMMITTED_ENTRY_CONFLICT",
    }
}

impl Engine {
    /// Carries out every pending action of every stream, in order; false
    /// if storage failed and the engine must stop.
    pub(super) fn carry_out_actions(&mut self) -> bool {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for sid in ids {
            // Actions can produce more actions (none do today), so loop.
            loop {
                let slot = self.streams.get_mut(&sid).expect("stream exists");
                slot.report_first_leader_commit(sid);
                let actions = slot.core.take_actions();
                if actions.is_empty() {
                    break;
                }
                let is_leader = slot.core.role() == Role::Leader;
                for a in actions {
                    if !self.carry_out(sid, is_leader, a) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Carries out one action of stream `sid`; false if storage failed.
    fn carry_out(&mut self, sid: StreamId, is_leader: bool, action: Action) -> bool {
        match action {
            Action::SaveHardState(hs) => {
                let slot = self.streams.get_mut(&sid).expect("stream exists");
                let r = slot.ctrl.save(&HardState {
                    term: hs.term,
                    voted_for: hs.voted_for,
                });
                if let Err(e) = r {
                    return self.fatal(format!("saving term/vote of stream {sid}: {e}"));
                }
            }
            Action::TruncateLog { from } => {
                let _ = self
                    .writer
                    .send(WriterCmd::TruncateSuffix { stream: sid, from });
            }
            Action::AppendLog(entries) => {
                let last = entries.last().map(|e| (e.index, e.term));
                let _ = self.writer.send(WriterCmd::Append {
                    stream: sid,
                    entries,
                });
                if let (true, Some((index, term))) = (self.ack_before_fsync, last) {
                    // PLANTED BUG (ack-before-fsync): reports durability
                    // before the writer has fsynced anything.
                    let now = self.now();
                    if let Some(slot) = self.streams.get_mut(&sid) {
                        slot.core.on_persisted(now, index, term);
                    }
                }
            }
            Action::Send(env) => {
                if let Message::VoteResponse(VoteResponse {
                    term,
                    pre_vote: false,
                    granted: true,
                }) = env.msg
                {
                    // A promise the harness audits: a vote is durable
                    // before it is answered, so a restart must remember it.
                    info!(stream = sid, to = env.to, term, "vote granted");
                }
                self.transport.send(env)
            }
            Action::Apply(entries) => {
                if !self.persist_committed_configs(sid, &entries) {
                    return false;
                }
                self.callbacks.on_commit(sid, entries, is_leader)
            }
            Action::SendWithStoredEntries { env, from, to } => {
                let _ = self.writer.send(WriterCmd::SendStored {
                    stream: sid,
                    env,
                    from,
                    to,
                });
            }
            Action::SendSnapshot { to } => self.send_snapshot(sid, to),
            Action::CompactLog { first_kept } => self.compact_log(sid, first_kept),
            Action::ResetLog { last, last_term } => {
                info!(
                    stream = sid,
                    last, last_term, "the log restarts after an installed checkpoint"
                );
                let _ = self.writer.send(WriterCmd::Reset {
                    stream: sid,
                    last,
                    last_term,
                });
            }
            Action::ReadReady { ctx, index } => {
                if let Some(r) = self.reads.remove(&ctx) {
                    let _ = r.send(Ok(index));
                }
            }
            Action::ReadFailed { ctx } => {
                if let Some(r) = self.reads.remove(&ctx) {
                    let _ = r.send(Err(DcfError::LeadershipLost));
                }
            }
            Action::RoleChanged { role, term, leader } => {
                info!(stream = sid, %role, term, leader = ?leader, "role changed");
                self.callbacks.on_status(sid, role, term, leader);
            }
            Action::Exception(e) => self.report_exception(sid, e),
            Action::SaveWorkMode(mode) => return self.save_work_mode(sid, mode),
        }
        true
    }

    /// Reports a storage failure the node cannot go on after; false.
    pub(super) fn fatal(&self, msg: String) -> bool {
        error!("{msg}");
        self.callbacks.on_fatal(msg);
        false
    }

    /// Storage drops the entries below `first_kept`; the `dcf_truncate`
    /// calls of the stream waiting for that are answered when it did.
    fn compact_log(&mut self, sid: StreamId, first_kept: Index) {
        info!(stream = sid, first_kept, "compacting the log");
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.truncations)
            .into_iter()
            .partition(|(s, _)| *s == sid);
        self.truncations = waiting;
        let _ = self.writer.send(WriterCmd::TruncatePrefix {
            stream: sid,
            first_kept,
            done: done.into_iter().map(|(_, r)| r).collect(),
        });
    }

    /// Logs an exception (a committed-entry conflict in normal mode as a
    /// safety alarm) and hands it to the host. The core repeats a lasting
    /// condition once a second, so this logs once a second while it lasts.
    fn report_exception(&mut self, sid: StreamId, e: Exception) {
        let normal = self.streams[&sid].core.work_mode() == WorkMode::Normal;
        if matches!(e, Exception::CommittedEntryConflict { .. }) && normal {
            // In normal mode this cannot happen unless consensus is
            // broken: a safety alarm.
            error!(
                stream = sid,
                exception = exception_name(&e),
                detail = ?e,
                "SAFETY ALARM: a leader sent entries that conflict with a committed entry"
            );
        } else {
            warn!(
                stream = sid,
                exception = exception_name(&e),
                detail = ?e,
                "DCF exception"
            );
        }
        self.callbacks.on_exception(sid, e);
    }

    /// Persists the work mode before later actions (the core gets it back
    /// with `StreamCore::restore_work_mode` after a restart); false if
    /// storage failed.
    fn save_work_mode(&mut self, sid: StreamId, mode: WorkMode) -> bool {
        let stored = match mode {
            WorkMode::Normal => StoredWorkMode::Normal,
            WorkMode::Minority { vote_num } => StoredWorkMode::Minority {
                vote_num: vote_num.min(u32::MAX as u64) as u32,
            },
        };
        info!(stream = sid, mode = ?mode, "work mode changed");
        let slot = self.streams.get_mut(&sid).expect("stream exists");
        if let Err(e) = slot.ctrl.save_work_mode(stored) {
            return self.fatal(format!("saving the work mode of stream {sid}: {e}"));
        }
        true
    }

    /// Persists every configuration entry among `entries` (committed, as
    /// they are being applied) in the metadata, so that a restart after
    /// the log was compacted past it still uses it. False if storage failed.
    pub(super) fn persist_committed_configs(&mut self, sid: StreamId, entries: &[Entry]) -> bool {
        for e in entries.iter().filter(|e| e.kind == EntryKind::Config) {
            let Ok(members) = serde_json::from_slice::<StreamMembers>(&e.data) else {
                continue;
            };
            let slot = self.streams.get_mut(&sid).expect("stream exists");
            match persist_config(
                &self.data,
                &mut self.config,
                &mut slot.ctrl,
                sid,
                e.index,
                &members,
            ) {
                Ok(true) => {
                    info!(stream = sid, index = e.index, members = ?members.ids().collect::<Vec<_>>(), "persisted the committed membership");
                    lock(&self.published).config = self.config.clone();
                }
                Ok(false) => {}
                Err(err) => {
                    return self.fatal(format!("persisting the membership of stream {sid}: {err}"));
                }
            }
        }
        true
    }
}
