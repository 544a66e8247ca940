//! Points at the culprit: for an operation of a failure, the node that
//! served it and what the nemesis was doing to that node at that moment,
//! rebuilt from the nemesis events kept in the history ("served by n3, cut
//! off from the leader n1 since 16.2 s"). A stale read under a partition is
//! then recognised at a glance, where Jepsen's reports leave it to the
//! reader.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::{History, Op, OpType};
use crate::result::CheckResult;

/// Where an operation ran and what was being done to that node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpNote {
    /// History index of the operation's invocation.
    pub invoke_index: usize,
    /// The node that answered, e.g. `n3` (absent if none did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// What the nemesis was doing to that node when the operation began,
    /// and what changed before it ended (absent if the history has no
    /// nemesis events or no node answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<String>,
}

impl OpNote {
    /// One line: `served by n3: cut off from the leader n1 since 16.2 s`.
    pub fn describe(&self) -> String {
        match (&self.served_by, &self.nemesis) {
            (Some(n), Some(f)) => format!("served by {n}: {f}"),
            (Some(n), None) => format!("served by {n}"),
            (None, Some(why)) => why.clone(),
            (None, None) => "no node answered".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Partition,
    Kill,
    Pause,
}

/// One fault on one node, from the nemesis's `info` of its start to the
/// `info` of its stop (`u64::MAX` while it was never stopped).
#[derive(Debug, Clone)]
struct Span {
    kind: Kind,
    node: u32,
    from: u64,
    to: u64,
    /// For a partition: the nodes this node could not hear from.
    cut_from: BTreeSet<u32>,
}

/// The fault periods and the leaders seen in a history.
#[derive(Debug, Clone, Default)]
pub struct Culprits {
    spans: Vec<Span>,
    /// Runs of leadership: (first time seen, node), by time; a run lasts
    /// until another node is seen leading.
    leaders: Vec<(u64, u32)>,
    /// Whether the history holds any nemesis event at all.
    has_nemesis: bool,
    /// Whether any operation names the node that served it.
    has_nodes: bool,
}

fn node_id(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim_start_matches('n').parse().ok(),
        _ => None,
    }
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(node_id).collect())
        .unwrap_or_default()
}

fn secs(t: u64) -> String {
    format!("{:.1} s", t as f64 / 1e9)
}

fn names(nodes: &BTreeSet<u32>) -> String {
    let v: Vec<String> = nodes.iter().map(|n| format!("n{n}")).collect();
    v.join(", ")
}

/// Functions whose `ok` only a leader gives (everything but plain reads;
/// a list-append transaction goes through the log even when it only reads).
fn leader_only(f: &str) -> bool {
    !matches!(f, "read" | "get")
}

