//! An Elle-style checker for transactions of list appends and reads.
//!
//! Appends of unique elements make every read reveal the order of all
//! appends before it, so each key's version order is inferred from its
//! longest read. From it come write-write, write-read and read-write
//! dependencies between transactions; with process and real-time order they
//! form a graph whose cycles are the anomalies (Adya's G0, G1c, G-single,
//! G2-item). Non-cyclic anomalies (aborted and intermediate reads, internal
//! inconsistencies, duplicated and garbage elements, incompatible orders,
//! acknowledged appends missing from a final read) are found directly. Every anomaly comes with a step-by-step explanation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::culprit::OpNote;
use crate::error::CheckError;
use crate::history::{History, OpType, Process};
use crate::result::{CheckResult, Validity};

/// The consistency models of Elle's ladder that list-append histories can
/// rule out, strongest first. Snapshot isolation and repeatable read are
/// incomparable: SI allows write skew (G2-item), which RR forbids. Every
/// dependency of a list-append history is on an item, so a G-single cycle
/// is also a G2-item cycle and both forbid it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsistencyModel {
    /// Serializable, and the serial order respects real time.
    #[default]
    StrictSerializable,
    /// Some serial order explains every transaction (Adya PL-3).
    Serializable,
    /// Adya's PL-SI: no G0, G1, G-single.
    SnapshotIsolation,
    /// Adya's PL-2.99: no G0, G1, G2-item.
    RepeatableRead,
    /// Adya's PL-2: no G0, G1a, G1b, G1c.
    ReadCommitted,
    /// Adya's PL-1: no G0.
    ReadUncommitted,
}

impl ConsistencyModel {
    /// Every model, strongest first.
    pub const LADDER: [ConsistencyModel; 6] = [
        ConsistencyModel::StrictSerializable,
        ConsistencyModel::Serializable,
        ConsistencyModel::SnapshotIsolation,
        ConsistencyModel::RepeatableRead,
        ConsistencyModel::ReadCommitted,
        ConsistencyModel::ReadUncommitted,
    ];

    /// Elle's name of the model.
    pub fn name(self) -> &'static str {
        match self {
            ConsistencyModel::StrictSerializable => "strict-serializable",
            ConsistencyModel::Serializable => "serializable",
            ConsistencyModel::SnapshotIsolation => "snapshot-isolation",
            ConsistencyModel::RepeatableRead => "repeatable-read",
            ConsistencyModel::ReadCommitted => "read-committed",
            ConsistencyModel::ReadUncommitted => "read-uncommitted",
        }
    }

    /// Whether checking it needs process and real-time order.
    pub fn needs_real_time(self) -> bool {
        self == ConsistencyModel::StrictSerializable
    }

    /// Whether the model forbids an anomaly of this kind. Anomalies that
    /// are not about isolation (garbage, duplicates, internal
    /// inconsistency, incompatible orders) break every model; cycles that
    /// need process or real-time order, and lost appends, break only
    /// strict serializability.
    pub fn forbids(self, kind: &str) -> bool {
        use ConsistencyModel::*;
        if kind.ends_with("-realtime") || kind.ends_with("-process") || kind == "lost-append" {
            return self == StrictSerializable;
        }
        match kind {
            "G0" => true,
            "G1a" | "G1b" | "G1c" => self != ReadUncommitted,
            "G-single" => !matches!(self, ReadCommitted | ReadUncommitted),
            "G2-item" => !matches!(self, SnapshotIsolation | ReadCommitted | ReadUncommitted),
            _ => true,
        }
    }
}

