//! A seeded, deterministic simulator for [`StreamCore`] clusters.
//!
//! Everything random (topology, options, each node's core seed, network
//! behaviour, faults, client traffic) comes from one `SmallRng` seeded with
//! the run's u64 seed, and simulated time advances through a priority queue
//! of events, so a seed replays exactly.
//!
//! The model:
//! - network: loss, duplication, random delays (hence reordering), rare
//!   long delays, partitions into random sides plus one-way cuts, healing;
//! - storage per node: a durable prefix plus an unsynced tail; the hard
//!   state is durable as soon as `SaveHardState` is carried out; syncs run
//!   after a random delay (group commit) and sometimes cover only a prefix
//!   of the tail; a crash drops the unsynced tail;
//! - crashes and restarts through `StreamCore::new` from the durable state,
//!   with the host's applied index or 0 (the host then rebuilds its state
//!   machine from scratch);
//! - clients proposing and asking for read indexes at random nodes;
//! - hosts with a state machine (a hash chain over the applied entries)
//!   that take checkpoints every few entries, compact their logs below
//!   them, restart from their newest (or, when it is "corrupt", previous)
//!   checkpoint, and send checkpoints to peers that need compacted
//!   entries, crashing in the middle of each of these steps;
//! - small in-memory entry caches, so leaders read old entries back from
//!   storage.
//!
//! Invariants are checked after every event (see [`World::fail`] call sites).

use dcf_core::testing::{fixtures, Disk};
use dcf_core::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

/// A deliberately broken host, to show the checker notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostBug {
    None,
    /// The host reports entries durable as soon as they are written, but a
    /// crash still loses them.
    EarlyPersist,
    /// The host compacts its log up to what it applied without writing a
    /// checkpoint first (its state machine lives only in memory).
    TruncateWithoutCheckpoint,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Time with faults.
    pub chaos_ms: u64,
    /// Time after healing before the liveness check starts.
    pub heal_ms: u64,
    pub host_bug: HostBug,
    /// Mean gap between nemesis actions.
    pub nemesis_gap_ms: u64,
    /// The nemesis also changes the configuration (adds fresh nodes,
    /// removes nodes, changes roles and priorities) and moves leadership
    /// (promote, demote, timeout_notify). Off, the random sequence of a
    /// seed is the one it had before these existed (regression seeds).
    pub membership: bool,
    /// Hosts take checkpoints, compact their logs, restart from
    /// checkpoints and transfer them (drawing from a second random
    /// stream, so the first one is unchanged when this is off).
    pub snapshots: bool,
    /// Deliberate defects every node's core runs with (see `sim/zoo.rs`).
    pub planted: PlantedBugs,
    /// Steers faults toward leader changes right after replication: a
    /// leader sending entries is sometimes crashed or cut off (with or
    /// without the peer it sent them to) before they commit. Draws from a
    /// third random stream; off, a seed runs as it did before.
    pub steer: bool,
    /// Compare every core's term and vote with what it asked the host to
    /// store. Off, only the consequences of a term or vote the core acts
    /// on without persisting it can fail a run (double votes, two leaders).
    pub check_hard_state: bool,
    /// Check that a leader's commit index only ever moves to an entry of
    /// its own term (Raft's commit rule, which Figure 8 motivates). Off,
    /// only its consequences can fail a run (a committed entry later
    /// overwritten), which needs a rare sequence of leaders.
    pub check_leader_commit_term: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            chaos_ms: 3000,
            heal_ms: 1500,
            host_bug: HostBug::None,
            nemesis_gap_ms: 250,
            membership: true,
            snapshots: true,
            planted: PlantedBugs::default(),
            steer: false,
            check_hard_state: true,
            check_leader_commit_term: true,
        }
    }
}

/// A violated invariant, with enough context to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub invariant: &'static str,
    pub detail: String,
    pub at: u64,
    pub cluster: String,
    pub trace: Vec<String>,
    /// A run of the planted-bug zoo (steered faults, a planted bug).
    pub zoo: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: invariant `{}` violated at t={} ms: {}",
            self.seed, self.invariant, self.at, self.detail
        )?;
        writeln!(f, "  cluster: {}", self.cluster)?;
        let bug = if self.zoo {
            "DCF_SIM_BUG=<its bug> "
        } else {
            ""
        };
        writeln!(
            f,
            "  replay: DCF_SIM_SEED={} {bug}cargo test -p dcf-core --test sim",
            self.seed
        )?;
        writeln!(f, "  last events:")?;
        for t in &self.trace {
            writeln!(f, "    {t}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub elections: u64,
    pub committed: u64,
    pub reads_ok: u64,
    pub crashes: u64,
    /// Runs that ended with the freshest log only on LOGGER members.
    pub stuck_behind_logger: u64,
    /// Committed configuration entries that changed the membership.
    pub config_changes: u64,
    /// Runs with at least one committed configuration change.
    pub runs_with_changes: u64,
    /// Leaderships gained through promote / demote / priority hand-over.
    pub transfers: u64,
    /// Checkpoints written, log compactions, checkpoints installed from a peer.
    pub checkpoints: u64,
    pub compactions: u64,
    pub installs: u64,
    /// Runs with at least one checkpoint / compaction / install.
    pub runs_with_checkpoints: u64,
    pub runs_with_compactions: u64,
    pub runs_with_installs: u64,
    /// A digest of every trace event of the passing runs (XOR over runs of
    /// a hash of seed and trace): a change that must not alter behaviour,
    /// such as a refactoring, keeps it.
    pub trace_digest: u64,
}

impl Stats {
    pub fn add(&mut self, x: &Stats) {
        self.events += x.events;
        self.elections += x.elections;
        self.committed += x.committed;
        self.reads_ok += x.reads_ok;
        self.crashes += x.crashes;
        self.stuck_behind_logger += x.stuck_behind_logger;
        self.transfers += x.transfers;
        self.runs_with_changes += x.runs_with_changes;
        self.config_changes += x.config_changes;
        self.checkpoints += x.checkpoints;
        self.compactions += x.compactions;
        self.installs += x.installs;
        self.runs_with_checkpoints += x.runs_with_checkpoints;
        self.runs_with_compactions += x.runs_with_compactions;
        self.runs_with_installs += x.runs_with_installs;
        self.trace_digest ^= x.trace_digest;
    }
}

// ----- trace -------------------------------------------------------------

#[derive(Clone, Debug, Hash)]
enum Tr {
    Deliver {
        from: NodeId,
        to: NodeId,
        what: &'static str,
        term: Term,
        a: u64,
        b: u64,
    },
    Crash(NodeId, Index),
    Restart(NodeId, Term, Index, Index),
    Partition(Vec<(NodeId, u8)>, Option<(NodeId, NodeId)>),
    Net(u32, u32, u64),
    Role(NodeId, Role, Term),
    Commit(NodeId, Index),
    Truncate(NodeId, Index),
    Persist(NodeId, Index),
    Propose(NodeId, Term, Index),
    Read(NodeId, u64, Index),
    ReadReady(NodeId, u64, Index),
    Op(NodeId, String),
    Checkpoint(NodeId, Index, Index),
    Install(NodeId, NodeId, Index),
}

impl fmt::Display for Tr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tr::Deliver {
                from,
                to,
                what,
                term,
                a,
                b,
            } => write!(f, "{from}->{to} {what} t{term} ({a},{b})"),
            Tr::Crash(n, d) => write!(f, "CRASH n{n} (durable last {d})"),
            Tr::Restart(n, t, last, ap) => {
                write!(f, "RESTART n{n} term {t} last {last} applied {ap}")
            }
            Tr::Partition(s, one) => write!(f, "PARTITION sides {s:?} oneway {one:?}"),
            Tr::Net(l, d, m) => write!(f, "NET loss {l}% dup {d}% max delay {m}"),
            Tr::Role(n, r, t) => write!(f, "n{n} -> {r} term {t}"),
            Tr::Commit(n, c) => write!(f, "n{n} commit {c}"),
            Tr::Truncate(n, i) => write!(f, "n{n} truncate from {i}"),
            Tr::Persist(n, i) => write!(f, "n{n} persisted {i}"),
            Tr::Propose(n, t, i) => write!(f, "n{n} propose -> ({t},{i})"),
            Tr::Read(n, c, need) => write!(f, "n{n} read ctx {c} (needs >= {need})"),
            Tr::ReadReady(n, c, i) => write!(f, "n{n} read ready ctx {c} index {i}"),
            Tr::Op(n, what) => write!(f, "OP at n{n}: {what}"),
            Tr::Checkpoint(n, at, first) => {
                write!(f, "n{n} checkpoint at {at}, log kept from {first}")
            }
            Tr::Install(n, from, at) => write!(f, "n{n} installs n{from}'s checkpoint at {at}"),
        }
    }
}

