//! Checks a run's history from scratch and writes `results.json`; used at
//! the end of `dcf-harness test` and by `dcf-harness analyze`.
//!
//! The verdict is the checker's unless a run rule overrides it (see
//! [`run_rules`]); `results.json` says which one decided (`decided_by`) and
//! lists every rule that fired (`health`).

use crate::store::RunDir;
use checker::health::{self, RuleFinding};
use checker::{CheckOptions, Checker, History, OpType, Validity};
use reports::run_folder::{OpCounts, ResultsFile, TestOptions, FORMAT_VERSION};
use std::collections::BTreeMap;
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
    pub results: ResultsFile,
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
    /// A node refused to start on a file the corrupt fault damaged (what a
    /// correct node does; not an alarm).
    pub const CORRUPTION_REFUSED: &str = "corruption-refused";
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

/// A fault start as a reader names it: its kind's label and its topology
/// or target, e.g. `partition one`.
fn fault_label(op: &checker::Op) -> String {
    let kind = op.f.trim_start_matches("start-");
    let what = nemesis::style_of(kind).map_or(kind, |s| s.label);
    let target = op
        .value
        .get("topology")
        .or_else(|| op.value.get("target"))
        .or_else(|| op.value.get("op"))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .unwrap_or_default();
    format!("{what} {target}").trim().to_string()
}

/// The verdict rules of a run besides the checker, after Jepsen's `stats`
/// and `unhandled-exceptions` checkers: availability from the history,
/// recovery and final reads from what the harness saw (`results.run`),
/// faults that could not be injected (accepted only with
/// `--accept-unsupported-faults`), node exits and the node logs' alarms
/// and panics (`results.log_findings`).
pub fn run_rules(
    history: &History,
    options: &TestOptions,
    results: &ResultsFile,
) -> Vec<RuleFinding> {
    use rules::*;
    let observed = &results.run;
    let mut out = health::availability(history, history.semantics, true);
    if observed.recovered == Some(false) {
        out.push(RuleFinding::new(
            NOT_RECOVERED,
            Validity::Unknown,
            "the cluster had no leader within 30 s after every fault was healed",
        ));
    }
    if let Some(reads) = observed.final_reads {
        if reads.ok < reads.total {
            out.push(RuleFinding::new(
                FINAL_READS_FAILED,
                Validity::Unknown,
                format!(
                    "only {} of {} final reads succeeded, so the final state was not fully read",
                    reads.ok, reads.total
                ),
            ));
        }
    }
    let accept = options.accepts_unsupported_faults();
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
    let exits = observed
        .node_exits
        .iter()
        .flatten()
        .map(|e| {
            RuleFinding::new(
                NODE_EXITED,
                Validity::Unknown,
                format!("{} exited on its own: {}", e.node, e.note),
            )
        })
        .collect();
    push_capped(&mut out, exits);
    let all_findings = results.log_findings.as_deref().unwrap_or(&[]);
    let refused = corrupt_refusals(history);
    let (expected, findings): (Vec<&reports::run_folder::LogFinding>, Vec<_>) =
        all_findings.iter().partition(|f| {
            f.kind == reports::logs::SAFETY_ALARM
                && refused
                    .iter()
                    .any(|(node, file)| f.node == *node && f.text.contains(file.as_str()))
        });
    // A correct node refusing to start on a file the corrupt fault damaged
    // did what it should: shown, but no alarm.
    let notes = expected
        .iter()
        .map(|f| {
            RuleFinding::new(
                CORRUPTION_REFUSED,
                Validity::Valid,
                format!(
                    "{} refused to start on a file the corrupt fault damaged ({}:{}): {}",
                    f.node,
                    f.file,
                    f.line,
                    f.text.trim()
                ),
            )
        })
        .collect();
    push_capped(&mut out, notes);
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
            .filter(|f| f.kind == kind)
            .map(|f| {
                RuleFinding::new(
                    rule,
                    valid,
                    format!(
                        "{} {what} ({}:{}): {}",
                        f.node,
                        f.file,
                        f.line,
                        f.text.trim()
                    ),
                )
            })
            .collect();
        push_capped(&mut out, items);
    }
    out
}

/// The (node, file) pairs the corrupt fault damaged and the node then
/// refused to start on, from the history's `start-corrupt` events.
fn corrupt_refusals(history: &History) -> Vec<(String, String)> {
    history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis() && o.kind == OpType::Info && o.f == "start-corrupt")
        .filter_map(|o| o.value.get("nodes")?.as_object())
        .flat_map(|nodes| {
            nodes.iter().filter_map(|(n, what)| {
                let file = what["file"].as_str()?;
                (what["refused"] == serde_json::Value::Bool(true))
                    .then(|| (format!("n{n}"), file.to_string()))
            })
        })
        .collect()
}

/// The checker for a workload name.
pub fn checker_for(workload: &str) -> Option<Checker> {
    workloads::by_name(workload).ok().map(|w| w.checker())
}