impl std::fmt::Display for ConsistencyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ConsistencyModel {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsistencyModel::LADDER
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ConsistencyModel::LADDER.iter().map(|m| m.name()).collect();
                CheckError::Usage(format!(
                    "unknown consistency model {s:?} (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// Options for [`check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ListAppendOptions {
    /// The model to check. Process and real-time edges (and lost appends)
    /// are analysed only for strict serializability; every other model
    /// looks at data dependencies alone.
    pub model: ConsistencyModel,
}

/// One anomaly, with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// `G0`, `G1a`, `G1b`, `G1c`, `G-single`, `G2-item` (with `-process` or
    /// `-realtime` when the cycle needs those edges), `internal`,
    /// `duplicate-elements`, `incompatible-order`, `garbage-read`,
    /// `lost-append`, `duplicate-appends`.
    pub kind: String,
    /// History indices of the invocations of the transactions involved.
    pub txns: Vec<usize>,
    /// The reasoning, one step per line ("T1 < T2 because ...").
    pub steps: Vec<String>,
    /// For each transaction, the node that served it and what the nemesis
    /// was doing to that node (see [`crate::culprit`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<OpNote>,
}

impl Anomaly {
    /// The anomaly as readable text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}:\n", self.kind);
        for step in &self.steps {
            let _ = writeln!(s, "  {step}");
        }
        for n in &self.ops {
            let _ = writeln!(s, "  T{} {}", n.invoke_index, n.describe());
        }
        s
    }
}

/// What the list-append checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListAppendReport {
    /// The consistency model checked (Elle's name).
    pub consistency: String,
    /// Distinct anomaly kinds found, sorted.
    pub anomaly_types: Vec<String>,
    /// The kinds found that the checked model forbids: they make the
    /// history invalid.
    #[serde(default)]
    pub prohibited_types: Vec<String>,
    /// The models of the ladder the history is not, strongest first
    /// (Elle's `:not`).
    #[serde(default)]
    pub not: Vec<String>,
    /// Every anomaly found.
    pub anomalies: Vec<Anomaly>,
    /// Transactions in the dependency graph.
    pub txns: usize,
    /// Edges in the dependency graph.
    pub edges: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Mop {
    Append(String, String),
    Read(String, Option<Vec<String>>),
}

#[derive(Debug, Clone)]
struct Txn {
    invoke: usize,
    complete: Option<usize>,
    /// Where the history says how it ended (an `info` too); `None` if it never did.
    ended: Option<usize>,
    outcome: OpType,
    process: Process,
    mops: Vec<Mop>,
}

impl Txn {
    fn name(&self) -> String {
        format!("T{}", self.invoke)
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Micro-ops of a transaction. `completed` says the value is an `ok`
/// completion: its reads then say what the key held, and a read of a key
/// that holds nothing is the empty list however the wire spelled it
/// (`null`, a missing value, `[]`). Reads of an invocation or of an
/// indeterminate completion are unknown (`None`).
fn parse_mops(loc: &str, v: &Value, completed: bool) -> Result<Vec<Mop>, CheckError> {
    let bad = |m: String| CheckError::Unsupported {
        location: loc.to_string(),
        message: m,
    };
    let Value::Array(items) = v else {
        return Err(bad(format!(
            "txn value must be a list of micro-ops, got {v}"
        )));
    };
    let is_read = |f: &str| f == "r" || f == "read";
    items
        .iter()
        .map(|m| match m.as_array().map(Vec::as_slice) {
            Some([Value::String(f), k, x]) if f == "append" => Ok(Mop::Append(show(k), show(x))),
            Some([Value::String(f), k]) if is_read(f) => {
                Ok(Mop::Read(show(k), completed.then(Vec::new)))
            }
            Some([Value::String(f), k, x]) if is_read(f) => match x {
                _ if !completed => Ok(Mop::Read(show(k), None)),
                Value::Null => Ok(Mop::Read(show(k), Some(Vec::new()))),
                Value::Array(list) => Ok(Mop::Read(show(k), Some(list.iter().map(show).collect()))),
                other => Err(bad(format!(
                    "a read of a list must return a list, got {other}"
                ))),
            },
            _ => Err(bad(format!("bad list-append micro-op {m}"))),
        })
        .collect()
}

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PROCESS: u8 = 8;
const REALTIME: u8 = 16;

/// Why one transaction precedes another.
#[derive(Debug, Clone)]
struct Edge {
    kinds: u8,
    reasons: Vec<(u8, String)>,
}

struct Analysis<'a> {
    txns: &'a [Txn],
    edges: HashMap<(usize, usize), Edge>,
}

impl Analysis<'_> {
    fn add(&mut self, a: usize, b: usize, kind: u8, reason: String) {
        if a == b {
            return;
        }
        let e = self.edges.entry((a, b)).or_insert(Edge {
            kinds: 0,
            reasons: Vec::new(),
        });
        if e.kinds & kind == 0 {
            e.reasons.push((kind, reason));
        }
        e.kinds |= kind;
    }
}

