//! The engine thread: owns every stream's core, feeds it events and
//! carries out its actions in order (events in `events`, actions in
//! `actions`, the engine's own traffic in `host`, start-up in `start`).

use super::events::EngineEvent;
use super::host::WriteReply;
use super::load::LoadSampler;
use super::transfer::Transfers;
use super::writer::WriterCmd;
use super::{lock, DcfCallbacks, DcfError, Published};
use crate::core::{ClusterConfig, Index, NodeId, Role, StreamCore, StreamId};
use crate::params::Params;
use crate::storage::{ControlFile, DataDir};
use crate::transport::Transport;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// How often cores get a clock tick.
const TICK: Duration = Duration::from_millis(10);

/// One stream: its core and its control file (term, vote, work mode).
pub(super) struct StreamSlot {
    pub(super) core: StreamCore,
    pub(super) ctrl: ControlFile,
    /// The leadership whose first commit is being watched for (see
    /// [`StreamSlot::report_first_leader_commit`]).
    pub(super) leadership: Option<Leadership>,
}

/// This node's leadership of a stream: its term, the commit index it
/// started from, and whether its first commit was reported.
#[derive(Clone, Copy, Debug)]
pub(super) struct Leadership {
    term: u64,
    commit_at_start: u64,
    reported: bool,
}

impl StreamSlot {
    /// Logs, once per term this node leads, the entry its commit index
    /// first moved to. A leader commits by counting replicas only entries
    /// of its own term (older ones with them); the harness holds every
    /// leader to that rule on these lines, which the engine writes from
    /// what the core reports, outside the core's commit rule.
    pub(super) fn report_first_leader_commit(&mut self, sid: StreamId) {
        let core = &self.core;
        if core.role() != Role::Leader {
            self.leadership = None;
            return;
        }
        let term = core.term();
        let l = match self.leadership {
            Some(l) if l.term == term => l,
            _ => {
                let l = Leadership {
                    term,
                    commit_at_start: core.commit_index(),
                    reported: false,
                };
                self.leadership = Some(l);
                l
            }
        };
        let commit = core.commit_index();
        if l.reported || commit <= l.commit_at_start {
            return;
        }
        let entry_term = core.entry(commit).map(|e| e.term);
        tracing::info!(
            stream = sid,
            term,
            commit,
            entry_term = ?entry_term,
            "first commit as leader"
        );
        self.leadership = Some(Leadership {
            reported: true,
            ..l
        });
    }
}

/// The engine thread's state: every stream of this node and what it
/// drives them with.
pub(super) struct Engine {
    pub(super) node_id: NodeId,
    pub(super) start: Instant,
    pub(super) data: DataDir,
    /// The configuration as persisted in the metadata (committed
    /// membership changes are written back to it).
    pub(super) config: ClusterConfig,
    pub(super) transfers: Transfers,
    pub(super) streams: BTreeMap<StreamId, StreamSlot>,
    pub(super) transport: Arc<Transport>,
    pub(super) writer: mpsc::Sender<WriterCmd>,
    pub(super) callbacks: Arc<dyn DcfCallbacks>,
    pub(super) published: Arc<Mutex<Published>>,
    pub(super) params: Arc<Mutex<Params>>,
    pub(super) next_read_ctx: u64,
    pub(super) reads: HashMap<u64, oneshot::Sender<Result<Index, DcfError>>>,
    pub(super) next_forward: u64,
    /// Peer addresses the transport currently knows.
    pub(super) peer_addrs: BTreeMap<NodeId, String>,
    /// Forwarded writes waiting for the leader's answer, with their deadline (ms).
    pub(super) forwards: HashMap<u64, (u64, WriteReply)>,
    /// Host load for PASSIVE flow control, sampled once a second.
    pub(super) load: LoadSampler,
    /// `dcf_truncate` calls waiting for storage to drop the entries.
    pub(super) truncations: Vec<(StreamId, oneshot::Sender<Result<(), DcfError>>)>,
    /// PLANTED BUG (ack-before-fsync): appended entries count as durable
    /// at once.
    pub(super) ack_before_fsync: bool,
}

impl Engine {
    pub(super) fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The engine thread's loop: events as they come (in batches), a clock
    /// tick every [`TICK`], then the actions, until stopped.
    pub(super) fn run(mut self, events: mpsc::Receiver<EngineEvent>) {
        let mut next_tick = Instant::now();
        'outer: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let first = match events.recv_timeout(wait) {
                Ok(ev) => Some(ev),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch: Vec<EngineEvent> = first.into_iter().collect();
            while batch.len() < 4096 {
                match events.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            for ev in batch {
                if !self.handle(ev) {
                    break 'outer;
                }
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
            if !self.carry_out_actions() {
                break;
            }
            self.sync_peers();
            self.publish();
        }
        self.shut_down();
    }

    /// The clock: the cores tick, forwarded writes and checkpoint
    /// transfers time out, and the host load is sampled once a second.
    fn tick(&mut self) {
        let now = self.now();
        for slot in self.streams.values_mut() {
            slot.core.tick(now);
        }
        self.expire_forwards(now);
        self.tick_transfers(now);
        if self.load.due() {
            let sample = self.load.sample(self.transport.queued_messages());
            for slot in self.streams.values_mut() {
                slot.core.report_load(now, sample);
            }
        }
    }

    /// Stops the writer and the transport.
    fn shut_down(&self) {
        let _ = self.writer.send(WriterCmd::Stop);
        let transport = self.transport.clone();
        // The transport lives on its own runtime; shut it down from there.
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(transport.shutdown());
            }
        });
        info!(node = self.node_id, "DCF engine stopped");
    }

    /// Keeps the transport's peer list equal to the members of every
    /// stream (membership changes add and remove nodes at run time), and
    /// checkpoint transfers to the peers a leader still replicates to.
    pub(super) fn sync_peers(&mut self) {
        for (sid, slot) in &self.streams {
            let status_peers = slot.core.role() == crate::core::Role::Leader;
            let members = slot.core.members();
            let catching_up = slot.core.catching_up_member().map(|m| m.node_id);
            self.transfers.retain_outgoing(*sid, |to| {
                status_peers && (members.get(to).is_some() || catching_up == Some(to))
            });
        }
        let mut want: BTreeMap<NodeId, String> = BTreeMap::new();
        for slot in self.streams.values() {
            let catching_up = slot.core.catching_up_member();
            for m in slot.core.members().members.iter().chain(catching_up) {
                if m.node_id != self.node_id {
                    want.insert(m.node_id, format!("{}:{}", m.ip, m.port));
                }
            }
        }
        if want == self.peer_addrs {
            return;
        }
        for (id, addr) in &want {
            if self.peer_addrs.get(id) != Some(addr) {
                match addr.parse() {
                    Ok(a) => self.transport.set_peer(*id, a),
                    Err(_) => warn!(node = id, %addr, "member address is not ip:port"),
                }
            }
        }
        for id in self.peer_addrs.keys() {
            if !want.contains_key(id) {
                self.transport.remove_peer(*id);
            }
        }
        self.peer_addrs = want;
    }

    pub(super) fn publish(&self) {
        let mut p = lock(&self.published);
        for (sid, slot) in &self.streams {
            p.streams.insert(*sid, slot.core.status());
        }
    }
}
