//! The `dcf-node` server: a key-value state machine on stream 1 of a DCF
//! node, served to clients over [`super::protocol`].
//!
//! Reply rules (a client must be able to tell "it will never happen" from
//! "it may have happened"; the harness's checkers rely on it):
//! - `ok` once the command's own entry (same index *and* term) was applied;
//! - `fail` only when the command can never take effect: this node is not
//!   the leader before proposing, a cas found another value, another entry
//!   took the proposed index, or the request was malformed;
//! - `info` when the outcome is unknown (the entry was proposed but not
//!   seen applied within the request timeout).
//!
//! Reads are linearizable: the leader confirms its leadership with a
//! quorum round (read index) and waits until it applied that index, so a
//! deposed leader cannot serve a stale value.
//!
//! Checkpoints ([`super::checkpoint`]): every `snapshot_interval` applied
//! entries (and before a `truncate` that no checkpoint covers) the state
//! is copied under the state lock and written in the background; only
//! then is the log truncated, keeping everything after the older of the
//! two kept checkpoints (and at least `snapshot_retention` entries), so
//! that either checkpoint plus the log rebuilds the state. A restart loads
//! the newest valid checkpoint and replays the log after it. Nodes that
//! need entries the leader no longer has receive its newest checkpoint.

use super::checkpoint::{self, CheckpointError, CheckpointStore};
use super::machine::{Applied, ApplyResult, Command, KvMachine, Proposal, WriteTag};
use super::protocol::{read_frame, write_frame, FailureCode, Request, RequestBody, Response};
use crate::core::{ClusterConfig, Entry, Index, NodeId, Role, SnapshotMeta, StreamId, Term};
use crate::engine::{lock, Dcf, DcfCallbacks, DcfError, StartOptions};
use crate::params::Params;
use crate::planted::{PlantedBug, PlantedBugs};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// The stream the key-value service runs on.
pub const KV_STREAM: StreamId = 1;
/// How many applied results are remembered for proposals whose entry
/// was applied before the proposer registered interest in it.
const RECENT_RESULTS: usize = 65_536;

/// Everything `dcf-node` is started with.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub node_id: NodeId,
    pub config_json: String,
    pub data_dir: PathBuf,
    pub client_addr: SocketAddr,
    pub params: Params,
    /// How long a write waits to be applied before answering `info`.
    pub request_timeout: Duration,
    /// Deliberate defects for testing a harness ([`crate::planted`]);
    /// empty for a correct node.
    pub planted: PlantedBugs,
    /// Applied entries between automatic checkpoints (0: none).
    pub snapshot_interval: u64,
    /// Entries kept in the log behind the newest checkpoint, at least.
    pub snapshot_retention: u64,
    /// Send checkpoints to nodes that need compacted entries (off: they
    /// raise MISSING_LOG, as DCF does).
    pub snapshot_transfer: bool,
}

impl ServerOptions {
    /// Options with the defaults of `dcf-node`.
    pub fn new(
        node_id: NodeId,
        config_json: String,
        data_dir: PathBuf,
        client_addr: SocketAddr,
    ) -> ServerOptions {
        ServerOptions {
            node_id,
            config_json,
            data_dir,
            client_addr,
            params: Params::default(),
            request_timeout: Duration::from_secs(5),
            planted: PlantedBugs::default(),
            snapshot_interval: DEFAULT_SNAPSHOT_INTERVAL,
            snapshot_retention: DEFAULT_SNAPSHOT_RETENTION,
            snapshot_transfer: true,
        }
    }
}

/// Default applied entries between automatic checkpoints.
pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 10_000;
/// Default entries kept in the log behind the newest checkpoint.
pub const DEFAULT_SNAPSHOT_RETENTION: u64 = 1_000;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Dcf(#[from] DcfError),
    #[error("cannot listen for clients on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] crate::core::ConfigError),
}

type Outcome = Result<Value, String>;

#[derive(Default)]
struct Pending {
    waiting: HashMap<Index, (Term, oneshot::Sender<Outcome>)>,
    recent: BTreeMap<Index, (Term, Outcome)>,
}

