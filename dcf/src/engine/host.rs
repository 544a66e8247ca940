//! The engine's own traffic with its peers' engines, which the cores
//! never see: forwarded writes (`universal_write`), user messages, and
//! checkpoint transfer.

use super::actions::persist_config;
use super::runner::Engine;
use super::transfer::{AckOutcome, Chunk, ChunkOutcome};
use super::{lock, DcfError};
use crate::core::{Index, NodeId, SnapshotMeta, StreamId, Term};
use crate::transport::{HostEnvelope, HostMessage, SnapshotStatus};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Where the result of a write goes.
pub(super) type WriteReply = oneshot::Sender<Result<(Term, Index), DcfError>>;

/// DCF's limits on forwarded writes.
const MAX_FORWARDS: usize = 256;
const FORWARD_TIMEOUT_MS: u64 = 3000;

impl Engine {
    /// `universal_write`: propose here if leading, else forward to the leader.
    pub(super) fn universal_write(
        &mut self,
        now: u64,
        stream: StreamId,
        key: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(Term, Index), DcfError>>,
    ) {
        let Some(slot) = self.streams.get_mut(&stream) else {
            let _ = reply.send(Err(DcfError::NoStream(stream)));
            return;
        };
        if slot.core.role() == crate::core::Role::Leader {
            let _ = reply.send(slot.core.propose(now, key, data).map_err(DcfError::from));
            return;
        }
        let Some(leader) = slot.core.leader() else {
            let _ = reply.send(Err(DcfError::NotLeader { leader: None }));
            return;
        };
        if self.forwards.len() >= MAX_FORWARDS {
            let _ = reply.send(Err(DcfError::Busy));
            return;
        }
        let req = self.next_forward;
        self.next_forward += 1;
        self.forwards.insert(req, (now + FORWARD_TIMEOUT_MS, reply));
        self.transport.send(HostEnvelope {
            stream,
            from: self.node_id,
            to: leader,
            msg: HostMessage::Forward { req, key, data },
        });
    }

    /// Forwarded writes, user messages and checkpoint transfer: one method
    /// per message.
    pub(super) fn handle_host_message(&mut self, env: HostEnvelope) {
        let HostEnvelope {
            stream, from, msg, ..
        } = env;
        match msg {
            HostMessage::Forward { req, key, data } => {
                self.on_forward(stream, from, req, key, data)
            }
            HostMessage::ForwardReply {
                req,
                accepted,
                term,
                index,
                leader,
            } => self.on_forward_reply(req, accepted.then_some((term, index)), leader),
            HostMessage::User { data } => {
                if self.streams.contains_key(&stream) {
                    self.callbacks.on_user_message(stream, from, data);
                }
            }
            HostMessage::SnapshotChunk {
                index,
                term,
                members,
                total,
                offset,
                crc,
                data,
            } => {
                let chunk = Chunk {
                    index,
                    term,
                    members: &members,
                    total,
                    offset,
                    crc,
                    data: &data,
                };
                self.on_snapshot_chunk(stream, from, &chunk);
            }
            HostMessage::SnapshotAck {
                index,
                term,
                next_offset,
                status,
            } => self.on_snapshot_ack(stream, from, (index, term), next_offset, status),
        }
    }

    /// The leader's side of `universal_write`: propose, and tell the
    /// follower the entry's place, or who leads.
    fn on_forward(&mut self, stream: StreamId, from: NodeId, req: u64, key: u64, data: Vec<u8>) {
        let now = self.now();
        let Some(slot) = self.streams.get_mut(&stream) else {
            return;
        };
        let (accepted, term, index, leader) = match slot.core.propose(now, key, data) {
            Ok((t, i)) => (true, t, i, self.node_id),
            Err(_) => (false, 0, 0, slot.core.leader().unwrap_or(0)),
        };
        self.transport.send(HostEnvelope {
            stream,
            from: self.node_id,
            to: from,
            msg: HostMessage::ForwardReply {
                req,
                accepted,
                term,
                index,
                leader,
            },
        });
    }

    /// The follower's side: the forwarded write's result (`appended` the
    /// entry's term and index), or who leads (0: unknown).
    fn on_forward_reply(&mut self, req: u64, appended: Option<(Term, Index)>, leader: NodeId) {
        if let Some((_, reply)) = self.forwards.remove(&req) {
            let r = appended.ok_or(DcfError::NotLeader {
                leader: (leader != 0).then_some(leader),
            });
            let _ = reply.send(r);
        }
    }

    /// A checkpoint chunk arrived: store it (installing the checkpoint
    /// when complete) and answer where the transfer stands.
    fn on_snapshot_chunk(&mut self, stream: StreamId, from: NodeId, chunk: &Chunk<'_>) {
        let (next_offset, status) = self.receive_chunk(stream, from, chunk);
        self.transport.send(HostEnvelope {
            stream,
            from: self.node_id,
            to: from,
            msg: HostMessage::SnapshotAck {
                index: chunk.index,
                term: chunk.term,
                next_offset,
                status,
            },
        });
    }

