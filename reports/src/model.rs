//! The model of one run as the report shows it: the verdict, the test's
//! options, the client operations as intervals and the fault periods. Every
//! view is drawn from this, so the run folder is parsed once.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use checker::{CheckResult, History, OpType, Process, Validity};
use serde_json::Value;

use crate::error::ReportError;
pub use crate::run_folder::LogFinding;
use crate::run_folder::{self, ResultsFile, RunObservations, TestFile};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Indeterminate, or the history ended before it completed.
    Info,
}

impl Outcome {
    /// `ok`, `fail` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }

    /// Position in per-outcome tables (ok, fail, info).
    pub fn slot(self) -> usize {
        self as usize
    }

    /// All outcomes, in table order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Fail, Outcome::Info];
}

/// One client operation: an invocation and its completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// History index of the invocation (what checkers call the operation).
    pub index: usize,
    /// History index of the completion, if any.
    pub complete_index: Option<usize>,
    /// The client process.
    pub process: u64,
    /// The function (`read`, `write`, `cas`, `txn`, ...).
    pub f: String,
    /// Invocation time, ns since the start of the test.
    pub start: u64,
    /// Completion time; `None` if the history ended first.
    pub end: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Key, value, node and error in one line, for hover details.
    pub detail: String,
}

impl Operation {
    /// Latency in ns, for operations that completed.
    pub fn latency(&self) -> Option<u64> {
        self.end.map(|e| e.saturating_sub(self.start))
    }
}

/// A period in which a fault was active: from the `info` of its start to
/// the `info` of its stop (or the end of the run).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultBand {
    /// The fault kind: `partition`, `kill`, `pause`, ...
    pub kind: String,
    /// A short label, e.g. `partition one` or `kill n1`.
    pub label: String,
    /// Start, ns since the start of the test.
    pub start: u64,
    /// Stop, ns since the start of the test.
    pub end: u64,
    /// The nemesis reported an error applying it.
    pub failed: bool,
    /// What the fault's start says about its outcome beyond its label
    /// (its value's `note`, e.g. that a corrupted node refused to start).
    pub note: String,
}

/// The overall outcome shown at the top of the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The checkers found the history correct.
    Valid,
    /// A checker found a violation.
    Invalid,
    /// Undecided; the reason says why (checker limit, node panic, ...).
    Unknown(String),
    /// The harness failed; no verdict on the system.
    HarnessFailure(String),
    /// No `results.json` yet (run in progress or killed).
    NotChecked,
}

impl Verdict {
    /// A CSS class and short word: `valid`, `invalid`, `unknown`, `failure`, `unchecked`.
    pub fn class(&self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown(_) => "unknown",
            Verdict::HarnessFailure(_) => "failure",
            Verdict::NotChecked => "unchecked",
        }
    }

    /// The verdict as a reader says it.
    pub fn headline(&self) -> &'static str {
        match self {
            Verdict::Valid => "VALID",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown(_) => "UNKNOWN",
            Verdict::HarnessFailure(_) => "HARNESS FAILURE",
            Verdict::NotChecked => "NOT CHECKED",
        }
    }
}

/// Everything the report shows about one run.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run folder.
    pub dir: PathBuf,
    /// `test.json` (all defaults if missing).
    pub test: TestFile,
    /// `results.json`, if the run was checked.
    pub results: Option<ResultsFile>,
    /// The checker's result, if `results.json` has one.
    pub check: Option<CheckResult>,
    /// The verdict at the top.
    pub verdict: Verdict,
    /// Client operations, by invocation.
    pub operations: Vec<Operation>,
    /// Fault periods, by start.
    pub faults: Vec<FaultBand>,
    /// Time of the last event, ns.
    pub duration: u64,
    /// Why the history could not be read, if it could not.
    pub history_error: Option<String>,
    /// Log lines matching panics or errors.
    pub findings: Vec<LogFinding>,
}

