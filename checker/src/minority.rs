//! The minority-mode checker: judges a run with DCF's lost-majority
//! scenario (`start-minority` / `stop-minority` nemesis events) against the
//! numbered guarantees of minority mode (`dcf_core::minority`: M1–M6,
//! G1–G4, L1–L3, N1–N3). It allows exactly the losses those guarantees
//! allow and names the guarantee any other anomaly breaks.
//!
//! # Phases
//!
//! From the nemesis events: `majority lost` (start `invoke` to start
//! `info`: the majority is being killed, the survivors still in normal
//! mode), `minority mode` (start `info` to stop `invoke`: the survivors
//! switched, with `vote_num`), `return` (stop `invoke` to stop `info`: the
//! majority restarted and following, the survivors back to normal). The
//! *switch* of a cycle is its start's `info` time.
//!
//! # What is checked
//!
//! From the events (the node statuses the nemesis recorded):
//! - M1: a survivor refused `set-work-mode minority` with a `vote_num` in
//!   `1..=V` (V = survivors + lost, all voters here).
//! - M2: the minority leader's term is its term before the switch + 1000
//!   when it was not the leader at the switch, or unchanged when it was.
//! - G4: with `vote_num` = 1, the lone survivor became leader.
//!
//! From the client history, when the plain linearizability checker found
//! it invalid (a linearizable history breaks none of G1–G3 or N2):
//! - Before the first switch, the history must be linearizable (normal
//!   mode; no guarantee of minority mode excuses anything there).
//! - L1 allows losing, at a switch, writes acknowledged before it by the
//!   lost majority: the survivors' log may lack them. Per key, the
//!   history from the switch on must then be linearizable from *some*
//!   state the key had before the switch: the value of any write (or cas)
//!   not certainly refused, or the initial value. G1/G2 forbid losing a
//!   write a survivor acknowledged (a survivor acknowledges only as
//!   leader, so the entry is committed in its own log): a write that
//!   ended before such a write began cannot be the surviving value, and
//!   neither can the initial value.
//! - Reads may be stale only in that sense: after the switch they may
//!   miss the lost writes; every other anomaly is a violation. If the
//!   minority-mode part alone cannot be explained it breaks G2 (the
//!   minority leader keeps its log and commits in order, G3). If only
//!   the part after the return cannot, it breaks N2 when the nemesis saw
//!   the leader confirm its log with a normal quorum (`confirmed`), and is
//!   allowed (N2's unconfirmed case) otherwise.
//!
//! Keys are checked independently: a cut that is not the same prefix of
//! the log for every key is not caught (the check errs on allowing).

use crate::history::{History, Op, OpType, Pair};
use crate::result::{CheckResult, Validity};
use crate::{check_history, CheckError, CheckOptions, Checker};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One labelled period of a minority cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinorityPhase {
    /// `majority lost`, `minority mode` or `return`.
    pub name: String,
    /// Nanoseconds since the start of the run.
    pub from_ns: u64,
    /// `None` when the run ended first.
    pub to_ns: Option<u64>,
    /// What happened, e.g. `survivors [1], vote_num 1, leader n1 term 1001`.
    pub note: String,
}

/// A finding, naming the guarantee it is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuaranteeFinding {
    /// `M2`, `G2`, `L1`, ...
    pub guarantee: String,
    /// `invalid` for a violation; `valid` for an anomaly the guarantee
    /// allows (kept for the record).
    pub valid: Validity,
    pub message: String,
}

/// The minority checker's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinorityReport {
    pub valid: Validity,
    /// The verdict of the plain checker it started from.
    pub plain: Validity,
    pub phases: Vec<MinorityPhase>,
    /// Violations (invalid) and allowed anomalies (valid).
    pub findings: Vec<GuaranteeFinding>,
}

/// One minority cycle as the nemesis recorded it.
#[derive(Debug, Clone, Default)]
struct Cycle {
    lost_at: u64,
    switched_at: Option<u64>,
    back_at: Option<u64>,
    normal_at: Option<u64>,
    start: Value,
    stop: Value,
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_u64().map(|n| n.to_string()))
        .collect()
}

