//! The run folder's JSON files as types: `test.json` (what was asked) and
//! `results.json` (what was found). The harness writes them, and the
//! report, the store index and `dcf-harness analyze` read them, all through
//! these structs, so a field has one name and one meaning everywhere.
//!
//! Both files carry `format_version` ([`FORMAT_VERSION`]); files written
//! before it existed read as version 0. Readers ignore fields they do not
//! know (a newer writer) and default the ones that are missing (an older
//! writer), so a store that mixes old and new runs still renders. Fields
//! that a report only displays are read leniently: a malformed one is
//! treated as absent rather than making the whole file unreadable.

use std::collections::BTreeMap;
use std::path::Path;

use checker::health::{Decision, RuleFinding};
use checker::{CheckResult, Validity};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{write_atomic, ReportError};

/// The version written into `test.json` and `results.json`.
pub const FORMAT_VERSION: u32 = 1;
/// What was asked: options, seed, command line.
pub const TEST_FILE: &str = "test.json";
/// What was found: the verdict and everything it was decided from.
pub const RESULTS_FILE: &str = "results.json";
/// Every operation and nemesis event, one JSON object per line.
pub const HISTORY_FILE: &str = "history.jsonl";
/// One folder per node (`n1`, ...): its logs and data.
pub const NODES_DIR: &str = "nodes";

/// Deserializes `T`, or `None` when the value is missing or malformed.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// Like [`lenient`] for lists: a malformed list is empty.
fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(lenient(d)?.unwrap_or_default())
}

/// `test.json`: what the run was asked to do. `O` is the options: the
/// harness writes its command-line arguments, readers use [`TestOptions`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestFile<O = TestOptions> {
    /// [`FORMAT_VERSION`] of the writer; 0 before versions existed.
    #[serde(default)]
    pub format_version: u32,
    /// The test's name in the store (`<workload>-<nemesis>` by default).
    #[serde(default)]
    pub name: Option<String>,
    /// The workload's name (it also chooses the checker).
    #[serde(default)]
    pub workload: Option<String>,
    /// The seed of every random choice.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The command line as typed.
    #[serde(default)]
    pub command_line: Vec<String>,
    /// The git revision the harness was built from, if known.
    #[serde(default)]
    pub git_revision: Option<String>,
    /// When the run started (`YYYYMMDDTHHMMSS.mmmZ`).
    #[serde(default)]
    pub start_time: Option<String>,
    /// The options of the run.
    #[serde(default)]
    pub options: O,
}

/// The options of a run as readers see them: the few that something
/// decides on, and every other one as recorded (for display).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestOptions {
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u64>,
    /// The fault kinds, comma-separated (or `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<String>,
    /// The explicit fault schedule, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Whether faults this deployment cannot inject were accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_unsupported_faults: Option<bool>,
    /// Every other option, by name.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl TestOptions {
    /// Whether a requested fault that could not be injected still lets the
    /// run be valid (`--accept-unsupported-faults`).
    pub fn accepts_unsupported_faults(&self) -> bool {
        self.accept_unsupported_faults.unwrap_or(false)
    }

    /// Every option by name, for display.
    pub fn all(&self) -> BTreeMap<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// Outcome counts of a set of operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    #[serde(default)]
    pub ok: u64,
    #[serde(default)]
    pub fail: u64,
    #[serde(default)]
    pub info: u64,
}

/// How many of the final reads succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalReads {
    pub ok: u64,
    pub total: u64,
}

/// A node that was not running at the end although no fault stopped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeExit {
    /// The node's folder name, e.g. `n3`.
    pub node: String,
    /// What was seen.
    #[serde(default)]
    pub note: String,
}

/// Where the nodes ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The deployment kind, e.g. `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// One line: hosts, addresses, isolation.
    #[serde(default)]
    pub description: String,
    /// The run-unique tag in the name of every resource it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A log line worth attention: a safety alarm, a panic or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFinding {
    /// Node folder name, e.g. `n1`.
    pub node: String,
    /// File name as the scanner reported it.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// `safety-alarm`, `panic` or `error`.
    pub kind: String,
    /// The line.
    #[serde(default)]
    pub text: String,
}

/// What only the live run could observe (the cluster's recovery, final
/// reads, node exits, where it ran): `dcf-harness analyze` re-checks a
/// history from scratch but keeps these from the `results.json` it replaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunObservations {
    /// Whether a leader was elected within the recovery time after healing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// How many final reads succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_reads: Option<FinalReads>,
    /// Client operations by outcome, as the harness counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ops: Option<OpCounts>,
    /// Nodes that exited on their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_exits: Option<Vec<NodeExit>>,
    /// Set when Ctrl-C or SIGTERM ended the run early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<bool>,
    /// Milliseconds from the start at which `--stop-on-invalid` found the
    /// history invalid and ended the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_on_invalid_ms: Option<u64>,
    /// Where the nodes ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentRecord>,
}