/// Who appended each element, by (key, element).
type Writers<'a> = HashMap<(&'a str, &'a str), usize>;
/// The reads of `ok` transactions, per key: (transaction, list read).
type Reads<'a> = HashMap<&'a str, Vec<(usize, &'a Vec<String>)>>;
/// Each key's version order: its longest read.
type Orders<'a> = HashMap<&'a str, &'a Vec<String>>;

/// Check a list-append history.
///
/// The phases: transactions from the history; anomalies visible without a
/// graph (internal, duplicates, incompatible orders, lost appends, aborted,
/// intermediate and garbage reads); the dependency graph over committed
/// transactions; its cycles; the verdict for the chosen model.
pub fn check(history: &History, options: &ListAppendOptions) -> Result<CheckResult, CheckError> {
    let started = Instant::now();
    let txns = transactions(history)?;
    let mut anomalies = Vec::new();
    internal_consistency(&txns, &mut anomalies);
    let writer = writers(&txns, &mut anomalies);
    let reads = ok_reads(&txns, &mut anomalies);
    let (keys, order) = version_orders(&txns, &reads, &mut anomalies);
    if options.model.needs_real_time() {
        // "Final" is a real-time notion: serializability alone lets a read
        // be ordered before appends that finished before it began.
        lost_appends(&txns, &mut anomalies);
    }
    bad_reads(&txns, &writer, &mut anomalies);
    let committed = committed(&txns, &order, &writer);
    let mut an = Analysis {
        txns: &txns,
        edges: HashMap::new(),
    };
    data_edges(&mut an, &keys, &order, &reads, &writer, &committed);
    if options.model.needs_real_time() {
        process_edges(&mut an, &committed);
        realtime_edges(&mut an, history, &committed);
    }
    anomalies.extend(cycles(&an, &committed));
    let edges = an.edges.len();
    let mut result = verdict(options.model, anomalies, &txns, &committed, edges);
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(result)
}

/// The history's transactions, in invocation order. Micro-ops come from
/// the `ok` completion when there is one, else from the invocation.
fn transactions(history: &History) -> Result<Vec<Txn>, CheckError> {
    let pairs = history.pairs()?;
    let mut txns = Vec::new();
    for pair in &pairs {
        let inv = &history.ops[pair.invoke];
        if inv.f != "txn" {
            return Err(CheckError::Unsupported {
                location: inv.location(),
                message: format!("the list-append checker has no {:?} operation", inv.f),
            });
        }
        let outcome = history.outcome(pair);
        let source = match (outcome, pair.complete) {
            (OpType::Ok, Some(c)) => &history.ops[c],
            _ => inv,
        };
        txns.push(Txn {
            invoke: pair.invoke,
            complete: pair.complete.filter(|_| outcome != OpType::Info),
            ended: pair.complete,
            outcome,
            process: inv.process,
            mops: parse_mops(&source.location(), &source.value, outcome == OpType::Ok)?,
        });
    }
    Ok(txns)
}

/// Who appended each element (first appender wins; duplicates are reported).
fn writers<'a>(txns: &'a [Txn], anomalies: &mut Vec<Anomaly>) -> Writers<'a> {
    let mut writer: Writers = HashMap::new();
    for (t, txn) in txns.iter().enumerate() {
        for m in &txn.mops {
            if let Mop::Append(k, v) = m {
                if let Some(&other) = writer.get(&(k.as_str(), v.as_str())) {
                    if other != t {
                        anomalies.push(Anomaly {
                            ops: Vec::new(),
                            kind: "duplicate-appends".into(),
                            txns: vec![txns[other].invoke, txn.invoke],
                            steps: vec![format!(
                                "{} and {} both append {v} to key {k}; elements must be unique",
                                txns[other].name(),
                                txn.name()
                            )],
                        });
                    }
                } else {
                    writer.insert((k.as_str(), v.as_str()), t);
                }
            }
        }
    }
    writer
}