impl RunData {
    /// Reads a run folder. A missing or unreadable history still gives a
    /// report (with the reason shown), since a harness failure must be
    /// reported too.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        let test: TestFile =
            run_folder::read(&dir.join(run_folder::TEST_FILE))?.unwrap_or_default();
        let results: Option<ResultsFile> = run_folder::read(&dir.join(run_folder::RESULTS_FILE))?;
        let hpath = dir.join(run_folder::HISTORY_FILE);
        let (history, history_error) = match std::fs::File::open(&hpath) {
            Ok(f) => match History::read_jsonl(BufReader::new(f)) {
                Ok(h) => (h, None),
                Err(e) => (
                    History::default(),
                    Some(format!("{}: {e}", hpath.display())),
                ),
            },
            Err(e) => (
                History::default(),
                Some(format!("cannot read {}: {e}", hpath.display())),
            ),
        };
        let scanned = results.as_ref().is_some_and(|r| r.log_findings.is_some());
        let mut run = RunData::from_parts(dir, test, results, &history);
        run.history_error = history_error;
        if !scanned {
            run.findings = crate::logs::scan(&dir.join(run_folder::NODES_DIR));
            run.apply_panic_rule();
        }
        Ok(run)
    }

    /// Builds the model from parsed parts (used by `load`, tests and benches).
    pub fn from_parts(
        dir: &Path,
        test: TestFile,
        results: Option<ResultsFile>,
        history: &History,
    ) -> RunData {
        let check = results.as_ref().and_then(|r| r.checker.clone());
        let findings = results
            .as_ref()
            .and_then(|r| r.log_findings.clone())
            .unwrap_or_default();
        let verdict = verdict_of(results.as_ref(), check.as_ref());
        let duration = history.ops.iter().map(|o| o.time).max().unwrap_or(0);
        let faults = crate::minority::with_phases(
            fault_bands(history, duration),
            results.as_ref(),
            duration,
        );
        let mut run = RunData {
            dir: dir.to_path_buf(),
            test,
            results,
            check,
            verdict,
            operations: operations(history),
            faults,
            duration,
            history_error: None,
            findings,
        };
        run.apply_panic_rule();
        run
    }

    /// A panic in a node log makes a run at least unknown, never silently
    /// valid (the harness does the same in `results.json`; this also covers
    /// older runs and logs scanned only by the report).
    fn apply_panic_rule(&mut self) {
        let panics = self.findings.iter().filter(|f| f.kind == "panic").count();
        if panics > 0 && self.verdict == Verdict::Valid {
            self.verdict = Verdict::Unknown(format!(
                "the checker found the history valid, but {panics} panic line(s) appear in node logs"
            ));
        }
    }

    /// The rule that decided the verdict and why, when it was not the
    /// history checker (`results.json` `decided_by`).
    pub fn decided_by_rule(&self) -> Option<(String, String)> {
        let d = self.results.as_ref()?.decided_by.as_ref()?;
        if d.rule == checker::health::CHECKER {
            return None;
        }
        Some((d.rule.clone(), d.reason.clone().unwrap_or_default()))
    }

    /// Every verdict rule that fired (`results.json` `health`).
    pub fn rule_findings(&self) -> Vec<checker::health::RuleFinding> {
        self.results
            .as_ref()
            .map(|r| r.health.clone())
            .unwrap_or_default()
    }

    /// What the live run observed (`results.json`), if it was checked.
    pub fn observed(&self) -> Option<&RunObservations> {
        self.results.as_ref().map(|r| &r.run)
    }

    /// The test's name (or the folder's parent's name).
    pub fn name(&self) -> String {
        self.test
            .name
            .clone()
            .or_else(|| {
                self.dir
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "run".into())
    }

    /// The seed, if recorded.
    pub fn seed(&self) -> Option<u64> {
        self.test.seed
    }

    /// The command that reproduces the run: its command line with the
    /// recorded seed pinned.
    pub fn reproduce_command(&self) -> Option<String> {
        let args = &self.test.command_line;
        if args.is_empty() {
            return None;
        }
        let mut out: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        if let Some(seed) = self.seed() {
            if !args
                .iter()
                .any(|a| a == "--seed" || a.starts_with("--seed="))
            {
                out.push("--seed".into());
                out.push(seed.to_string());
            }
        }
        Some(out.join(" "))
    }
}

/// Quotes an argument for a POSIX shell when it needs it.
pub fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