fn summarize(m: &Message) -> (&'static str, u64, u64) {
    match m {
        Message::VoteRequest(VoteRequest {
            pre_vote,
            last_index,
            last_term,
            ..
        }) => (
            if *pre_vote { "PreVoteReq" } else { "VoteReq" },
            *last_index,
            *last_term,
        ),
        Message::VoteResponse(VoteResponse {
            pre_vote, granted, ..
        }) => (
            if *pre_vote { "PreVoteResp" } else { "VoteResp" },
            *granted as u64,
            0,
        ),
        Message::Append(AppendRequest {
            prev_index,
            entries,
            ..
        }) => ("Append", *prev_index, entries.len() as u64),
        Message::AppendResponse(AppendResponse { success, index, .. }) => {
            ("AppendResp", *success as u64, *index)
        }
        Message::TimeoutNow { .. } => ("TimeoutNow", 0, 0),
        Message::WorkModeReport { minority, .. } => ("WorkModeReport", *minority as u64, 0),
        Message::LogTail(LogTail {
            prev_index,
            entries,
            ..
        }) => ("LogTail", *prev_index, entries.len() as u64),
        Message::LogTailResponse(LogTailResponse { success, index, .. }) => {
            ("LogTailResp", *success as u64, *index)
        }
    }
}

// ----- events --------------------------------------------------------------

enum Ev {
    Tick(NodeId, u32),
    Deliver(Envelope),
    Sync(NodeId, u32),
    Restart(NodeId),
    Client,
    Nemesis,
    /// A host writes a checkpoint at what it applied, then compacts.
    Checkpoint(NodeId, u32),
    /// A checkpoint sent by `from` reaches `to`.
    SnapshotArrive {
        from: NodeId,
        to: NodeId,
        ckpt: Ckpt,
    },
    /// Steering: a fault aimed at a moment of a leader change.
    Strike(Strike),
    /// Steering: the partition of a strike heals.
    StrikeHeal,
    /// Steering: a node's clock runs at the right rate again.
    ClockReset(NodeId),
}

/// How often steering strikes (see `SimConfig::steer`): at a new
/// leader's first entries sent, at its first commit, at a hand-over, at a
/// granted vote.
const STEER_FIRST_SEND: f64 = 0.25;
const STEER_FIRST_COMMIT: f64 = 0.3;
const STEER_HANDOVER: f64 = 0.5;
const STEER_VOTE: f64 = 0.3;
/// How often a nemesis step (steering) also slows the leader's clock, and
/// how often that leader is then cut off.
const STEER_CLOCK: f64 = 0.4;
const STEER_CLOCK_CUT: f64 = 0.8;
/// How often a membership change (steering) is followed at once by another.
const STEER_BURST: f64 = 0.6;
/// How often a membership change (steering) goes to a leader not yet ready.
const STEER_ANY_LEADER: f64 = 0.5;

/// A fault steered at a moment where leadership changes hands (see
/// `SimConfig::steer`).
#[derive(Clone, Copy, Debug)]
enum Strike {
    /// `leader` (of `term`) just sent entries to `peer`, or just committed
    /// for the first time in its term: crash it or cut it off.
    Leader {
        leader: NodeId,
        term: Term,
        peer: NodeId,
        committed: bool,
    },
    /// `leader` just handed over: cut it off from everyone.
    Handover { leader: NodeId },
    /// `voter` just granted a vote: crash it, back soon.
    Voter { voter: NodeId },
}

/// A host checkpoint: its state machine at `meta.index`.
#[derive(Clone, Debug)]
struct Ckpt {
    meta: SnapshotMeta,
    state: u64,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest event must compare greatest.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

// ----- nodes and the world ---------------------------------------------------

struct Node {
    core: Option<StreamCore>,
    opts: CoreOptions,
    incarnation: u32,
    /// Hard state and the stored log (a durable prefix, then the unsynced
    /// tail); `disk.base` is the configuration the node was first started
    /// with.
    disk: Disk,
    sync_pending: bool,
    host_applied: Index,
    /// Term of the entry at `host_applied`.
    applied_term: Term,
    /// The host's state machine: a hash chain over the applied entries.
    state: u64,
    /// The membership in force at `host_applied` (from applied
    /// configuration entries), which checkpoints carry.
    host_members: StreamMembers,
    /// Durable checkpoints, newest last (at most two are kept).
    checkpoints: Vec<Ckpt>,
    checkpoint_pending: bool,
    last_commit: Index,
    /// The engine's metadata: the newest committed configuration and its
    /// index (0: `disk.base`).
    meta_config: (Index, StreamMembers),
}

impl Node {
    fn fresh(opts: CoreOptions, base: StreamMembers) -> Node {
        Node {
            core: None,
            opts,
            incarnation: 0,
            sync_pending: false,
            host_applied: 0,
            applied_term: 0,
            state: STATE_INIT,
            host_members: base.clone(),
            checkpoints: vec![],
            checkpoint_pending: false,
            last_commit: 0,
            meta_config: (0, base.clone()),
            disk: Disk::new(base),
        }
    }
    /// The term of the stored entry at `i` (0 if there is none).
    fn term_at(&self, i: Index) -> Term {
        self.disk.term_at(i).unwrap_or(0)
    }
}

/// The state of a host that applied nothing.
const STATE_INIT: u64 = 0x5eed;

fn chain(state: u64, e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    state.hash(&mut h);
    e.index.hash(&mut h);
    entry_hash(e).hash(&mut h);
    h.finish()
}

/// The nodes whose membership entry differs between two configurations.
fn member_diff(a: &StreamMembers, b: &StreamMembers) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = a.ids().chain(b.ids()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().filter(|i| a.get(*i) != b.get(*i)).collect()
}

fn entry_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    (e.kind as u8).hash(&mut h);
    e.key.hash(&mut h);
    e.data.hash(&mut h);
    h.finish()
}

const LIVENESS_KEY: u64 = 1 << 62;

pub struct World {
    seed: u64,
    cfg: SimConfig,
    rng: SmallRng,
    /// Randomness of the checkpoint features (see `SimConfig::snapshots`).
    rng2: SmallRng,
    /// Randomness of steering (see `SimConfig::steer`).
    rng3: SmallRng,
    /// No new strike before this time.
    next_strike: u64,
    /// Nodes whose clock ran slow at some point (steering): (real time and
    /// the node's time when the rate last changed, slowdown factor). A
    /// node not listed reads the real time.
    clocks: BTreeMap<NodeId, (u64, u64, u64)>,
    /// The sender of the message being delivered, if any.
    delivering_from: Option<NodeId>,
    /// (leader, term) pairs whose first entries sent steering has seen.
    first_send_seen: std::collections::BTreeSet<(NodeId, Term)>,
    /// (leader, term) pairs whose first commit steering has seen.
    first_commit_seen: std::collections::BTreeSet<(NodeId, Term)>,
    /// Checkpoint every this many applied entries; keep this many entries
    /// behind the newest checkpoint.
    ckpt_interval: u64,
    ckpt_retention: u64,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    members: StreamMembers,
    nodes: BTreeMap<NodeId, Node>,
    trace: VecDeque<(u64, Tr)>,
    /// Hash of every trace event with its time (the trace itself keeps
    /// only the latest ones).
    digest: DefaultHasher,

    // network
    loss: f64,
    dup: f64,
    max_delay: u64,
    side: BTreeMap<NodeId, u8>,
    oneway: Option<(NodeId, NodeId)>,
    chaos: bool,
    tick_ms: u64,

    // history for the invariants
    leaders: BTreeMap<Term, NodeId>,
    /// (index, term) -> (term at index - 1, entry hash): log matching.
    registry: HashMap<(Index, Term), (Term, u64)>,
    /// The committed prefix seen anywhere: (term, hash), index i at [i-1].
    committed: Vec<(Term, u64)>,
    /// The term in which each committed entry was first seen committed.
    commit_term: Vec<Term>,
    /// The state machine after applying the committed prefix up to i, at [i].
    states: Vec<u64>,
    /// Committed configurations (index, membership), oldest first.
    committed_configs: Vec<(Index, StreamMembers)>,
    /// ctx -> (node, least acceptable read index).
    reads: HashMap<u64, (NodeId, Index)>,
    next_ctx: u64,
    next_key: u64,
    live_ok: bool,
    /// The node's commit index before the step whose actions are being
    /// carried out (truncations happen before the step's commit moves).
    commit_floor: Index,
    stats: Stats,
}

type R = Result<(), Failure>;

