//! What the engine thread reacts to ([`EngineEvent`]) and how it handles
//! each event: one arm per event in [`Engine::handle`], the work in a
//! method per event.

use super::runner::{Engine, StreamSlot};
use super::start::apply_params;
use super::writer::WriterCmd;
use super::{lock, DcfError};
use crate::core::{
    ConfigChangeStatus, Entry, Index, Member, MemberKind, NodeId, StreamId, Term, WorkMode,
};
use crate::transport::{HostEnvelope, HostMessage, Wire};
use tokio::sync::oneshot;
use tracing::error;

/// Everything the engine thread reacts to.
pub enum EngineEvent {
    /// A message from another node: consensus traffic for a stream's core,
    /// or host traffic for the engine itself.
    Inbound(Wire),
    Propose {
        stream: StreamId,
        key: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(Term, Index), DcfError>>,
    },
    ReadIndex {
        stream: StreamId,
        reply: oneshot::Sender<Result<Index, DcfError>>,
    },
    ReadEntry {
        stream: StreamId,
        index: Index,
        reply: oneshot::Sender<Result<Entry, DcfError>>,
    },
    Truncate {
        stream: StreamId,
        first_kept: Index,
        reply: oneshot::Sender<Result<(), DcfError>>,
    },
    Persisted {
        stream: StreamId,
        index: Index,
        term: Term,
    },
    Applied {
        stream: StreamId,
        index: Index,
    },
    UniversalWrite {
        stream: StreamId,
        key: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(Term, Index), DcfError>>,
    },
    SendMsg {
        stream: StreamId,
        to: Option<NodeId>,
        data: Vec<u8>,
    },
    /// Starts a membership or priority change; replies with its ticket.
    ConfigChange {
        stream: StreamId,
        change: ConfigChange,
        reply: oneshot::Sender<Result<u64, DcfError>>,
    },
    ConfigStatus {
        stream: StreamId,
        ticket: u64,
        reply: oneshot::Sender<Result<ConfigChangeStatus, DcfError>>,
    },
    Leadership {
        stream: StreamId,
        op: LeadershipOp,
        reply: oneshot::Sender<Result<Option<NodeId>, DcfError>>,
    },
    SetWorkMode {
        stream: StreamId,
        mode: WorkMode,
        reply: oneshot::Sender<Result<(), DcfError>>,
    },
    ParamsChanged,
    /// The storage writer failed; the node cannot go on safely.
    StorageFailed(String),
    Stop,
}

/// A membership or priority change (one node at a time).
#[derive(Clone, Debug)]
pub enum ConfigChange {
    Add(Member),
    Remove(NodeId),
    Role(NodeId, MemberKind),
    Priority(NodeId, u64),
}

/// A leadership operation.
#[derive(Clone, Copy, Debug)]
pub enum LeadershipOp {
    Promote { node: NodeId, timeout_ms: u64 },
    Demote,
    TimeoutNotify,
    PauseRep { node: NodeId, time_us: u64 },
}

impl Engine {
    /// Handles one event; false means stop.
    pub(super) fn handle(&mut self, ev: EngineEvent) -> bool {
        let now = self.now();
        match ev {
            EngineEvent::Inbound(msg) => self.on_inbound(now, msg),
            EngineEvent::Propose {
                stream,
                key,
                data,
                reply,
            } => {
                let r = self
                    .slot_mut(stream)
                    .and_then(|slot| Ok(slot.core.propose(now, key, data)?));
                let _ = reply.send(r);
            }
            EngineEvent::UniversalWrite {
                stream,
                key,
                data,
                reply,
            } => self.universal_write(now, stream, key, data, reply),
            EngineEvent::SendMsg { stream, to, data } => self.send_user_message(stream, to, data),
            EngineEvent::ReadIndex { stream, reply } => self.read_index(now, stream, reply),
            EngineEvent::ReadEntry {
                stream,
                index,
                reply,
            } => self.read_entry(stream, index, reply),
            EngineEvent::Truncate {
                stream,
                first_kept,
                reply,
            } => self.truncate(stream, first_kept, reply),
            EngineEvent::Persisted {
                stream,
                index,
                term,
            } => {
                if let Ok(slot) = self.slot_mut(stream) {
                    slot.core.on_persisted(now, index, term);
                }
            }
            EngineEvent::Applied { stream, index } => {
                if let Ok(slot) = self.slot_mut(stream) {
                    slot.core.on_applied(index);
                }
            }
            EngineEvent::ConfigChange {
                stream,
                change,
                reply,
            } => {
                let _ = reply.send(self.change_config(now, stream, change));
            }
            EngineEvent::ConfigStatus {
                stream,
                ticket,
                reply,
            } => {
                let r = self
                    .slot_mut(stream)
                    .map(|slot| slot.core.config_change_status(ticket));
                let _ = reply.send(r);
            }
            EngineEvent::Leadership { stream, op, reply } => {
                let _ = reply.send(self.leadership(now, stream, op));
            }
            EngineEvent::SetWorkMode {
                stream,
                mode,
                reply,
            } => {
                let r = self
                    .slot_mut(stream)
                    .and_then(|slot| Ok(slot.core.set_work_mode(now, mode)?));
                // Queries right after the reply must see the new mode.
                self.publish();
                let _ = reply.send(r);
            }
            EngineEvent::ParamsChanged => self.params_changed(),
            EngineEvent::StorageFailed(msg) => {
                error!(error = %msg, "storage failed; stopping the DCF engine");
                self.callbacks.on_fatal(msg);
                return false;
            }
            EngineEvent::Stop => return false,
        }
        true
    }