impl Culprits {
    /// Rebuilds fault periods and leaders from `history`.
    pub fn new(history: &History) -> Culprits {
        let mut spans: Vec<Span> = Vec::new();
        let mut open: BTreeMap<(u8, u32), usize> = BTreeMap::new();
        let mut leaders: Vec<(u64, u32)> = Vec::new();
        let mut has_nemesis = false;
        let has_nodes = history.ops.iter().any(|o| o.node.is_some());
        let key = |k: Kind| k as u8;
        for op in &history.ops {
            if !op.process.is_nemesis() {
                if op.kind == OpType::Ok && leader_only(&op.f) {
                    if let Some(n) = op.node.as_deref().and_then(|n| node_id(&Value::from(n))) {
                        leaders.push((op.time, n));
                    }
                }
                continue;
            }
            has_nemesis = true;
            if op.kind != OpType::Info {
                continue;
            }
            if let Some(l) = op.value.get("leader").and_then(node_id) {
                leaders.push((op.time, l));
            }
            let close =
                |spans: &mut Vec<Span>, open: &mut BTreeMap<(u8, u32), usize>, k: Kind, n: u32| {
                    if let Some(i) = open.remove(&(key(k), n)) {
                        spans[i].to = op.time;
                    }
                };
            match op.f.as_str() {
                "start-partition" if op.error.is_none() => {
                    // A new partition replaces the previous one.
                    let nodes: Vec<u32> = open
                        .keys()
                        .filter(|(k, _)| *k == key(Kind::Partition))
                        .map(|(_, n)| *n)
                        .collect();
                    for n in nodes {
                        close(&mut spans, &mut open, Kind::Partition, n);
                    }
                    if let Some(Value::Object(g)) = op.value.get("grudge") {
                        for (n, cut) in g {
                            let (Some(n), cut) =
                                (node_id(&Value::from(n.as_str())), ids(Some(cut)))
                            else {
                                continue;
                            };
                            if cut.is_empty() {
                                continue;
                            }
                            open.insert((key(Kind::Partition), n), spans.len());
                            spans.push(Span {
                                kind: Kind::Partition,
                                node: n,
                                from: op.time,
                                to: u64::MAX,
                                cut_from: cut.into_iter().collect(),
                            });
                        }
                    }
                }
                "stop-partition" => {
                    let nodes: Vec<u32> = open
                        .keys()
                        .filter(|(k, _)| *k == key(Kind::Partition))
                        .map(|(_, n)| *n)
                        .collect();
                    for n in nodes {
                        close(&mut spans, &mut open, Kind::Partition, n);
                    }
                }
                f @ ("start-kill" | "start-pause") => {
                    let kind = if f == "start-kill" {
                        Kind::Kill
                    } else {
                        Kind::Pause
                    };
                    for n in ids(op.value.get("targets")) {
                        if kind == Kind::Kill {
                            // A killed process is no longer paused.
                            close(&mut spans, &mut open, Kind::Pause, n);
                        }
                        if open.contains_key(&(key(kind), n)) {
                            continue;
                        }
                        open.insert((key(kind), n), spans.len());
                        spans.push(Span {
                            kind,
                            node: n,
                            from: op.time,
                            to: u64::MAX,
                            cut_from: BTreeSet::new(),
                        });
                    }
                }
                f @ ("stop-kill" | "stop-pause") => {
                    let kind = if f == "stop-kill" {
                        Kind::Kill
                    } else {
                        Kind::Pause
                    };
                    for n in ids(op.value.get("targets")) {
                        close(&mut spans, &mut open, kind, n);
                    }
                }
                _ => {}
            }
        }
        leaders.sort_unstable();
        leaders.dedup_by(|later, earlier| later.1 == earlier.1);
        Culprits {
            spans,
            leaders,
            has_nemesis,
            has_nodes,
        }
    }

    /// The node last seen leading at or before `t`, and since when.
    fn leader_at(&self, t: u64) -> Option<(u32, u64)> {
        let i = self.leaders.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1)
            .map(|i| (self.leaders[i].1, self.leaders[i].0))
    }

    fn describe_span(&self, s: &Span, t: u64) -> String {
        match s.kind {
            Kind::Kill => format!("killed since {}", secs(s.from)),
            Kind::Pause => format!("paused since {}", secs(s.from)),
            Kind::Partition => {
                // The leader when the partition began, if it is on the other side.
                let leader = self
                    .leader_at(s.from)
                    .map(|(l, _)| l)
                    .filter(|l| s.cut_from.contains(l));
                let others: BTreeSet<u32> = s
                    .cut_from
                    .iter()
                    .copied()
                    .filter(|n| Some(*n) != leader)
                    .collect();
                let whom = match (leader, others.is_empty()) {
                    (Some(l), true) => format!("the leader n{l}"),
                    (Some(l), false) => format!("the leader n{l} and {}", names(&others)),
                    (None, _) => names(&others),
                };
                let mut text = format!("cut off from {whom} since {}", secs(s.from));
                // A leader elected on the other side since.
                if let Some((now, since)) = self.leader_at(t) {
                    if since > s.from && Some(now) != leader && s.cut_from.contains(&now) {
                        text.push_str(&format!(", where n{now} has led since {}", secs(since)));
                    }
                }
                text
            }
        }
    }

    /// What was being done to `node` over `[from, to]`: the faults in
    /// effect at `from`, then those that began or ended before `to`.
    pub fn faults_on(&self, node: u32, from: u64, to: Option<u64>) -> String {
        let mine: Vec<&Span> = self.spans.iter().filter(|s| s.node == node).collect();
        let now: Vec<String> = mine
            .iter()
            .filter(|s| s.from <= from && from < s.to)
            .map(|s| self.describe_span(s, from))
            .collect();
        let mut text = if now.is_empty() {
            format!("no fault on n{node}")
        } else {
            now.join("; ")
        };
        if let Some(to) = to {
            let mut later = Vec::new();
            for s in &mine {
                let what = match s.kind {
                    Kind::Partition => "partitioned",
                    Kind::Kill => "killed",
                    Kind::Pause => "paused",
                };
                if s.from > from && s.from <= to {
                    later.push((s.from, format!("{what} at {}", secs(s.from))));
                }
                if s.to > from && s.to <= to && s.from <= from {
                    let undone = match s.kind {
                        Kind::Partition => "healed",
                        Kind::Kill => "restarted",
                        Kind::Pause => "resumed",
                    };
                    later.push((s.to, format!("{undone} at {}", secs(s.to))));
                }
            }
            later.sort();
            if !later.is_empty() {
                let l: Vec<String> = later.into_iter().map(|(_, t)| t).collect();
                text.push_str(&format!(" (during the operation: {})", l.join(", ")));
            }
        }
        text
    }

    /// The note of the operation invoked at history index `invoke`.
    pub fn note(&self, history: &History, invoke: usize) -> OpNote {
        let inv: Option<&Op> = history.ops.get(invoke);
        let done = inv.and_then(|inv| {
            history.ops[invoke + 1..]
                .iter()
                .find(|o| o.process == inv.process && o.kind != OpType::Invoke)
        });
        let node = done
            .and_then(|d| d.node.as_deref())
            .or_else(|| inv.and_then(|i| i.node.as_deref()))
            .and_then(|n| node_id(&Value::from(n)));
        let answered = done.is_some_and(|d| d.kind == OpType::Ok);
        let nemesis = match (node, inv) {
            (Some(n), Some(inv)) if self.has_nemesis => {
                Some(self.faults_on(n, inv.time, done.map(|d| d.time)))
            }
            (None, _) if answered => Some("the node that served it is not recorded".into()),
            _ => None,
        };
        OpNote {
            invoke_index: invoke,
            served_by: node.map(|n| format!("n{n}")),
            nemesis,
        }
    }
}