impl World {
    pub fn new(seed: u64, cfg: SimConfig) -> World {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n: u32 = rng.gen_range(3..=7);
        let weighted = rng.gen_bool(0.3);
        let logger = if rng.gen_bool(0.3) {
            Some(rng.gen_range(2..=n))
        } else {
            None
        };
        let passive = if n >= 4 && rng.gen_bool(0.3) {
            Some(rng.gen_range(2..=n)).filter(|p| Some(*p) != logger)
        } else {
            None
        };
        let grouped = rng.gen_bool(0.25);
        let initial_leader = if rng.gen_bool(0.6) {
            Some(rng.gen_range(1..=n)).filter(|l| Some(*l) != logger && Some(*l) != passive)
        } else {
            None
        };
        let mut members = StreamMembers::default();
        for id in 1..=n {
            let kind = if Some(id) == logger {
                MemberKind::Logger
            } else if Some(id) == passive {
                MemberKind::Passive
            } else {
                MemberKind::Voter
            };
            members.members.push(Member {
                initial_leader: Some(id) == initial_leader,
                weight: if weighted { rng.gen_range(1..=3) } else { 1 },
                group: if grouped { rng.gen_range(1..=3) } else { 0 },
                ..fixtures::member(id, kind)
            });
        }
        let mut majority_groups = Vec::new();
        if grouped {
            for g in 1..=3u32 {
                if rng.gen_bool(0.5) {
                    majority_groups.push(g);
                }
            }
        }
        let et: u64 = [100, 200, 300][rng.gen_range(0..3)];
        let hb = et / rng.gen_range(3..=5);
        let batch = [1usize, 3, 64][rng.gen_range(0..3)];
        let inflight = [2u64, 10, 8192][rng.gen_range(0..3)];
        let mut rng2 = SmallRng::seed_from_u64(seed ^ 0x00c4_ec6b_0147);
        let cache_entries = if cfg.snapshots {
            [2usize, 8, 40, 4096][rng2.gen_range(0..4)]
        } else {
            4096
        };
        let ckpt_interval = rng2.gen_range(3..40);
        let rng3 = SmallRng::seed_from_u64(seed ^ 0x5fee_7e11_0e7a);
        let ckpt_retention = rng2.gen_range(0..6);
        let mut nodes = BTreeMap::new();
        for id in 1..=n {
            let mut o = CoreOptions::new(id, 1);
            o.election_timeout_ms = et;
            o.heartbeat_interval_ms = hb;
            o.majority_groups = majority_groups.clone();
            o.max_batch_entries = batch;
            o.max_inflight_entries = inflight;
            o.seed = rng.gen();
            o.snapshot_transfer = cfg.snapshots;
            o.cache_max_entries = cache_entries;
            o.planted = cfg.planted;
            nodes.insert(id, Node::fresh(o, members.clone()));
        }
        let side = (1..=n).map(|i| (i, 0)).collect();
        let committed_configs = vec![(0, members.clone())];
        let mut w = World {
            seed,
            cfg,
            rng,
            rng2,
            rng3,
            next_strike: 0,
            first_commit_seen: Default::default(),
            first_send_seen: Default::default(),
            delivering_from: None,
            clocks: BTreeMap::new(),
            ckpt_interval,
            ckpt_retention,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            members,
            nodes,
            trace: VecDeque::new(),
            digest: DefaultHasher::new(),
            loss: 0.05,
            dup: 0.02,
            max_delay: 20,
            side,
            oneway: None,
            chaos: true,
            tick_ms: 10,
            leaders: BTreeMap::new(),
            registry: HashMap::new(),
            committed: Vec::new(),
            commit_term: Vec::new(),
            states: vec![STATE_INIT],
            committed_configs,
            reads: HashMap::new(),
            next_ctx: 1,
            next_key: 1,
            live_ok: false,
            commit_floor: 0,
            stats: Stats::default(),
        };
        w.tick_ms = (et / 10).max(5);
        w
    }

    fn cluster_summary(&self) -> String {
        let mut s = String::new();
        for (id, n) in &self.nodes {
            let st = match n.core.as_ref() {
                Some(c) => format!(
                    "{} t{} commit {} last {} (own view: {:?} of {:?})",
                    c.role(),
                    c.term(),
                    c.commit_index(),
                    c.last_index(),
                    c.members().get(*id).map(|m| m.kind),
                    c.members().ids().collect::<Vec<_>>()
                ),
                None => "DOWN".to_string(),
            };
            match self.members.get(*id) {
                Some(m) => s.push_str(&format!(
                    "[n{} {:?} w{} g{} p{}: {}] ",
                    m.node_id, m.kind, m.weight, m.group, m.priority, st
                )),
                None => s.push_str(&format!("[n{id} not a member: {st}] ")),
            }
        }
        for (id, n) in &self.nodes {
            if let Some(c) = n.core.as_ref() {
                s.push_str(&format!(
                    "n{id} configs {:?} meta {} first {}; ",
                    c.config_entries()
                        .iter()
                        .map(|(i, m)| (*i, m.ids().collect::<Vec<_>>()))
                        .collect::<Vec<_>>(),
                    n.meta_config.0,
                    c.first_index()
                ));
            }
        }
        let o = &self.nodes[&1].opts;
        s.push_str(&format!(
            "et {} hb {} groups {:?} batch {} inflight {}",
            o.election_timeout_ms,
            o.heartbeat_interval_ms,
            o.majority_groups,
            o.max_batch_entries,
            o.max_inflight_entries
        ));
        s
    }

    fn fail(&self, invariant: &'static str, detail: String) -> Failure {
        Failure {
            seed: self.seed,
            invariant,
            detail,
            at: self.now,
            cluster: self.cluster_summary(),
            trace: self
                .trace
                .iter()
                .map(|(t, e)| format!("{t:>6} {e}"))
                .collect(),
            zoo: self.cfg.steer,
        }
    }

    fn tr(&mut self, e: Tr) {
        (self.now, &e).hash(&mut self.digest);
        if self.trace.len() >= 4000 {
            self.trace.pop_front();
        }
        self.trace.push_back((self.now, e));
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.side[&a] == self.side[&b] && self.oneway != Some((a, b))
    }

    // ----- lifecycle ------------------------------------------------------

    fn start_node(&mut self, id: NodeId, restart: bool) -> R {
        let use_applied = self.rng.gen_bool(0.5);
        let seed: u64 = self.rng.gen();
        let tick_jitter = self.rng.gen_range(0..self.tick_ms);
        let newest_corrupt = self.cfg.snapshots && self.rng2.gen_bool(0.2);
        let now = self.local_now(id);
        if self.cfg.snapshots {
            self.restore_host(id, newest_corrupt)?;
        } else if !use_applied {
            // The host rebuilds its state machine from scratch.
            let n = self.nodes.get_mut(&id).unwrap();
            n.host_applied = 0;
            n.state = STATE_INIT;
            n.host_members = n.disk.base.clone();
        }
        let n = self.nodes.get_mut(&id).unwrap();
        n.incarnation += 1;
        n.opts.seed = seed;
        // The engine's configuration baseline: its metadata, or the
        // checkpoint's membership when that is newer.
        let (config_index, members) = match n.checkpoints.last() {
            Some(c) if c.meta.index > n.meta_config.0 => (c.meta.index, c.meta.members.clone()),
            _ => n.meta_config.clone(),
        };
        let restored = n.disk.restored(n.host_applied, config_index);
        let core = StreamCore::new(n.opts.clone(), members, restored, now);
        let (term, last, applied) = (core.term(), core.last_index(), core.applied_index());
        n.core = Some(core);
        self.check_restarted_membership(id, config_index)?;
        let n = self.nodes.get_mut(&id).unwrap();
        n.disk.crash();
        n.sync_pending = false;
        // The host's state machine is at `host_applied`; the core may have
        // clamped it (it cannot be past the durable log), so the host
        // replays from what the core says.
        n.last_commit = 0;
        let inc = n.incarnation;
        if restart {
            self.tr(Tr::Restart(id, term, last, applied));
        }
        self.push(self.now + tick_jitter, Ev::Tick(id, inc));
        // Everything below the restarted commit index must be committed.
        self.observe_commit(id)?;
        self.drain(id)
    }

    /// The host restarts from its newest checkpoint (the previous one when
    /// the newest is "corrupt": its checksum would fail), and the engine
    /// reconciles the log with it: a log that does not reach back to the
    /// checkpoint would leave a hole in the state machine, and a log that
    /// disagrees with it at its index is replaced.
    fn restore_host(&mut self, id: NodeId, newest_corrupt: bool) -> R {
        let bug = self.cfg.host_bug == HostBug::TruncateWithoutCheckpoint;
        let n = self.nodes.get_mut(&id).unwrap();
        if newest_corrupt && n.checkpoints.len() > 1 {
            n.checkpoints.pop();
        }
        match n.checkpoints.last() {
            Some(c) => {
                n.host_applied = c.meta.index;
                n.applied_term = c.meta.term;
                n.state = c.state;
                n.host_members = c.meta.members.clone();
            }
            None => {
                n.host_applied = 0;
                n.applied_term = 0;
                n.state = STATE_INIT;
                n.host_members = n.disk.base.clone();
            }
        }
        if bug {
            // That host neither checked nor reconciled anything.
            return Ok(());
        }
        let (s, t) = (n.host_applied, n.applied_term);
        if n.disk.first > s + 1 {
            let first = n.disk.first;
            return Err(self.fail(
                "checkpoints cover the log",
                format!("n{id} restarts from its checkpoint at {s} but its log starts at {first}"),
            ));
        }
        if s > 0 && (s > n.disk.last_index() || n.term_at(s) != t) {
            n.disk.reset(s, t);
            // The new log starts after this checkpoint: older ones no
            // longer lead to it (as when a checkpoint is installed).
            n.checkpoints.retain(|c| c.meta.index >= s);
        }
        self.check_state(id)
    }

    /// The host's state machine equals the committed prefix applied in order.
    fn check_state(&self, id: NodeId) -> R {
        let n = &self.nodes[&id];
        match self.states.get(n.host_applied as usize) {
            Some(s) if *s == n.state => Ok(()),
            Some(_) => Err(self.fail(
                "state machine equals the committed prefix",
                format!(
                    "n{id}'s state at {} differs from the committed entries applied in order",
                    n.host_applied
                ),
            )),
            None => Err(self.fail(
                "state machine equals the committed prefix",
                format!(
                    "n{id}'s state is at {} but only {} entries are known committed",
                    n.host_applied,
                    self.states.len() - 1
                ),
            )),
        }
    }

