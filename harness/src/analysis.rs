//! Checks a run's history from scratch and writes `results.json`; used at
//! the end of `dcf-harness test` and by `dcf-harness analyze`.
//!
//! The verdict is the checker's unless a run rule overrides it (see
//! [`run_rules`]); `results.json` says which one decided (`decided_by`) and
//! lists every rule that fired (`health`).

use crate::store::RunDir;
use checker::health::{self, RuleFinding};
use checker::{CheckOptions, Checker, History, OpType, Validity};
use serde_json::{json, Value};
use std::time::Duration;

/// Why a history could not be analysed (a harness problem, not a verdict).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: checker::CheckError,
    },
    #[error("checking failed: {0}")]
    Check(checker::CheckError),
    #[error("cannot write results: {0}")]
    Write(std::io::Error),
}

/// The overall verdict and the `results.json` document.
pub struct Analysis {
    pub valid: Validity,
    pub results: Value,
}

/// The rule names of a run, besides [`health`]'s.
pub mod rules {
    /// The cluster had no leader within the recovery time after healing.
    pub const NOT_RECOVERED: &str = "not-recovered";
    /// Some final read did not succeed.
    pub const FINAL_READS_FAILED: &str = "final-reads-failed";
    /// A requested fault could not be injected.
    pub const FAULT_NOT_INJECTED: &str = "fault-not-injected";
    /// A node logged its own safety alarm.
    pub const SAFETY_ALARM: &str = "safety-alarm";
    /// A node panicked.
    pub const NODE_PANIC: &str = "node-panic";
    /// A node exited although no fault stopped it.
    pub const NODE_EXITED: &str = "node-exited";
}

/// How many findings of one rule are listed; the rest are counted.
const MAX_PER_RULE: usize = 5;

fn push_capped(out: &mut Vec<RuleFinding>, items: Vec<RuleFinding>) {
    let n = items.len();
    let mut it = items.into_iter();
    out.extend(it.by_ref().take(MAX_PER_RULE));
    if let Some(next) = it.next() {
        out.push(RuleFinding::new(
            &next.rule,
            next.valid,
            format!("… and {} more like these", n - MAX_PER_RULE),
        ));
    }
}

fn fault_label(op: &checker::Op) -> String {
    let what = op.f.trim_start_matches("start-");
    let target = op
        .value
        .get("topology")
        .or_else(|| op.value.get("target"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .unwrap_or_default();
    format!("{what} {target}").trim().to_string()
}

/// The verdict rules of a run besides the checker, after Jepsen's `stats`
/// and `unhandled-exceptions` checkers: availability from the history,
/// recovery and final reads from what the harness saw (`extra`), faults
/// that could not be injected (accepted only with
/// `--accept-unsupported-faults`), node exits and the node logs' alarms
/// and panics.
pub fn run_rules(history: &History, test: &Value, extra: &Value) -> Vec<RuleFinding> {
    use rules::*;
    let mut out = health::availability(history, history.semantics, true);
    if extra.get("recovered") == Some(&Value::Bool(false)) {
        out.push(RuleFinding::new(
            NOT_RECOVERED,
            Validity::Unknown,
            "the cluster had no leader within 30 s after every fault was healed",
        ));
    }
    if let (Some(ok), Some(total)) = (
        extra.pointer("/final_reads/ok").and_then(Value::as_u64),
        extra.pointer("/final_reads/total").and_then(Value::as_u64),
    ) {
        if ok < total {
            out.push(RuleFinding::new(
                FINAL_READS_FAILED,
                Validity::Unknown,
                format!(
                    "only {ok} of {total} final reads succeeded, so the final state was not fully read"
                ),
            ));
        }
    }
    let accept = test
        .pointer("/options/accept_unsupported_faults")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut faults = Vec::new();
    for op in history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis() && o.kind == OpType::Info && o.f.starts_with("start-"))
    {
        let Some(err) = &op.error else { continue };
        let err = err.as_str().map_or_else(|| err.to_string(), str::to_string);
        let unsupported = err.starts_with("unsupported");
        let (valid, note) = if unsupported && accept {
            (
                Validity::Valid,
                " (accepted by --accept-unsupported-faults)",
            )
        } else if unsupported {
            (
                Validity::Unknown,
                " (pass --accept-unsupported-faults to accept runs without it)",
            )
        } else {
            (Validity::Unknown, "")
        };
        faults.push(RuleFinding::new(
            FAULT_NOT_INJECTED,
            valid,
            format!(
                "{} at {:.1} s could not be injected: {err}{note}",
                fault_label(op),
                op.time as f64 / 1e9
            ),
        ));
    }
    push_capped(&mut out, faults);
    if let Some(exits) = extra.get("node_exits").and_then(Value::as_array) {
        let items = exits
            .iter()
            .map(|e| {
                let node = e["node"].as_str().unwrap_or("a node");
                let note = e["note"]
                    .as_str()
                    .unwrap_or("it was not running at the end");
                RuleFinding::new(
                    NODE_EXITED,
                    Validity::Unknown,
                    format!("{node} exited on its own: {note}"),
                )
            })
            .collect();
        push_capped(&mut out, items);
    }
    let findings = extra
        .get("log_findings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (kind, rule, valid, what) in [
        (
            reports::logs::SAFETY_ALARM,
            SAFETY_ALARM,
            Validity::Invalid,
            "raised a safety alarm",
        ),
        ("panic", NODE_PANIC, Validity::Unknown, "panicked"),
    ] {
        let items = findings
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| {
                RuleFinding::new(
                    rule,
                    valid,
                    format!(
                        "{} {what} ({}:{}): {}",
                        f["node"].as_str().unwrap_or("a node"),
                        f["file"].as_str().unwrap_or("?"),
                        f["line"],
                        f["text"].as_str().unwrap_or("").trim()
                    ),
                )
            })
            .collect();
        push_capped(&mut out, items);
    }
    out
}