/// Reads of ok transactions, per key; a read holding an element twice is
/// reported.
fn ok_reads<'a>(txns: &'a [Txn], anomalies: &mut Vec<Anomaly>) -> Reads<'a> {
    let mut reads: Reads = HashMap::new();
    for (t, txn) in txns.iter().enumerate() {
        if txn.outcome != OpType::Ok {
            continue;
        }
        for m in &txn.mops {
            if let Mop::Read(k, Some(list)) = m {
                reads.entry(k.as_str()).or_default().push((t, list));
                let mut seen = HashSet::new();
                if let Some(dup) = list.iter().find(|e| !seen.insert(e.as_str())) {
                    anomalies.push(Anomaly {
                        ops: Vec::new(),
                        kind: "duplicate-elements".into(),
                        txns: vec![txn.invoke],
                        steps: vec![format!(
                            "{} read key {k} as {list:?}, which contains {dup} twice",
                            txn.name()
                        )],
                    });
                }
            }
        }
    }
    reads
}

/// Version order per key: the longest read, which all others must prefix.
/// Returns the keys read (sorted) and each one's order.
fn version_orders<'a>(
    txns: &[Txn],
    reads: &Reads<'a>,
    anomalies: &mut Vec<Anomaly>,
) -> (Vec<&'a str>, Orders<'a>) {
    let mut keys: Vec<&str> = reads.keys().copied().collect();
    keys.sort_unstable();
    let mut order: Orders = HashMap::new();
    for k in &keys {
        let rs = &reads[k];
        let longest = rs
            .iter()
            .max_by_key(|(_, l)| l.len())
            .map(|(t, l)| (*t, *l));
        let Some((lt, longest)) = longest else {
            continue;
        };
        for (t, l) in rs {
            if !longest.starts_with(l) {
                anomalies.push(Anomaly {
                    ops: Vec::new(),
                    kind: "incompatible-order".into(),
                    txns: vec![txns[*t].invoke, txns[lt].invoke],
                    steps: vec![format!(
                        "{} read key {k} as {l:?} but {} read it as {longest:?}; neither extends the other",
                        txns[*t].name(),
                        txns[lt].name()
                    )],
                });
            }
        }
        order.insert(k, longest);
    }
    (keys, order)
}

/// Aborted, intermediate and garbage reads.
fn bad_reads(txns: &[Txn], writer: &Writers, anomalies: &mut Vec<Anomaly>) {
    for (t, txn) in txns.iter().enumerate() {
        if txn.outcome != OpType::Ok {
            continue;
        }
        for m in &txn.mops {
            let Mop::Read(k, Some(list)) = m else {
                continue;
            };
            for e in list {
                match writer.get(&(k.as_str(), e.as_str())) {
                    None => anomalies.push(Anomaly {
                        ops: Vec::new(),
                        kind: "garbage-read".into(),
                        txns: vec![txn.invoke],
                        steps: vec![format!(
                            "{} read {e} in key {k}, which no transaction appended",
                            txn.name()
                        )],
                    }),
                    Some(&w) if txns[w].outcome == OpType::Fail => anomalies.push(Anomaly {
                        ops: Vec::new(),
                        kind: "G1a".into(),
                        txns: vec![txns[w].invoke, txn.invoke],
                        steps: vec![format!(
                            "{} read {e} in key {k}, appended by {}, which failed (aborted read)",
                            txn.name(),
                            txns[w].name()
                        )],
                    }),
                    _ => {}
                }
            }
            if let Some(last) = list.last() {
                if let Some(&w) = writer.get(&(k.as_str(), last.as_str())) {
                    if w != t {
                        let own: Vec<&String> = txns[w]
                            .mops
                            .iter()
                            .filter_map(|m| match m {
                                Mop::Append(k2, v) if k2 == k => Some(v),
                                _ => None,
                            })
                            .collect();
                        if own.last().is_some_and(|v| *v != last) {
                            anomalies.push(Anomaly {
                                ops: Vec::new(),
                                kind: "G1b".into(),
                                txns: vec![txns[w].invoke, txn.invoke],
                                steps: vec![format!(
                                    "{} read key {k} ending in {last}, an intermediate state of {}, which appended {} to {k} afterwards",
                                    txn.name(),
                                    txns[w].name(),
                                    own.last().map_or("", |v| v.as_str())
                                )],
                            });
                        }
                    }
                }
            }
        }
    }
}

