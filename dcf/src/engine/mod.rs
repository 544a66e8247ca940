//! The DCF library API: [`Dcf`] drives one
//! [`StreamCore`](crate::core::StreamCore) per stream of this node with
//! real storage (a writer thread doing group commit), the TCP transport
//! and the monotonic clock.
//!
//! Threads: one engine thread owns every stream's core and carries out
//! its actions in order (hard state is saved synchronously, before any
//! later message leaves); one storage writer thread appends, fsyncs once
//! per batch and reports durability back; a small tokio runtime runs the
//! transport. Host calls are messages to the engine thread.

mod actions;
mod events;
mod host;
mod info;
mod load;
mod runner;
mod start;
mod transfer;
mod writer;

use crate::core::{
    ClusterConfig, Entry, Exception, Index, NodeId, Role, SnapshotMeta, StreamId, StreamStatus,
    Term,
};
use crate::params::{ParamError, Params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

pub use events::{ConfigChange, EngineEvent, LeadershipOp};

/// DCF's limit on user messages (512 KB).
pub const MAX_USER_MESSAGE: usize = 512 * 1024;

/// Errors of the DCF API (DCF's return codes and error numbers).
#[derive(Debug, thiserror::Error)]
pub enum DcfError {
    #[error("bad configuration: {0}")]
    Config(#[from] crate::core::ConfigError),
    #[error("node {0} is not in the configuration")]
    NotInConfig(NodeId),
    #[error("stream {0} does not exist on this node")]
    NoStream(StreamId),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("transport: {0}")]
    Transport(#[from] crate::transport::TransportError),
    /// DCF error 603 ROLE_NOT_LEADER: nothing was written.
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The leader has not applied its own first entry yet; nothing was written.
    #[error("the leader is not ready yet")]
    NotReady,
    #[error("leadership transfer in progress")]
    Transferring,
    /// A read index could not be confirmed (leadership lost).
    #[error("leadership could not be confirmed")]
    LeadershipLost,
    #[error("no entry at index {0}")]
    NoEntry(Index),
    /// DCF's TIMEDOUT: no answer in time; a forwarded write may still
    /// succeed later.
    #[error("timed out; the operation may still take effect")]
    Timeout,
    /// Too many forwarded writes in flight (DCF allows 256).
    #[error("too many forwarded writes in flight")]
    Busy,
    /// A membership or priority change was refused or failed.
    #[error("configuration change: {0}")]
    ConfigChange(#[from] crate::core::ConfigChangeError),
    /// promote / demote / timeout_notify / pause_rep refused.
    #[error(transparent)]
    Leadership(#[from] crate::core::LeadershipError),
    #[error("work mode: {0}")]
    WorkMode(#[from] crate::core::WorkModeError),
    /// A user message over DCF's 512 KB limit.
    #[error("message of {0} bytes exceeds the 512 KB limit")]
    MessageTooLarge(usize),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The host's state ends at `applied` but the log starts at
    /// `first_index`: the entries in between are gone (a log truncated
    /// without a checkpoint, or a lost checkpoint).
    #[error("stream {stream}: the host's state ends at index {applied} but the log starts at {first_index}; entries {} to {} are neither in the log nor in the host's state. Restore this node from a peer (empty its data directory and add it again)", applied + 1, first_index - 1)]
    MissingEntries {
        stream: StreamId,
        applied: Index,
        first_index: Index,
    },
    #[error("the DCF engine has stopped")]
    Stopped,
}

impl From<crate::core::ProposeError> for DcfError {
    fn from(e: crate::core::ProposeError) -> Self {
        match e {
            crate::core::ProposeError::NotLeader { leader } => DcfError::NotLeader { leader },
            crate::core::ProposeError::NotReady => DcfError::NotReady,
            crate::core::ProposeError::Transferring => DcfError::Transferring,
        }
    }
}

/// The callbacks a host registers (DCF's `dcf_register_*`). They run on
/// the engine thread and must not block.
pub trait DcfCallbacks: Send + Sync + 'static {
    /// Committed entries in log order: DCF's after-writer callback on the
    /// leader and consensus-notify callback on followers (`is_leader` says
    /// which). The host reports progress with [`Dcf::set_applied_index`].
    fn on_commit(&self, _stream: StreamId, _entries: Vec<Entry>, _is_leader: bool) {}
    /// Role, term or leader changed: DCF's status-notify and election callbacks.
    fn on_status(&self, _stream: StreamId, _role: Role, _term: Term, _leader: Option<NodeId>) {}
    /// DCF's exception callback (for example MISSING_LOG).
    fn on_exception(&self, _stream: StreamId, _exception: Exception) {}
    /// A storage failure the engine cannot recover from; the engine stops.
    fn on_fatal(&self, _error: String) {}
    /// A message another node sent with `send_msg` / `broadcast_msg`
    /// (DCF's user-message callback).
    fn on_user_message(&self, _stream: StreamId, _from: NodeId, _data: Vec<u8>) {}
    /// The host's newest checkpoint of `stream` and the file holding it,
    /// to send to a node that needs entries the log no longer has (only
    /// asked for when [`StartOptions::snapshot_transfer`] is on). The file
    /// must stay readable while it is sent (an open file survives its
    /// unlinking on Unix). `None`: such a node only raises MISSING_LOG.
    fn latest_snapshot(&self, _stream: StreamId) -> Option<(SnapshotMeta, PathBuf)> {
        None
    }
    /// Installs a checkpoint received from another node: `path` holds the
    /// file its host wrote (the host owns it from now on, e.g. renames it
    /// into place). Verify it; when this returns `Ok`, the checkpoint must
    /// be the host's durable state and the host must apply only entries
    /// after `meta.index` from then on. An `Err` leaves everything as it was.
    fn install_snapshot(
        &self,
        _stream: StreamId,
        _meta: &SnapshotMeta,
        _path: &Path,
    ) -> Result<(), String> {
        Err("this host does not install checkpoints".into())
    }
}

/// Callbacks that ignore everything.
pub struct NoCallbacks;
impl DcfCallbacks for NoCallbacks {}

/// Options of [`Dcf::start`] besides node id and config.
pub struct StartOptions {
    /// DATA_PATH: where metadata, logs and control files live.
    pub data_dir: PathBuf,
    /// Parameters set before start (`dcf_set_param` before `dcf_start`).
    pub params: Params,
    pub callbacks: Arc<dyn DcfCallbacks>,
    /// Applied index per stream (`dcf_set_applied_index` before start).
    pub applied: BTreeMap<StreamId, Index>,
    /// The host's newest checkpoint per stream: its index is the applied
    /// index, the log is made to continue after it, and its membership
    /// is used if it is newer than the metadata's.
    pub snapshots: BTreeMap<StreamId, SnapshotMeta>,
    /// The host sends and installs checkpoints
    /// ([`DcfCallbacks::latest_snapshot`], [`DcfCallbacks::install_snapshot`]):
    /// a node behind the leader's first index gets one instead of raising
    /// MISSING_LOG.
    pub snapshot_transfer: bool,
    /// Deliberate defects for harness tests ([`crate::planted`]); empty
    /// for a correct node.
    pub planted: crate::planted::PlantedBugs,
}

impl StartOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> StartOptions {
        StartOptions {
            data_dir: data_dir.into(),
            params: Params::default(),
            callbacks: Arc::new(NoCallbacks),
            applied: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            snapshot_transfer: false,
            planted: crate::planted::PlantedBugs::default(),
        }
    }
}

/// State the engine thread publishes for cheap queries.
#[derive(Default)]
pub(crate) struct Published {
    pub streams: BTreeMap<StreamId, StreamStatus>,
    pub config: ClusterConfig,
    pub stopped: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running DCF node: the handle the host uses (`dcf_start` .. `dcf_stop`).
pub struct Dcf {
    node_id: NodeId,
    events: mpsc::Sender<EngineEvent>,
    published: Arc<Mutex<Published>>,
    params: Arc<Mutex<Params>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Dcf {
    /// `dcf_start(node_id, cfg_str)`: validates the config, persists it on
    /// first start (later starts use the persisted copy), loads every
    /// stream's log and control file, and starts the engine.
    pub fn start(node_id: NodeId, config_json: &str, opts: StartOptions) -> Result<Dcf, DcfError> {
        start::start(node_id, config_json, opts)
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> EngineEvent,
    ) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        // If the engine is gone, the receiver reports the closed channel.
        let _ = self.events.send(make(tx));
        rx
    }

    /// `dcf_write` on the leader: appends `data` and returns the entry's
    /// term and index. The write is committed when `on_commit` hands out an
    /// entry with this index *and* term; another entry at that index means
    /// it was lost.
    pub async fn write(
        &self,
        stream: StreamId,
        key: u64,
        data: Vec<u8>,
    ) -> Result<(Term, Index), DcfError> {
        let rx = self.call(|reply| EngineEvent::Propose {
            stream,
            key,
            data,
            reply,
        });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_universal_write`: a write accepted on any node. A follower
    /// forwards it to the leader it knows and returns the entry's term and
    /// index as the leader appended it. At most 256 forwarded writes are in
    /// flight; after 3 s without an answer the result is
    /// [`DcfError::Timeout`], and the write may still take effect.
    pub async fn universal_write(
        &self,
        stream: StreamId,
        key: u64,
        data: Vec<u8>,
    ) -> Result<(Term, Index), DcfError> {
        let rx = self.call(|reply| EngineEvent::UniversalWrite {
            stream,
            key,
            data,
            reply,
        });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// Starts a membership or priority change and waits up to `wait` for it
    /// to commit (DCF's wait_timeout): `Ok` once committed; an error if it
    /// was refused or definitely failed; [`DcfError::Timeout`] if it is
    /// still under way (it may still succeed).
    pub async fn change_config(
        &self,
        stream: StreamId,
        change: ConfigChange,
        wait: std::time::Duration,
    ) -> Result<(), DcfError> {
        let rx = self.call(|reply| EngineEvent::ConfigChange {
            stream,
            change,
            reply,
        });
        let ticket = rx.await.map_err(|_| DcfError::Stopped)??;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let rx = self.call(|reply| EngineEvent::ConfigStatus {
                stream,
                ticket,
                reply,
            });
            match rx.await.map_err(|_| DcfError::Stopped)?? {
                crate::core::ConfigChangeStatus::Committed { .. } => return Ok(()),
                crate::core::ConfigChangeStatus::Failed(e) => return Err(e.into()),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DcfError::Timeout);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `dcf_add_member`: adds a node (it catches up before it counts).
    pub async fn add_member(
        &self,
        stream: StreamId,
        member: crate::core::Member,
        wait: std::time::Duration,
    ) -> Result<(), DcfError> {
        self.change_config(stream, ConfigChange::Add(member), wait)
            .await
    }

    /// `dcf_remove_member`.
    pub async fn remove_member(
        &self,
        stream: StreamId,
        node: NodeId,
        wait: std::time::Duration,
    ) -> Result<(), DcfError> {
        self.change_config(stream, ConfigChange::Remove(node), wait)
            .await
    }

    /// `dcf_change_member_role` (FOLLOWER <-> PASSIVE).
    pub async fn change_member_role(
        &self,
        stream: StreamId,
        node: NodeId,
        kind: crate::core::MemberKind,
        wait: std::time::Duration,
    ) -> Result<(), DcfError> {
        self.change_config(stream, ConfigChange::Role(node, kind), wait)
            .await
    }

    /// `dcf_set_election_priority`.
    pub async fn set_election_priority(
        &self,
        stream: StreamId,
        node: NodeId,
        priority: u64,
        wait: std::time::Duration,
    ) -> Result<(), DcfError> {
        self.change_config(stream, ConfigChange::Priority(node, priority), wait)
            .await
    }

    async fn leadership(
        &self,
        stream: StreamId,
        op: LeadershipOp,
    ) -> Result<Option<NodeId>, DcfError> {
        let rx = self.call(|reply| EngineEvent::Leadership { stream, op, reply });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_promote_leader(node, timeout)`: blocks new writes, lets `node`
    /// catch up and hands leadership to it; waits until this node sees
    /// `node` lead, or returns [`DcfError::Timeout`] (writes resume).
    pub async fn promote_leader(
        &self,
        stream: StreamId,
        node: NodeId,
        timeout: std::time::Duration,
    ) -> Result<(), DcfError> {
        let ms = timeout.as_millis().max(1) as u64;
        self.leadership(
            stream,
            LeadershipOp::Promote {
                node,
                timeout_ms: ms,
            },
        )
        .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.status(stream)?.leader_id == Some(node) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DcfError::Timeout);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `dcf_demote_leader`: the leader hands over to the most caught-up
    /// eligible node (returned) or steps down.
    pub async fn demote(&self, stream: StreamId) -> Result<Option<NodeId>, DcfError> {
        self.leadership(stream, LeadershipOp::Demote).await
    }

    /// `dcf_timeout_notify`: this node treats its leader as lost and campaigns.
    pub async fn timeout_notify(&self, stream: StreamId) -> Result<(), DcfError> {
        self.leadership(stream, LeadershipOp::TimeoutNotify)
            .await
            .map(|_| ())
    }

    /// `dcf_pause_rep(node, µs)`: the leader sends no entries to `node` for
    /// `time_us` microseconds.
    pub async fn pause_rep(
        &self,
        stream: StreamId,
        node: NodeId,
        time_us: u64,
    ) -> Result<(), DcfError> {
        self.leadership(stream, LeadershipOp::PauseRep { node, time_us })
            .await
            .map(|_| ())
    }

    /// `dcf_set_work_mode`: NORMAL, or MINORITY with `vote_num` (local to
    /// this node; see `dcf_core::minority` for what is and is not guaranteed).
    pub async fn set_work_mode(
        &self,
        stream: StreamId,
        mode: crate::core::WorkMode,
    ) -> Result<(), DcfError> {
        let rx = self.call(|reply| EngineEvent::SetWorkMode {
            stream,
            mode,
            reply,
        });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_send_msg`: sends `data` (at most 512 KB) to node `to`'s
    /// user-message callback. Delivery is best effort, like DCF's.
    pub fn send_msg(&self, stream: StreamId, to: NodeId, data: Vec<u8>) -> Result<(), DcfError> {
        if data.len() > MAX_USER_MESSAGE {
            return Err(DcfError::MessageTooLarge(data.len()));
        }
        self.events
            .send(EngineEvent::SendMsg {
                stream,
                to: Some(to),
                data,
            })
            .map_err(|_| DcfError::Stopped)
    }

    /// `dcf_broadcast_msg`: sends `data` to every other member of the stream.
    pub fn broadcast_msg(&self, stream: StreamId, data: Vec<u8>) -> Result<(), DcfError> {
        if data.len() > MAX_USER_MESSAGE {
            return Err(DcfError::MessageTooLarge(data.len()));
        }
        self.events
            .send(EngineEvent::SendMsg {
                stream,
                to: None,
                data,
            })
            .map_err(|_| DcfError::Stopped)
    }

    /// Linearizable read barrier (read index): resolves to an index the
    /// host must have applied before it serves a read, once a quorum
    /// confirmed this node still leads. Not in DCF's C API; needed by hosts
    /// that serve linearizable reads without writing to the log.
    pub async fn read_index(&self, stream: StreamId) -> Result<Index, DcfError> {
        let rx = self.call(|reply| EngineEvent::ReadIndex { stream, reply });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_read`: the log entry at `index`.
    pub async fn read(&self, stream: StreamId, index: Index) -> Result<Entry, DcfError> {
        let rx = self.call(|reply| EngineEvent::ReadEntry {
            stream,
            index,
            reply,
        });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_truncate`: drops log entries below `first_kept` (only applied
    /// ones; the host must hold a checkpoint covering them, which
    /// `dcf-node` takes first). Returns once storage dropped them durably.
    pub async fn truncate(&self, stream: StreamId, first_kept: Index) -> Result<(), DcfError> {
        let rx = self.call(|reply| EngineEvent::Truncate {
            stream,
            first_kept,
            reply,
        });
        rx.await.map_err(|_| DcfError::Stopped)?
    }

    /// `dcf_set_applied_index`: the host applied every entry up to `index`.
    pub fn set_applied_index(&self, stream: StreamId, index: Index) {
        let _ = self.events.send(EngineEvent::Applied { stream, index });
    }

    fn status(&self, stream: StreamId) -> Result<StreamStatus, DcfError> {
        let p = lock(&self.published);
        if p.stopped {
            return Err(DcfError::Stopped);
        }
        p.streams
            .get(&stream)
            .cloned()
            .ok_or(DcfError::NoStream(stream))
    }

    /// `dcf_get_cluster_min_applied_idx` (meaningful on the leader).
    pub fn get_cluster_min_applied_idx(&self, stream: StreamId) -> Result<Index, DcfError> {
        Ok(self.status(stream)?.cluster_min_applied)
    }

    /// `dcf_get_leader_last_index`: the leader's last index, as this node
    /// knows it (its own if it leads, else the last index it received).
    pub fn get_leader_last_index(&self, stream: StreamId) -> Result<Index, DcfError> {
        let s = self.status(stream)?;
        Ok(s.last_index)
    }

    /// `dcf_get_last_index`: this node's last log index.
    pub fn get_last_index(&self, stream: StreamId) -> Result<Index, DcfError> {
        Ok(self.status(stream)?.last_index)
    }

    /// `dcf_get_node_last_disk_index`: the last index durable on disk.
    pub fn get_node_last_disk_index(&self, stream: StreamId) -> Result<Index, DcfError> {
        Ok(self.status(stream)?.durable_index)
    }

    /// The core's status of a stream (role, term, indexes, peers).
    pub fn stream_status(&self, stream: StreamId) -> Result<StreamStatus, DcfError> {
        self.status(stream)
    }

    /// `dcf_query_stream_info`: JSON with DCF's field names.
    pub fn query_stream_info(&self, stream: StreamId) -> Result<String, DcfError> {
        let s = self.status(stream)?;
        let p = lock(&self.published);
        let params = lock(&self.params);
        Ok(info::stream_info(&s, &p.config, &params).to_string())
    }

    /// `dcf_query_cluster_info`: `{local_node_id, stream_list: [...]}`.
    pub fn query_cluster_info(&self) -> Result<String, DcfError> {
        let p = lock(&self.published);
        if p.stopped {
            return Err(DcfError::Stopped);
        }
        let params = lock(&self.params);
        Ok(info::cluster_info(self.node_id, &p.streams, &p.config, &params).to_string())
    }

    /// `dcf_query_leader_info`: `{leader_id, leader_ip, leader_port}`.
    pub fn query_leader_info(&self, stream: StreamId) -> Result<String, DcfError> {
        let s = self.status(stream)?;
        let p = lock(&self.published);
        Ok(info::leader_info(&s, &p.config).to_string())
    }

    /// `dcf_set_param`: validated against DCF's names and ranges; the
    /// engine picks up the ones it uses at once.
    pub fn set_param(&self, name: &str, value: &str) -> Result<(), DcfError> {
        {
            let mut params = lock(&self.params);
            params.set(name, value)?;
        }
        let _ = self.events.send(EngineEvent::ParamsChanged);
        Ok(())
    }

    /// `dcf_get_param`.
    pub fn get_param(&self, name: &str) -> Result<String, DcfError> {
        Ok(lock(&self.params).get(name)?)
    }

    /// `dcf_stop`: stops the engine, the writer and the transport. Entries
    /// already reported durable stay durable.
    pub fn stop(&self) {
        let _ = self.events.send(EngineEvent::Stop);
        let threads: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
        lock(&self.published).stopped = true;
    }
}

impl Drop for Dcf {
    fn drop(&mut self) {
        self.stop();
    }
}