fn cycles(history: &History) -> Vec<Cycle> {
    let mut out: Vec<Cycle> = Vec::new();
    for op in history.ops.iter().filter(|o| o.process.is_nemesis()) {
        match (op.f.as_str(), op.kind) {
            ("start-minority", OpType::Invoke) => out.push(Cycle {
                lost_at: op.time,
                ..Cycle::default()
            }),
            ("start-minority", OpType::Info) => {
                if let Some(c) = out.last_mut() {
                    if op.value.get("skipped").is_none() && op.value.get("survivors").is_some() {
                        c.switched_at = Some(op.time);
                        c.start = op.value.clone();
                    }
                }
            }
            ("stop-minority", OpType::Invoke) => {
                if let Some(c) = out.last_mut().filter(|c| c.back_at.is_none()) {
                    c.back_at = Some(op.time);
                }
            }
            ("stop-minority", OpType::Info) => {
                if let Some(c) = out.last_mut().filter(|c| c.normal_at.is_none()) {
                    c.normal_at = Some(op.time);
                    c.stop = op.value.clone();
                }
            }
            _ => {}
        }
    }
    out.retain(|c| c.switched_at.is_some());
    out
}

fn secs(ns: u64) -> String {
    format!("{:.1} s", ns as f64 / 1e9)
}

fn phases(cs: &[Cycle]) -> Vec<MinorityPhase> {
    let mut out = Vec::new();
    for c in cs {
        let s = &c.start;
        let switched = c.switched_at.expect("kept cycles switched");
        out.push(MinorityPhase {
            name: "majority lost".into(),
            from_ns: c.lost_at,
            to_ns: Some(switched),
            note: format!(
                "killed {} (lost majority); survivors {}",
                s["lost"], s["survivors"]
            ),
        });
        out.push(MinorityPhase {
            name: "minority mode".into(),
            from_ns: switched,
            to_ns: c.back_at,
            note: format!(
                "survivors {} in minority mode with vote_num {}; leader {} term {}",
                s["survivors"], s["vote_num"], s["minority_leader"], s["minority_term"]
            ),
        });
        if let Some(back) = c.back_at {
            out.push(MinorityPhase {
                name: "return".into(),
                from_ns: back,
                to_ns: c.normal_at,
                note: format!(
                    "majority {} restarted; survivors back to normal; confirmed by a normal quorum: {}",
                    c.stop["restarted"], c.stop["confirmed"]
                ),
            });
        }
    }
    out
}

/// M1, M2 and G4 from the recorded statuses.
fn event_findings(cs: &[Cycle]) -> Vec<GuaranteeFinding> {
    let mut out = Vec::new();
    let bad = |g: &str, m: String| GuaranteeFinding {
        guarantee: g.into(),
        valid: Validity::Invalid,
        message: m,
    };
    for c in cs {
        let s = &c.start;
        let at = secs(c.switched_at.unwrap_or(c.lost_at));
        let vote_num = s["vote_num"].as_u64().unwrap_or(0);
        let voters = (ids(&s["survivors"]).len() + ids(&s["lost"]).len()) as u64;
        if let Some(acks) = s["acks"].as_object() {
            for (node, a) in acks {
                if a["ack"] == "fail" && (1..=voters).contains(&vote_num) {
                    out.push(bad(
                        "M1",
                        format!(
                            "switch at {at}: n{node} refused minority mode with vote_num {vote_num} \
                             (valid: 1..={voters}): {}",
                            a["detail"]
                        ),
                    ));
                }
            }
        }
        let leader = s["minority_leader"].as_u64();
        let term = s["minority_term"].as_u64();
        if let (Some(l), Some(term)) = (leader, term) {
            let before = &s["before"][l.to_string()];
            if let Some(old) = before["term"].as_u64() {
                let was_leader = before["role"] == "LEADER";
                let want = if was_leader { old } else { old + 1000 };
                if (was_leader && term != want) || (!was_leader && term < want) {
                    out.push(bad(
                        "M2",
                        format!(
                            "switch at {at}: minority leader n{l} has term {term}; its term before \
                             the switch was {old} as {}, so M2 requires {}{want}",
                            before["role"].as_str().unwrap_or("?"),
                            if was_leader { "" } else { "at least " }
                        ),
                    ));
                }
            }
        } else if vote_num == 1 && ids(&s["survivors"]).len() == 1 {
            out.push(bad(
                "G4",
                format!("switch at {at}: the lone survivor with vote_num 1 did not become leader"),
            ));
        }
    }
    out
}