struct Shared {
    machine: Mutex<KvMachine>,
    pending: Mutex<Pending>,
    applied: watch::Sender<Index>,
    checkpoints: CheckpointStore,
    /// The newest checkpoint on disk, which is what peers are sent.
    newest: Mutex<Option<(SnapshotMeta, PathBuf)>>,
    /// One checkpoint write at a time.
    writing: tokio::sync::Mutex<()>,
    /// An automatic checkpoint is scheduled or being written.
    auto_pending: AtomicBool,
    /// The engine, once started (for truncation after a checkpoint).
    dcf: OnceLock<Arc<Dcf>>,
    /// PLANTED BUG (duplicate-apply), kept across installed checkpoints.
    duplicate_apply: bool,
    /// PLANTED BUG (truncate-without-checkpoint).
    truncate_without_checkpoint: bool,
    snapshot_interval: u64,
    snapshot_retention: u64,
}

enum Event {
    Commit(Vec<Entry>),
}

struct Callbacks {
    tx: mpsc::UnboundedSender<Event>,
    shared: Arc<Shared>,
}

impl DcfCallbacks for Callbacks {
    fn latest_snapshot(&self, stream: StreamId) -> Option<(SnapshotMeta, PathBuf)> {
        (stream == KV_STREAM)
            .then(|| lock(&self.shared.newest).clone())
            .flatten()
    }

    fn install_snapshot(
        &self,
        stream: StreamId,
        meta: &SnapshotMeta,
        path: &Path,
    ) -> Result<(), String> {
        if stream != KV_STREAM {
            return Err(format!("no state machine on stream {stream}"));
        }
        install_checkpoint(&self.shared, meta, path)
    }

    fn on_commit(&self, stream: StreamId, entries: Vec<Entry>, _is_leader: bool) {
        if stream == KV_STREAM {
            let _ = self.tx.send(Event::Commit(entries));
        }
    }
    fn on_status(&self, stream: StreamId, role: Role, term: Term, leader: Option<NodeId>) {
        debug!(stream, %role, term, ?leader, "status callback");
    }
    fn on_fatal(&self, error: String) {
        tracing::error!(%error, "fatal DCF error; exiting");
        std::process::exit(3);
    }
}

/// A running server.
pub struct Server {
    dcf: Arc<Dcf>,
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    timeout: Duration,
    /// PLANTED BUG (local-reads): reads from local state, unconfirmed.
    local_reads: bool,
}