    /// The receiver's answer to a chunk: send the next one, or finish.
    fn on_snapshot_ack(
        &mut self,
        stream: StreamId,
        from: NodeId,
        (index, term): (Index, Term),
        next_offset: u64,
        status: SnapshotStatus,
    ) {
        let now = self.now();
        match self
            .transfers
            .on_ack(stream, from, (index, term), next_offset, status, now)
        {
            AckOutcome::Send(e) => self.transport.send(e),
            AckOutcome::Done => {
                info!(stream, to = from, index, "checkpoint transfer done");
            }
            AckOutcome::Failed => {
                warn!(
                    stream,
                    to = from,
                    index,
                    "the receiver refused the checkpoint"
                );
                if let Some(slot) = self.streams.get_mut(&stream) {
                    slot.core.snapshot_transfer_failed(from);
                }
            }
            AckOutcome::Ignore => {}
        }
    }

    /// The core asks to send a checkpoint to `to`: start (or keep up) a
    /// transfer of the host's newest one.
    pub(super) fn send_snapshot(&mut self, sid: StreamId, to: NodeId) {
        let now = self.now();
        let Some((meta, path)) = self.callbacks.latest_snapshot(sid) else {
            warn!(
                stream = sid,
                to, "a node needs compacted entries but the host has no checkpoint to send"
            );
            if let Some(slot) = self.streams.get_mut(&sid) {
                slot.core.snapshot_transfer_failed(to);
            }
            return;
        };
        if self.transfers.sending(sid, to, &meta) {
            return;
        }
        info!(stream = sid, to, index = meta.index, term = meta.term, file = %path.display(), "sending a checkpoint");
        match self.transfers.start(sid, to, meta, &path, now) {
            Ok(env) => self.transport.send(env),
            Err(e) => {
                warn!(stream = sid, to, error = %e, file = %path.display(), "cannot send the checkpoint");
                if let Some(slot) = self.streams.get_mut(&sid) {
                    slot.core.snapshot_transfer_failed(to);
                }
            }
        }
    }

    /// A checkpoint chunk arrived; returns the answer (offset and status).
    fn receive_chunk(
        &mut self,
        sid: StreamId,
        from: NodeId,
        chunk: &Chunk<'_>,
    ) -> (u64, SnapshotStatus) {
        let (index, total) = (chunk.index, chunk.total);
        let Some(slot) = self.streams.get(&sid) else {
            return (0, SnapshotStatus::Refused);
        };
        if !slot.core.wants_snapshot(index) {
            // Already there (or leading): nothing more to send.
            return (total, SnapshotStatus::Installed);
        }
        let outcome = self.transfers.on_chunk(sid, from, chunk);
        match outcome {
            Ok(ChunkOutcome::Ack(next)) => (next, SnapshotStatus::Receiving),
            Ok(ChunkOutcome::Refuse) => (0, SnapshotStatus::Refused),
            Ok(ChunkOutcome::Complete { meta, path }) => {
                if self.install_snapshot(sid, from, meta, &path) {
                    (total, SnapshotStatus::Installed)
                } else {
                    (0, SnapshotStatus::Refused)
                }
            }
            Err(e) => {
                warn!(stream = sid, from, error = %e, "cannot store a received checkpoint chunk");
                (0, SnapshotStatus::Refused)
            }
        }
    }

    /// The host installs a received checkpoint, the metadata takes its
    /// membership, then the core continues after it.
    fn install_snapshot(
        &mut self,
        sid: StreamId,
        from: NodeId,
        meta: SnapshotMeta,
        path: &std::path::Path,
    ) -> bool {
        let now = self.now();
        if let Err(e) = self.callbacks.install_snapshot(sid, &meta, path) {
            warn!(stream = sid, from, index = meta.index, error = %e, "the host refused the received checkpoint");
            let _ = std::fs::remove_file(path);
            return false;
        }
        let slot = self.streams.get_mut(&sid).expect("stream exists");
        if let Err(err) = persist_config(
            &self.data,
            &mut self.config,
            &mut slot.ctrl,
            sid,
            meta.index,
            &meta.members,
        ) {
            return self.fatal(format!("persisting the membership of stream {sid}: {err}"));
        }
        lock(&self.published).config = self.config.clone();
        info!(
            stream = sid,
            from,
            index = meta.index,
            term = meta.term,
            "installed a checkpoint received from the leader"
        );
        let index = meta.index;
        if !slot.core.install_snapshot(now, meta) {
            warn!(
                stream = sid,
                index, "the core no longer needed the installed checkpoint"
            );
        }
        true
    }

    pub(super) fn tick_transfers(&mut self, now: u64) {
        let (resend, failed) = self.transfers.tick(now);
        for env in resend {
            self.transport.send(env);
        }
        for (sid, to) in failed {
            warn!(
                stream = sid,
                to, "checkpoint transfer got no answer; giving up for now"
            );
            if let Some(slot) = self.streams.get_mut(&sid) {
                slot.core.snapshot_transfer_failed(to);
            }
        }
    }

    pub(super) fn expire_forwards(&mut self, now: u64) {
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some((_, reply)) = self.forwards.remove(&k) {
                let _ = reply.send(Err(DcfError::Timeout));
            }
        }
    }
}