/// What a write leaves in the register: `write v` → v, `cas [a b]` → b.
fn written(op: &Op) -> Option<Value> {
    match op.f.as_str() {
        "write" => Some(op.value.clone()),
        "cas" => op.value.as_array().and_then(|a| a.get(1)).cloned(),
        _ => None,
    }
}

/// A client operation: its invocation, completion and outcome.
struct Call<'a> {
    inv: &'a Op,
    done: Option<&'a Op>,
    outcome: OpType,
}

impl Call<'_> {
    fn end(&self) -> u64 {
        match self.outcome {
            OpType::Ok | OpType::Fail => self.done.map_or(u64::MAX, |d| d.time),
            _ => u64::MAX,
        }
    }
}

/// The client operations on `key` invoked in `[lo, hi)`, as a history:
/// completions after `hi` become `info` (writes) or are dropped (reads).
fn window(calls: &[&Call], lo: u64, hi: u64) -> History {
    let mut ops = Vec::new();
    for c in calls.iter().filter(|c| c.inv.time >= lo && c.inv.time < hi) {
        let late = c.done.is_none_or(|d| d.time >= hi);
        if late && written(c.inv).is_none() {
            continue;
        }
        ops.push(c.inv.clone());
        match c.done {
            Some(d) if !late => ops.push(d.clone()),
            _ => {
                let mut d = c.inv.clone();
                d.kind = OpType::Info;
                d.time = hi;
                ops.push(d);
            }
        }
    }
    ops.sort_by_key(|o| o.time);
    History::new(ops)
}

fn linear_ok(
    h: &History,
    initial: Option<&Value>,
    opts: &CheckOptions,
) -> Result<Validity, CheckError> {
    if h.ops.is_empty() {
        return Ok(Validity::Valid);
    }
    let o = CheckOptions {
        initial: initial.cloned(),
        explain: false,
        ..opts.clone()
    };
    Ok(check_history(h, &o)?.valid)
}