/// The transactions in the dependency graph: ok ones, and info ones whose
/// appends someone observed.
fn committed(txns: &[Txn], order: &Orders, writer: &Writers) -> Vec<bool> {
    let observed: HashSet<usize> = order
        .iter()
        .flat_map(|(k, list)| {
            list.iter()
                .filter_map(|e| writer.get(&(*k, e.as_str())).copied())
        })
        .collect();
    txns.iter()
        .enumerate()
        .map(|(t, x)| {
            x.outcome == OpType::Ok || (x.outcome == OpType::Info && observed.contains(&t))
        })
        .collect()
}

/// Write-write, write-read and read-write edges between committed
/// transactions, from each key's version order.
fn data_edges(
    an: &mut Analysis,
    keys: &[&str],
    order: &Orders,
    reads: &Reads,
    writer: &Writers,
    committed: &[bool],
) {
    let txns = an.txns;
    for k in keys {
        let Some(list) = order.get(k) else { continue };
        let ws: Vec<Option<usize>> = list
            .iter()
            .map(|e| writer.get(&(*k, e.as_str())).copied())
            .collect();
        for i in 1..list.len() {
            if let (Some(a), Some(b)) = (ws[i - 1], ws[i]) {
                if committed[a] && committed[b] {
                    let reason = format!(
                        "{} < {} because {} appended {} to key {k} right after {}'s append of {} (the version order of {k})",
                        txns[a].name(),
                        txns[b].name(),
                        txns[b].name(),
                        list[i],
                        txns[a].name(),
                        list[i - 1]
                    );
                    an.add(a, b, WW, reason);
                }
            }
        }
        for &(t, read) in &reads[k] {
            if !longest_prefix(list, read) {
                continue;
            }
            if let Some(last) = read.last() {
                if let Some(w) = ws[read.len() - 1] {
                    if committed[w] {
                        let reason = format!(
                            "{} < {} because {} read {}'s append of {last} to key {k}",
                            txns[w].name(),
                            txns[t].name(),
                            txns[t].name(),
                            txns[w].name()
                        );
                        an.add(w, t, WR, reason);
                    }
                }
            }
            if let Some(Some(next)) = ws.get(read.len()) {
                if committed[*next] {
                    let seen = read
                        .last()
                        .map_or("nothing".to_string(), |l| format!("up to {l}"));
                    let reason = format!(
                        "{} < {} because {} read key {k} {seen} and {} appended {}, the next version of {k}",
                        txns[t].name(),
                        txns[*next].name(),
                        txns[t].name(),
                        txns[*next].name(),
                        list[read.len()]
                    );
                    an.add(t, *next, RW, reason);
                }
            }
        }
    }
}

/// The result: the anomaly kinds found, those the model forbids (which
/// make the history invalid) and the models of the ladder it is not.
fn verdict(
    model: ConsistencyModel,
    anomalies: Vec<Anomaly>,
    txns: &[Txn],
    committed: &[bool],
    edges: usize,
) -> CheckResult {
    let mut kinds: Vec<String> = anomalies.iter().map(|a| a.kind.clone()).collect();
    kinds.sort();
    kinds.dedup();
    let prohibited: Vec<String> = kinds.iter().filter(|k| model.forbids(k)).cloned().collect();
    let not: Vec<String> = ConsistencyModel::LADDER
        .iter()
        .filter(|m| kinds.iter().any(|k| m.forbids(k)))
        .map(|m| m.name().to_string())
        .collect();
    let mut result = CheckResult::new("list-append", model.name());
    result.valid = if prohibited.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    };
    result.op_count = txns.len();
    result.list_append = Some(ListAppendReport {
        consistency: model.name().into(),
        anomaly_types: kinds,
        prohibited_types: prohibited,
        not,
        anomalies,
        txns: committed.iter().filter(|c| **c).count(),
        edges,
    });
    result
}

/// Most elements named in one lost-append anomaly's explanation.
const LOST_SHOWN: usize = 20;