/// Checks `run`'s history and writes `results.json`: `known` holds what the
/// harness observed during the run and the node-log scan; the verdict, the
/// rules that fired, the checker's result and the counts are filled in.
pub fn analyze(
    run: &RunDir,
    timeout: Duration,
    known: ResultsFile,
) -> Result<Analysis, AnalysisError> {
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
    let test = run.read_test();
    let checker = test.workload.as_deref().and_then(checker_for);
    let opts = CheckOptions {
        checker,
        timeout: Some(timeout),
        ..CheckOptions::default()
    };
    let result = checker::check_history(&history, &opts).map_err(AnalysisError::Check)?;
    let mut counts: BTreeMap<String, OpCounts> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| !o.process.is_nemesis()) {
        let outcome = match op.kind {
            OpType::Invoke => continue,
            OpType::Ok => |c: &mut OpCounts| c.ok += 1,
            OpType::Fail => |c: &mut OpCounts| c.fail += 1,
            OpType::Info => |c: &mut OpCounts| c.info += 1,
        };
        outcome(counts.entry(op.f.clone()).or_default());
    }
    let nemesis_ops = history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis())
        .count();
    let mut findings = run_rules(&history, &test.options, &known);
    let minority =
        checker::minority::check(&history, &result, &opts).map_err(AnalysisError::Check)?;
    let mut judged = result.clone();
    if let Some(m) = &minority {
        crate::minority_rules::apply(m, &mut judged, &mut findings);
    }
    let decision = health::decide(&judged, &findings);
    let valid = decision.valid;
    let results = ResultsFile {
        format_version: FORMAT_VERSION,
        valid: Some(valid),
        harness_failure: None,
        decided_by: Some(decision),
        health: findings,
        checker: Some(result),
        minority,
        op_counts: counts,
        nemesis_ops: Some(nemesis_ops as u64),
        history_ops: Some(history.ops.len() as u64),
        ..known
    };
    run.write_results(&results).map_err(AnalysisError::Write)?;
    Ok(Analysis { valid, results })
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{Op, Process};
    use serde_json::{json, Value};

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

    /// The rules that fire for `test.json` and what the harness observed
    /// (`results.json` fields), both given as JSON.
    fn rules_of(h: &History, test: Value, extra: Value) -> Vec<(String, Validity)> {
        let test: reports::TestFile = serde_json::from_value(test).unwrap_or_default();
        let extra: ResultsFile = serde_json::from_value(extra).unwrap();
        run_rules(h, &test.options, &extra)
            .into_iter()
            .map(|f| (f.rule, f.valid))
            .collect()
    }

    /// A correct node refusing to start on the file the corrupt fault
    /// damaged is noted, not an alarm; the same alarm elsewhere still is.
    #[test]
    fn a_refusal_after_a_recorded_corruption_is_no_alarm() {
        let mut h = ok_register_history();
        h.ops.push(Op::new(
            Process::Nemesis,
            OpType::Info,
            "start-corrupt",
            json!({"nodes": {"2": {"file": "stream_1/log/log_1_9", "refused": true},
                             "3": {"file": "stream_1/log/log_1_7", "refused": false}}}),
        ));
        let alarm = |node: &str, file: &str| {
            json!({"node": node, "file": "stderr.log", "line": 3, "kind": "safety-alarm",
                "text": format!("ERROR corrupt data in /r/n/data/{file} at offset 9: data CRC32C mismatch")})
        };
        let extra = |findings: Value| {
            json!({"recovered": true, "final_reads": {"ok": 3, "total": 3},
                "node_exits": [], "log_findings": findings})
        };
        let rules = rules_of(
            &h,
            Value::Null,
            extra(json!([alarm("n2", "stream_1/log/log_1_9")])),
        );
        assert_eq!(
            rules,
            [(rules::CORRUPTION_REFUSED.to_string(), Validity::Valid)]
        );
        for (node, file) in [
            ("n3", "stream_1/log/log_1_7"),
            ("n1", "stream_1/log/log_1_9"),
        ] {
            let rules = rules_of(&h, Value::Null, extra(json!([alarm(node, file)])));
            assert_eq!(
                rules,
                [(rules::SAFETY_ALARM.to_string(), Validity::Invalid)],
                "{node} {file}"
            );
        }
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
        let a = analyze(&run, Duration::from_secs(5), ResultsFile::default()).unwrap();
        assert_eq!(a.valid, Validity::Unknown);
        let decided = a.results.decided_by.unwrap();
        assert_eq!(decided.rule, "fault-not-injected");
        assert!(decided
            .reason
            .unwrap()
            .contains("--accept-unsupported-faults"));
        run.write_json(
            "test.json",
            &json!({"workload": "register", "options": {"accept_unsupported_faults": true}}),
        )
        .unwrap();
        let a = analyze(&run, Duration::from_secs(5), ResultsFile::default()).unwrap();
        assert_eq!(a.valid, Validity::Valid);
        assert_eq!(a.results.decided_by.unwrap().rule, "checker");
    }
}