/// `results.json`: the verdict and what it was decided from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// [`FORMAT_VERSION`] of the writer; 0 before versions existed.
    #[serde(default)]
    pub format_version: u32,
    /// The verdict (`true`, `false`, `"unknown"`); `null` when the harness
    /// failed before there was one.
    #[serde(default, deserialize_with = "lenient")]
    pub valid: Option<Validity>,
    /// Why the harness failed, if it did: then there is no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_failure: Option<String>,
    /// The rule that decided the verdict (`checker` or a run rule).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub decided_by: Option<Decision>,
    /// Every run rule that fired.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient_list"
    )]
    pub health: Vec<RuleFinding>,
    /// The history checker's result.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub checker: Option<CheckResult>,
    /// The minority checker's report, in a run with minority mode: its
    /// phases and its findings by guarantee (the plain checker's result
    /// stays in `checker`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub minority: Option<checker::minority::MinorityReport>,
    /// Completed client operations per function.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub op_counts: BTreeMap<String, OpCounts>,
    /// Nemesis events in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis_ops: Option<u64>,
    /// Events in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ops: Option<u64>,
    /// Panic lines found in the node logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_panics: Option<u64>,
    /// Alarm, panic and error lines of the node logs; absent when the logs
    /// were not scanned (the report then scans them itself).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub log_findings: Option<Vec<LogFinding>>,
    /// What the live run observed.
    #[serde(flatten)]
    pub run: RunObservations,
}

impl ResultsFile {
    /// The `results.json` of a run the harness could not finish.
    pub fn harness_failure(cause: impl Into<String>) -> ResultsFile {
        ResultsFile {
            format_version: FORMAT_VERSION,
            harness_failure: Some(cause.into()),
            ..ResultsFile::default()
        }
    }

    /// Whether any node log holds a panic line.
    pub fn has_panics(&self) -> bool {
        self.node_panics.unwrap_or(0) > 0
            || self
                .log_findings
                .iter()
                .flatten()
                .any(|f| f.kind == "panic")
    }
}

/// Reads a JSON file of the run folder; `None` if it does not exist.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ReportError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReportError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a JSON file of the run folder atomically, pretty-printed.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `results.json` of the first harness versions (no version field)
    /// reads with every field in place.
    #[test]
    fn unversioned_results_read_with_their_fields() {
        let old = json!({
            "valid": "unknown",
            "decided_by": {"rule": "fault-not-injected", "valid": "unknown", "reason": "r"},
            "health": [{"rule": "fault-not-injected", "valid": "unknown", "reason": "r"}],
            "op_counts": {"read": {"ok": 3, "fail": 1, "info": 0}},
            "nemesis_ops": 4, "history_ops": 20,
            "recovered": true, "final_reads": {"ok": 2, "total": 3},
            "client_ops": {"ok": 5, "fail": 1, "info": 2},
            "node_exits": [{"node": "n2", "note": "gone"}],
            "deployment": {"description": "local: 3 nodes", "tag": "abc123"},
            "node_panics": 0, "log_findings": [],
            "interrupted": true,
        });
        let r: ResultsFile = serde_json::from_value(old).unwrap();
        assert_eq!(r.format_version, 0);
        assert_eq!(r.valid, Some(Validity::Unknown));
        assert_eq!(r.decided_by.unwrap().rule, "fault-not-injected");
        assert_eq!(r.health.len(), 1);
        assert_eq!(r.op_counts["read"].fail, 1);
        assert_eq!(r.run.final_reads, Some(FinalReads { ok: 2, total: 3 }));
        assert_eq!(r.run.node_exits.unwrap()[0].node, "n2");
        assert_eq!(r.run.deployment.unwrap().tag.as_deref(), Some("abc123"));
        assert_eq!(r.run.interrupted, Some(true));
        assert_eq!(r.log_findings, Some(vec![]));
    }

    /// Fields a newer writer adds are ignored; a malformed verdict reads as
    /// none rather than failing the whole file.
    #[test]
    fn unknown_fields_are_tolerated_and_malformed_ones_are_absent() {
        let r: ResultsFile = serde_json::from_value(json!({
            "format_version": 7, "valid": "maybe", "checker": {"nonsense": 1},
            "a_field_from_the_future": {"x": 1}
        }))
        .unwrap();
        assert_eq!((r.format_version, r.valid, r.checker), (7, None, None));
        let t: TestFile = serde_json::from_value(json!({
            "name": "t", "later": 1,
            "options": {"nodes": 3, "rate": 100.0, "accept_unsupported_faults": true}
        }))
        .unwrap();
        assert_eq!(t.options.nodes, Some(3));
        assert!(t.options.accepts_unsupported_faults());
        assert_eq!(t.options.other["rate"], json!(100.0));
        assert_eq!(t.options.all()["nodes"], json!(3));
    }

    /// What is written reads back the same, and a harness failure has a
    /// `null` verdict, as readers of the first versions expect.
    #[test]
    fn results_round_trip_and_a_failure_has_a_null_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_FILE);
        let failed = ResultsFile::harness_failure("deploy: no ip");
        write(&path, &failed).unwrap();
        let raw: Value = read(&path).unwrap().unwrap();
        assert_eq!(raw["valid"], Value::Null);
        assert_eq!(raw["harness_failure"], "deploy: no ip");
        assert_eq!(raw["format_version"], FORMAT_VERSION);
        let back: ResultsFile = read(&path).unwrap().unwrap();
        assert_eq!(back, failed);
        assert_eq!(
            read::<ResultsFile>(&dir.path().join("none.json")).unwrap(),
            None
        );
    }
}