    /// The newest committed configuration at or below `index`.
    fn config_at(&self, index: Index) -> &StreamMembers {
        &self
            .committed_configs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .expect("the initial configuration")
            .1
    }

    /// After a restart the node's committed membership is the one
    /// committed last at its commit index (or at its configuration
    /// baseline), never the one it was first started with.
    fn check_restarted_membership(&self, id: NodeId, config_index: Index) -> R {
        let core = self.nodes[&id].core.as_ref().unwrap();
        let at = core.commit_index().max(config_index);
        if at == 0 {
            return Ok(());
        }
        if core.committed_members() != self.config_at(at) {
            return Err(self.fail(
                "membership survives restarts",
                format!(
                    "n{id} restarted with committed members {:?}, but {:?} was committed at or before {at}",
                    core.committed_members().ids().collect::<Vec<_>>(),
                    self.config_at(at).ids().collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }

    /// An entry of a node, from its core's memory or from its storage.
    fn entry_of(&self, id: NodeId, i: Index) -> Option<Entry> {
        let n = &self.nodes[&id];
        n.core
            .as_ref()
            .and_then(|c| c.entry(i).cloned())
            .or_else(|| n.disk.entry(i).cloned())
    }

    /// Writes a checkpoint of what the host applied (crashing in the
    /// middle sometimes), then compacts the log below it.
    fn checkpoint(&mut self, id: NodeId) -> R {
        let crash_mid_write = self.rng2.gen_bool(0.05);
        let compact = self.rng2.gen_bool(0.85);
        let bug = self.cfg.host_bug == HostBug::TruncateWithoutCheckpoint;
        let n = self.nodes.get_mut(&id).unwrap();
        n.checkpoint_pending = false;
        if n.host_applied == 0 || n.checkpoints.last().map(|c| c.meta.index) == Some(n.host_applied)
        {
            return Ok(());
        }
        if crash_mid_write {
            // The temporary file is never renamed: nothing changes on disk.
            self.crash(id);
            return Ok(());
        }
        let newest = n.host_applied;
        if !bug {
            n.checkpoints.push(Ckpt {
                meta: SnapshotMeta {
                    index: newest,
                    term: n.applied_term,
                    members: n.host_members.clone(),
                },
                state: n.state,
            });
            if n.checkpoints.len() > 2 {
                n.checkpoints.remove(0);
            }
            self.stats.checkpoints += 1;
        }
        if !compact {
            return Ok(());
        }
        let n = &self.nodes[&id];
        let older = if bug {
            newest
        } else {
            n.checkpoints[0].meta.index
        };
        // Keep what the older checkpoint needs, and a few entries more.
        let first_kept = (older + 1)
            .min((newest + 1).saturating_sub(self.ckpt_retention))
            .max(1);
        let kept = self.core(id).compact_log(first_kept);
        self.stats.compactions += 1;
        self.tr(Tr::Checkpoint(id, newest, kept));
        self.drain(id)
    }

    /// A checkpoint reaches a node that needs it: the host makes it its
    /// durable state, then the core installs it (a crash may hit before
    /// or between these steps).
    fn snapshot_arrives(&mut self, from: NodeId, to: NodeId, ckpt: Ckpt) -> R {
        if self.nodes[&to].core.is_none() || !self.connected(from, to) {
            return Ok(());
        }
        let r: u32 = self.rng2.gen_range(0..100);
        if r < 5 {
            self.crash(to);
            return Ok(());
        }
        let s = ckpt.meta.index;
        if !self.core(to).wants_snapshot(s) {
            return Ok(());
        }
        let n = self.nodes.get_mut(&to).unwrap();
        n.host_applied = s;
        n.applied_term = ckpt.meta.term;
        n.state = ckpt.state;
        n.host_members = ckpt.meta.members.clone();
        // Older local checkpoints may not be covered by the new log.
        n.checkpoints = vec![ckpt.clone()];
        self.check_state(to)?;
        if r < 12 {
            self.crash(to);
            return Ok(());
        }
        let n = self.nodes.get_mut(&to).unwrap();
        if s > n.meta_config.0 {
            n.meta_config = (s, ckpt.meta.members.clone());
        }
        let now = self.local_now(to);
        if !self.core(to).install_snapshot(now, ckpt.meta) {
            return Err(self.fail(
                "checkpoint install",
                format!("n{to} wanted the checkpoint at {s} but did not install it"),
            ));
        }
        self.stats.installs += 1;
        self.tr(Tr::Install(to, from, s));
        self.drain(to)
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        if n.core.is_none() {
            return;
        }
        n.core = None;
        n.disk.crash();
        n.sync_pending = false;
        n.checkpoint_pending = false;
        let d = n.disk.last_index();
        self.stats.crashes += 1;
        self.tr(Tr::Crash(id, d));
        let back = self.now + self.rng.gen_range(20..1500);
        self.push(back, Ev::Restart(id));
    }

    // ----- action handling --------------------------------------------------

    fn core(&mut self, id: NodeId) -> &mut StreamCore {
        self.nodes.get_mut(&id).unwrap().core.as_mut().unwrap()
    }

    fn drain(&mut self, id: NodeId) -> R {
        loop {
            let Some(core) = self.nodes.get_mut(&id).unwrap().core.as_mut() else {
                return Ok(());
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                break;
            }
            self.commit_floor = self.nodes[&id].last_commit;
            self.observe_commit(id)?;
            for a in actions {
                self.carry_out(id, a)?;
            }
        }
        self.observe_commit(id)?;
        self.check_node(id)?;
        self.check_config_in_flight(id)
    }

    /// At most one configuration change in flight: in a leader's log, the
    /// configuration entries above its commit index change the membership
    /// at most once relative to the newest committed configuration entry
    /// (a new leader's own entry repeats the configuration, which is no
    /// change), and none changes more than one node.
    fn check_config_in_flight(&self, id: NodeId) -> R {
        let n = &self.nodes[&id];
        let Some(core) = n.core.as_ref() else {
            return Ok(());
        };
        if core.role() != Role::Leader {
            return Ok(());
        }
        // Committed as far as anyone knows (a restarted leader's own
        // commit index may lag; leader completeness is checked elsewhere).
        let commit = core
            .commit_index()
            .max((self.committed.len() as Index).min(core.last_index()));
        let hist = core.config_entries();
        // The core's list of configuration entries must match its log.
        for (idx, m) in hist
            .iter()
            .rev()
            .take_while(|(i, _)| *i > commit)
            .filter(|(i, _)| *i >= core.first_index())
        {
            let ok = core.entry(*idx).is_some_and(|e| {
                e.kind == EntryKind::Config
                    && serde_json::from_slice::<StreamMembers>(&e.data)
                        .ok()
                        .as_ref()
                        == Some(m)
            });
            if !ok {
                return Err(self.fail(
                    "configuration follows the log",
                    format!(
                        "leader n{id} lists a configuration at {idx} that its log lacks (meta {}, checkpoints {:?}, known committed {})",
                        n.meta_config.0,
                        n.checkpoints.iter().map(|c| c.meta.index).collect::<Vec<_>>(),
                        self.committed.len()
                    ),
                ));
            }
        }
        if core.members() != &hist.last().expect("initial config").1 {
            return Err(self.fail(
                "configuration follows the log",
                format!("leader n{id} uses a configuration other than its newest entry"),
            ));
        }
        let Some(pos) = hist.iter().rposition(|(i, _)| *i <= commit) else {
            return Ok(());
        };
        if hist[pos].0 == 0 {
            // No configuration entry committed yet: nothing to compare with.
            return Ok(());
        }
        let mut prev = hist[pos].1.clone();
        let uncommitted = &hist[pos + 1..];
        let mut changes = 0;
        for (i, cfg) in uncommitted {
            let d = member_diff(&prev, cfg);
            if d.len() > 1 {
                return Err(self.fail(
                    "one configuration change at a time",
                    format!("leader n{id} has config entry {i} changing {d:?} at once"),
                ));
            }
            if !d.is_empty() {
                changes += 1;
            }
            prev = cfg.clone();
        }
        if changes > 1 {
            return Err(self.fail(
                "one configuration change at a time",
                format!("leader n{id} has {changes} uncommitted configuration changes"),
            ));
        }
        Ok(())
    }

    fn carry_out(&mut self, id: NodeId, a: Action) -> R {
        match a {
            Action::SaveHardState(hs) => {
                self.nodes.get_mut(&id).unwrap().disk.hard = hs;
            }
            Action::TruncateLog { from } => {
                self.tr(Tr::Truncate(id, from));
                let n = &self.nodes[&id];
                if from <= self.commit_floor {
                    return Err(self.fail(
                        "committed entries never disappear",
                        format!(
                            "n{id} truncates from {from} below its commit {}",
                            self.commit_floor
                        ),
                    ));
                }
                if from >= 1 && from <= self.committed.len() as Index && from <= n.disk.last_index()
                {
                    let t = n.term_at(from);
                    if t == self.committed[(from - 1) as usize].0 {
                        return Err(self.fail(
                            "committed entries never disappear",
                            format!("n{id} truncates the committed entry {from} (term {t})"),
                        ));
                    }
                }
                self.nodes.get_mut(&id).unwrap().disk.truncate_from(from);
            }
            Action::AppendLog(es) => {
                for e in &es {
                    let n = &self.nodes[&id];
                    if e.index != n.disk.last_index() + 1 {
                        return Err(self.fail(
                            "host log contract",
                            format!(
                                "n{id} appends index {} after {}",
                                e.index,
                                n.disk.last_index()
                            ),
                        ));
                    }
                    let prev = n.term_at(e.index - 1);
                    let h = entry_hash(e);
                    match self.registry.get(&(e.index, e.term)) {
                        Some(&(p, hh)) if (p, hh) != (prev, h) => {
                            return Err(self.fail(
                                "log matching",
                                format!(
                                    "n{id} stores ({}, t{}) with prev term {prev}, another node has it with prev term {p} (same data: {})",
                                    e.index, e.term, hh == h
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.registry.insert((e.index, e.term), (prev, h));
                        }
                    }
                    self.nodes
                        .get_mut(&id)
                        .unwrap()
                        .disk
                        .append(vec![e.clone()]);
                }
                if self.cfg.host_bug == HostBug::EarlyPersist {
                    if let Some(l) = es.last() {
                        let (i, t, now) = (l.index, l.term, self.local_now(id));
                        self.core(id).on_persisted(now, i, t);
                    }
                } else {
                    let n = self.nodes.get_mut(&id).unwrap();
                    if !n.sync_pending {
                        n.sync_pending = true;
                        let inc = n.incarnation;
                        // Usually a quick group commit, sometimes a slow disk.
                        let d = if self.chaos && self.rng.gen_bool(0.1) {
                            self.rng.gen_range(50..300)
                        } else {
                            self.rng.gen_range(0..=15)
                        };
                        let at = self.now + d;
                        self.push(at, Ev::Sync(id, inc));
                    }
                }
            }
            Action::Send(env) => {
                self.maybe_steer(id, &env);
                self.send(env)
            }
            Action::Apply(es) => {
                for e in &es {
                    let n = &self.nodes[&id];
                    if e.index != n.host_applied + 1 {
                        return Err(self.fail(
                            "applied sequence",
                            format!(
                                "n{id} is handed entry {} to apply after {}",
                                e.index, n.host_applied
                            ),
                        ));
                    }
                    let Some(&(t, h)) = self.committed.get((e.index - 1) as usize) else {
                        return Err(self.fail(
                            "applied sequence",
                            format!("n{id} applies {} which nobody saw committed", e.index),
                        ));
                    };
                    if (t, h) != (e.term, entry_hash(e)) {
                        return Err(self.fail(
                            "applied sequence",
                            format!(
                                "n{id} applies ({}, t{}) but ({}, t{t}) was committed",
                                e.index, e.term, e.index
                            ),
                        ));
                    }
                    if e.key >= LIVENESS_KEY && !self.chaos {
                        self.live_ok = true;
                    }
                    let n = self.nodes.get_mut(&id).unwrap();
                    n.host_applied = e.index;
                    n.applied_term = e.term;
                    n.state = chain(n.state, e);
                    if e.kind == EntryKind::Config {
                        let m: StreamMembers =
                            serde_json::from_slice(&e.data).expect("config entry is JSON");
                        // The engine persists every committed configuration.
                        if e.index > n.meta_config.0 {
                            n.meta_config = (e.index, m.clone());
                        }
                        n.host_members = m;
                    }
                    self.check_state(id)?;
                }
                if let Some(l) = es.last() {
                    let i = l.index;
                    self.core(id).on_applied(i);
                }
                self.schedule_checkpoint(id);
            }
            Action::ReadReady { ctx, index } => {
                self.tr(Tr::ReadReady(id, ctx, index));
                let Some((node, need)) = self.reads.remove(&ctx) else {
                    return Err(self.fail(
                        "linearizable reads",
                        format!("n{id} confirms unknown or finished read {ctx}"),
                    ));
                };
                if node != id || index < need {
                    return Err(self.fail(
                        "linearizable reads",
                        format!(
                            "n{id} serves read {ctx} at index {index}, but {need} was committed before it started (registered on n{node})"
                        ),
                    ));
                }
                self.stats.reads_ok += 1;
            }
            Action::ReadFailed { ctx } => {
                self.reads.remove(&ctx);
            }
            Action::RoleChanged { role, term, leader } => {
                self.tr(Tr::Role(id, role, term));
                if matches!(role, Role::Leader | Role::Candidate | Role::PreCandidate) {
                    // A node that knows it is not a member that may lead
                    // (removed, PASSIVE, LOGGER, never added) never campaigns.
                    let core = self.nodes[&id].core.as_ref().unwrap();
                    if !core.may_campaign()
                        || !(core.members().get(id).is_some_and(|m| m.kind.may_lead())
                            || core
                                .committed_members()
                                .get(id)
                                .is_some_and(|m| m.kind.may_lead()))
                    {
                        return Err(self.fail(
                            "only members that may lead campaign",
                            format!(
                                "n{id} became {role} in term {term} but its config says {:?}",
                                core.members().get(id).map(|m| m.kind)
                            ),
                        ));
                    }
                }
                if role == Role::Follower && leader == Some(id) {
                    return Err(self.fail("role sanity", format!("n{id} follows itself")));
                }
                if role == Role::Leader {
                    self.stats.elections += 1;
                    if let Some(&other) = self.leaders.get(&term) {
                        if other != id {
                            return Err(self.fail(
                                "election safety",
                                format!("n{id} and n{other} both lead term {term}"),
                            ));
                        }
                    }
                    self.leaders.insert(term, id);
                    for i in 1..=self.committed.len() as Index {
                        self.check_leader_has(id, term, i)?;
                    }
                }
            }
            Action::Exception(_) => {}
            Action::SaveWorkMode(_) => {}
            Action::SendWithStoredEntries { mut env, from, to } => {
                let stored = self.nodes[&id].disk.read(from, to);
                let Some(stored) = stored else {
                    return Err(self.fail(
                        "host log contract",
                        format!("n{id} asks to send stored entries {from}..={to} it does not hold"),
                    ));
                };
                if let Some(entries) = env.msg.entries_mut() {
                    *entries = stored;
                }
                self.send(env);
            }
            Action::SendSnapshot { to } => {
                let newest = self.nodes[&id].checkpoints.last().cloned();
                match newest {
                    None => self.core(id).snapshot_transfer_failed(to),
                    Some(ckpt) => {
                        if !(self.chaos && self.rng2.gen_bool(self.loss)) {
                            let at = self.now + self.rng2.gen_range(1..=self.max_delay) + 5;
                            self.push(at, Ev::SnapshotArrive { from: id, to, ckpt });
                        }
                    }
                }
            }
            Action::CompactLog { first_kept } => {
                // Storage makes the log durable before it moves its first index.
                let n = self.nodes.get_mut(&id).unwrap();
                let synced = n.disk.sync();
                if n.disk.compact_to(first_kept).is_err() {
                    return Err(self.fail(
                        "host log contract",
                        format!("n{id} compacts to {first_kept} outside its log"),
                    ));
                }
                if let Some((i, t)) = synced {
                    let now = self.local_now(id);
                    self.core(id).on_persisted(now, i, t);
                }
            }
            Action::ResetLog { last, last_term } => {
                self.nodes.get_mut(&id).unwrap().disk.reset(last, last_term);
            }
        }
        Ok(())
    }

    /// Schedules a checkpoint once the host applied another interval's worth.
    fn schedule_checkpoint(&mut self, id: NodeId) {
        if !self.cfg.snapshots {
            return;
        }
        let n = &self.nodes[&id];
        let last = n.checkpoints.last().map(|c| c.meta.index).unwrap_or(0);
        if n.checkpoint_pending || n.host_applied < last + self.ckpt_interval {
            return;
        }
        let inc = n.incarnation;
        let at = self.now + self.rng2.gen_range(0..20);
        self.nodes.get_mut(&id).unwrap().checkpoint_pending = true;
        self.push(at, Ev::Checkpoint(id, inc));
    }

    fn check_leader_has(&self, id: NodeId, term: Term, i: Index) -> R {
        let k = (i - 1) as usize;
        if self.commit_term[k] >= term {
            return Ok(());
        }
        let (t, h) = self.committed[k];
        let core = self.nodes[&id].core.as_ref().unwrap();
        if i < core.first_index() {
            // Compacted below a checkpoint of applied (committed) entries.
            return Ok(());
        }
        let has = self.entry_of(id, i);
        let ok = has
            .as_ref()
            .is_some_and(|e| e.term == t && entry_hash(e) == h);
        if !ok {
            return Err(self.fail(
                "leader completeness",
                format!(
                    "n{id} leads term {term} without entry {i} (t{t}) committed in term {}; it has {:?}",
                    self.commit_term[k],
                    has.map(|e| e.term)
                ),
            ));
        }
        Ok(())
    }

    /// Compares a node's commit index and committed entries with history.
    fn observe_commit(&mut self, id: NodeId) -> R {
        let n = &self.nodes[&id];
        let Some(core) = n.core.as_ref() else {
            return Ok(());
        };
        let c = core.commit_index();
        let prev = n.last_commit;
        if c < prev {
            return Err(self.fail(
                "commit index never decreases",
                format!("n{id} commit went from {prev} to {c}"),
            ));
        }
        if c == prev {
            return Ok(());
        }
        if c > core.last_index() {
            return Err(self.fail(
                "commit within log",
                format!("n{id} commit {c} beyond last index {}", core.last_index()),
            ));
        }
        let term = core.term();
        if self.cfg.check_leader_commit_term
            && core.role() == Role::Leader
            && core.entry(c).is_some_and(|e| e.term != term)
        {
            return Err(self.fail(
                "leaders commit entries of their own term",
                format!(
                    "n{id}, leader of term {term}, moved its commit index from {prev} to {c}, an entry of term {}",
                    core.entry(c).map_or(0, |e| e.term)
                ),
            ));
        }
        let first = core.first_index();
        let core_last = core.last_index();
        let known = self.committed.len() as Index;
        let mut grown = Vec::new();
        for i in prev + 1..=c {
            if i < first {
                // Covered by a checkpoint (installed or taken here).
                if i > known {
                    return Err(self.fail(
                        "checkpoints hold committed entries only",
                        format!("n{id} holds {i} in a checkpoint, which nobody saw committed"),
                    ));
                }
                continue;
            }
            let Some(e) = self.entry_of(id, i) else {
                let n = &self.nodes[&id];
                return Err(self.fail(
                    "commit within log",
                    format!(
                        "n{id} commits {i} but holds no entry there (storage first {} durable up to {} unsynced {}, core first {} last {})",
                        n.disk.first,
                        n.disk.durable_index(),
                        n.disk.unsynced(),
                        first,
                        core_last
                    ),
                ));
            };
            let e = &e;
            let th = (e.term, entry_hash(e));
            if i <= known {
                if self.committed[(i - 1) as usize] != th {
                    let old = self.committed[(i - 1) as usize].0;
                    return Err(self.fail(
                        "committed entries never change",
                        format!(
                            "n{id} has ({i}, t{}) committed, but ({i}, t{old}) was committed before",
                            th.0
                        ),
                    ));
                }
            } else {
                self.committed.push(th);
                self.commit_term.push(term);
                let st = chain(*self.states.last().expect("initial state"), e);
                self.states.push(st);
                grown.push(i);
                if e.kind == EntryKind::Config {
                    let cfg: StreamMembers =
                        serde_json::from_slice(&e.data).expect("config entry is JSON");
                    self.committed_configs.push((i, cfg.clone()));
                    let diff = member_diff(&self.members, &cfg);
                    if diff.len() > 1 {
                        return Err(self.fail(
                            "one configuration change at a time",
                            format!(
                                "committed config at {i} changes nodes {diff:?} at once: {:?}",
                                cfg.ids().collect::<Vec<_>>()
                            ),
                        ));
                    }
                    if !diff.is_empty() {
                        self.stats.config_changes += 1;
                        self.stats.runs_with_changes = 1;
                    }
                    self.members = cfg;
                }
            }
        }
        self.nodes.get_mut(&id).unwrap().last_commit = c;
        if self.nodes[&id]
            .core
            .as_ref()
            .is_some_and(|c| c.role() == Role::Leader)
        {
            self.steer_first_commit(id, term);
        }
        self.tr(Tr::Commit(id, c));
        if !grown.is_empty() {
            self.stats.committed = self.committed.len() as u64;
            let leaders: Vec<(NodeId, Term)> = self
                .nodes
                .iter()
                .filter_map(|(nid, n)| n.core.as_ref().map(|c| (*nid, c)))
                .filter(|(_, c)| c.role() == Role::Leader)
                .map(|(nid, c)| (nid, c.term()))
                .collect();
            for (lid, lterm) in leaders {
                for &i in &grown {
                    self.check_leader_has(lid, lterm, i)?;
                }
            }
        }
        Ok(())
    }

    fn check_node(&self, id: NodeId) -> R {
        let n = &self.nodes[&id];
        let Some(core) = n.core.as_ref() else {
            return Ok(());
        };
        if core.last_index() != n.disk.last_index() {
            return Err(self.fail(
                "host log contract",
                format!(
                    "n{id} core last index {} but storage holds {}",
                    core.last_index(),
                    n.disk.last_index()
                ),
            ));
        }
        if self.cfg.check_hard_state && core.hard_state() != n.disk.hard {
            return Err(self.fail(
                "host log contract",
                format!(
                    "n{id} core hard state {:?} but storage holds {:?}",
                    core.hard_state(),
                    n.disk.hard
                ),
            ));
        }
        Ok(())
    }

    // ----- network -------------------------------------------------------

    fn send(&mut self, env: Envelope) {
        if self.chaos && self.rng.gen_bool(self.loss) {
            return;
        }
        let copies = if self.chaos && self.rng.gen_bool(self.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut d = self.rng.gen_range(1..=self.max_delay);
            if self.chaos && self.rng.gen_bool(0.01) {
                d += self.rng.gen_range(100..1000);
            }
            let at = self.now + d;
            self.push(at, Ev::Deliver(env.clone()));
        }
    }

    // ----- nemesis and clients ----------------------------------------------

    /// The time on `id`'s clock (the real time unless steering slowed it).
    fn local_now(&self, id: NodeId) -> u64 {
        match self.clocks.get(&id) {
            Some(&(real, local, slow)) => local + (self.now - real) / slow,
            None => self.now,
        }
    }

    /// Sets `id`'s clock to run `slow` times slower from now on.
    fn set_clock_rate(&mut self, id: NodeId, slow: u64) {
        let local = self.local_now(id);
        self.clocks.insert(id, (self.now, local, slow.max(1)));
        self.tr(Tr::Op(id, format!("clock 1/{slow}")));
    }

    /// Steering: the newest leader's clock runs slow for a while (what a
    /// lease trusting the local clock cannot survive).
    fn steer_clock(&mut self) {
        let Some(id) = self.newest_leader() else {
            return;
        };
        let slow = self.rng3.gen_range(4..=10);
        self.set_clock_rate(id, slow);
        let et = self.nodes[&id].opts.election_timeout_ms;
        let back = self.now + self.rng3.gen_range(4 * et..=10 * et);
        self.push(back, Ev::ClockReset(id));
        if self.rng3.gen_bool(STEER_CLOCK_CUT) {
            // ...and it is cut off soon after, so that another leader
            // takes over while its clock says little time has passed.
            let at = self.now + self.rng3.gen_range(0..=et / 2);
            self.push(at, Ev::Strike(Strike::Handover { leader: id }));
        }
    }

    /// Steering: now and then, a fault is aimed at the moment a message
    /// shows: the first entries a new leader sends, a hand-over, a
    /// granted vote.
    fn maybe_steer(&mut self, id: NodeId, env: &Envelope) {
        if !self.cfg.steer || !self.chaos {
            return;
        }
        let (strike, p) = match &env.msg {
            Message::Append(AppendRequest { term, entries, .. }) if !entries.is_empty() => {
                if !self.first_send_seen.insert((id, *term)) {
                    return;
                }
                let strike = Strike::Leader {
                    leader: id,
                    term: *term,
                    peer: env.to,
                    committed: false,
                };
                (strike, STEER_FIRST_SEND)
            }
            _ if self.now < self.next_strike => return,
            Message::TimeoutNow { .. } => (Strike::Handover { leader: id }, STEER_HANDOVER),
            Message::VoteResponse(VoteResponse {
                pre_vote: false,
                granted: true,
                ..
            }) => (Strike::Voter { voter: id }, STEER_VOTE),
            _ => return,
        };
        if !self.rng3.gen_bool(p) {
            return;
        }
        let at = self.now + self.rng3.gen_range(0..=self.max_delay.min(40));
        self.arm_strike(id, at, strike);
    }

    /// Steering: a leader that just committed for the first time in its
    /// term is sometimes struck at once, with the peer whose
    /// acknowledgement made it commit.
    fn steer_first_commit(&mut self, id: NodeId, term: Term) {
        if !self.cfg.steer || !self.chaos || !self.first_commit_seen.insert((id, term)) {
            return;
        }
        if self.rng3.gen_bool(STEER_FIRST_COMMIT) {
            let strike = Strike::Leader {
                leader: id,
                term,
                peer: self.delivering_from.unwrap_or(id),
                committed: true,
            };
            self.arm_strike(id, self.now, strike);
        }
    }

    /// Schedules a strike and the quiet time after it (for the strikes
    /// that respect one).
    fn arm_strike(&mut self, id: NodeId, at: u64, strike: Strike) {
        let et = self.nodes[&id].opts.election_timeout_ms;
        self.next_strike = self.now + self.rng3.gen_range(et / 2..=3 * et);
        self.push(at, Ev::Strike(strike));
    }

    /// Carries out a strike if its moment is still there: crashes the
    /// leader (back soon) or cuts it off, alone or with the peer that got
    /// its entries; cuts a leader that handed over off from everyone;
    /// crashes a voter (back soon). Cuts heal after a few election timeouts.
    fn strike(&mut self, strike: Strike) -> R {
        if !self.chaos {
            return Ok(());
        }
        let leads = |w: &World, id: NodeId, term: Option<Term>| {
            w.nodes[&id]
                .core
                .as_ref()
                .is_some_and(|c| c.role() == Role::Leader && term.is_none_or(|t| c.term() == t))
        };
        let mut also_crash = None;
        let (node, cut_with) = match strike {
            Strike::Leader {
                leader,
                term,
                peer,
                committed,
            } => {
                if !leads(self, leader, Some(term)) {
                    return Ok(());
                }
                // Right after its first entries went out, cutting the
                // leader off (with the peer that has them) leaves them on
                // a minority; right after its first commit, crashing it
                // with the peer that acknowledged loses what that peer
                // had not synced yet.
                let (a, b, c) = if committed {
                    (10, 90, 95)
                } else {
                    (15, 20, 50)
                };
                let r = self.rng3.gen_range(0..100u32);
                match r {
                    _ if r < a => (leader, None),
                    _ if r < b => {
                        // The peer may hold entries of the leader it has
                        // not synced yet: they go with it.
                        also_crash = Some(peer).filter(|p| *p != leader);
                        (leader, None)
                    }
                    _ if r < c => (leader, Some(Some(peer))),
                    _ => (leader, Some(None)),
                }
            }
            Strike::Handover { leader } => {
                if !leads(self, leader, None) {
                    return Ok(());
                }
                (leader, Some(None))
            }
            Strike::Voter { voter } => {
                if self.nodes[&voter].core.is_none() {
                    return Ok(());
                }
                (voter, None)
            }
        };
        let et = self.nodes[&node].opts.election_timeout_ms;
        match cut_with {
            None => {
                for n in [Some(node), also_crash].into_iter().flatten() {
                    self.crash(n);
                    let back = self.now + self.rng3.gen_range(5..=2 * et);
                    self.push(back, Ev::Restart(n));
                }
            }
            Some(peer) => {
                for id in self.nodes.keys().copied().collect::<Vec<_>>() {
                    let cut = id == node || Some(id) == peer;
                    self.side.insert(id, u8::from(cut));
                }
                self.oneway = None;
                let s = self.side.iter().map(|(a, b)| (*a, *b)).collect();
                self.tr(Tr::Partition(s, None));
                let heal = self.now + self.rng3.gen_range(et..=4 * et);
                self.push(heal, Ev::StrikeHeal);
            }
        }
        Ok(())
    }

    /// The leader of the highest term, ready or not, if any.
    fn newest_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(i, n)| n.core.as_ref().map(|c| (c, *i)))
            .filter(|(c, _)| c.role() == Role::Leader)
            .max_by_key(|(c, _)| c.term())
            .map(|(_, i)| i)
    }

    /// The ready leader of the highest term, if any.
    fn ready_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(i, n)| n.core.as_ref().map(|c| (c, *i)))
            .filter(|(c, _)| c.is_leader_ready())
            .max_by_key(|(c, _)| c.term())
            .map(|(_, i)| i)
    }

    /// Membership, role and priority changes and leadership moves.
    fn reconfigure(&mut self) -> R {
        // Steering: sometimes at a leader that is not ready yet.
        let any = self.cfg.steer && self.rng3.gen_bool(STEER_ANY_LEADER);
        let Some(l) = (if any {
            self.newest_leader()
        } else {
            self.ready_leader()
        }) else {
            return Ok(());
        };
        let now = self.local_now(l);
        let cfg = self.core(l).members().clone();
        let ids: Vec<NodeId> = cfg.ids().collect();
        let pick = ids[self.rng.gen_range(0..ids.len())];
        let r: u32 = self.rng.gen_range(0..100);
        let what;
        if r < 22 {
            let next = self.nodes.keys().max().copied().unwrap_or(0) + 1;
            if next > 12 {
                return Ok(());
            }
            let kind = match self.rng.gen_range(0..10) {
                0..=6 => MemberKind::Voter,
                7 | 8 => MemberKind::Passive,
                _ => MemberKind::Logger,
            };
            let member = Member {
                priority: self.rng.gen_range(0..3),
                ..fixtures::member(next, kind)
            };
            // The engine may start the new node with the old configuration
            // (it learns its membership from the log) or the new one.
            let mut base = cfg.clone();
            if self.rng.gen_bool(0.5) {
                base.members.push(member.clone());
                base.members.sort_by_key(|m| m.node_id);
            }
            let mut o = self.nodes[&1].opts.clone();
            o.node_id = next;
            self.nodes.insert(next, Node::fresh(o, base));
            self.side
                .insert(next, self.side.get(&l).copied().unwrap_or(0));
            self.start_node(next, false)?;
            let res = self.core(l).add_member(now, member);
            what = format!("add n{next} {kind:?}: {res:?}");
        } else if r < 40 {
            let res = self.core(l).remove_member(now, pick);
            what = format!("remove n{pick}: {res:?}");
        } else if r < 60 {
            let kind = [MemberKind::Voter, MemberKind::Passive, MemberKind::Logger]
                [self.rng.gen_range(0..3)];
            let res = self.core(l).change_member_role(now, pick, kind);
            what = format!("role n{pick} -> {kind:?}: {res:?}");
        } else if r < 72 {
            let p = self.rng.gen_range(0..4);
            let res = self.core(l).set_election_priority(now, pick, p);
            what = format!("priority n{pick} = {p}: {res:?}");
        } else if r < 86 {
            let t = self.rng.gen_range(50..500);
            let res = self.core(l).promote(now, pick, t);
            if res.is_ok() {
                self.stats.transfers += 1;
            }
            what = format!("promote n{pick} ({t} ms): {res:?}");
        } else if r < 92 {
            let res = self.core(l).demote(now);
            if res.is_ok() {
                self.stats.transfers += 1;
            }
            what = format!("demote: {res:?}");
        } else {
            if self.nodes[&pick].core.is_none() {
                return Ok(());
            }
            let now = self.local_now(pick);
            let res = self.core(pick).timeout_notify(now);
            what = format!("timeout_notify n{pick}: {res:?}");
            self.tr(Tr::Op(l, what));
            return self.drain(pick);
        }
        self.tr(Tr::Op(l, what));
        self.drain(l)
    }

    fn nemesis(&mut self) -> R {
        if self.cfg.steer && self.rng3.gen_bool(STEER_CLOCK) {
            self.steer_clock();
        }
        if self.cfg.membership && self.rng.gen_bool(0.5) {
            self.reconfigure()?;
            // Steering: sometimes a burst of changes at once.
            while self.cfg.steer && self.rng3.gen_bool(STEER_BURST) {
                self.reconfigure()?;
            }
            return Ok(());
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let r: u32 = self.rng.gen_range(0..100);
        if r < 25 {
            let id = ids[self.rng.gen_range(0..ids.len())];
            self.crash(id);
        } else if r < 40 {
            // Cut the newest leader off from everyone (a classic nemesis).
            let leader = self
                .nodes
                .iter()
                .filter_map(|(i, n)| n.core.as_ref().map(|c| (c.term(), *i, c.role())))
                .filter(|(_, _, r)| *r == Role::Leader)
                .map(|(t, i, _)| (t, i))
                .max()
                .map(|(_, i)| i);
            if let Some(l) = leader {
                for id in &ids {
                    self.side.insert(*id, u8::from(*id == l));
                }
                self.oneway = None;
                let s = self.side.iter().map(|(a, b)| (*a, *b)).collect();
                self.tr(Tr::Partition(s, None));
            }
        } else if r < 55 {
            let sides = self.rng.gen_range(2..=3u8);
            for id in &ids {
                let s = self.rng.gen_range(0..sides);
                self.side.insert(*id, s);
            }
            self.oneway = if self.rng.gen_bool(0.3) {
                let a = ids[self.rng.gen_range(0..ids.len())];
                let b = ids[self.rng.gen_range(0..ids.len())];
                Some((a, b))
            } else {
                None
            };
            let s = self.side.iter().map(|(a, b)| (*a, *b)).collect();
            self.tr(Tr::Partition(s, self.oneway));
        } else if r < 78 {
            for id in &ids {
                self.side.insert(*id, 0);
            }
            self.oneway = None;
            self.tr(Tr::Partition(vec![], None));
        } else if r < 90 {
            self.loss = [0.0, 0.05, 0.2, 0.4][self.rng.gen_range(0..4)];
            self.dup = [0.0, 0.05, 0.2][self.rng.gen_range(0..3)];
            self.max_delay = [2, 20, 80, 200][self.rng.gen_range(0..4)];
            self.tr(Tr::Net(
                (self.loss * 100.0) as u32,
                (self.dup * 100.0) as u32,
                self.max_delay,
            ));
        }
        Ok(())
    }

    fn client(&mut self) -> R {
        let live: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.core.is_some())
            .map(|(i, _)| *i)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let leaders: Vec<NodeId> = live
            .iter()
            .copied()
            .filter(|i| self.nodes[i].core.as_ref().unwrap().role() == Role::Leader)
            .collect();
        let id = if !leaders.is_empty() && self.rng.gen_bool(0.85) {
            leaders[self.rng.gen_range(0..leaders.len())]
        } else {
            live[self.rng.gen_range(0..live.len())]
        };
        let now = self.local_now(id);
        if self.rng.gen_bool(0.6) {
            let n: usize = if self.rng.gen_bool(0.2) {
                self.rng.gen_range(2..20)
            } else {
                1
            };
            for _ in 0..n {
                let key = self.next_key;
                self.next_key += 1;
                if let Ok((t, i)) = self.core(id).propose(now, key, key.to_le_bytes().to_vec()) {
                    self.tr(Tr::Propose(id, t, i));
                }
            }
        } else {
            let ctx = self.next_ctx;
            self.next_ctx += 1;
            let need = self.committed.len() as Index;
            if self.core(id).read_index(now, ctx).is_ok() {
                self.reads.insert(ctx, (id, need));
                self.tr(Tr::Read(id, ctx, need));
            }
        }
        self.drain(id)
    }

    fn heal(&mut self) -> R {
        self.chaos = false;
        for id in self.clocks.keys().copied().collect::<Vec<_>>() {
            self.set_clock_rate(id, 1);
        }
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.side.insert(id, 0);
        }
        self.oneway = None;
        self.max_delay = 5;
        self.tr(Tr::Partition(vec![], None));
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.core.is_none())
            .map(|(i, _)| *i)
            .collect();
        for id in down {
            self.start_node(id, true)?;
        }
        Ok(())
    }

    /// True if every node holding the most up-to-date log is a LOGGER and
    /// the other voters cannot form a quorum without the loggers.
    fn stuck_behind_logger(&self) -> bool {
        let logs: Vec<(NodeId, (Term, Index))> = self
            .nodes
            .iter()
            .filter_map(|(i, n)| {
                let c = n.core.as_ref()?;
                // Nodes outside the configuration cannot lead either.
                self.members.get(*i)?;
                let t = n.term_at(c.last_index());
                Some((*i, (t, c.last_index())))
            })
            .collect();
        let Some(best) = logs.iter().map(|(_, l)| *l).max() else {
            return false;
        };
        let kind = |id: NodeId| self.members.get(id).map(|m| m.kind);
        let all_loggers = logs
            .iter()
            .filter(|(_, l)| *l == best)
            .all(|(i, _)| kind(*i) == Some(MemberKind::Logger));
        let others: u64 = self
            .members
            .members
            .iter()
            .filter(|m| m.kind == MemberKind::Voter)
            .map(|m| m.weight as u64)
            .sum();
        all_loggers && others < self.members.quorum_weight()
    }

    // ----- the run --------------------------------------------------------

    fn handle(&mut self, ev: Ev) -> R {
        match ev {
            Ev::Tick(id, inc) => {
                let n = &self.nodes[&id];
                if n.incarnation != inc || n.core.is_none() {
                    return Ok(());
                }
                let now = self.local_now(id);
                self.core(id).tick(now);
                let next = self.now + self.tick_ms;
                self.push(next, Ev::Tick(id, inc));
                self.drain(id)?;
            }
            Ev::Deliver(env) => {
                let (from, to) = (env.from, env.to);
                if self.nodes[&to].core.is_none() || !self.connected(from, to) {
                    return Ok(());
                }
                let (what, a, b) = summarize(&env.msg);
                self.tr(Tr::Deliver {
                    from,
                    to,
                    what,
                    term: env.msg.term(),
                    a,
                    b,
                });
                let now = self.local_now(to);
                self.core(to).step(now, from, env.msg);
                self.delivering_from = Some(from);
                let r = self.drain(to);
                self.delivering_from = None;
                r?;
            }
            Ev::Sync(id, inc) => {
                let partial = self.rng.gen_bool(0.1);
                let cut = self
                    .rng
                    .gen_range(0..=self.nodes[&id].disk.unsynced().max(1));
                let again = self.now + self.rng.gen_range(1..=15);
                let n = self.nodes.get_mut(&id).unwrap();
                if n.incarnation != inc || n.core.is_none() {
                    return Ok(());
                }
                n.sync_pending = false;
                let unsynced = n.disk.unsynced();
                let take = if partial {
                    cut.clamp(1, unsynced.max(1))
                } else {
                    unsynced
                };
                let Some((i, t)) = n.disk.sync_prefix(take) else {
                    return Ok(());
                };
                if n.disk.unsynced() > 0 {
                    n.sync_pending = true;
                    self.push(again, Ev::Sync(id, inc));
                }
                self.tr(Tr::Persist(id, i));
                let now = self.local_now(id);
                self.core(id).on_persisted(now, i, t);
                self.drain(id)?;
            }
            Ev::Restart(id) => {
                if self.nodes[&id].core.is_none() {
                    self.start_node(id, true)?;
                }
            }
            Ev::Checkpoint(id, inc) => {
                let n = &self.nodes[&id];
                if n.incarnation == inc && n.core.is_some() {
                    self.checkpoint(id)?;
                }
            }
            Ev::SnapshotArrive { from, to, ckpt } => self.snapshot_arrives(from, to, ckpt)?,
            Ev::Strike(st) => self.strike(st)?,
            Ev::ClockReset(id) => {
                if self.chaos {
                    self.set_clock_rate(id, 1);
                }
            }
            Ev::StrikeHeal => {
                if self.chaos {
                    for id in self.nodes.keys().copied().collect::<Vec<_>>() {
                        self.side.insert(id, 0);
                    }
                    self.oneway = None;
                    self.tr(Tr::Partition(vec![], None));
                }
            }
            Ev::Client => {
                self.client()?;
                let gap = if self.chaos {
                    self.rng.gen_range(5..60)
                } else {
                    20
                };
                let at = self.now + gap;
                self.push(at, Ev::Client);
            }
            Ev::Nemesis => {
                if self.chaos {
                    self.nemesis()?;
                    let g = self.cfg.nemesis_gap_ms;
                    let at = self.now + self.rng.gen_range(g / 4..=g * 7 / 4);
                    self.push(at, Ev::Nemesis);
                }
            }
        }
        Ok(())
    }

    fn run_until(&mut self, end: u64, stop_when_live: bool) -> R {
        while let Some(top) = self.queue.peek() {
            if top.at > end || (stop_when_live && self.live_ok) {
                break;
            }
            let q = self.queue.pop().unwrap();
            self.now = q.at;
            self.stats.events += 1;
            self.handle(q.ev)?;
        }
        self.now = self.now.max(end);
        Ok(())
    }

    fn run_all(&mut self) -> R {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.start_node(id, false)?;
        }
        self.push(1, Ev::Client);
        self.push(self.cfg.nemesis_gap_ms, Ev::Nemesis);
        self.run_until(self.cfg.chaos_ms, false)?;
        self.heal()?;
        let et = self.nodes[&1].opts.election_timeout_ms;
        let end = self.now + self.cfg.heal_ms;
        self.run_until(end, false)?;
        // Liveness: a leader exists and commits a fresh proposal.
        let deadline = self.now + 40 * et;
        let mut next_try = self.now;
        while self.now < deadline && !self.live_ok {
            if self.now >= next_try {
                next_try = self.now + 2 * et;
                let ready: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.core.as_ref().is_some_and(|c| c.is_leader_ready()))
                    .map(|(i, _)| *i)
                    .collect();
                for id in ready {
                    let key = LIVENESS_KEY + self.next_key;
                    self.next_key += 1;
                    let now = self.local_now(id);
                    let _ = self.core(id).propose(now, key, vec![1]);
                    self.drain(id)?;
                }
            }
            let step_end = (self.now + et / 2).min(deadline);
            self.run_until(step_end, true)?;
        }
        if !self.live_ok && self.stuck_behind_logger() {
            // Leaders send LOGGERs only entries durable on themselves, so
            // some voter always holds what a LOGGER holds.
            self.stats.stuck_behind_logger += 1;
            return Err(self.fail(
                "voters never wait for a LOGGER's log",
                "after healing only LOGGER members hold the freshest log and the voters cannot elect a leader without them".into(),
            ));
        }
        if !self.live_ok {
            return Err(self.fail(
                "liveness after healing",
                format!(
                    "no fresh proposal committed {} ms after healing (leaders by term: {:?})",
                    self.cfg.heal_ms + 40 * et,
                    self.leaders.iter().rev().take(3).collect::<Vec<_>>()
                ),
            ));
        }
        Ok(())
    }
}

