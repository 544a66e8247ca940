//! The engine thread: owns every stream's core, feeds it events and
//! carries out its actions in order.

use super::transfer::{AckOutcome, Chunk, ChunkOutcome, Transfers};
use super::writer::{self, WriterCmd};
use super::{lock, Dcf, DcfCallbacks, DcfError, Published, StartOptions};
use crate::core::{
    Action, ClusterConfig, ConfigChangeStatus, CoreOptions, Entry, EntryKind, Index, LoadSample,
    LoadThresholds, Member, MemberKind, NodeId, Restored, RunMode, SnapshotMeta, StreamCore,
    StreamId, StreamMembers, Term, WorkMode,
};
use crate::params::Params;
use crate::storage::{ControlFile, DataDir, HardState, Metadata, MetadataOrigin};
use crate::transport::{
    HostEnvelope, HostMessage, SnapshotStatus, TlsConfig, Transport, TransportConfig, Wire,
};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// How often cores get a clock tick.
const TICK: Duration = Duration::from_millis(10);

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

struct StreamSlot {
    core: StreamCore,
    ctrl: ControlFile,
}

struct Engine {
    node_id: NodeId,
    start: Instant,
    data: DataDir,
    /// The configuration as persisted in the metadata (committed
    /// membership changes are written back to it).
    config: ClusterConfig,
    transfers: Transfers,
    streams: BTreeMap<StreamId, StreamSlot>,
    transport: Arc<Transport>,
    writer: mpsc::Sender<WriterCmd>,
    callbacks: Arc<dyn DcfCallbacks>,
    published: Arc<Mutex<Published>>,
    params: Arc<Mutex<Params>>,
    next_read_ctx: u64,
    reads: HashMap<u64, oneshot::Sender<Result<Index, DcfError>>>,
    next_forward: u64,
    /// Peer addresses the transport currently knows.
    peer_addrs: BTreeMap<NodeId, String>,
    /// Forwarded writes waiting for the leader's answer, with their deadline (ms).
    forwards: HashMap<u64, (u64, WriteReply)>,
    /// Host load for PASSIVE flow control, sampled once a second.
    load: LoadSampler,
    /// `dcf_truncate` calls waiting for storage to drop the entries.
    truncations: Vec<(StreamId, oneshot::Sender<Result<(), DcfError>>)>,
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

/// Where the result of a write goes.
type WriteReply = oneshot::Sender<Result<(Term, Index), DcfError>>;

/// DCF's limits on forwarded writes.
const MAX_FORWARDS: usize = 256;
const FORWARD_TIMEOUT_MS: u64 = 3000;

fn core_options(
    node_id: NodeId,
    stream: StreamId,
    params: &Params,
    snapshot_transfer: bool,
) -> CoreOptions {
    let mut o = CoreOptions::new(node_id, stream);
    apply_params(&mut o, params);
    o.seed = rand::random();
    o.snapshot_transfer = snapshot_transfer;
    o
}

/// Persists a committed configuration of `stream` (at log `index`) in the
/// metadata, then its index in the control file, unless a newer one is
/// there already. Metadata first: a crash in between leaves the newer
/// membership labelled with an older index, which only means older
/// configuration entries of the log may still override it (as before).
fn persist_config(
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

fn apply_params(o: &mut CoreOptions, params: &Params) {
    o.election_timeout_ms = params.get_u64("ELECTION_TIMEOUT").max(1);
    o.heartbeat_interval_ms = params.get_u64("HEARTBEAT_INTERVAL").max(1);
    o.run_mode = RunMode::from_param(params.get_u64("RUN_MODE")).unwrap_or(RunMode::Auto);
    o.majority_groups = params.majority_groups();
    let batch = params.get_u64("MEC_BATCH_SIZE");
    o.max_batch_entries = if batch == 0 { 256 } else { batch as usize };
    // DCF: MEC_BATCH_SIZE = 0 means "default batch and commit-latency pacing".
    o.latency_pacing = batch == 0;
    o.load_thresholds = load_thresholds(params);
}

/// The FLOW_CONTROL_* thresholds for throttling PASSIVE peers.
fn load_thresholds(params: &Params) -> LoadThresholds {
    LoadThresholds {
        cpu_percent: params.get_u64("FLOW_CONTROL_CPU_THRESHOLD"),
        disk_rawait_us: params.get_u64("FLOW_CONTROL_DISK_RAWAIT_THRESHOLD"),
        net_queue: params.get_u64("FLOW_CONTROL_NET_QUEUE_MESSAGE_NUM_THRESHOLD"),
    }
}

/// How often the host load is measured for PASSIVE flow control.
const LOAD_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Linux USER_HZ: the unit of the CPU times in `/proc/<pid>/stat`. It is
/// 100 on every architecture Linux exposes to user space, so it is not
/// worth a `sysconf` dependency.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// Measures this process's CPU usage and the read wait of the disk holding
/// the data directory from `/proc` (Linux). What cannot be read (another
/// OS, a data directory on tmpfs/overlay with no entry in
/// `/proc/diskstats`) reads as 0, which never triggers throttling.
struct LoadSampler {
    at: Instant,
    cpu_ticks: Option<u64>,
    /// `major:minor` of the data directory's device, if it is a block device.
    device: Option<(u64, u64)>,
    /// Reads completed and milliseconds spent reading, at the last sample.
    disk: Option<(u64, u64)>,
}

impl LoadSampler {
    fn new(data_dir: &std::path::Path) -> LoadSampler {
        let device = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(data_dir).ok().map(|m| {
                let dev = m.dev();
                let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
                let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
                (major, minor)
            })
        }
        .filter(|(major, _)| *major != 0);
        let mut s = LoadSampler {
            at: Instant::now(),
            cpu_ticks: None,
            device,
            disk: None,
        };
        s.cpu_ticks = process_cpu_ticks();
        s.disk = s.disk_counters();
        s
    }

    fn due(&self) -> bool {
        self.at.elapsed() >= LOAD_SAMPLE_PERIOD
    }

    /// One sample covering the time since the previous one.
    fn sample(&mut self, net_queue: usize) -> LoadSample {
        let wall = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        let cpu = process_cpu_ticks();
        let cpu_percent = match (self.cpu_ticks, cpu) {
            (Some(a), Some(b)) => {
                (b.saturating_sub(a) as f64 / CLOCK_TICKS_PER_SEC / wall * 100.0) as u64
            }
            _ => 0,
        };
        self.cpu_ticks = cpu;
        let disk = self.disk_counters();
        let disk_rawait_us = match (self.disk, disk) {
            (Some((r0, ms0)), Some((r1, ms1))) if r1 > r0 => {
                ms1.saturating_sub(ms0) * 1000 / (r1 - r0)
            }
            _ => 0,
        };
        self.disk = disk;
        LoadSample {
            cpu_percent,
            disk_rawait_us,
            net_queue: net_queue as u64,
        }
    }

    fn disk_counters(&self) -> Option<(u64, u64)> {
        let (major, minor) = self.device?;
        let text = std::fs::read_to_string("/proc/diskstats").ok()?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 7 || f[0].parse() != Ok(major) || f[1].parse() != Ok(minor) {
                return None;
            }
            // reads completed (4th field), time spent reading in ms (7th).
            Some((f[3].parse().ok()?, f[6].parse().ok()?))
        })
    }
}