fn verdict_of(results: Option<&ResultsFile>, check: Option<&CheckResult>) -> Verdict {
    let Some(results) = results else {
        return Verdict::NotChecked;
    };
    if let Some(cause) = &results.harness_failure {
        return Verdict::HarnessFailure(cause.clone());
    }
    match results.valid {
        Some(Validity::Valid) => Verdict::Valid,
        Some(Validity::Invalid) => Verdict::Invalid,
        Some(Validity::Unknown) => {
            let reason = results
                .decided_by
                .as_ref()
                .and_then(|d| d.reason.clone())
                .or_else(|| check.and_then(|c| c.unknown_reason.clone()))
                .or_else(|| {
                    let panics = results.node_panics?;
                    (panics > 0).then(|| format!("{panics} node panic(s) in the logs"))
                })
                .unwrap_or_else(|| "the checkers could not decide".into());
            Verdict::Unknown(reason)
        }
        None => Verdict::HarnessFailure("results.json has no verdict".into()),
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Pairs invocations with completions. Unlike `History::pairs` this never
/// fails: a report must render even a malformed history.
fn operations(history: &History) -> Vec<Operation> {
    let mut out: Vec<Operation> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        let Process::Client(p) = op.process else {
            continue;
        };
        match op.kind {
            OpType::Invoke => {
                pending.insert(p, out.len());
                let mut detail = String::new();
                if let Some(k) = &op.key {
                    detail.push_str(&format!("key {} ", short(k)));
                }
                if !op.value.is_null() {
                    detail.push_str(&op.value.to_string());
                }
                out.push(Operation {
                    index: i,
                    complete_index: None,
                    process: p,
                    f: op.f.clone(),
                    start: op.time,
                    end: None,
                    outcome: Outcome::Info,
                    detail,
                });
            }
            kind => {
                let Some(slot) = pending.remove(&p) else {
                    continue;
                };
                let o = &mut out[slot];
                o.complete_index = Some(i);
                o.end = Some(op.time.max(o.start));
                o.outcome = match kind {
                    OpType::Ok => Outcome::Ok,
                    OpType::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                if !op.value.is_null() && kind == OpType::Ok {
                    o.detail.push_str(&format!(" → {}", op.value));
                }
                if let Some(n) = &op.node {
                    o.detail.push_str(&format!(" @n{n}"));
                }
                if let Some(e) = &op.error {
                    o.detail.push_str(&format!(" error: {}", short(e)));
                }
            }
        }
    }
    for o in &mut out {
        o.detail = o.detail.trim().to_string();
    }
    out
}

/// What a nemesis start targeted, in a few words.
fn fault_target(v: &Value) -> String {
    if let Some(t) = v.get("topology").and_then(Value::as_str) {
        return t.to_string();
    }
    if let Some(ts) = v.get("targets").and_then(Value::as_array) {
        let names: Vec<String> = ts.iter().map(|t| format!("n{}", short(t))).collect();
        return names.join(",");
    }
    if let Some(t) = v.get("target") {
        return short(t);
    }
    // A membership change: which one, and on which node.
    if let Some(op) = v.get("op").and_then(Value::as_str) {
        return match v.get("node") {
            Some(n) => format!("{op} n{}", short(n)),
            None => op.to_string(),
        };
    }
    String::new()
}

/// Fault periods from the nemesis events. A start without a stop lasts to
/// the end of the run; a second start of the same kind closes the first.
fn fault_bands(history: &History, end_of_run: u64) -> Vec<FaultBand> {
    let mut open: HashMap<String, FaultBand> = HashMap::new();
    let mut out = Vec::new();
    for op in history
        .ops
        .iter()
        .filter(|o| o.process.is_nemesis() && o.kind == OpType::Info)
    {
        if let Some(kind) = op.f.strip_prefix("start-") {
            if let Some(mut prev) = open.remove(kind) {
                prev.end = op.time;
                out.push(prev);
            }
            let target = fault_target(&op.value);
            let label = format!("{} {target}", crate::style::fault_label(kind))
                .trim()
                .to_string();
            open.insert(
                kind.to_string(),
                FaultBand {
                    kind: kind.to_string(),
                    label,
                    start: op.time,
                    end: end_of_run,
                    failed: op.error.is_some(),
                    note: op.value["note"].as_str().unwrap_or_default().to_string(),
                },
            );
        } else if let Some(kind) = op.f.strip_prefix("stop-") {
            if let Some(mut band) = open.remove(kind) {
                band.end = op.time.max(band.start);
                out.push(band);
            }
        }
    }
    out.extend(open.into_values());
    out.sort_by(|a, b| (a.start, &a.kind).cmp(&(b.start, &b.kind)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::Op;
    use serde_json::json;

    /// The model of a run folder holding these two JSON files (`null`:
    /// the file is missing).
    fn from_json(test: Value, results: Value) -> RunData {
        let results = (!results.is_null()).then(|| serde_json::from_value(results).unwrap());
        let test = serde_json::from_value(test).unwrap_or_default();
        RunData::from_parts(Path::new("/x"), test, results, &History::default())
    }

    fn nem(f: &str, t: u64, value: Value) -> Op {
        Op::new(Process::Nemesis, OpType::Info, f, value).at(t)
    }

    /// A start's `note` (a corrupted node that refused to start) reaches
    /// its band, for the report's fault table.
    #[test]
    fn a_start_note_is_kept_on_its_band() {
        let h = History::new(vec![
            nem(
                "start-corrupt",
                1,
                json!({"targets": ["3"], "note": "n3 refused to start: bad segment"}),
            ),
            nem("stop-corrupt", 4, json!({})),
            nem("start-kill", 5, json!({"targets": [1]})),
        ]);
        let b = fault_bands(&h, 9);
        assert_eq!(b[0].label, "corrupt n3");
        assert_eq!(b[0].note, "n3 refused to start: bad segment");
        assert_eq!(b[1].note, "");
    }

    #[test]
    fn bands_run_from_start_info_to_stop_info_or_end() {
        let h = History::new(vec![
            Op::new(
                Process::Nemesis,
                OpType::Invoke,
                "start-partition",
                json!({}),
            )
            .at(1),
            nem("start-partition", 2, json!({"topology": "one"})),
            nem("start-kill", 3, json!({"targets": [1]})),
            nem("stop-partition", 5, Value::Null),
            Op::new(Process::Client(0), OpType::Invoke, "read", Value::Null).at(9),
        ]);
        let b = fault_bands(&h, 9);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].label.as_str(), b[0].start, b[0].end),
            ("partition one", 2, 5)
        );
        assert_eq!(
            (b[1].label.as_str(), b[1].start, b[1].end),
            ("kill n1", 3, 9)
        );
    }

    #[test]
    fn operations_pair_and_tolerate_orphans() {
        let h = History::new(vec![
            Op::new(Process::Client(1), OpType::Invoke, "write", json!(3))
                .with_key(json!(2))
                .at(10),
            Op::new(Process::Client(2), OpType::Ok, "read", json!(1)).at(11),
            Op::new(Process::Client(1), OpType::Ok, "write", json!(3)).at(30),
            Op::new(Process::Client(3), OpType::Invoke, "read", Value::Null).at(31),
        ]);
        let ops = operations(&h);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].outcome, Outcome::Ok);
        assert_eq!(ops[0].latency(), Some(20));
        assert_eq!(ops[0].complete_index, Some(2));
        assert!(ops[0].detail.starts_with("key 2 3"));
        assert_eq!(ops[1].outcome, Outcome::Info);
        assert_eq!(ops[1].end, None);
    }

    #[test]
    fn panic_in_logs_makes_valid_unknown_and_harness_failure_is_not_a_verdict() {
        let results = json!({"valid": true, "log_findings": [
            {"node": "n1", "file": "stderr.log", "line": 3, "kind": "panic", "text": "panicked at x"}]});
        let run = from_json(Value::Null, results);
        assert!(matches!(run.verdict, Verdict::Unknown(_)));
        let run = from_json(
            Value::Null,
            json!({"valid": null, "harness_failure": "deploy: no ip"}),
        );
        assert_eq!(run.verdict, Verdict::HarnessFailure("deploy: no ip".into()));
        let run = from_json(Value::Null, Value::Null);
        assert_eq!(run.verdict, Verdict::NotChecked);
    }

    #[test]
    fn the_deciding_rule_gives_the_reason() {
        let results = json!({"valid": "unknown",
            "decided_by": {"rule": "fault-not-injected", "valid": "unknown", "reason": "partition one at 2.0 s could not be injected"},
            "health": [{"rule": "fault-not-injected", "valid": "unknown", "reason": "partition one at 2.0 s could not be injected"}],
            "checker": {"valid": true, "checker": "linearizable", "model": "cas-register", "elapsed_ms": 1.0, "op_count": 3}});
        let run = from_json(Value::Null, results);
        assert_eq!(
            run.verdict,
            Verdict::Unknown("partition one at 2.0 s could not be injected".into())
        );
        assert_eq!(run.decided_by_rule().unwrap().0, "fault-not-injected");
        assert_eq!(run.rule_findings().len(), 1);
    }

    #[test]
    fn reproduce_command_pins_the_seed_and_quotes() {
        let test = json!({"seed": 11, "command_line": ["dcf-harness", "test", "--schedule", "2:partition:leader, 9:heal"]});
        let run = from_json(test, Value::Null);
        assert_eq!(
            run.reproduce_command().unwrap(),
            "dcf-harness test --schedule '2:partition:leader, 9:heal' --seed 11"
        );
    }

    /// A membership change's band names the change and its node.
    #[test]
    fn member_bands_name_the_change() {
        let h = History::new(vec![
            nem(
                "start-member",
                2,
                json!({"op": "remove", "node": 4, "ack": "ok"}),
            ),
            nem("stop-member", 5, Value::Null),
            nem("start-member", 6, json!({"op": "burst", "changes": []})),
        ]);
        let labels: Vec<String> = fault_bands(&h, 9).into_iter().map(|b| b.label).collect();
        assert_eq!(labels, ["member change remove n4", "member change burst"]);
    }
}