impl Server {
    /// Starts DCF and the client listener.
    pub async fn start(opts: ServerOptions) -> Result<Arc<Server>, ServerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let checkpoints = CheckpointStore::open(opts.data_dir.join("kv"))?;
        let (mut machine, newest) = match checkpoints.load_newest()? {
            Some((ck, path)) => {
                info!(
                    index = ck.meta.index,
                    term = ck.meta.term,
                    keys = ck.data.len(),
                    file = %path.display(),
                    "loaded the newest checkpoint"
                );
                let meta = ck.meta.clone();
                (KvMachine::from_checkpoint(ck), Some((meta, path)))
            }
            None => {
                let cfg = ClusterConfig::parse(&opts.config_json)?;
                let members = cfg.streams.get(&KV_STREAM).cloned().unwrap_or_default();
                (KvMachine::new(members), None)
            }
        };
        let duplicate_apply = opts.planted.contains(PlantedBug::DuplicateApply);
        machine.set_duplicate_apply(duplicate_apply);
        let (applied, _) = watch::channel(machine.applied_index());
        let shared = Arc::new(Shared {
            machine: Mutex::new(machine),
            pending: Mutex::new(Pending::default()),
            applied,
            checkpoints,
            newest: Mutex::new(newest.clone()),
            writing: tokio::sync::Mutex::new(()),
            auto_pending: AtomicBool::new(false),
            dcf: OnceLock::new(),
            duplicate_apply,
            truncate_without_checkpoint: opts
                .planted
                .contains(PlantedBug::TruncateWithoutCheckpoint),
            snapshot_interval: opts.snapshot_interval,
            snapshot_retention: opts.snapshot_retention,
        });
        let mut start = StartOptions::new(&opts.data_dir);
        start.params = opts.params.clone();
        start.planted = opts.planted.clone();
        start.callbacks = Arc::new(Callbacks {
            tx,
            shared: shared.clone(),
        });
        start.snapshot_transfer = opts.snapshot_transfer;
        if let Some((meta, _)) = newest {
            start.snapshots.insert(KV_STREAM, meta);
        }
        let node_id = opts.node_id;
        let config = opts.config_json.clone();
        let dcf = tokio::task::spawn_blocking(move || Dcf::start(node_id, &config, start))
            .await
            .map_err(|e| DcfError::Io(std::io::Error::other(e.to_string())))??;
        let dcf = Arc::new(dcf);
        let _ = shared.dcf.set(dcf.clone());
        tokio::spawn(apply_loop(rx, shared.clone(), dcf.clone()));
        let listener = TcpListener::bind(opts.client_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: opts.client_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: opts.client_addr,
            source,
        })?;
        let server = Arc::new(Server {
            dcf,
            shared,
            local_addr,
            timeout: opts.request_timeout,
            local_reads: opts.planted.contains(PlantedBug::LocalReads),
        });
        for b in opts.planted.iter() {
            warn!(
                bug = b.name(),
                breaks = b.rule(),
                "PLANTED BUG: this node is deliberately defective, to test a harness"
            );
        }
        info!(node = node_id, client_addr = %local_addr, "serving clients");
        tokio::spawn(accept_loop(listener, server.clone()));
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn dcf(&self) -> &Dcf {
        &self.dcf
    }

    /// Stops DCF (the listener dies with the runtime).
    pub fn stop(&self) {
        self.dcf.stop();
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response {
        let id = req.id;
        let tag = req.tag;
        let mut resp = match req.body {
            RequestBody::Get { key } => self.get(id, key).await,
            RequestBody::Put { key, value } => {
                self.write(id, Command::Write { key, value }, tag).await
            }
            RequestBody::Cas { key, from, to } => {
                self.write(id, Command::Cas { key, from, to }, tag).await
            }
            RequestBody::Append { key, value } => {
                self.write(id, Command::Append { key, value }, tag).await
            }
            RequestBody::Txn { ops } => self.write(id, Command::Txn { ops }, tag).await,
            RequestBody::Status => match self.dcf.query_stream_info(KV_STREAM) {
                Ok(s) => Response::ok(id, serde_json::from_str(&s).unwrap_or(Value::Null)),
                Err(e) => refused(id, e),
            },
            RequestBody::ClusterInfo => match self.dcf.query_cluster_info() {
                Ok(s) => Response::ok(id, serde_json::from_str(&s).unwrap_or(Value::Null)),
                Err(e) => refused(id, e),
            },
            RequestBody::SetParam { name, value } => match self.dcf.set_param(&name, &value) {
                Ok(()) => Response::ok(id, Value::Null),
                Err(e) => refused(id, e),
            },
            RequestBody::GetParam { name } => match self.dcf.get_param(&name) {
                Ok(v) => Response::ok(id, Value::String(v)),
                Err(e) => refused(id, e),
            },
            RequestBody::Truncate { first_kept } => match self.truncate(first_kept).await {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::fail(id, FailureCode::Refused, e),
            },
            admin => self.admin(id, admin).await,
        };
        resp.node = Some(self.dcf.node_id());
        resp
    }

    /// Administrative requests (membership, leadership, work mode). A
    /// change that timed out may still take effect, so it answers `info`.
    async fn admin(&self, id: u64, body: RequestBody) -> Response {
        use crate::core::{ConfigChangeError, LeadershipError, Member, MemberKind, Role, WorkMode};
        let ms = Duration::from_millis;
        let dcf = &self.dcf;
        let kind_of = |role: &str| match Role::parse_config_role(role) {
            Some(Role::Follower) => Ok(MemberKind::Voter),
            Some(Role::Passive) => Ok(MemberKind::Passive),
            Some(Role::Logger) => Ok(MemberKind::Logger),
            _ => Err(format!(
                "bad role {role:?}: expected FOLLOWER, PASSIVE or LOGGER"
            )),
        };
        let r = match body {
            RequestBody::MemberAdd {
                node_id,
                ip,
                port,
                role,
                wait_ms,
            } => match kind_of(&role) {
                Ok(kind) => {
                    let member = Member {
                        node_id,
                        ip,
                        port,
                        kind,
                        initial_leader: false,
                        weight: 1,
                        group: 0,
                        priority: 0,
                    };
                    dcf.add_member(KV_STREAM, member, ms(wait_ms))
                        .await
                        .map(|_| Value::Null)
                }
                Err(e) => return Response::fail(id, FailureCode::BadRequest, e),
            },
            RequestBody::MemberRemove { node_id, wait_ms } => dcf
                .remove_member(KV_STREAM, node_id, ms(wait_ms))
                .await
                .map(|_| Value::Null),
            RequestBody::MemberRole {
                node_id,
                role,
                wait_ms,
            } => match kind_of(&role) {
                Ok(kind) => dcf
                    .change_member_role(KV_STREAM, node_id, kind, ms(wait_ms))
                    .await
                    .map(|_| Value::Null),
                Err(e) => return Response::fail(id, FailureCode::BadRequest, e),
            },
            RequestBody::SetPriority {
                node_id,
                priority,
                wait_ms,
            } => dcf
                .set_election_priority(KV_STREAM, node_id, priority, ms(wait_ms))
                .await
                .map(|_| Value::Null),
            RequestBody::Promote {
                node_id,
                timeout_ms,
            } => dcf
                .promote_leader(KV_STREAM, node_id, ms(timeout_ms))
                .await
                .map(|_| serde_json::json!({ "leader_id": node_id })),
            RequestBody::Demote => dcf
                .demote(KV_STREAM)
                .await
                .map(|to| serde_json::json!({ "handed_to": to })),
            RequestBody::PauseRep { node_id, time_us } => dcf
                .pause_rep(KV_STREAM, node_id, time_us)
                .await
                .map(|_| Value::Null),
            RequestBody::SetWorkMode { mode, vote_num } => {
                let mode = match (mode.as_str(), vote_num) {
                    ("normal", None) => WorkMode::Normal,
                    ("minority", Some(n)) => WorkMode::Minority { vote_num: n },
                    _ => {
                        return Response::fail(
                            id,
                            FailureCode::BadRequest,
                            "work mode must be normal, or minority with vote_num",
                        )
                    }
                };
                dcf.set_work_mode(KV_STREAM, mode)
                    .await
                    .map(|_| Value::Null)
            }
            other => {
                return Response::fail(
                    id,
                    FailureCode::BadRequest,
                    format!("not an admin request: {other:?}"),
                )
            }
        };
        match r {
            Ok(v) => Response::ok(id, v),
            Err(DcfError::ConfigChange(ConfigChangeError::NotLeader { leader }))
            | Err(DcfError::Leadership(LeadershipError::NotLeader { leader })) => {
                self.not_leader(id, leader)
            }
            Err(DcfError::Timeout) => Response::info(
                id,
                FailureCode::Timeout,
                "timed out; the change may still take effect",
            ),
            Err(e) => refused(id, e),
        }
    }

    /// `dcfctl truncate`: drops log entries below `first_kept`, after
    /// taking a checkpoint if none covers `first_kept - 1` (never below
    /// what a checkpoint covers, so no applied entry is lost).
    async fn truncate(&self, first_kept: Index) -> Result<Value, String> {
        if self.shared.truncate_without_checkpoint {
            // PLANTED BUG (truncate-without-checkpoint): the log is cut
            // below applied entries that no checkpoint holds, breaking
            // "the log is truncated only below a durable checkpoint".
            let applied = lock(&self.shared.machine).applied_index();
            let keep = first_kept.min(applied + 1);
            self.dcf
                .truncate(KV_STREAM, keep)
                .await
                .map_err(|e| e.to_string())?;
            let first = self
                .dcf
                .stream_status(KV_STREAM)
                .map(|s| s.first_index)
                .unwrap_or(keep);
            return Ok(serde_json::json!({ "first_index": first, "checkpoint_index": null }));
        }
        let covered = lock(&self.shared.newest).as_ref().map(|(m, _)| m.index);
        let covered = match covered {
            Some(c) if c + 1 >= first_kept => c,
            _ => take_checkpoint(&self.shared).await?.index,
        };
        let keep = first_kept.min(covered + 1);
        self.dcf
            .truncate(KV_STREAM, keep)
            .await
            .map_err(|e| e.to_string())?;
        let first = self
            .dcf
            .stream_status(KV_STREAM)
            .map(|s| s.first_index)
            .unwrap_or(keep);
        Ok(serde_json::json!({ "first_index": first, "checkpoint_index": covered }))
    }

    fn not_leader(&self, id: u64, leader: Option<NodeId>) -> Response {
        let mut r = Response::fail(
            id,
            FailureCode::NotLeader,
            format!(
                "not leader (leader: {})",
                leader
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ),
        );
        r.leader_id = leader;
        if let (Some(l), Ok(s)) = (leader, self.dcf.stream_status(KV_STREAM)) {
            r.leader_addr = s.members.get(l).map(|m| format!("{}:{}", m.ip, m.port));
        }
        r
    }

    async fn write(&self, id: u64, cmd: Command, tag: Option<WriteTag>) -> Response {
        let is_cas = matches!(cmd, Command::Cas { .. });
        let data = match serde_json::to_vec(&Proposal { cmd, tag }) {
            Ok(d) => d,
            Err(e) => {
                return Response::fail(
                    id,
                    FailureCode::BadRequest,
                    format!("cannot encode command: {e}"),
                )
            }
        };
        let (term, index) = match self.dcf.write(KV_STREAM, 0, data).await {
            Ok(ti) => ti,
            Err(DcfError::NotLeader { leader }) => return self.not_leader(id, leader),
            Err(e) => return write_refused(id, e),
        };
        let rx = {
            let mut p = lock(&self.shared.pending);
            if let Some((t, outcome)) = p.recent.get(&index).cloned() {
                return finish(id, t == term, is_cas, outcome);
            }
            let (tx, rx) = oneshot::channel();
            p.waiting.insert(index, (term, tx));
            rx
        };
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(outcome)) => finish(id, true, is_cas, outcome),
            Ok(Err(_)) => {
                Response::info(id, FailureCode::Stopping, "node stopping; outcome unknown")
            }
            Err(_) => {
                lock(&self.shared.pending).waiting.remove(&index);
                Response::info(
                    id,
                    FailureCode::Timeout,
                    format!("not applied within {:?}; outcome unknown", self.timeout),
                )
            }
        }
    }

    async fn get(&self, id: u64, key: String) -> Response {
        if self.local_reads {
            // PLANTED BUG (local-reads): no read index, no leadership check.
            let v = lock(&self.shared.machine)
                .get(&key)
                .cloned()
                .unwrap_or(Value::Null);
            return Response::ok(id, v);
        }
        let index = match self.dcf.read_index(KV_STREAM).await {
            Ok(i) => i,
            Err(DcfError::NotLeader { leader }) => return self.not_leader(id, leader),
            Err(e) => {
                return Response::fail(
                    id,
                    FailureCode::NoQuorum,
                    format!("read not confirmed: {e}"),
                )
            }
        };
        let mut applied = self.shared.applied.subscribe();
        let wait = applied.wait_for(|a| *a >= index);
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(Ok(_)) => {}
            _ => return Response::fail(id, FailureCode::Timeout, "read index not applied in time"),
        }
        let v = lock(&self.shared.machine)
            .get(&key)
            .cloned()
            .unwrap_or(Value::Null);
        Response::ok(id, v)
    }
}