/// DCF's name of an exception, for logs and tools grepping them.
fn exception_name(e: &crate::core::Exception) -> &'static str {
    match e {
        crate::core::Exception::MissingLog { .. } => "MISSING_LOG",
        crate::core::Exception::CommittedEntryConflict { .. } => "COMMITTED_ENTRY_CONFLICT",
    }
}

/// utime + stime of this process, in clock ticks.
fn process_cpu_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: skip past the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; field 3 (state) is f[0].
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub(super) fn start(
    node_id: NodeId,
    config_json: &str,
    opts: StartOptions,
) -> Result<Dcf, DcfError> {
    // Validate what was passed even if the persisted copy will win, so a
    // malformed string is reported rather than silently ignored.
    ClusterConfig::parse(config_json)?;
    let data = DataDir::create(&opts.data_dir)?;
    let (json, origin) = Metadata::load_or_init(data.metadata_dir(), config_json)?;
    if let MetadataOrigin::Loaded {
        differs_from_passed: true,
    } = origin
    {
        warn!("the passed config differs from the persisted metadata; using the persisted one");
    }
    let mut config = ClusterConfig::parse(&json)?;
    let my_streams = config.streams_of(node_id);
    if my_streams.is_empty() {
        return Err(DcfError::NotInConfig(node_id));
    }
    let listen: SocketAddr = config
        .address_of(node_id)
        .and_then(|a| a.parse().ok())
        .ok_or(DcfError::NotInConfig(node_id))?;

    let params = opts.params.clone();
    let start = Instant::now();
    let mut streams = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for sid in &my_streams {
        let dirs = data.ensure_stream(*sid)?;
        let segment = params.get_u64("DATA_FILE_SIZE") * 1024 * 1024;
        let (log, report) = writer::open_log(&dirs.log, segment)?;
        if !report.is_clean() {
            warn!(
                stream = sid,
                dropped_bytes = report.truncated_bytes,
                dropped_entries = report.dropped_entries,
                file = ?report.truncated_file,
                reason = ?report.reason,
                "truncated a torn or corrupt log tail at start-up"
            );
        }
        let mut ctrl = ControlFile::open(&dirs.ctrl)?;
        let hs = ctrl.load();
        let checkpoint = opts.snapshots.get(sid);
        let applied = opts
            .applied
            .get(sid)
            .copied()
            .unwrap_or(0)
            .max(checkpoint.map_or(0, |c| c.index));
        let mut log = log;
        let is_logger = config.streams[sid]
            .get(node_id)
            .is_some_and(|m| m.kind == MemberKind::Logger);
        if applied + 1 < log.first_index() && !is_logger {
            // The entries in between are neither in the log nor in the
            // host's state: starting would leave a hole in it.
            return Err(DcfError::MissingEntries {
                stream: *sid,
                applied,
                first_index: log.first_index(),
            });
        }
        if let Some(c) = checkpoint.filter(|c| c.index > 0) {
            if log.term_at(c.index) != Some(c.term) {
                warn!(
                    stream = sid,
                    checkpoint = c.index,
                    checkpoint_term = c.term,
                    log_first = log.first_index(),
                    log_last = log.last_index(),
                    "the log does not continue the host's checkpoint; restarting the log after it"
                );
                log.reset(c.index, c.term)?;
            }
            if persist_config(&data, &mut config, &mut ctrl, *sid, c.index, &c.members)? {
                info!(
                    stream = sid,
                    index = c.index,
                    "membership taken from the checkpoint"
                );
            }
        }
        let first = log.first_index();
        let last = log.last_index();
        let prev_term = log.term_at(first.saturating_sub(1)).unwrap_or(0);
        let entries = if last >= first {
            log.entries(first, last, u64::MAX)?
        } else {
            Vec::new()
        };
        info!(
            stream = sid,
            term = hs.term,
            first_index = first,
            last_index = last,
            "loaded stream"
        );
        let restored = Restored {
            hard_state: crate::core::HardState {
                term: hs.term,
                voted_for: hs.voted_for,
            },
            first_index: first,
            prev_term,
            entries,
            applied_index: applied,
            config_index: ctrl.state().config_index,
        };
        let members = config.streams[sid].clone();
        let mut core = StreamCore::new(
            core_options(node_id, *sid, &params, opts.snapshot_transfer),
            members,
            restored,
            0,
        );
        if let crate::storage::StoredWorkMode::Minority { vote_num } = ctrl.state().work_mode {
            warn!(stream = sid, vote_num, "restarting in minority work mode");
            core.restore_work_mode(WorkMode::Minority {
                vote_num: vote_num as u64,
            });
        }
        streams.insert(*sid, StreamSlot { core, ctrl });
        logs.insert(*sid, log);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dcf-transport")
        .enable_all()
        .build()?;
    let (events_tx, events_rx) = mpsc::channel::<EngineEvent>();
    let (inbound_tx, mut inbound_rx) = tokio::sync::mpsc::channel::<Wire>(4096);
    let mut tcfg = TransportConfig::new(node_id, listen);
    // COMPRESS_* pick how this node sends (it decodes every algorithm);
    // SSL_CA/CERT/KEY turn TLS on only together, a partial set fails here.
    tcfg.set_dcf_compression(
        params.get_u64("COMPRESS_ALGORITHM"),
        params.get_u64("COMPRESS_LEVEL"),
    )?;
    let ssl = |name: &str| params.get(name).unwrap_or_default();
    tcfg.tls = TlsConfig::from_dcf_params(
        &ssl("SSL_CA"),
        &ssl("SSL_CERT"),
        &ssl("SSL_KEY"),
        &ssl("SSL_CRL"),
    )?;
    for (sid, members) in &config.streams {
        let _ = sid;
        for m in &members.members {
            if m.node_id != node_id {
                if let Ok(addr) = format!("{}:{}", m.ip, m.port).parse() {
                    tcfg.peers.insert(m.node_id, addr);
                }
            }
        }
    }
    let transport = Arc::new(runtime.block_on(Transport::start(tcfg, inbound_tx))?);
    let fwd = events_tx.clone();
    runtime.spawn(async move {
        while let Some(env) = inbound_rx.recv().await {
            if fwd.send(EngineEvent::Inbound(env)).is_err() {
                break;
            }
        }
    });

    let writer_tx = writer::spawn(logs, events_tx.clone(), transport.clone())?;
    let transfer_dirs = my_streams
        .iter()
        .map(|sid| (*sid, data.stream_dir(*sid).join("checkpoint_in")))
        .collect();
    let transfers = Transfers::new(node_id, transfer_dirs)?;
    let published = Arc::new(Mutex::new(Published {
        config: config.clone(),
        ..Published::default()
    }));
    let params = Arc::new(Mutex::new(params));
    let mut engine = Engine {
        node_id,
        start,
        data,
        config,
        transfers,
        streams,
        transport,
        writer: writer_tx.0,
        callbacks: opts.callbacks,
        published: published.clone(),
        params: params.clone(),
        next_read_ctx: 1,
        reads: HashMap::new(),
        next_forward: 1,
        forwards: HashMap::new(),
        peer_addrs: BTreeMap::new(),
        load: LoadSampler::new(&opts.data_dir),
        truncations: Vec::new(),
    };
    engine.sync_peers();
    engine.sync_peers();
    engine.publish();
    let handle = std::thread::Builder::new()
        .name(format!("dcf-engine-{node_id}"))
        .spawn(move || engine.run(events_rx))?;
    info!(node = node_id, %listen, streams = ?my_streams, "DCF started");
    Ok(Dcf {
        node_id,
        events: events_tx,
        published,
        params,
        threads: Mutex::new(vec![handle, writer_tx.1]),
        runtime: Mutex::new(Some(runtime)),
    })
}

impl Engine {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(mut self, events: mpsc::Receiver<EngineEvent>) {
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
                next_tick = Instant::now() + super::runner::TICK;
            }
            if !self.carry_out_actions() {
                break;
            }
            self.sync_peers();
            self.publish();
        }
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

    /// Handles one event; false means stop.
    fn handle(&mut self, ev: EngineEvent) -> bool {
        let now = self.now();
        match ev {
            EngineEvent::Inbound(msg) => {
                if msg.to_node() != self.node_id {
                    return true;
                }
                match msg {
                    Wire::Consensus(env) => {
                        if let Some(slot) = self.streams.get_mut(&env.stream) {
                            slot.core.step(now, env.from, env.msg);
                        }
                    }
                    Wire::Host(env) => self.handle_host_message(env),
                }
            }
            EngineEvent::UniversalWrite {
                stream,
                key,
                data,
                reply,
            } => {
                self.universal_write(now, stream, key, data, reply);
            }
            EngineEvent::SendMsg { stream, to, data } => {
                if let Some(slot) = self.streams.get(&stream) {
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
            }
            EngineEvent::Propose {
                stream,
                key,
                data,
                reply,
            } => {
                let r = match self.streams.get_mut(&stream) {
                    Some(slot) => slot.core.propose(now, key, data).map_err(DcfError::from),
                    None => Err(DcfError::NoStream(stream)),
                };
                let _ = reply.send(r);
            }
            EngineEvent::ReadIndex { stream, reply } => match self.streams.get_mut(&stream) {
                Some(slot) => {
                    let ctx = self.next_read_ctx;
                    self.next_read_ctx += 1;
                    match slot.core.read_index(now, ctx) {
                        Ok(()) => {
                            self.reads.insert(ctx, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.into()));
                        }
                    }
                }
                None => {
                    let _ = reply.send(Err(DcfError::NoStream(stream)));
                }
            },
            EngineEvent::ReadEntry {
                stream,
                index,
                reply,
            } => match self.streams.get(&stream) {
                Some(slot) => match slot.core.entry(index) {
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
                },
                None => {
                    let _ = reply.send(Err(DcfError::NoStream(stream)));
                }
            },
            EngineEvent::Truncate {
                stream,
                first_kept,
                reply,
            } => {
                match self.streams.get_mut(&stream) {
                    Some(slot) => {
                        // The core keeps unapplied entries and emits
                        // `CompactLog` for what it drops; the caller hears
                        // back once storage has dropped them.
                        let before = slot.core.first_index();
                        if slot.core.compact_log(first_kept) > before {
                            self.truncations.push((stream, reply));
                        } else {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    None => {
                        let _ = reply.send(Err(DcfError::NoStream(stream)));
                    }
                }
            }
            EngineEvent::Persisted {
                stream,
                index,
                term,
            } => {
                if let Some(slot) = self.streams.get_mut(&stream) {
                    slot.core.on_persisted(now, index, term);
                }
            }
            EngineEvent::Applied { stream, index } => {
                if let Some(slot) = self.streams.get_mut(&stream) {
                    slot.core.on_applied(index);
                }
            }
            EngineEvent::ConfigChange {
                stream,
                change,
                reply,
            } => {
                let r = match self.streams.get_mut(&stream) {
                    Some(slot) => {
                        let c = &mut slot.core;
                        match change {
                            ConfigChange::Add(m) => c.add_member(now, m),
                            ConfigChange::Remove(n) => c.remove_member(now, n),
                            ConfigChange::Role(n, k) => c.change_member_role(now, n, k),
                            ConfigChange::Priority(n, p) => c.set_election_priority(now, n, p),
                        }
                        .map(|started| started.ticket())
                        .map_err(DcfError::from)
                    }
                    None => Err(DcfError::NoStream(stream)),
                };
                let _ = reply.send(r);
            }
            EngineEvent::ConfigStatus {
                stream,
                ticket,
                reply,
            } => {
                let r = match self.streams.get(&stream) {
                    Some(slot) => Ok(slot.core.config_change_status(ticket)),
                    None => Err(DcfError::NoStream(stream)),
                };
                let _ = reply.send(r);
            }
            EngineEvent::Leadership { stream, op, reply } => {
                let r = match self.streams.get_mut(&stream) {
                    Some(slot) => {
                        let c = &mut slot.core;
                        match op {
                            LeadershipOp::Promote { node, timeout_ms } => {
                                c.promote(now, node, timeout_ms).map(|_| Some(node))
                            }
                            LeadershipOp::Demote => c.demote(now),
                            LeadershipOp::TimeoutNotify => c.timeout_notify(now).map(|_| None),
                            LeadershipOp::PauseRep { node, time_us } => {
                                c.pause_replication(now, node, time_us).map(|_| Some(node))
                            }
                        }
                        .map_err(DcfError::from)
                    }
                    None => Err(DcfError::NoStream(stream)),
                };
                let _ = reply.send(r);
            }
            EngineEvent::SetWorkMode {
                stream,
                mode,
                reply,
            } => {
                let r = match self.streams.get_mut(&stream) {
                    Some(slot) => slot.core.set_work_mode(now, mode).map_err(DcfError::from),
                    None => Err(DcfError::NoStream(stream)),
                };
                // Queries right after the reply must see the new mode.
                self.publish();
                let _ = reply.send(r);
            }
            EngineEvent::ParamsChanged => {
                let params = lock(&self.params).clone();
                for slot in self.streams.values_mut() {
                    let mut o = slot.core.options().clone();
                    apply_params(&mut o, &params);
                    slot.core.set_election_timeout(o.election_timeout_ms);
                    slot.core.set_heartbeat_interval(o.heartbeat_interval_ms);
                    slot.core.set_run_mode(o.run_mode);
                    slot.core.set_majority_groups(o.majority_groups);
                    slot.core.set_flow_params(
                        o.max_batch_entries,
                        o.latency_pacing,
                        o.load_thresholds,
                    );
                }
            }
            EngineEvent::StorageFailed(msg) => {
                error!(error = %msg, "storage failed; stopping the DCF engine");
                self.callbacks.on_fatal(msg);
                return false;
            }
            EngineEvent::Stop => return false,
        }
        true
    }

    /// Carries out every pending action of every stream, in order.
    fn carry_out_actions(&mut self) -> bool {
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for sid in ids {
            // Actions can produce more actions (none do today), so loop.
            loop {
                let slot = self.streams.get_mut(&sid).expect("stream exists");
                let actions = slot.core.take_actions();
                if actions.is_empty() {
                    break;
                }
                let is_leader = slot.core.role() == crate::core::Role::Leader;
                for a in actions {
                    match a {
                        Action::SaveHardState(hs) => {
                            let slot = self.streams.get_mut(&sid).expect("stream exists");
                            let r = slot.ctrl.save(&HardState {
                                term: hs.term,
                                voted_for: hs.voted_for,
                            });
                            if let Err(e) = r {
                                let msg = format!("saving term/vote of stream {sid}: {e}");
                                error!("{msg}");
                                self.callbacks.on_fatal(msg);
                                return false;
                            }
                        }
                        Action::TruncateLog { from } => {
                            let _ = self
                                .writer
                                .send(WriterCmd::TruncateSuffix { stream: sid, from });
                        }
                        Action::AppendLog(entries) => {
                            let _ = self.writer.send(WriterCmd::Append {
                                stream: sid,
                                entries,
                            });
                        }
                        Action::Send(env) => self.transport.send(env),
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
                        Action::CompactLog { first_kept } => {
                            info!(stream = sid, first_kept, "compacting the log");
                            let (done, waiting): (Vec<_>, Vec<_>) =
                                std::mem::take(&mut self.truncations)
                                    .into_iter()
                                    .partition(|(s, _)| *s == sid);
                            self.truncations = waiting;
                            let _ = self.writer.send(WriterCmd::TruncatePrefix {
                                stream: sid,
                                first_kept,
                                done: done.into_iter().map(|(_, r)| r).collect(),
                            });
                        }
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
                        Action::Exception(e) => {
                            // The core repeats a lasting condition once a
                            // second, so this logs once a second while it lasts.
                            let normal = self.streams[&sid].core.work_mode() == WorkMode::Normal;
                            if matches!(e, crate::core::Exception::CommittedEntryConflict { .. })
                                && normal
                            {
                                // In normal mode this cannot happen unless
                                // consensus is broken: a safety alarm.
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
                        Action::SaveWorkMode(mode) => {
                            // Persist before later actions; pass it back with
                            // `StreamCore::restore_work_mode` after a restart.
                            let stored = match mode {
                                crate::core::WorkMode::Normal => {
                                    crate::storage::StoredWorkMode::Normal
                                }
                                crate::core::WorkMode::Minority { vote_num } => {
                                    crate::storage::StoredWorkMode::Minority {
                                        vote_num: vote_num.min(u32::MAX as u64) as u32,
                                    }
                                }
                            };
                            info!(stream = sid, mode = ?mode, "work mode changed");
                            let slot = self.streams.get_mut(&sid).expect("stream exists");
                            if let Err(e) = slot.ctrl.save_work_mode(stored) {
                                let msg = format!("saving the work mode of stream {sid}: {e}");
                                error!("{msg}");
                                self.callbacks.on_fatal(msg);
                                return false;
                            }
                        }
                    }
                }
            }
        }
        true
    }

    /// `universal_write`: propose here if leading, else forward to the leader.
    fn universal_write(
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

    /// Forwarded writes, user messages and checkpoint transfer: the
    /// engine's own traffic, which the cores never see.
    fn handle_host_message(&mut self, env: HostEnvelope) {
        let now = self.now();
        match env.msg {
            HostMessage::Forward { req, key, data } => {
                let Some(slot) = self.streams.get_mut(&env.stream) else {
                    return;
                };
                let (accepted, term, index, leader) = match slot.core.propose(now, key, data) {
                    Ok((t, i)) => (true, t, i, self.node_id),
                    Err(_) => (false, 0, 0, slot.core.leader().unwrap_or(0)),
                };
                self.transport.send(HostEnvelope {
                    stream: env.stream,
                    from: self.node_id,
                    to: env.from,
                    msg: HostMessage::ForwardReply {
                        req,
                        accepted,
                        term,
                        index,
                        leader,
                    },
                });
            }
            HostMessage::ForwardReply {
                req,
                accepted,
                term,
                index,
                leader,
            } => {
                if let Some((_, reply)) = self.forwards.remove(&req) {
                    let r = if accepted {
                        Ok((term, index))
                    } else {
                        Err(DcfError::NotLeader {
                            leader: (leader != 0).then_some(leader),
                        })
                    };
                    let _ = reply.send(r);
                }
            }
            HostMessage::User { data } => {
                if !self.streams.contains_key(&env.stream) {
                    return;
                }
                self.callbacks.on_user_message(env.stream, env.from, data);
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
                let (next_offset, status) = self.receive_chunk(env.stream, env.from, &chunk);
                self.transport.send(HostEnvelope {
                    stream: env.stream,
                    from: self.node_id,
                    to: env.from,
                    msg: HostMessage::SnapshotAck {
                        index,
                        term,
                        next_offset,
                        status,
                    },
                });
            }
            HostMessage::SnapshotAck {
                index,
                term,
                next_offset,
                status,
            } => {
                let now = self.now();
                match self.transfers.on_ack(
                    env.stream,
                    env.from,
                    (index, term),
                    next_offset,
                    status,
                    now,
                ) {
                    AckOutcome::Send(e) => self.transport.send(e),
                    AckOutcome::Done => {
                        info!(
                            stream = env.stream,
                            to = env.from,
                            index,
                            "checkpoint transfer done"
                        );
                    }
                    AckOutcome::Failed => {
                        warn!(
                            stream = env.stream,
                            to = env.from,
                            index,
                            "the receiver refused the checkpoint"
                        );
                        if let Some(slot) = self.streams.get_mut(&env.stream) {
                            slot.core.snapshot_transfer_failed(env.from);
                        }
                    }
                    AckOutcome::Ignore => {}
                }
            }
        }
    }

    /// Persists every configuration entry among `entries` (committed, as
    /// they are being applied) in the metadata, so that a restart after
    /// the log was compacted past it still uses it. False if storage failed.
    fn persist_committed_configs(&mut self, sid: StreamId, entries: &[Entry]) -> bool {
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
                    let msg = format!("persisting the membership of stream {sid}: {err}");
                    error!("{msg}");
                    self.callbacks.on_fatal(msg);
                    return false;
                }
            }
        }
        true
    }

    /// The core asks to send a checkpoint to `to`: start (or keep up) a
    /// transfer of the host's newest one.
    fn send_snapshot(&mut self, sid: StreamId, to: NodeId) {
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
            let msg = format!("persisting the membership of stream {sid}: {err}");
            error!("{msg}");
            self.callbacks.on_fatal(msg);
            return false;
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

    fn tick_transfers(&mut self, now: u64) {
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

    fn expire_forwards(&mut self, now: u64) {
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

    /// Keeps the transport's peer list equal to the members of every
    /// stream (membership changes add and remove nodes at run time), and
    /// checkpoint transfers to the peers a leader still replicates to.
    fn sync_peers(&mut self) {
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

    fn publish(&self) {
        let mut p = lock(&self.published);
        for (sid, slot) in &self.streams {
            p.streams.insert(*sid, slot.core.status());
        }
    }
}
