//! Start-up: the configuration, every stream's log, control file and
//! core, the transport, the storage writer, and the engine thread.

use super::actions::persist_config;
use super::events::EngineEvent;
use super::load::LoadSampler;
use super::runner::{Engine, StreamSlot};
use super::transfer::Transfers;
use super::writer;
use super::{Dcf, DcfError, Published, StartOptions};
use crate::core::{
    ClusterConfig, CoreOptions, LoadThresholds, MemberKind, NodeId, Restored, RunMode, StreamCore,
    StreamId, WorkMode,
};
use crate::params::Params;
use crate::planted::PlantedBug;
use crate::storage::{ControlFile, DataDir, Metadata, MetadataOrigin, StreamLog};
use crate::transport::{TlsConfig, Transport, TransportConfig, Wire};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::{info, warn};

fn core_options(node_id: NodeId, stream: StreamId, opts: &StartOptions) -> CoreOptions {
    let mut o = CoreOptions::new(node_id, stream);
    apply_params(&mut o, &opts.params);
    o.seed = rand::random();
    o.snapshot_transfer = opts.snapshot_transfer;
    o.planted = opts.planted.core();
    o
}

pub(super) fn apply_params(o: &mut CoreOptions, params: &Params) {
    o.election_timeout_ms = params.get_u64("ELECTION_TIMEOUT").max(1);
    o.heartbeat_interval_ms = params.get_u64("HEARTBEAT_INTERVAL").max(1);
    o.run_mode = RunMode::from_param(params.get_u64("RUN_MODE")).unwrap_or(RunMode::Auto);
    o.majority_groups = params.majority_groups();
    o.auto_priority_election = params.get_u64("AUTO_ELC_PRIORITY_EN") != 0;
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

pub(super) fn start(
    node_id: NodeId,
    config_json: &str,
    opts: StartOptions,
) -> Result<Dcf, DcfError> {
    // Validate what was passed even if the persisted copy will win, so a
    // malformed string is reported rather than silently ignored.
    ClusterConfig::parse(config_json)?;
    let data = DataDir::create(&opts.data_dir)?;
    let mut config = load_config(&data, config_json)?;
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
        let (slot, log) = open_stream(node_id, *sid, &data, &mut config, &opts)?;
        streams.insert(*sid, slot);
        logs.insert(*sid, log);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dcf-transport")
        .enable_all()
        .build()?;
    let (events_tx, events_rx) = mpsc::channel::<EngineEvent>();
    let (inbound_tx, mut inbound_rx) = tokio::sync::mpsc::channel::<Wire>(4096);
    let tcfg = transport_config(node_id, listen, &params, &config)?;
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
        ack_before_fsync: opts.planted.contains(PlantedBug::AckBeforeFsync),
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

/// The configuration: persisted on first start, the persisted copy on
/// later starts.
fn load_config(data: &DataDir, config_json: &str) -> Result<ClusterConfig, DcfError> {
    let (json, origin) = Metadata::load_or_init(data.metadata_dir(), config_json)?;
    if let MetadataOrigin::Loaded {
        differs_from_passed: true,
    } = origin
    {
        warn!("the passed config differs from the persisted metadata; using the persisted one");
    }
    Ok(ClusterConfig::parse(&json)?)
}

/// Opens one stream: its log (a torn tail cut), control file and core,
/// reconciled with the host's checkpoint; refuses a log that does not
/// reach back to what the host applied.
fn open_stream(
    node_id: NodeId,
    sid: StreamId,
    data: &DataDir,
    config: &mut ClusterConfig,
    opts: &StartOptions,
) -> Result<(StreamSlot, StreamLog), DcfError> {
    let params = &opts.params;
    let dirs = data.ensure_stream(sid)?;
    let segment = params.get_u64("DATA_FILE_SIZE") * 1024 * 1024;
    // PLANTED BUG (no-checksum) turns the data checksums off.
    let verify = !opts.planted.contains(PlantedBug::NoChecksum);
    let (mut log, report) = writer::open_log(&dirs.log, segment, verify)?;
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
    let checkpoint = opts.snapshots.get(&sid);
    let mut applied = opts
        .applied
        .get(&sid)
        .copied()
        .unwrap_or(0)
        .max(checkpoint.map_or(0, |c| c.index));
    let is_logger = config.streams[&sid]
        .get(node_id)
        .is_some_and(|m| m.kind == MemberKind::Logger);
    if applied + 1 < log.first_index()
        && !is_logger
        && opts.planted.contains(PlantedBug::TruncateWithoutCheckpoint)
    {
        // PLANTED BUG (truncate-without-checkpoint): the start-up guard of
        // "the log is truncated only below a durable checkpoint" is off, so
        // the hole is skipped and the node starts without those entries.
        warn!(
            stream = sid,
            applied,
            first_index = log.first_index(),
            "PLANTED BUG: starting past entries neither in the log nor in a checkpoint"
        );
        applied = log.first_index() - 1;
    }
    if applied + 1 < log.first_index() && !is_logger {
        // The entries in between are neither in the log nor in the
        // host's state: starting would leave a hole in it.
        return Err(DcfError::MissingEntries {
            stream: sid,
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
        if persist_config(data, config, &mut ctrl, sid, c.index, &c.members)? {
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
        voted_for = ?hs.voted_for,
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
    let members = config.streams[&sid].clone();
    let mut core = StreamCore::new(core_options(node_id, sid, opts), members, restored, 0);
    if let crate::storage::StoredWorkMode::Minority { vote_num } = ctrl.state().work_mode {
        warn!(stream = sid, vote_num, "restarting in minority work mode");
        core.restore_work_mode(WorkMode::Minority {
            vote_num: vote_num as u64,
        });
    }
    Ok((
        StreamSlot {
            core,
            ctrl,
            leadership: None,
        },
        log,
    ))
}

/// The transport's configuration: this node's address, compression and
/// TLS from the DCF parameters, and every member of every stream as a peer.
fn transport_config(
    node_id: NodeId,
    listen: SocketAddr,
    params: &Params,
    config: &ClusterConfig,
) -> Result<TransportConfig, DcfError> {
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
    for members in config.streams.values() {
        for m in &members.members {
            if m.node_id != node_id {
                if let Ok(addr) = format!("{}:{}", m.ip, m.port).parse() {
                    tcfg.peers.insert(m.node_id, addr);
                }
            }
        }
    }
    Ok(tcfg)
}