/// Why a proposed entry failed when another leader's entry took its index
/// (the apply loop reports it with this text).
const REPLACED: &str = "entry was replaced by another leader's entry";

/// Why a tagged write was not applied because its client had already
/// moved on to a later one (the apply loop's text starts with it).
const STALE: &str = "stale retry: the client already had a later write applied";

/// The reply for an applied proposal. Applying fails only for a cas that
/// found another value, or when another leader's entry took the index.
fn finish(id: u64, same_term: bool, is_cas: bool, outcome: Outcome) -> Response {
    match outcome {
        _ if !same_term => Response::fail(id, FailureCode::Replaced, REPLACED),
        Ok(v) => Response::ok(id, v),
        Err(e) if e == REPLACED => Response::fail(id, FailureCode::Replaced, e),
        Err(e) if e.starts_with(STALE) => Response::fail(id, FailureCode::Refused, e),
        Err(e) if is_cas => Response::fail(id, FailureCode::CasMismatch, e),
        Err(e) => Response::fail(id, FailureCode::Internal, e),
    }
}

/// The code of an engine error refused before anything was done.
fn refusal_code(e: &DcfError) -> FailureCode {
    match e {
        DcfError::NotLeader { .. } | DcfError::NotReady | DcfError::Transferring => {
            FailureCode::NotLeader
        }
        DcfError::LeadershipLost => FailureCode::NoQuorum,
        DcfError::Timeout => FailureCode::Timeout,
        DcfError::Stopped => FailureCode::Stopping,
        DcfError::Config(_)
        | DcfError::NotInConfig(_)
        | DcfError::NoStream(_)
        | DcfError::Param(_)
        | DcfError::NoEntry(_)
        | DcfError::MessageTooLarge(_) => FailureCode::BadRequest,
        DcfError::Busy
        | DcfError::ConfigChange(_)
        | DcfError::Leadership(_)
        | DcfError::WorkMode(_) => FailureCode::Refused,
        DcfError::Storage(_)
        | DcfError::Transport(_)
        | DcfError::Io(_)
        | DcfError::MissingEntries { .. } => FailureCode::Internal,
    }
}