/// Fills in, for every operation a failure names (the linearizability
/// explanation's window, failing operation and prefix; each list-append
/// anomaly's transactions), the node that served it and what the nemesis
/// was doing to that node.
pub fn annotate(result: &mut CheckResult, history: &History) {
    let has_failure = result.explanation.is_some()
        || result
            .list_append
            .as_ref()
            .is_some_and(|la| !la.anomalies.is_empty());
    if !has_failure {
        return;
    }
    let c = Culprits::new(history);
    if !c.has_nodes && !c.has_nemesis {
        // Nothing to point at (e.g. a history written by hand).
        return;
    }
    if let Some(e) = result.explanation.as_mut() {
        let note = |s: &mut crate::explain::OpSummary| {
            let n = c.note(history, s.invoke_index);
            s.served_by = n.served_by;
            s.nemesis = n.nemesis;
        };
        note(&mut e.failing_op);
        e.window.iter_mut().for_each(note);
        e.prefix_tail.iter_mut().for_each(|p| note(&mut p.op));
    }
    if let Some(la) = result.list_append.as_mut() {
        for a in la.anomalies.iter_mut() {
            a.ops = a.txns.iter().map(|t| c.note(history, *t)).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    fn nem(f: &str, t: u64, value: Value) -> Op {
        Op::new(Process::Nemesis, OpType::Info, f, value).at(t)
    }

    fn client(p: u64, kind: OpType, f: &str, t: u64, node: Option<&str>) -> Op {
        let mut o = Op::new(Process::Client(p), kind, f, json!(null)).at(t);
        o.node = node.map(str::to_string);
        o
    }

    const S: u64 = 1_000_000_000;

    fn history() -> History {
        History::new(vec![
            // n1 leads (it acknowledges a write).
            client(0, OpType::Invoke, "write", S, None),
            client(0, OpType::Ok, "write", 2 * S, Some("1")),
            // n3 is cut off from n1 and n2 at 16.2 s.
            nem(
                "start-partition",
                16_200_000_000,
                json!({"topology": "one", "grudge": {"3": [1, 2], "1": [3], "2": [3]}}),
            ),
            client(1, OpType::Invoke, "read", 17 * S, None),
            client(1, OpType::Ok, "read", 18 * S, Some("3")),
            client(2, OpType::Invoke, "read", 19 * S, None),
            nem("stop-partition", 20 * S, json!({"healed": true})),
            client(2, OpType::Ok, "read", 21 * S, Some("3")),
            nem(
                "start-kill",
                22 * S,
                json!({"target": "one", "targets": [2]}),
            ),
            client(3, OpType::Invoke, "read", 23 * S, None),
            client(3, OpType::Fail, "read", 24 * S, None),
        ])
    }

    #[test]
    fn names_the_node_and_what_the_nemesis_did_to_it() {
        let h = history();
        let c = Culprits::new(&h);
        let n = c.note(&h, 3);
        assert_eq!(n.served_by.as_deref(), Some("n3"));
        assert_eq!(
            n.describe(),
            "served by n3: cut off from the leader n1 and n2 since 16.2 s"
        );
        let n = c.note(&h, 5);
        assert_eq!(
            n.nemesis.as_deref(),
            Some("cut off from the leader n1 and n2 since 16.2 s (during the operation: healed at 20.0 s)")
        );
        assert_eq!(c.note(&h, 0).nemesis.as_deref(), Some("no fault on n1"));
        // n1, isolated at 30 s; n2 then leads on the other side.
        let mut h2 = h.clone();
        h2.push(nem(
            "start-partition",
            30 * S,
            json!({"topology": "leader", "leader": 1, "grudge": {"1": [2, 3], "2": [1], "3": [1]}}),
        ));
        h2.push(client(4, OpType::Invoke, "write", 31 * S, None));
        h2.push(client(4, OpType::Ok, "write", 32 * S, Some("2")));
        h2.push(client(5, OpType::Invoke, "read", 33 * S, None));
        h2.push(client(5, OpType::Ok, "read", 34 * S, Some("1")));
        h2.push(client(6, OpType::Invoke, "read", 35 * S, None));
        h2.push(client(6, OpType::Ok, "read", 36 * S, Some("3")));
        let c = Culprits::new(&h2);
        assert_eq!(
            c.note(&h2, h2.len() - 4).describe(),
            "served by n1: cut off from n2, n3 since 30.0 s, where n2 has led since 32.0 s"
        );
        assert_eq!(
            c.note(&h2, h2.len() - 2).describe(),
            "served by n3: cut off from the leader n1 since 30.0 s"
        );
        assert_eq!(c.note(&h, 9).describe(), "no node answered");
        // Answered, but the history does not say by whom.
        let mut h3 = h.clone();
        h3.ops[1].node = None;
        let c3 = Culprits::new(&h3);
        assert_eq!(
            c3.note(&h3, 0).describe(),
            "the node that served it is not recorded"
        );
        assert_eq!(c.faults_on(2, 23 * S, None), "killed since 22.0 s");
    }

    #[test]
    fn histories_without_nodes_or_nemesis_get_no_notes() {
        let mut r = CheckResult::new("list-append", "strict-serializable");
        r.list_append = Some(crate::list_append::ListAppendReport {
            consistency: "strict-serializable".into(),
            anomaly_types: vec!["lost-append".into()],
            prohibited_types: vec!["lost-append".into()],
            not: vec!["strict-serializable".into()],
            anomalies: vec![crate::list_append::Anomaly {
                kind: "lost-append".into(),
                txns: vec![0],
                steps: vec![],
                ops: vec![],
            }],
            txns: 1,
            edges: 0,
        });
        let h = History::new(vec![
            client(0, OpType::Invoke, "txn", S, None),
            client(0, OpType::Ok, "txn", 2 * S, None),
        ]);
        annotate(&mut r, &h);
        assert!(r.list_append.as_ref().unwrap().anomalies[0].ops.is_empty());
        let mut h2 = h.clone();
        h2.ops[1].node = Some("2".into());
        annotate(&mut r, &h2);
        let ops = &r.list_append.unwrap().anomalies[0].ops;
        assert_eq!(ops[0].served_by.as_deref(), Some("n2"));
    }

    #[test]
    fn without_nemesis_events_only_the_node_is_named() {
        let h = History::new(vec![
            client(0, OpType::Invoke, "write", S, None),
            client(0, OpType::Ok, "write", 2 * S, Some("2")),
        ]);
        let n = Culprits::new(&h).note(&h, 0);
        assert_eq!((n.served_by.as_deref(), n.nemesis), (Some("n2"), None));
    }
}