/// Acknowledged appends missing from a final read. A final read of a key
/// began after every append to that key had ended, so it must show every
/// acknowledged one: one that no read ever shows has no place in the
/// version order, and so no dependency edge would ever point at it.
fn lost_appends(txns: &[Txn], anomalies: &mut Vec<Anomaly>) {
    /// A key's acknowledged appends (element, txn) and where the last
    /// append of any outcome ended (`None`: one never ended).
    struct KeyAppends<'a> {
        acked: Vec<(&'a str, usize)>,
        last_end: Option<usize>,
    }
    let mut appends: HashMap<&str, KeyAppends> = HashMap::new();
    for (t, txn) in txns.iter().enumerate() {
        for m in &txn.mops {
            if let Mop::Append(k, v) = m {
                let e = appends.entry(k.as_str()).or_insert(KeyAppends {
                    acked: Vec::new(),
                    last_end: Some(0),
                });
                if txn.outcome == OpType::Ok {
                    e.acked.push((v.as_str(), t));
                }
                e.last_end = match (e.last_end, txn.ended) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
    }
    let mut keys: Vec<&str> = appends.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let KeyAppends { acked, last_end } = &appends[k];
        let Some(last_end) = *last_end else { continue };
        for txn in txns
            .iter()
            .filter(|x| x.outcome == OpType::Ok && x.invoke > last_end)
        {
            for m in &txn.mops {
                let Mop::Read(rk, Some(list)) = m else {
                    continue;
                };
                if rk != k {
                    continue;
                }
                let seen: HashSet<&str> = list.iter().map(String::as_str).collect();
                let missing: Vec<&(&str, usize)> =
                    acked.iter().filter(|(v, _)| !seen.contains(v)).collect();
                if missing.is_empty() {
                    continue;
                }
                let mut steps: Vec<String> = missing
                    .iter()
                    .take(LOST_SHOWN)
                    .map(|(v, w)| {
                        format!(
                            "{} appended {v} to key {k} and was acknowledged (index {})",
                            txns[*w].name(),
                            txns[*w].complete.unwrap_or(txns[*w].invoke)
                        )
                    })
                    .collect();
                if missing.len() > LOST_SHOWN {
                    steps.push(format!(
                        "… and {} more acknowledged appends",
                        missing.len() - LOST_SHOWN
                    ));
                }
                steps.push(format!(
                    "{} read key {k} as {}, beginning (index {}) after every append to {k} had ended, \
                     so {} acknowledged append{} {} lost",
                    txn.name(),
                    short_list(list),
                    txn.invoke,
                    missing.len(),
                    if missing.len() == 1 { "" } else { "s" },
                    if missing.len() == 1 { "was" } else { "were" }
                ));
                let mut involved: Vec<usize> =
                    missing.iter().map(|(_, w)| txns[*w].invoke).collect();
                involved.sort_unstable();
                involved.dedup();
                involved.push(txn.invoke);
                anomalies.push(Anomaly {
                    ops: Vec::new(),
                    kind: "lost-append".into(),
                    txns: involved,
                    steps,
                });
            }
        }
    }
}

/// A read's list for an explanation: whole when short, else its ends.
fn short_list(list: &[String]) -> String {
    const ENDS: usize = 5;
    if list.len() <= 2 * ENDS + 1 {
        return format!("{list:?}");
    }
    format!(
        "[{}, … {} more …, {}] ({} elements)",
        list[..ENDS].join(", "),
        list.len() - 2 * ENDS,
        list[list.len() - ENDS..].join(", "),
        list.len()
    )
}

fn longest_prefix(longest: &[String], read: &[String]) -> bool {
    longest.starts_with(read)
}

/// Within one transaction, reads must reflect its own earlier appends and
/// agree with its earlier reads.
fn internal_consistency(txns: &[Txn], anomalies: &mut Vec<Anomaly>) {
    for txn in txns.iter().filter(|t| t.outcome == OpType::Ok) {
        // Per key: the expected list if known, else the own appends so far.
        let mut known: HashMap<&str, Vec<String>> = HashMap::new();
        let mut appended: HashMap<&str, Vec<String>> = HashMap::new();
        for m in &txn.mops {
            match m {
                Mop::Append(k, v) => {
                    if let Some(list) = known.get_mut(k.as_str()) {
                        list.push(v.clone());
                    }
                    appended.entry(k).or_default().push(v.clone());
                }
                Mop::Read(k, Some(list)) => {
                    let problem = match known.get(k.as_str()) {
                        Some(expected) if expected != list => Some(format!(
                            "expected {expected:?} from its earlier read and appends"
                        )),
                        None => match appended.get(k.as_str()) {
                            Some(own) if !list.ends_with(own) => {
                                Some(format!("it should end with its own appends {own:?}"))
                            }
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(p) = problem {
                        anomalies.push(Anomaly {
                            ops: Vec::new(),
                            kind: "internal".into(),
                            txns: vec![txn.invoke],
                            steps: vec![format!(
                                "{} read key {k} as {list:?}, but {p}",
                                txn.name()
                            )],
                        });
                    }
                    known.insert(k, list.clone());
                    appended.remove(k.as_str());
                }
                Mop::Read(_, None) => {}
            }
        }
    }
}

fn process_edges(an: &mut Analysis, committed: &[bool]) {
    let mut last: HashMap<Process, usize> = HashMap::new();
    let txns = an.txns;
    for (t, txn) in txns.iter().enumerate() {
        if !committed[t] {
            continue;
        }
        if let Some(&p) = last.get(&txn.process) {
            let reason = format!(
                "{} < {} because process {} ran {} before {}",
                txns[p].name(),
                txns[t].name(),
                txn.process,
                txns[p].name(),
                txns[t].name()
            );
            an.add(p, t, PROCESS, reason);
        }
        last.insert(txn.process, t);
    }
}

/// Real-time edges, transitively reduced: each transaction is preceded by
/// the completed ones not already implied through another.
fn realtime_edges(an: &mut Analysis, history: &History, committed: &[bool]) {
    let txns = an.txns;
    let mut by_invoke: HashMap<usize, usize> = HashMap::new();
    let mut by_complete: HashMap<usize, usize> = HashMap::new();
    for (t, x) in txns.iter().enumerate() {
        if committed[t] {
            by_invoke.insert(x.invoke, t);
            if let Some(c) = x.complete {
                by_complete.insert(c, t);
            }
        }
    }
    let mut frontier: Vec<usize> = Vec::new();
    let mut preds: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..history.ops.len() {
        if let Some(&t) = by_invoke.get(&i) {
            for &p in &frontier {
                let reason = format!(
                    "{} < {} because {} completed (index {}) before {} was invoked (index {})",
                    txns[p].name(),
                    txns[t].name(),
                    txns[p].name(),
                    txns[p].complete.unwrap_or(0),
                    txns[t].name(),
                    txns[t].invoke
                );
                an.add(p, t, REALTIME, reason);
            }
            preds.insert(t, frontier.clone());
        }
        if let Some(&t) = by_complete.get(&i) {
            let dominated = preds.remove(&t).unwrap_or_default();
            frontier.retain(|f| !dominated.contains(f));
            frontier.push(t);
        }
    }
}

/// Find a cycle in the subgraph of `nodes` using edges whose kinds meet `mask`.
fn find_cycle(an: &Analysis, nodes: &HashSet<usize>, mask: u8) -> Option<Vec<usize>> {
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let mut idx: HashMap<usize, NodeIndex> = HashMap::new();
    for &n in nodes {
        idx.insert(n, g.add_node(n));
    }
    for (&(a, b), e) in &an.edges {
        if e.kinds & mask != 0 {
            if let (Some(&x), Some(&y)) = (idx.get(&a), idx.get(&b)) {
                g.add_edge(x, y, ());
            }
        }
    }
    let scc = tarjan_scc(&g).into_iter().find(|c| c.len() > 1)?;
    let members: HashSet<usize> = scc.iter().map(|n| g[*n]).collect();
    let start = g[scc[0]];
    path(an, &members, start, start, mask)
}

/// Shortest path from `from` to `to` (a cycle if equal) within `members`,
/// over edges meeting `mask`. Returns the nodes, starting with `from`.
fn path(
    an: &Analysis,
    members: &HashSet<usize>,
    from: usize,
    to: usize,
    mask: u8,
) -> Option<Vec<usize>> {
    let mut adj: HashMap<usize, Vec<usize>> = HashMap::new();
    for (&(a, b), e) in &an.edges {
        if e.kinds & mask != 0 && members.contains(&a) && members.contains(&b) {
            adj.entry(a).or_default().push(b);
        }
    }
    for v in adj.values_mut() {
        v.sort_unstable();
    }
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for &m in adj.get(&n).map_or(&[][..], |v| v.as_slice()) {
            if m == to {
                let mut out = vec![n];
                let mut cur = n;
                while cur != from {
                    cur = parent[&cur];
                    out.push(cur);
                }
                out.reverse();
                return Some(out);
            }
            if m != from && !parent.contains_key(&m) {
                parent.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

/// Classify each strongly connected component by its weakest cycle.
fn cycles(an: &Analysis, committed: &[bool]) -> Vec<Anomaly> {
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..an.txns.len()).map(|t| g.add_node(t)).collect();
    for &(a, b) in an.edges.keys() {
        if committed[a] && committed[b] {
            g.add_edge(nodes[a], nodes[b], ());
        }
    }
    let mut out = Vec::new();
    for scc in tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let members: HashSet<usize> = scc.iter().map(|n| g[*n]).collect();
        if let Some(a) = classify(an, &members) {
            out.push(a);
        }
    }
    out
}

fn classify(an: &Analysis, members: &HashSet<usize>) -> Option<Anomaly> {
    let order = [
        (0u8, ""),
        (PROCESS, "-process"),
        (PROCESS | REALTIME, "-realtime"),
    ];
    for (extra, suffix) in order {
        if let Some(c) = find_cycle(an, members, WW | extra) {
            return Some(describe(an, &format!("G0{suffix}"), &c, WW | extra));
        }
        if let Some(c) = find_cycle(an, members, WW | WR | extra) {
            return Some(describe(an, &format!("G1c{suffix}"), &c, WW | WR | extra));
        }
        // Exactly one anti-dependency: an rw edge closed by a path without one.
        let mut rw: Vec<(usize, usize)> = an
            .edges
            .iter()
            .filter(|((a, b), e)| e.kinds & RW != 0 && members.contains(a) && members.contains(b))
            .map(|(k, _)| *k)
            .collect();
        rw.sort_unstable();
        for (a, b) in rw {
            if let Some(mut p) = path(an, members, b, a, WW | WR | extra) {
                p.insert(0, a);
                let cycle = p;
                return Some(describe_single(
                    an,
                    &format!("G-single{suffix}"),
                    &cycle,
                    WW | WR | extra,
                ));
            }
        }
        if let Some(c) = find_cycle(an, members, WW | WR | RW | extra) {
            return Some(describe(
                an,
                &format!("G2-item{suffix}"),
                &c,
                WW | WR | RW | extra,
            ));
        }
    }
    None
}

/// Text for a cycle `c[0] → c[1] → … → c[0]`, preferring the edge kinds in `mask`.
fn describe(an: &Analysis, kind: &str, c: &[usize], mask: u8) -> Anomaly {
    let mut steps = Vec::new();
    for i in 0..c.len() {
        let (a, b) = (c[i], c[(i + 1) % c.len()]);
        steps.push(edge_reason(an, a, b, mask));
    }
    let names: Vec<String> = c
        .iter()
        .chain(c.first())
        .map(|t| an.txns[*t].name())
        .collect();
    steps.push(format!(
        "so {}: a cycle, which no serial order allows",
        names.join(" < ")
    ));
    Anomaly {
        ops: Vec::new(),
        kind: kind.into(),
        txns: c.iter().map(|t| an.txns[*t].invoke).collect(),
        steps,
    }
}

/// Like [`describe`], but the first edge is the single anti-dependency.
fn describe_single(an: &Analysis, kind: &str, c: &[usize], mask: u8) -> Anomaly {
    let mut a = describe(an, kind, c, mask);
    if let Some(first) = a.steps.first_mut() {
        *first = edge_reason(an, c[0], c[1], RW);
    }
    a
}

fn edge_reason(an: &Analysis, a: usize, b: usize, mask: u8) -> String {
    let Some(e) = an.edges.get(&(a, b)) else {
        return format!("{} < {}", an.txns[a].name(), an.txns[b].name());
    };
    // Prefer the strongest explanation the mask allows: wr, ww, process, realtime, rw.
    for k in [WR, WW, PROCESS, REALTIME, RW] {
        if mask & k != 0 {
            if let Some((_, r)) = e.reasons.iter().find(|(kind, _)| *kind == k) {
                return r.clone();
            }
        }
    }
    e.reasons
        .first()
        .map(|(_, r)| r.clone())
        .unwrap_or_default()
}