/// A request the engine refused: a definite failure with its code.
fn refused(id: u64, e: DcfError) -> Response {
    Response::fail(id, refusal_code(&e), e.to_string())
}

/// A write proposal the engine did not accept. Only refusals before
/// proposing are definite; after an engine stop, a timeout or an internal
/// error the entry may have been appended, so the outcome is unknown.
fn write_refused(id: u64, e: DcfError) -> Response {
    let code = refusal_code(&e);
    match code {
        FailureCode::NotLeader | FailureCode::BadRequest | FailureCode::Refused => {
            Response::fail(id, code, e.to_string())
        }
        _ => Response::info(id, code, format!("{e}; outcome unknown")),
    }
}

async fn apply_loop(mut rx: mpsc::UnboundedReceiver<Event>, shared: Arc<Shared>, dcf: Arc<Dcf>) {
    while let Some(Event::Commit(entries)) = rx.recv().await {
        let mut last = 0;
        for e in entries {
            let applied = lock(&shared.machine).apply_entry(&e);
            let outcome: Outcome = match applied {
                // Already in an installed checkpoint.
                Applied::Skipped => continue,
                Applied::Config => Ok(Value::Null),
                Applied::Command(ApplyResult::Ok(v)) => Ok(v),
                Applied::Command(ApplyResult::Failed(msg)) => Err(msg),
                // A retry answered with the first application's result.
                Applied::Duplicate(ApplyResult::Ok(v)) => Ok(v),
                Applied::Duplicate(ApplyResult::Failed(msg)) => Err(msg),
                Applied::Stale { last } => Err(format!("{STALE} (seq {last})")),
                Applied::Undecodable(err) => {
                    warn!(index = e.index, %err, "undecodable entry; skipped");
                    Err(format!("undecodable entry: {err}"))
                }
            };
            last = e.index;
            let mut p = lock(&shared.pending);
            if let Some((term, tx)) = p.waiting.remove(&e.index) {
                let r = if term == e.term {
                    outcome.clone()
                } else {
                    Err(REPLACED.into())
                };
                let _ = tx.send(r);
            }
            p.recent.insert(e.index, (e.term, outcome));
            while p.recent.len() > RECENT_RESULTS {
                p.recent.pop_first();
            }
        }
        if last > 0 {
            dcf.set_applied_index(KV_STREAM, last);
            shared.applied.send_replace(last);
            maybe_checkpoint(&shared, last);
        }
    }
}