    /// The slot of `stream`, or [`DcfError::NoStream`].
    pub(super) fn slot_mut(&mut self, stream: StreamId) -> Result<&mut StreamSlot, DcfError> {
        self.streams
            .get_mut(&stream)
            .ok_or(DcfError::NoStream(stream))
    }

    /// A message from another node: consensus traffic goes to the stream's
    /// core, host traffic is the engine's own.
    fn on_inbound(&mut self, now: u64, msg: Wire) {
        if msg.to_node() != self.node_id {
            return;
        }
        match msg {
            Wire::Consensus(env) => {
                if let Ok(slot) = self.slot_mut(env.stream) {
                    slot.core.step(now, env.from, env.msg);
                }
            }
            Wire::Host(env) => self.handle_host_message(env),
        }
    }

    /// `send_msg` (to one node) or `broadcast_msg` (`to` = `None`: every
    /// other member of the stream).
    fn send_user_message(&mut self, stream: StreamId, to: Option<NodeId>, data: Vec<u8>) {
        let Some(slot) = self.streams.get(&stream) else {
            return;
        };
        let targets: Vec<NodeId> = match to {
            Some(t) => vec![t],
            None => slot
                .core
                .members()
                .ids()
                .filter(|id| *id != self.node_id)
                .collect(),
        };
        for t in targets {
            self.transport.send(HostEnvelope {
                stream,
                from: self.node_id,
                to: t,
                msg: HostMessage::User { data: data.clone() },
            });
        }
    }

    /// Registers a read index; the reply goes out when the core confirms
    /// or fails it.
    fn read_index(
        &mut self,
        now: u64,
        stream: StreamId,
        reply: oneshot::Sender<Result<Index, DcfError>>,
    ) {
        let ctx = self.next_read_ctx;
        let registered = match self.slot_mut(stream) {
            Ok(slot) => slot.core.read_index(now, ctx).map_err(DcfError::from),
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        self.next_read_ctx += 1;
        match registered {
            Ok(()) => {
                self.reads.insert(ctx, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `dcf_read`: from the core's memory, or else from storage.
    fn read_entry(
        &mut self,
        stream: StreamId,
        index: Index,
        reply: oneshot::Sender<Result<Entry, DcfError>>,
    ) {
        let Some(slot) = self.streams.get(&stream) else {
            let _ = reply.send(Err(DcfError::NoStream(stream)));
            return;
        };
        match slot.core.entry(index) {
            Some(e) => {
                let _ = reply.send(Ok(e.clone()));
            }
            None if index >= slot.core.first_index() && index <= slot.core.last_index() => {
                // No longer in memory: storage has it.
                let _ = self.writer.send(WriterCmd::Read {
                    stream,
                    index,
                    reply,
                });
            }
            None => {
                let _ = reply.send(Err(DcfError::NoEntry(index)));
            }
        }
    }

    /// `dcf_truncate`: the core keeps unapplied entries and emits
    /// `CompactLog` for what it drops; the caller hears back once storage
    /// has dropped them.
    fn truncate(
        &mut self,
        stream: StreamId,
        first_kept: Index,
        reply: oneshot::Sender<Result<(), DcfError>>,
    ) {
        let slot = match self.slot_mut(stream) {
            Ok(slot) => slot,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let before = slot.core.first_index();
        if slot.core.compact_log(first_kept) > before {
            self.truncations.push((stream, reply));
        } else {
            let _ = reply.send(Ok(()));
        }
    }

    /// Starts a membership or priority change; its ticket.
    fn change_config(
        &mut self,
        now: u64,
        stream: StreamId,
        change: ConfigChange,
    ) -> Result<u64, DcfError> {
        let c = &mut self.slot_mut(stream)?.core;
        let started = match change {
            ConfigChange::Add(m) => c.add_member(now, m),
            ConfigChange::Remove(n) => c.remove_member(now, n),
            ConfigChange::Role(n, k) => c.change_member_role(now, n, k),
            ConfigChange::Priority(n, p) => c.set_election_priority(now, n, p),
        }?;
        Ok(started.ticket())
    }

    fn leadership(
        &mut self,
        now: u64,
        stream: StreamId,
        op: LeadershipOp,
    ) -> Result<Option<NodeId>, DcfError> {
        let c = &mut self.slot_mut(stream)?.core;
        Ok(match op {
            LeadershipOp::Promote { node, timeout_ms } => {
                c.promote(now, node, timeout_ms).map(|_| Some(node))
            }
            LeadershipOp::Demote => c.demote(now),
            LeadershipOp::TimeoutNotify => c.timeout_notify(now).map(|_| None),
            LeadershipOp::PauseRep { node, time_us } => {
                c.pause_replication(now, node, time_us).map(|_| Some(node))
            }
        }?)
    }

    /// `dcf_set_param` changed something: the cores take the parameters
    /// they use at once.
    fn params_changed(&mut self) {
        let params = lock(&self.params).clone();
        for slot in self.streams.values_mut() {
            let mut o = slot.core.options().clone();
            apply_params(&mut o, &params);
            slot.core.set_election_timeout(o.election_timeout_ms);
            slot.core.set_heartbeat_interval(o.heartbeat_interval_ms);
            slot.core.set_run_mode(o.run_mode);
            slot.core.set_majority_groups(o.majority_groups);
            slot.core
                .set_auto_priority_election(o.auto_priority_election);
            slot.core
                .set_flow_params(o.max_batch_entries, o.latency_pacing, o.load_thresholds);
        }
    }
}