/// Runs one seed; `Err` carries the violated invariant.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<Stats, Box<Failure>> {
    let mut w = World::new(seed, cfg.clone());
    match w.run_all() {
        Ok(()) => {
            let mut st = w.stats.clone();
            st.runs_with_checkpoints = u64::from(st.checkpoints > 0);
            st.runs_with_compactions = u64::from(st.compactions > 0);
            st.runs_with_installs = u64::from(st.installs > 0);
            let mut h = DefaultHasher::new();
            (seed, w.digest.finish()).hash(&mut h);
            st.trace_digest = h.finish();
            Ok(st)
        }
        Err(f) => Err(Box::new(f)),
    }
}

/// Runs `seeds` on every available core; returns the failures, by seed.
pub fn run_seeds(seeds: &[u64], cfg: &SimConfig) -> (Vec<Failure>, Stats) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(seeds.len().max(1));
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let mut failures = Vec::new();
    let mut total = Stats::default();
    std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                s.spawn(move || {
                    let mut f = Vec::new();
                    let mut st = Stats::default();
                    for &seed in c {
                        match run_seed(seed, cfg) {
                            Ok(x) => st.add(&x),
                            Err(e) => f.push(*e),
                        }
                    }
                    (f, st)
                })
            })
            .collect();
        for h in hs {
            let (f, st) = h.join().expect("sim thread");
            failures.extend(f);
            total.add(&st);
        }
    });
    failures.sort_by_key(|f| f.seed);
    (failures, total)
}