/// Checks the client history key by key against the cuts (see the
/// module docs). Returns findings.
fn history_findings(
    history: &History,
    cs: &[Cycle],
    opts: &CheckOptions,
) -> Result<Vec<GuaranteeFinding>, CheckError> {
    let pairs: Vec<Pair> = history.pairs()?;
    let calls: Vec<Call> = pairs
        .iter()
        .filter(|p| !history.ops[p.invoke].process.is_nemesis())
        .map(|p| Call {
            inv: &history.ops[p.invoke],
            done: p.complete.map(|i| &history.ops[i]),
            outcome: history.outcome(p),
        })
        .collect();
    let mut by_key: BTreeMap<String, Vec<&Call>> = BTreeMap::new();
    for c in &calls {
        let k = c.inv.key.as_ref().map_or("null".into(), |k| k.to_string());
        by_key.entry(k).or_default().push(c);
    }
    let mut out = Vec::new();
    let finding = |g: &str, valid: Validity, m: String| GuaranteeFinding {
        guarantee: g.into(),
        valid,
        message: m,
    };
    let cuts: Vec<u64> = cs.iter().filter_map(|c| c.switched_at).collect();
    let mut allowed_keys = Vec::new();
    for (key, kc) in &by_key {
        // Normal mode before the first switch.
        let first = cuts[0];
        if linear_ok(&window(kc, 0, first), None, opts)? == Validity::Invalid {
            out.push(finding(
                "linearizability",
                Validity::Invalid,
                format!(
                    "key {key}: not linearizable before the first switch to minority mode (at {}), \
                     where normal-mode guarantees hold",
                    secs(first)
                ),
            ));
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            let cut = cuts[i];
            let next = cuts.get(i + 1).copied().unwrap_or(u64::MAX);
            let survivors = ids(&c.start["survivors"]);
            let before: Vec<&&Call> = kc
                .iter()
                .filter(|x| x.inv.time < cut && x.outcome != OpType::Fail)
                .filter(|x| written(x.inv).is_some())
                .collect();
            let kept: Vec<&&&Call> = before
                .iter()
                .filter(|x| x.outcome == OpType::Ok)
                .filter(|x| {
                    x.done
                        .and_then(|d| d.node.as_ref())
                        .is_some_and(|n| survivors.contains(n))
                })
                .collect();
            let mut candidates: Vec<Option<Value>> = Vec::new();
            if kept.is_empty() {
                candidates.push(None);
            }
            for w in &before {
                let certainly_overwritten = kept.iter().any(|s| w.end() < s.inv.time);
                let v = written(w.inv);
                if !certainly_overwritten && !candidates.contains(&v) {
                    candidates.push(v);
                }
            }
            let from_any = |lo: u64, hi: u64| -> Result<bool, CheckError> {
                let h = window(kc, lo, hi);
                for cand in &candidates {
                    if linear_ok(&h, cand.as_ref(), opts)? != Validity::Invalid {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            let back = c.back_at.unwrap_or(next).min(next);
            if from_any(cut, next)? {
                if linear_ok(&window(kc, 0, next), None, opts)? == Validity::Invalid {
                    allowed_keys.push(key.clone());
                }
                continue;
            }
            if !from_any(cut, back)? {
                out.push(finding(
                    "G2",
                    Validity::Invalid,
                    format!(
                        "key {key}: in minority mode (from {}) the history cannot be explained from \
                         any state the key had before the switch that keeps the writes the \
                         survivors {survivors:?} acknowledged: the minority leader lost or \
                         reordered entries of its own log (G2, G3)",
                        secs(cut)
                    ),
                ));
            } else if c.stop["confirmed"] == true {
                out.push(finding(
                    "N2",
                    Validity::Invalid,
                    format!(
                        "key {key}: after the return to normal mode (from {}) the history cannot \
                         be explained, although the minority leader confirmed its log with a \
                         normal quorum: an entry committed in minority mode was lost",
                        secs(back)
                    ),
                ));
            } else {
                out.push(finding(
                    "N2",
                    Validity::Valid,
                    format!(
                        "key {key}: writes acknowledged in minority mode were lost after the return \
                         (from {}); N2 allows it, since the minority leader did not confirm its log \
                         with a normal quorum",
                        secs(back)
                    ),
                ));
            }
        }
    }
    if allowed_keys.is_empty() && out.is_empty() {
        out.push(finding(
            "linearizability",
            Validity::Invalid,
            "the plain checker's violation is not explained by a loss minority mode allows \
             (no key is linearizable only thanks to L1 or N2)"
                .into(),
        ));
    } else if !allowed_keys.is_empty() {
        out.push(finding(
            "L1",
            Validity::Valid,
            format!(
                "keys {}: writes acknowledged before a switch to minority mode are missing \
                 after it; L1 allows losing writes the lost majority acknowledged",
                allowed_keys.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Judges `history` against the minority guarantees. `plain` is the plain
/// checker's result on the same history; `opts` its options (the model).
/// `None` when the history has no minority cycle.
pub fn check(
    history: &History,
    plain: &CheckResult,
    opts: &CheckOptions,
) -> Result<Option<MinorityReport>, CheckError> {
    let cs = cycles(history);
    if cs.is_empty() {
        return Ok(None);
    }
    let mut findings = event_findings(&cs);
    let linearizable = matches!(opts.checker, Some(Checker::Linearizable(_)));
    if plain.valid == Validity::Invalid {
        if linearizable {
            findings.extend(history_findings(history, &cs, opts)?);
        } else {
            findings.push(GuaranteeFinding {
                guarantee: "checker".into(),
                valid: Validity::Invalid,
                message: format!(
                    "the {} checker found the history invalid; the loss allowances of minority \
                     mode are defined for registers, so its verdict stands",
                    plain.checker
                ),
            });
        }
    }
    let mut valid = findings.iter().fold(Validity::Valid, |v, f| v.and(f.valid));
    if plain.valid == Validity::Unknown && valid == Validity::Valid {
        valid = Validity::Unknown;
    }
    Ok(Some(MinorityReport {
        valid,
        plain: plain.valid,
        phases: phases(&cs),
        findings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use crate::models::ModelKind;
    use serde_json::json;

    const S: u64 = 1_000_000_000;

    fn nem(kind: OpType, f: &str, t: u64, v: Value) -> Op {
        Op::new(Process::Nemesis, kind, f, v).at(t)
    }

    /// A cycle: majority {2,3} lost at 10 s, survivor 1 switched at 13 s
    /// (leader before, term 5 → 5), back at 20 s, normal at 22 s.
    fn cycle(term: u64, role_before: &str) -> Vec<Op> {
        let start = json!({"survivors": [1], "lost": [2, 3], "vote_num": 1,
            "acks": {"1": {"ack": "ok"}}, "minority_leader": 1, "minority_term": term,
            "before": {"1": {"role": role_before, "term": 5}}});
        vec![
            nem(OpType::Invoke, "start-minority", 10 * S, Value::Null),
            nem(OpType::Info, "start-minority", 13 * S, start),
            nem(OpType::Invoke, "stop-minority", 20 * S, Value::Null),
            nem(
                OpType::Info,
                "stop-minority",
                22 * S,
                json!({"confirmed": true, "restarted": [2, 3]}),
            ),
        ]
    }

    fn call(p: u64, f: &str, inv: Value, ok: Value, from: u64, to: u64, node: &str) -> Vec<Op> {
        let i = Op::new(Process::Client(p), OpType::Invoke, f, inv)
            .with_key(json!(1))
            .at(from);
        let mut o = Op::new(Process::Client(p), OpType::Ok, f, ok)
            .with_key(json!(1))
            .at(to);
        o.node = Some(node.into());
        vec![i, o]
    }

    /// A write acknowledged by node `acked_by` at 9 s, then a read in
    /// minority mode that does not see it.
    fn run(acked_by: &str, term: u64, role_before: &str) -> MinorityReport {
        let mut ops = call(0, "write", json!(1), json!(1), S, 2 * S, "1");
        ops.extend(call(0, "write", json!(2), json!(2), 8 * S, 9 * S, acked_by));
        ops.extend(cycle(term, role_before));
        ops.extend(call(1, "read", Value::Null, json!(1), 15 * S, 16 * S, "1"));
        ops.sort_by_key(|o| o.time);
        let h = History::new(ops);
        let opts = CheckOptions {
            checker: Some(Checker::Linearizable(ModelKind::CasRegister)),
            ..CheckOptions::default()
        };
        let plain = check_history(&h, &opts).unwrap();
        check(&h, &plain, &opts).unwrap().expect("a cycle")
    }

    fn guarantees(r: &MinorityReport, valid: Validity) -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.valid == valid)
            .map(|f| f.guarantee.clone())
            .collect()
    }

    /// L1: a write only the lost majority acknowledged may be missing
    /// after the switch; the plain checker's verdict is kept beside it.
    #[test]
    fn a_write_acknowledged_by_the_lost_majority_may_be_lost() {
        let r = run("2", 5, "LEADER");
        assert_eq!(r.plain, Validity::Invalid);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(guarantees(&r, Validity::Valid), vec!["L1"]);
        let names: Vec<&str> = r.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["majority lost", "minority mode", "return"]);
    }

    /// G2: a write a survivor acknowledged must not be lost.
    #[test]
    fn a_write_acknowledged_by_a_survivor_must_survive() {
        let r = run("1", 5, "LEADER");
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(guarantees(&r, Validity::Invalid), vec!["G2"]);
    }

    /// M2: a non-leader entering minority mode raises its term by 1000.
    #[test]
    fn the_term_fence_is_checked() {
        let r = run("2", 6, "FOLLOWER");
        assert_eq!(guarantees(&r, Validity::Invalid), vec!["M2"]);
        let r = run("2", 1005, "FOLLOWER");
        assert!(guarantees(&r, Validity::Invalid).is_empty(), "{r:?}");
    }

    #[test]
    fn a_history_without_minority_mode_has_no_report() {
        let h = History::new(call(0, "write", json!(1), json!(1), 1, 2, "1"));
        let opts = CheckOptions::default();
        let plain = check_history(&h, &opts).unwrap();
        assert_eq!(check(&h, &plain, &opts).unwrap(), None);
    }
}