/// The checker for a workload name.
pub fn checker_for(workload: &str) -> Option<Checker> {
    workloads::by_name(workload).ok().map(|w| w.checker())
}

/// Checks `run`'s history and writes `results.json` (merging `extra`
/// fields, e.g. what the harness observed during the run).
pub fn analyze(run: &RunDir, timeout: Duration, extra: Value) -> Result<Analysis, AnalysisError> {
    let path = run.history();
    let file = std::fs::File::open(&path).map_err(|source| AnalysisError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let history = History::read_jsonl(std::io::BufReader::new(file)).map_err(|source| {
        AnalysisError::Parse {
            path: path.display().to_string(),
            source,
        }
    })?;
    let test = run.read_json("test.json").unwrap_or(Value::Null);
    let checker = test["workload"].as_str().and_then(checker_for);
    let opts = CheckOptions {
        checker,
        timeout: Some(timeout),
        ..CheckOptions::default()
    };
    let result = checker::check_history(&history, &opts).map_err(AnalysisError::Check)?;
    let mut counts = serde_json::Map::new();
    for op in history.ops.iter().filter(|o| !o.process.is_nemesis()) {
        if op.kind == OpType::Invoke {
            continue;
        }
        let e = counts
            .entry(op.f.clone())
            .or_insert_with(|| json!({"ok": 0, "fail": 0, "info": 0}));
        let k = op.kind.as_str();
        e[k] = json!(e[k].as_u64().unwrap_or(0) + 1);
    }
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis())
        .count();
    let findings = run_rules(&history, &test, &extra);
    let decision = health::decide(&result, &findings);
    let valid = decision.valid;
    let mut results = json!({
        "valid": valid,
        "decided_by": decision,
        "health": findings,
        "checker": result.clone(),
        "op_counts": counts,
        "nemesis_ops": nemesis_ops,
        "history_ops": history.ops.len(),
    });
    if let (Value::Object(r), Value::Object(e)) = (&mut results, extra) {
        for (k, v) in e {
            r.insert(k, v);
        }
    }
    run.write_json("results.json", &results)
        .map_err(AnalysisError::Write)?;
    Ok(Analysis { valid, results })
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{Op, Process};

    fn ok_register_history() -> History {
        let c = Process::Client;
        let mut ops = Vec::new();
        for (p, (f, v)) in [
            ("write", json!(1)),
            ("cas", json!([1, 2])),
            ("read", json!(2)),
        ]
        .into_iter()
        .enumerate()
        {
            let inv = if f == "read" { json!(null) } else { v.clone() };
            ops.push(Op::new(c(p as u64), OpType::Invoke, f, inv).with_key(json!(0)));
            ops.push(Op::new(c(p as u64), OpType::Ok, f, v).with_key(json!(0)));
        }
        History::new(ops)
    }

    fn rules_of(h: &History, test: Value, extra: Value) -> Vec<(String, Validity)> {
        run_rules(h, &test, &extra)
            .into_iter()
            .map(|f| (f.rule, f.valid))
            .collect()
    }

    #[test]
    fn a_healthy_run_fires_no_rule() {
        let extra = json!({"recovered": true, "final_reads": {"ok": 3, "total": 3},
            "node_exits": [], "log_findings": [{"node": "n1", "file": "x", "line": 1, "kind": "error", "text": "ERROR x"}]});
        assert!(rules_of(&ok_register_history(), Value::Null, extra).is_empty());
    }

    #[test]
    fn each_run_rule_names_itself() {
        let mut h = ok_register_history();
        // read never answered; a partition that could not be injected.
        h.ops[5].kind = OpType::Fail;
        h.ops[5].error = Some(json!(["unexecuted", "no leader"]));
        let mut nem = Op::new(
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            json!({"topology": "one"}),
        );
        nem.error = Some(json!("unsupported: partitions need root"));
        h.push(nem);
        let extra = json!({"recovered": false, "final_reads": {"ok": 1, "total": 4},
            "node_exits": [{"node": "n2", "note": "gone"}],
            "log_findings": [
                {"node": "n3", "file": "stderr.log", "line": 9, "kind": "safety-alarm", "text": "exception=COMMITTED_ENTRY_CONFLICT"},
                {"node": "n1", "file": "stderr.log", "line": 2, "kind": "panic", "text": "panicked at x"}]});
        let got = rules_of(&h, Value::Null, extra.clone());
        use Validity::*;
        assert_eq!(
            got,
            vec![
                ("operation-never-succeeded".to_string(), Unknown),
                ("not-recovered".to_string(), Unknown),
                ("final-reads-failed".to_string(), Unknown),
                ("fault-not-injected".to_string(), Unknown),
                ("node-exited".to_string(), Unknown),
                ("safety-alarm".to_string(), Invalid),
                ("node-panic".to_string(), Unknown),
            ]
        );
        // Accepting unsupported faults keeps the finding but not its verdict.
        let test = json!({"options": {"accept_unsupported_faults": true}});
        let got = rules_of(&h, test, extra);
        assert!(
            got.contains(&("fault-not-injected".to_string(), Valid)),
            "{got:?}"
        );
    }

    #[test]
    fn analyze_writes_which_rule_decided() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), "t").unwrap();
        let mut h = ok_register_history();
        let mut nem = Op::new(
            Process::Nemesis,
            OpType::Info,
            "start-partition",
            json!({"topology": "one"}),
        );
        nem.error = Some(json!("unsupported: partitions need root"));
        h.push(nem);
        h.write_jsonl(std::fs::File::create(run.history()).unwrap())
            .unwrap();
        run.write_json("test.json", &json!({"workload": "register", "options": {}}))
            .unwrap();
        let a = analyze(&run, Duration::from_secs(5), json!({})).unwrap();
        assert_eq!(a.valid, Validity::Unknown);
        assert_eq!(a.results["decided_by"]["rule"], "fault-not-injected");
        assert!(a.results["decided_by"]["reason"]
            .as_str()
            .unwrap()
            .contains("--accept-unsupported-faults"));
        run.write_json(
            "test.json",
            &json!({"workload": "register", "options": {"accept_unsupported_faults": true}}),
        )
        .unwrap();
        let a = analyze(&run, Duration::from_secs(5), json!({})).unwrap();
        assert_eq!(a.valid, Validity::Valid);
        assert_eq!(a.results["decided_by"]["rule"], "checker");
    }
}