/// Starts a checkpoint in the background when another interval's worth
/// of entries was applied since the newest one (and none is being written).
fn maybe_checkpoint(shared: &Arc<Shared>, applied: Index) {
    let interval = shared.snapshot_interval;
    if interval == 0 {
        return;
    }
    if shared.truncate_without_checkpoint {
        planted_compaction(shared, applied);
        return;
    }
    let newest = lock(&shared.newest).as_ref().map_or(0, |(m, _)| m.index);
    if applied < newest + interval || shared.auto_pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = take_checkpoint(&shared).await {
            warn!(error = %e, "automatic checkpoint failed; the log is not truncated");
        }
        shared.auto_pending.store(false, Ordering::Release);
    });
}

/// PLANTED BUG (truncate-without-checkpoint): every interval of applied
/// entries the log is truncated behind the retention, with no checkpoint
/// taken, breaking "the log is truncated only below a durable checkpoint".
fn planted_compaction(shared: &Arc<Shared>, applied: Index) {
    let first = shared
        .dcf
        .get()
        .and_then(|d| d.stream_status(KV_STREAM).ok())
        .map_or(1, |s| s.first_index);
    let keep = (applied + 1).saturating_sub(shared.snapshot_retention);
    if keep < first + shared.snapshot_interval || shared.auto_pending.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        if let Some(dcf) = shared.dcf.get() {
            match dcf.truncate(KV_STREAM, keep).await {
                Ok(_) => warn!(
                    first_kept = keep,
                    "PLANTED BUG: log truncated without a checkpoint"
                ),
                Err(e) => warn!(error = %e, "truncation failed"),
            }
        }
        shared.auto_pending.store(false, Ordering::Release);
    });
}

/// Copies the state (under its lock, so exactly at the applied index),
/// writes it durably in the background, then truncates the log below what
/// the two kept checkpoints need. Returns the new checkpoint.
async fn take_checkpoint(shared: &Arc<Shared>) -> Result<SnapshotMeta, String> {
    let _writing = shared.writing.lock().await;
    let ck = lock(&shared.machine).checkpoint();
    let meta = ck.meta.clone();
    if let Some((m, _)) = lock(&shared.newest).as_ref() {
        if m.index >= meta.index {
            return Ok(m.clone());
        }
    }
    let store = shared.checkpoints.clone();
    let started = std::time::Instant::now();
    let (path, kept) = tokio::task::spawn_blocking(move || {
        let path = store.write_with_sessions(&ck.meta, &ck.data, &ck.sessions)?;
        store.prune(checkpoint::KEEP, 0)?;
        let kept = store.list()?;
        Ok::<_, CheckpointError>((path, kept))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    *lock(&shared.newest) = Some((meta.clone(), path.clone()));
    // Keep the log from the older kept checkpoint on, so that either one
    // rebuilds the state if the other one turns out damaged.
    let older = kept.get(1).map_or(meta.index, |c| c.index);
    let first_kept = (older + 1)
        .min((meta.index + 1).saturating_sub(shared.snapshot_retention))
        .max(1);
    info!(
        index = meta.index,
        term = meta.term,
        file = %path.display(),
        ms = started.elapsed().as_millis() as u64,
        first_kept,
        "checkpoint written"
    );
    if let Some(dcf) = shared.dcf.get() {
        dcf.truncate(KV_STREAM, first_kept)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(meta)
}

/// Installs a checkpoint received from another node: verified, made the
/// state, and adopted as this node's only checkpoint (older local ones are
/// not covered by the log that now starts after it).
fn install_checkpoint(shared: &Shared, meta: &SnapshotMeta, path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ck = checkpoint::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if ck.meta.index != meta.index || ck.meta.term != meta.term {
        return Err(format!(
            "the file holds the checkpoint at ({}, {}), not ({}, {})",
            ck.meta.index, ck.meta.term, meta.index, meta.term
        ));
    }
    // Not while a checkpoint of our own is being written (it would
    // become the older checkpoint, which the new log does not cover).
    let Ok(_writing) = shared.writing.try_lock() else {
        return Err("a local checkpoint is being written; try again".into());
    };
    {
        let mut m = lock(&shared.machine);
        if m.applied_index() >= meta.index {
            return Err(format!(
                "already applied up to {}, past the checkpoint at {}",
                m.applied_index(),
                meta.index
            ));
        }
        let dest = shared
            .checkpoints
            .adopt(meta, path)
            .map_err(|e| e.to_string())?;
        shared.checkpoints.prune(1, 0).map_err(|e| e.to_string())?;
        *m = KvMachine::from_checkpoint(ck);
        m.set_duplicate_apply(shared.duplicate_apply);
        *lock(&shared.newest) = Some((meta.clone(), dest));
    }
    shared.applied.send_replace(meta.index);
    info!(
        index = meta.index,
        term = meta.term,
        "installed a checkpoint from the leader"
    );
    Ok(())
}

async fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(serve_connection(sock, peer, server.clone()));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(sock: TcpStream, peer: SocketAddr, server: Arc<Server>) {
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Response>(1024);
    let writer = tokio::spawn(async move {
        while let Some(resp) = rx.recv().await {
            let bytes = match serde_json::to_vec(&resp) {
                Ok(b) => b,
                Err(_) => continue,
            };
            if write_frame(&mut wr, &bytes).await.is_err() {
                break;
            }
        }
    });
    loop {
        let frame = match read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                warn!(%peer, error = %e, "closing client connection after a bad frame");
                break;
            }
        };
        let req: Request = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                let id = serde_json::from_slice::<Value>(&frame)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_u64()))
                    .unwrap_or(0);
                if tx
                    .send(Response::fail(
                        id,
                        FailureCode::BadRequest,
                        format!("bad request: {e}"),
                    ))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let server = server.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let resp = server.handle(req).await;
            let _ = tx.send(resp).await;
        });
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::protocol::Outcome as Wire;

    #[test]
    fn write_refusals_are_definite_only_before_proposing() {
        let r = write_refused(1, DcfError::NotReady);
        assert_eq!(
            (r.outcome, r.code),
            (Wire::Fail, Some(FailureCode::NotLeader))
        );
        let r = write_refused(1, DcfError::MessageTooLarge(1 << 20));
        assert_eq!(
            (r.outcome, r.code),
            (Wire::Fail, Some(FailureCode::BadRequest))
        );
        // These may come after the entry was appended: outcome unknown.
        for (e, code) in [
            (DcfError::Timeout, FailureCode::Timeout),
            (DcfError::Stopped, FailureCode::Stopping),
            (
                DcfError::Io(std::io::Error::other("disk")),
                FailureCode::Internal,
            ),
        ] {
            let r = write_refused(1, e);
            assert_eq!((r.outcome, r.code), (Wire::Info, Some(code)));
        }
    }

    #[test]
    fn applied_failures_carry_their_code() {
        let r = finish(1, true, true, Err("cas mismatch: k holds 3".into()));
        assert_eq!(
            (r.outcome, r.code),
            (Wire::Fail, Some(FailureCode::CasMismatch))
        );
        let r = finish(1, true, true, Err(REPLACED.into()));
        assert_eq!(r.code, Some(FailureCode::Replaced));
        let r = finish(1, false, true, Ok(Value::Null));
        assert_eq!(
            (r.outcome, r.code),
            (Wire::Fail, Some(FailureCode::Replaced))
        );
        let r = finish(1, true, false, Ok(Value::Null));
        assert_eq!((r.outcome, r.code), (Wire::Ok, None));
    }
}
